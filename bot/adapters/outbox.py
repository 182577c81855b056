"""The outbox repository: notices owed to Slack, claimed by dispatchers under a lease."""

from __future__ import annotations

import abc
from collections.abc import Set
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.driver import Driver
from bot.adapters.repository import utc
from bot.adapters.tables import OutboxRow
from bot.service_layer.notices import UPDATE_CHANNEL, UPDATE_DM, Notice

PENDING, DONE, SKIPPED, FAILED, DEAD = "pending", "done", "skipped", "failed", "dead"
UPDATES = (UPDATE_DM, UPDATE_CHANNEL)
OUTBOX: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Claimed:
    """A notice a dispatcher holds: what to deliver, and how many times delivery was tried before."""

    id: int
    dedupe_key: str
    request_id: str
    target: str
    action: str
    subject: str | None
    details: dict[str, Any]
    attempts: int
    claims: int
    created_at: datetime
    status: str = PENDING
    last_error: str | None = None

    @property
    def maybe_delivered_before(self) -> bool:
        """An earlier attempt may have reached Slack without us learning of it (timeout, 5xx, crash)."""
        return self.claims > 1 or self.attempts > 0

    @classmethod
    def queued(cls, notice: Notice, notice_id: int, *, claims: int, at: datetime) -> Claimed:
        """A notice just queued under ``notice_id`` (never attempted)."""
        return cls(
            notice_id,
            notice.dedupe_key,
            notice.request_id,
            notice.target,
            notice.action,
            notice.subject,
            notice.details,
            0,
            claims,
            at,
        )

    @classmethod
    def of(cls, row: Any) -> Claimed:
        """From a row of the outbox table."""
        return cls(
            row.id,
            row.dedupe_key,
            row.request_id,
            row.target,
            row.action,
            row.subject,
            dict(row.details),
            row.attempts,
            row.claims,
            utc(row.created_at),
            row.status,
            row.last_error,
        )


@dataclass(frozen=True)
class Lease:
    """Notices queued with a lease are handed straight to the dispatcher ``by`` in this process."""

    by: str
    until: datetime


# Statements built once (building them per call cost more than running them).
# "A pending notice of the same message" names the status as a literal: then PostgreSQL's plans (generic ones too)
# can use the index of pending notices (ix_outbox_pending), which holds a handful of rows.
_PENDING_LITERAL: sa.ColumnElement[str] = sa.literal_column(f"'{PENDING}'")
_EARLIER, _LATER = OUTBOX.alias("earlier"), OUTBOX.alias("later")
# Due now, not leased, and the earliest undelivered notice of its message.
DUE = (
    sa.select(OUTBOX)
    .where(
        OUTBOX.c.status == PENDING,
        OUTBOX.c.next_attempt_at <= sa.bindparam("now"),
        sa.or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until < sa.bindparam("now")),
        ~sa.select(_EARLIER.c.id)
        .where(
            _EARLIER.c.request_id == OUTBOX.c.request_id,
            _EARLIER.c.target == OUTBOX.c.target,
            _EARLIER.c.id < OUTBOX.c.id,
            _EARLIER.c.status == _PENDING_LITERAL,
        )
        .exists(),
    )
    .order_by(OUTBOX.c.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(skip_locked=True)
)
SKIP_SUPERSEDED = (
    sa.update(OUTBOX)
    .where(
        OUTBOX.c.status == PENDING,
        OUTBOX.c.action.in_(UPDATES),
        OUTBOX.c.lease_until.is_(None),
        OUTBOX.c.attempts == 0,
        sa.select(_LATER.c.id)
        .where(
            _LATER.c.request_id == OUTBOX.c.request_id,
            _LATER.c.target == OUTBOX.c.target,
            _LATER.c.action == OUTBOX.c.action,
            _LATER.c.id > OUTBOX.c.id,
            _LATER.c.status == _PENDING_LITERAL,
        )
        .exists(),
    )
    .values(status=SKIPPED, finished_at=sa.bindparam("now"), last_error="superseded by a later update")
)

_ELSEWHERE = OUTBOX.alias("elsewhere")


def _lease_unless_waiting(i: int) -> dict[str, Any]:
    """Row ``i``'s lease columns, worked out by the INSERT itself (no round trip of its own): leased to the
    dispatcher ``by`` unless a pending notice of its message is not ``by``'s to deliver (another process's, or
    one waiting for its retry); then it waits its turn in the database and is claimed in order."""
    waiting = (
        sa.select(_ELSEWHERE.c.id)
        .where(
            _ELSEWHERE.c.request_id == sa.bindparam(f"request_id_r{i}"),
            _ELSEWHERE.c.target == sa.bindparam(f"target_r{i}"),
            _ELSEWHERE.c.status == _PENDING_LITERAL,
            sa.or_(
                _ELSEWHERE.c.lease_until.is_(None),
                _ELSEWHERE.c.lease_until <= sa.bindparam("now"),
                _ELSEWHERE.c.claimed_by != sa.bindparam("by"),
            ),
        )
        .exists()
    )
    return {
        "claims": sa.case((waiting, 0), else_=1),
        "lease_until": sa.case((waiting, sa.null()), else_=sa.bindparam("until", type_=OUTBOX.c.lease_until.type)),
        "claimed_by": sa.case((waiting, sa.null()), else_=sa.bindparam("by", type_=OUTBOX.c.claimed_by.type)),
    }


DIALECTS = ("sqlite", "postgresql")


def _one_of_ids(dialect: str) -> Any:
    """``outbox.id`` is one of the list ``ids``. On PostgreSQL ``= ANY($1::INTEGER[])``: one statement whatever
    the list's length (an IN list is a statement per length, which PostgreSQL parses and plans and asyncpg prepares
    on each connection; padded to powers of two, the deliveries' group commit still made a new one at most runs)."""
    if dialect == "postgresql":
        return OUTBOX.c.id == sa.any_(sa.bindparam("ids", type_=ARRAY(OUTBOX.c.id.type)))
    return OUTBOX.c.id.in_(sa.bindparam("ids", expanding=True))


_RELEASE = {
    d: sa.update(OUTBOX).where(_one_of_ids(d), OUTBOX.c.status == PENDING).values(lease_until=None) for d in DIALECTS
}
_NEW_COLUMNS = (
    "dedupe_key",
    "request_id",
    "target",
    "action",
    "subject",
    "details",
    "status",
    "attempts",
    "claims",
    "next_attempt_at",
    "created_at",
    "lease_until",
    "claimed_by",
)
_INSERTS: dict[tuple[str, tuple[bool, ...]], Any] = {}


def _insert_new(dialect: str, checked: tuple[bool, ...]) -> Any:
    """Notices in one INSERT (one round trip), each left out if its key was ever queued; RETURNING tells which
    were new and which are leased. Row ``i`` works out its own lease when ``checked[i]``. Built once per dialect
    and shape (a unit queues at most a handful)."""
    statement = _INSERTS.get((dialect, checked))
    if statement is None:
        rows = []
        for i, check in enumerate(checked):
            row: dict[str, Any] = {c: sa.bindparam(f"{c}_r{i}", type_=OUTBOX.c[c].type) for c in _NEW_COLUMNS}
            if check:
                row.update(_lease_unless_waiting(i))
            rows.append(row)
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        returning: list[Any] = [OUTBOX.c.id, OUTBOX.c.dedupe_key, OUTBOX.c.claims]
        if dialect == "postgresql":  # and the transaction that wrote them (``written_in``)
            returning.append(sa.cast(sa.literal_column(f"{OUTBOX.name}.xmin"), sa.Text).label("written_in"))
        statement = _INSERTS[(dialect, checked)] = (
            insert(OUTBOX).values(rows).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(*returning)
        )
    return statement


_LEASE = {
    d: sa.update(OUTBOX)
    .where(_one_of_ids(d))
    .values(lease_until=sa.bindparam("until"), claimed_by=sa.bindparam("by"), claims=OUTBOX.c.claims + 1)
    for d in DIALECTS
}
_RENEW = {
    d: sa.update(OUTBOX)
    .where(
        _one_of_ids(d),
        OUTBOX.c.status == PENDING,
        OUTBOX.c.claimed_by == sa.bindparam("by"),
        OUTBOX.c.lease_until.is_not(None),
    )
    .values(lease_until=sa.bindparam("until"))
    .returning(OUTBOX.c.id)
    for d in DIALECTS
}
_FINISH_MANY = {
    d: sa.update(OUTBOX)
    .where(_one_of_ids(d))
    .values(status=sa.bindparam("status"), finished_at=sa.bindparam("at"), lease_until=None, last_error=None)
    for d in DIALECTS
}


class AbstractOutbox(abc.ABC):
    # The id of the transaction that queued the unit's notices, when the database tells it (PostgreSQL: their rows'
    # ``xmin``): the version every row the unit wrote takes as it commits.
    written_in: str | None = None

    @abc.abstractmethod
    async def add_many(
        self, notices: list[Notice], *, at: datetime, lease: Lease | None = None, fresh: Set[str] = frozenset()
    ) -> list[Claimed]:
        """Queue notices (distinct keys), each unless one with its key was ever queued; returns those queued. With
        ``lease``, each is leased to ``lease.by`` (``claims`` 1) unless an earlier notice of its target is
        pending and not ``lease.by``'s: that one goes first, and this one is claimed after it. ``fresh``: ids of
        requests created in this transaction."""

    @abc.abstractmethod
    async def release(self, notice_ids: list[int]) -> None:
        """Give up the leases of pending notices, so that they are claimed again in order."""

    @abc.abstractmethod
    async def claim(self, *, by: str, now: datetime, lease: timedelta, limit: int) -> list[Claimed]: ...

    @abc.abstractmethod
    async def renew(self, notice_ids: list[int], *, by: str, until: datetime) -> set[int]:
        """Extend to ``until`` the leases ``by`` still holds on these pending notices; returns their ids."""

    @abc.abstractmethod
    async def finish(self, notice_id: int, *, status: str, at: datetime, error: str | None = None) -> None: ...

    @abc.abstractmethod
    async def finish_many(self, notice_ids: list[int], *, status: str, at: datetime) -> None: ...

    @abc.abstractmethod
    async def reschedule(self, notice_id: int, *, at: datetime, error: str) -> int:
        """Release the lease and retry at ``at``; returns the attempts so far."""

    @abc.abstractmethod
    async def release_leases(self, *, not_before: datetime) -> int:
        """Free every lease; the notices freed are not due before ``not_before`` (an attempt may be in flight)."""

    @abc.abstractmethod
    async def find(self, *, statuses: tuple[str, ...], limit: int) -> list[Claimed]: ...

    @abc.abstractmethod
    async def requeue(self, notice_ids: list[int] | None, *, at: datetime) -> int: ...


class SqlOutbox(AbstractOutbox):
    """The hot statements (queue, claim, finish) run through ``Driver``; the admin ones through the session."""

    def __init__(self, session: AsyncSession, driver: Driver | None = None) -> None:
        self.session = session
        self.sql = driver or Driver(session)

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def add_many(
        self, notices: list[Notice], *, at: datetime, lease: Lease | None = None, fresh: Set[str] = frozenset()
    ) -> list[Claimed]:
        if not notices:
            return []
        # A request made in this unit has no older notice: its notices are leased without a look.
        checked = tuple(lease is not None and n.request_id not in fresh for n in notices)
        params: dict[str, Any] = {}
        if lease is not None:
            params.update(now=at, by=lease.by, until=lease.until)
        for i, (n, check) in enumerate(zip(notices, checked, strict=True)):
            row = {
                "dedupe_key": n.dedupe_key,
                "request_id": n.request_id,
                "target": n.target,
                "action": n.action,
                "subject": n.subject,
                "details": n.details,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
            }
            if not check:  # leased (or not) as it is: the INSERT works out the lease of a checked row
                row.update(
                    claims=0 if lease is None else 1,
                    lease_until=None if lease is None else lease.until,
                    claimed_by=None if lease is None else lease.by,
                )
            params.update({f"{column}_r{i}": value for column, value in row.items()})
        dialect = self._dialect
        rows = await self.sql.rows(_insert_new(dialect, checked), params)
        new = {r.dedupe_key: (r.id, r.claims) for r in rows}
        if rows and dialect == "postgresql":
            self.written_in = rows[0].written_in
        return [
            Claimed.queued(n, new[n.dedupe_key][0], claims=new[n.dedupe_key][1], at=at)
            for n in notices
            if n.dedupe_key in new
        ]

    async def release(self, notice_ids: list[int]) -> None:
        if notice_ids:
            await self.sql.execute(_RELEASE[self._dialect], {"ids": notice_ids})

    async def claim(self, *, by: str, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        # Superseded updates first: an update renders the request as it is when delivered, so an update not yet
        # started is made redundant by a later one of the same message (fewer calls, same final state).
        await self.sql.execute(SKIP_SUPERSEDED, {"now": now})
        rows = await self.sql.rows(DUE, {"now": now, "limit": limit})
        if not rows:
            return []
        ids = [r.id for r in rows]
        await self.sql.execute(_LEASE[self._dialect], {"ids": ids, "until": now + lease, "by": by})
        return [replace(Claimed.of(r), claims=r.claims + 1) for r in rows]

    async def renew(self, notice_ids: list[int], *, by: str, until: datetime) -> set[int]:
        if not notice_ids:
            return set()
        renewed = await self.sql.rows(_RENEW[self._dialect], {"ids": notice_ids, "by": by, "until": until})
        return {r.id for r in renewed}

    async def finish(self, notice_id: int, *, status: str, at: datetime, error: str | None = None) -> None:
        await self.session.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id == notice_id)
            .values(status=status, finished_at=at, lease_until=None, last_error=error)
        )

    async def finish_many(self, notice_ids: list[int], *, status: str, at: datetime) -> None:
        if notice_ids:  # with the unit's next statement, or as it commits (its deliveries' messages riding along)
            finish = _FINISH_MANY[self._dialect]
            await self.sql.defer_statement(finish, {"ids": notice_ids, "status": status, "at": at})

    async def reschedule(self, notice_id: int, *, at: datetime, error: str) -> int:
        await self.session.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id == notice_id)
            .values(attempts=OUTBOX.c.attempts + 1, next_attempt_at=at, lease_until=None, last_error=error[:255])
        )
        attempts = await self.session.execute(sa.select(OUTBOX.c.attempts).where(OUTBOX.c.id == notice_id))
        return int(attempts.scalar_one())

    async def release_leases(self, *, not_before: datetime) -> int:
        later = sa.case((OUTBOX.c.next_attempt_at < not_before, not_before), else_=OUTBOX.c.next_attempt_at)
        result = await self.session.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.status == PENDING, OUTBOX.c.lease_until.is_not(None))
            .values(lease_until=None, next_attempt_at=later)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def find(self, *, statuses: tuple[str, ...], limit: int) -> list[Claimed]:
        query = sa.select(OUTBOX).where(OUTBOX.c.status.in_(statuses)).order_by(OUTBOX.c.id).limit(limit)
        return [Claimed.of(r) for r in (await self.session.execute(query)).all()]

    async def requeue(self, notice_ids: list[int] | None, *, at: datetime) -> int:
        query = sa.update(OUTBOX).where(OUTBOX.c.status.in_((DEAD, FAILED)))
        if notice_ids is not None:
            query = query.where(OUTBOX.c.id.in_(notice_ids))
        result = await self.session.execute(
            query.values(status=PENDING, attempts=0, next_attempt_at=at, lease_until=None, finished_at=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
