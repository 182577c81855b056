"""Repositories: the abstract ports the service layer uses, and their SQLModel implementations."""

from __future__ import annotations

import abc
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from bot.adapters.driver import Driver
from bot.adapters.tables import (
    AccessRequestRow,
    ApproverRow,
    AuditRow,
    DecisionRow,
    OutboxRow,
    ProcessedEventRow,
    SlackMessageRow,
)
from bot.domain.model import AccessRequest
from bot.domain.values import Approver, Decision, Status, Verdict
from bot.recent import put_recent

REQUESTS: sa.Table = AccessRequestRow.__table__  # type: ignore[attr-defined]
APPROVERS: sa.Table = ApproverRow.__table__  # type: ignore[attr-defined]
DECISIONS: sa.Table = DecisionRow.__table__  # type: ignore[attr-defined]
AUDIT: sa.Table = AuditRow.__table__  # type: ignore[attr-defined]
MESSAGES: sa.Table = SlackMessageRow.__table__  # type: ignore[attr-defined]
OUTBOX: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]


# Statements on the hot paths, built once: building them per call (and their cache keys) cost more than
# running them.
# A request with its decisions, one row per decision (one with none): one statement, not two.
_GET = (
    sa.select(REQUESTS, *(c.label(f"d_{c.key}") for c in DECISIONS.c))
    .select_from(REQUESTS.outerjoin(DECISIONS, DECISIONS.c.request_id == REQUESTS.c.id))
    .where(REQUESTS.c.id == sa.bindparam("b_id"))
    .order_by(DECISIONS.c.id)
)
# PostgreSQL, cancelling or expiring (``get(for_update=True)``; a decision reads with ``for_decision``, below): the
# same, the request's row locked FOR NO KEY UPDATE (what the UPDATE of its status takes
# anyway): the foreign-key checks of rows that name the request (its posted messages, recorded by the outbox in
# other transactions) take KEY SHARE locks, which FOR UPDATE would wait for and block. A statement that waited for
# the lock returns the row as the other transaction left it, but reads the decisions as they were when it began:
# ``unchanged`` tells whether the locked row is the one the statement began with (every decision moves its
# request's row), else the decisions are read again. (SQLite's writers hold the database's lock before they read.)
_SEEN = REQUESTS.alias("seen")
_SEEN_VERSION = sa.select(sa.literal_column("seen.xmin")).where(_SEEN.c.id == sa.bindparam("b_id")).scalar_subquery()
_GET_LOCKED = _GET.add_columns(
    (sa.literal_column(f"{REQUESTS.name}.xmin") == _SEEN_VERSION).label("unchanged")
).with_for_update(of=REQUESTS, key_share=True)
# PostgreSQL, recording a decision (``for_decision``): the same, read without a lock (no transaction to begin),
# with the version of the request's row (``xmin``, the transaction that wrote it: every decision moves its request's
# row). The decision is written by one statement that commits on its own (``_decision_if_unchanged``).
_VERSION = sa.cast(sa.literal_column(f"{REQUESTS.name}.xmin"), sa.Text)
_GET_VERSIONED = _GET.add_columns(_VERSION.label("version"))
# The same with the request's approvers (user id, name, email, by position) as one array, for a request whose
# approvers the process does not keep yet: the decision's read stays one round trip.
_APPROVERS_ARRAY = (
    sa.select(
        sa.func.array_agg(
            postgresql.aggregate_order_by(
                postgresql.array([APPROVERS.c.user_id, APPROVERS.c.display_name, APPROVERS.c.email]),
                APPROVERS.c.position,
            )
        )
    )
    .where(APPROVERS.c.request_id == REQUESTS.c.id)
    .correlate(REQUESTS)
    .scalar_subquery()
)
_GET_VERSIONED_NAMING = _GET_VERSIONED.add_columns(
    sa.type_coerce(_APPROVERS_ARRAY, sa.types.NullType).label("approvers")
)
# PostgreSQL, storing a new request: inserted only while its requester has fewer open requests than the limit.
_NEW_REQUEST = tuple(REQUESTS.c.keys())  # all of its columns, as a new request's row has them
_OPEN_NOW = (
    sa.select(sa.func.count())
    .select_from(REQUESTS)
    .where(REQUESTS.c.requester_id == sa.bindparam("g_requester_id"), REQUESTS.c.status == Status.PENDING.value)
    .scalar_subquery()
)
_ADD_UNLESS_OPEN = sa.insert(REQUESTS).from_select(
    list(_NEW_REQUEST),
    sa.select(*(sa.bindparam(f"g_{c}", type_=REQUESTS.c[c].type) for c in _NEW_REQUEST)).where(
        _OPEN_NOW < sa.bindparam("g_limit")
    ),
)
_NONE_AWAITING = (
    sa.update(APPROVERS)
    .where(APPROVERS.c.request_id == sa.bindparam("b_id"), APPROVERS.c.awaiting)
    .values(awaiting=False)
)
_DECIDED = (
    sa.update(APPROVERS)
    .where(
        APPROVERS.c.request_id == sa.bindparam("b_id"),
        APPROVERS.c.user_id.in_(sa.bindparam("b_users", expanding=True)),
    )
    .values(awaiting=False)
)
_AWAITING = (
    sa.select(REQUESTS)
    .join(APPROVERS, APPROVERS.c.request_id == REQUESTS.c.id)
    .where(
        APPROVERS.c.user_id == sa.bindparam("b_user"),
        APPROVERS.c.awaiting,
        REQUESTS.c.status == Status.PENDING.value,
        ~sa.select(DECISIONS.c.id)
        .where(DECISIONS.c.request_id == REQUESTS.c.id, DECISIONS.c.approver_id == sa.bindparam("b_user"))
        .exists(),
    )
    .order_by(REQUESTS.c.created_at.desc(), REQUESTS.c.id.desc())
    .limit(sa.bindparam("b_limit"))
)


_NAME_APPROVER = (
    sa.update(APPROVERS)
    .where(
        APPROVERS.c.request_id == sa.bindparam("b_id"),
        APPROVERS.c.position == sa.bindparam("b_position"),
        APPROVERS.c.user_id == sa.bindparam("b_user"),
    )
    .values(display_name=sa.bindparam("b_name"), email=sa.bindparam("b_email"))
)
# A request's rows, those pointing at it first. Decisions and posted messages are not among them: a request is
# removed before any of its notices went out, so nobody could have seen or decided it. Its audit entries stay.
_REMOVE = tuple(
    sa.delete(table).where(column == sa.bindparam("b_id"))
    for table, column in ((OUTBOX, OUTBOX.c.request_id), (APPROVERS, APPROVERS.c.request_id), (REQUESTS, REQUESTS.c.id))
)
_MOVE_STATUS = (
    sa.update(REQUESTS)
    .where(REQUESTS.c.id == sa.bindparam("b_id"), REQUESTS.c.status == sa.bindparam("b_was"))
    .values(status=sa.bindparam("b_status"), updated_at=sa.bindparam("b_at"))
)
# PostgreSQL: the approvers' ``awaiting`` flags move in the same statement as the status (a data-modifying CTE;
# they share ``b_id``): one round trip for both.
_MOVE_WITH = {id(follow): _MOVE_STATUS.add_cte(follow.cte("approvers")) for follow in (_NONE_AWAITING, _DECIDED)}


def _decision_if_unchanged(which: Any) -> Any:
    """A decision's writes, made only if the request's row is still the version read: the status moves (``moved``)
    where the row is that version, and the decision's row takes its request id from the move. Another transaction
    that moved the row first leaves ``moved`` empty, the decision's request id NULL, and the whole statement (with
    the unit's audit entries and notices riding along) fails on it: the unit is read and decided again
    (``lost_race``). The approvers' flags move after the row (their request id is the move's too): every unit that
    decides locks the request's row before its approvers' rows."""
    # No ``status = <the status read>``: the version says as much, and with it PostgreSQL's generic plan (the writing
    # connections') could take the index on status, and scan every pending request for this one.
    moved = (
        sa.update(REQUESTS)
        .where(REQUESTS.c.id == sa.bindparam("b_id"), _VERSION == sa.bindparam("b_version"))
        .values(status=sa.bindparam("b_status"), updated_at=sa.bindparam("b_at"))
        .returning(REQUESTS.c.id)
        .cte("moved")
    )
    moved_id = sa.select(moved.c.id).scalar_subquery()
    approvers = (
        sa.update(APPROVERS).where(APPROVERS.c.request_id == moved_id, which).values(awaiting=False).cte("approvers")
    )
    decision = sa.insert(DECISIONS).values(
        request_id=moved_id,
        approver_id=sa.bindparam("b_approver"),
        verdict=sa.bindparam("b_verdict"),
        reason=sa.bindparam("b_reason"),
        decided_at=sa.bindparam("b_decided_at"),
    )
    return decision.add_cte(moved).add_cte(approvers)


# The decision closes the request (no approver is awaited any more), or it stays pending (the decider is not).
_DECISION_CLOSING = _decision_if_unchanged(APPROVERS.c.awaiting)
_DECISION_PENDING = _decision_if_unchanged(APPROVERS.c.user_id == sa.bindparam("b_approver"))
_BY_IDS = sa.select(REQUESTS).where(REQUESTS.c.id.in_(sa.bindparam("ids", expanding=True)))
# Searches (lists, counts) are built once per shape of their filter (which of its fields are set), their values
# bound: run on the driver like the other hot statements, without a session's building and compiling per call.
_FILTER_FIELDS = ("status", "requester_id", "approver_id", "involving", "created_before")
_SEARCHES: dict[tuple[str, tuple[bool, ...]], Any] = {}


def _filter_params(where: RequestFilter) -> dict[str, Any]:
    params = {f"b_{field}": getattr(where, field) for field in _FILTER_FIELDS if getattr(where, field) is not None}
    if "b_status" in params:
        params["b_status"] = params["b_status"].value
    return params


def _search(where: RequestFilter, kind: str) -> Any:
    """The statement of ``kind`` (find, count, count_up_to) for filters of ``where``'s shape."""
    shape = tuple(getattr(where, field) is not None for field in _FILTER_FIELDS)
    statement = _SEARCHES.get((kind, shape))
    if statement is None:
        used = dict(zip(_FILTER_FIELDS, shape, strict=True))
        if kind == "find":
            statement = (
                _filtered(sa.select(REQUESTS), used)
                .order_by(REQUESTS.c.created_at.desc(), REQUESTS.c.id.desc())
                .limit(sa.bindparam("b_limit"))
                .offset(sa.bindparam("b_offset"))
            )
        elif kind == "count":
            statement = _filtered(sa.select(sa.func.count()).select_from(REQUESTS), used)
        else:
            matching = _filtered(sa.select(REQUESTS.c.id), used).limit(sa.bindparam("b_up_to")).subquery()
            statement = sa.select(sa.func.count()).select_from(matching)
        _SEARCHES[(kind, shape)] = statement
    return statement


def _filtered(query: Any, used: dict[str, bool]) -> Any:
    if used["status"]:
        query = query.where(REQUESTS.c.status == sa.bindparam("b_status"))
    if used["requester_id"]:
        query = query.where(REQUESTS.c.requester_id == sa.bindparam("b_requester_id"))
    if used["approver_id"]:
        named = sa.select(APPROVERS.c.request_id).where(APPROVERS.c.user_id == sa.bindparam("b_approver_id"))
        query = query.where(REQUESTS.c.id.in_(named))
    if used["created_before"]:
        query = query.where(REQUESTS.c.created_at < sa.bindparam("b_created_before"))
    if used["involving"]:
        named = sa.select(APPROVERS.c.request_id).where(APPROVERS.c.user_id == sa.bindparam("b_involving"))
        query = query.where(sa.or_(REQUESTS.c.requester_id == sa.bindparam("b_involving"), REQUESTS.c.id.in_(named)))
    return query


_MESSAGES_OF = sa.select(MESSAGES.c.request_id, MESSAGES.c.purpose, MESSAGES.c.channel_id, MESSAGES.c.ts).where(
    MESSAGES.c.request_id.in_(sa.bindparam("ids", expanding=True))
)

# The approvers of several requests (when their decisions came with them), and below their approvers and
# decisions together. PostgreSQL gets ``= ANY(array)``: one statement text whatever the number of requests, so
# asyncpg prepares it once (an IN list is a new statement for every length).
_IDS = sa.bindparam("ids", type_=postgresql.ARRAY(sa.String))
_APPROVERS_OF = {
    "sqlite": sa.select(APPROVERS)
    .where(APPROVERS.c.request_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(APPROVERS.c.position),
    "postgresql": sa.select(APPROVERS).where(APPROVERS.c.request_id == sa.any_(_IDS)).order_by(APPROVERS.c.position),
}


def _both(approvers_of: Any, decisions_of: Any) -> Any:
    """Requests' approvers (``kind`` 0, by position) and decisions (``kind`` 1, in order) in one statement: on
    PostgreSQL one round trip instead of two. A row is (request_id, kind, n, who, a, b, at): an approver's
    position, user id, display name, email; or a decision's id, approver, verdict, reason, time."""
    approvers = sa.select(
        APPROVERS.c.request_id,
        sa.literal(0).label("kind"),
        APPROVERS.c.position.label("n"),
        APPROVERS.c.user_id.label("who"),
        APPROVERS.c.display_name.label("a"),
        sa.cast(APPROVERS.c.email, sa.Text).label("b"),
        sa.cast(sa.null(), DECISIONS.c.decided_at.type).label("at"),
    ).where(approvers_of)
    decisions = sa.select(
        DECISIONS.c.request_id,
        sa.literal(1),
        DECISIONS.c.id,
        DECISIONS.c.approver_id,
        DECISIONS.c.verdict,
        sa.cast(DECISIONS.c.reason, sa.Text),
        DECISIONS.c.decided_at,
    ).where(decisions_of)
    return sa.union_all(approvers, decisions).order_by(sa.literal_column("kind"), sa.literal_column("n"))


# ``named``: the requests whose approvers are wanted (none when the process keeps them all); ``ids``: all of them.
_BOTH = {
    "sqlite": _both(
        APPROVERS.c.request_id.in_(sa.bindparam("named", expanding=True)),
        DECISIONS.c.request_id.in_(sa.bindparam("ids", expanding=True)),
    ),
    "postgresql": _both(
        APPROVERS.c.request_id == sa.any_(sa.bindparam("named", type_=postgresql.ARRAY(sa.String))),
        DECISIONS.c.request_id == sa.any_(_IDS),
    ),
}

# The approvers of recent requests, by request id. A request's approvers are fixed once they are named (only their
# ``awaiting`` flag changes, which loading does not read), so the process keeps them: reading them again cost a
# statement, on PostgreSQL a round trip, every time a request was loaded to be decided or delivered. A request
# stored while its approvers were being checked has them unnamed (no display name) until ``name_approvers``: those
# are not kept, as another process may name them.
_NAMED: OrderedDict[str, tuple[Approver, ...]] = OrderedDict()
_NAMED_KEPT = 500


def _remember_named(request_id: str, approvers: tuple[Approver, ...]) -> None:
    if not all(a.display_name for a in approvers):
        return
    put_recent(_NAMED, request_id, approvers, _NAMED_KEPT)


# PostgreSQL: pending requests as this process last wrote them, by id, with the version their rows took (the id of
# the transaction that wrote them, ``xmin``, learnt from the same transaction's notices: ``SqlOutbox.written_in``).
# A decision starts from one instead of reading its row: its write is made only if the row is still that version
# (``_decision_if_unchanged``), else nothing is written and the unit runs again, reading the row. Taken out when
# used: a unit that fails leaves nothing behind.
_WRITTEN: OrderedDict[str, tuple[str, AccessRequest]] = OrderedDict()
_WRITTEN_KEPT = 1000


def _keep_written(request: AccessRequest, version: str) -> None:
    kept = replace(request, decisions=list(request.decisions), events=[])
    put_recent(_WRITTEN, request.id, (version, kept), _WRITTEN_KEPT)


class _Decided(NamedTuple):
    """A decision's columns, as read along with its request."""

    approver_id: str
    verdict: str
    decided_at: datetime
    reason: str | None


class ConcurrentUpdate(Exception):
    """Another transaction changed the request between our read and our write; retry the unit."""


class TooManyOpen(Exception):
    """A new request was not stored: its requester had ``limit`` open requests already (``open_now`` of them, when
    counted; on PostgreSQL the statement that would have stored it finds out, and does not count for the message)."""

    def __init__(self, limit: int, open_now: int | None = None) -> None:
        super().__init__(f"{open_now if open_now is not None else 'too many'} open requests (limit {limit})")
        self.limit, self.open_now = limit, open_now


@dataclass(frozen=True)
class RequestFilter:
    status: Status | None = None
    requester_id: str | None = None
    approver_id: str | None = None
    involving: str | None = None  # the requester or one of the approvers
    created_before: datetime | None = None


class AbstractRequestRepository(abc.ABC):
    def __init__(self) -> None:
        self.seen: dict[str, AccessRequest] = {}
        self.added: set[str] = set()  # ids of the requests created in this unit

    async def add(
        self, request: AccessRequest, *, idempotency_key: str | None = None, open_limit: int | None = None
    ) -> None:
        """Store a new request. ``open_limit``: unless its requester has that many open requests already, which
        raises ``TooManyOpen``, here or (PostgreSQL) from the statement that would store it, at the latest the
        unit's commit."""
        await self._add(request, idempotency_key, open_limit)
        self.seen[request.id] = request
        self.added.add(request.id)

    async def get(self, request_id: str, *, for_update: bool = False) -> AccessRequest | None:
        return self._remember(await self._get(request_id, for_update=for_update))

    async def for_decision(self, request_id: str) -> AccessRequest | None:
        """The request, to record one decision on it with ``save``: as ``get(for_update=True)``, or read without a
        lock where ``save`` then writes only if nobody changed the request meanwhile (else the unit's commit raises
        ``ConcurrentUpdate``, and the unit is run again)."""
        return self._remember(await self._get_for_decision(request_id))

    def committed(self, version: str | None) -> None:  # noqa: B027 (a hook; only PostgreSQL's repository needs it)
        """The unit committed; ``version``: the id of its transaction, when known (PostgreSQL)."""

    def lost_race(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by the unit's commit, says that a request read by ``for_decision`` was changed by
        another transaction before this unit's decision could be written (nothing was)."""
        return False

    def _remember(self, request: AccessRequest | None) -> AccessRequest | None:
        if request is not None:
            earlier = self.seen.get(request.id)
            if earlier is not None:  # loaded again in the same unit: keep the events not yet collected
                request.events[:0] = earlier.events
            self.seen[request.id] = request
        return request

    async def _get_for_decision(self, request_id: str) -> AccessRequest | None:
        return await self._get(request_id, for_update=True)

    @abc.abstractmethod
    async def _add(self, request: AccessRequest, idempotency_key: str | None, open_limit: int | None) -> None: ...

    @abc.abstractmethod
    async def by_idempotency_key(self, key: str) -> AccessRequest | None: ...

    @abc.abstractmethod
    async def _get(self, request_id: str, *, for_update: bool) -> AccessRequest | None: ...

    @abc.abstractmethod
    async def by_ids(self, request_ids: Sequence[str]) -> list[AccessRequest]:
        """Several requests, read together (not for changing them: ``get(for_update=True)`` locks)."""

    @abc.abstractmethod
    async def save(self, request: AccessRequest) -> None:
        """Persist decisions and a status change made since the request was loaded."""

    @abc.abstractmethod
    async def find(self, where: RequestFilter, *, limit: int, offset: int = 0) -> list[AccessRequest]: ...

    @abc.abstractmethod
    async def count(self, where: RequestFilter, *, up_to: int | None = None) -> int: ...

    @abc.abstractmethod
    async def pending_for_approver(self, approver_id: str, *, limit: int) -> list[AccessRequest]: ...

    @abc.abstractmethod
    async def name_approvers(self, named: Mapping[str, Sequence[Approver]]) -> None:
        """Record the names (and emails) of stored requests' approvers (by request id), who are the same people in
        the same order."""

    @abc.abstractmethod
    async def remove(self, request_id: str) -> None:
        """Remove a request stored a moment ago and its approvers and notices (not its audit entries): for one
        found invalid before anybody was told of it."""


_APPROVERS_FK = "fk_request_approvers_request_id_access_requests"
_ONE_DECISION_EACH = "uq_decisions_request_approver"


def too_many_open(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a unit that added a request with ``open_limit``, says the request was not stored
    for its requester's open requests: ``TooManyOpen``, or on PostgreSQL its approvers' foreign key failing in the
    statement that held the request back."""
    if isinstance(exc, TooManyOpen):
        return True
    if not isinstance(exc, IntegrityError):
        return False
    return any(getattr(error, "constraint_name", None) == _APPROVERS_FK for error in _driver_errors(exc))


def _driver_errors(exc: DBAPIError) -> tuple[BaseException | None, ...]:
    """The driver's error under SQLAlchemy's: asyncpg's own (run on the driver), or SQLAlchemy's asyncpg adapter's
    and the asyncpg error it wraps (run through a session)."""
    return exc.orig, getattr(exc.orig, "__cause__", None)


class SqlRequestRepository(AbstractRequestRepository):
    """SQL through SQLAlchemy Core on the SQLModel tables: rows map straight to domain objects (no ORM
    identity map, so nothing stale after a lock, and no per-row ORM cost on the hot path). Statements built once
    (searches once per shape of their filter) run through ``Driver``; the rest through the session."""

    def __init__(self, session: AsyncSession, driver: Driver | None = None) -> None:
        super().__init__()
        self.session = session
        self.sql = driver or Driver(session)
        self._loaded: dict[str, tuple[Status, int]] = {}
        self._locked: set[str] = set()  # requests whose row this unit locked as it read them (PostgreSQL)
        self._versions: dict[str, str] = {}  # versions of the rows read by ``for_decision`` (PostgreSQL)
        self._writing_if_unchanged = False  # a decision rides with the unit's last statement, if unchanged
        self._written: list[str] = []  # requests this unit stored or decided (PostgreSQL): kept once it commits

    async def _add(self, request: AccessRequest, idempotency_key: str | None, open_limit: int | None) -> None:
        # The row and its approvers are written with the unit's next statement (on PostgreSQL inside it: the
        # notices' INSERT takes them along, their foreign keys checked at its end). Nothing in the unit reads them;
        # a clash (the idempotency key) fails that statement instead, in the same transaction.
        row = {
            "id": request.id,
            "requester_id": request.requester_id,
            "requester_name": request.requester_name,
            "resource": request.resource,
            "justification": request.justification,
            "duration_minutes": request.duration_minutes,
            "required_approvals": request.required_approvals,
            "status": request.status.value,
            "created_at": request.created_at,
            "updated_at": request.updated_at,
            "idempotency_key": idempotency_key,
        }
        if open_limit is None:
            self.sql.defer(REQUESTS, row)
        elif self.session.get_bind().dialect.name != "postgresql":
            open_now = await self.count(RequestFilter(Status.PENDING, requester_id=request.requester_id))
            if open_now >= open_limit:
                raise TooManyOpen(open_limit, open_now)
            self.sql.defer(REQUESTS, row)
        else:
            # The row is inserted only while its requester has fewer open requests than the limit, counted by the
            # statement that inserts it (a round trip fewer before the person's ack: alternating runs at 5 in
            # flight, acks 24.5 -> 17.5 ms p50). Held back, the approvers' rows riding along with it fail their
            # foreign key, and with them the whole statement (``too_many_open``). A request always has approvers.
            if not request.approvers:
                raise ValueError("a request without approvers cannot be held back by its open-requests limit")
            self.sql.rerunnable = True  # its id: stored twice, it fails on its primary key
            await self.sql.defer_statement(
                _ADD_UNLESS_OPEN, {**{f"g_{k}": v for k, v in row.items()}, "g_limit": open_limit}
            )
        for i, a in enumerate(request.approvers):
            self.sql.defer(
                APPROVERS,
                {
                    "request_id": request.id,
                    "position": i,
                    "user_id": a.user_id,
                    "display_name": a.display_name,
                    "email": a.email,
                    "awaiting": request.status is Status.PENDING,
                },
            )
        self._loaded[request.id] = (request.status, len(request.decisions))
        _remember_named(request.id, request.approvers)
        self._written.append(request.id)

    async def by_idempotency_key(self, key: str) -> AccessRequest | None:
        rows = (await self.session.execute(sa.select(REQUESTS).where(REQUESTS.c.idempotency_key == key))).all()
        found = await self._hydrate(rows)
        return found[0] if found else None

    async def _get_for_decision(self, request_id: str) -> AccessRequest | None:
        if self.session.get_bind().dialect.name != "postgresql":
            return await self._get(request_id, for_update=True)  # a writing unit holds SQLite's lock already
        # Read without a lock: no BEGIN, and the decision's statement (``save``) commits on its own; two round
        # trips for a decision instead of four (BEGIN, locking read, writes, COMMIT).
        written = _WRITTEN.pop(request_id, None)
        if written is not None:  # as this process last wrote it: no read at all (``_WRITTEN``)
            version, request = written  # taken out: this unit's own (``_keep_written`` copied it)
            self._versions[request_id] = version
            self._loaded[request_id] = (request.status, len(request.decisions))
            return request
        naming = request_id not in _NAMED
        rows = await self.sql.rows(_GET_VERSIONED_NAMING if naming else _GET_VERSIONED, {"b_id": request_id})
        if not rows:
            return None
        self._versions[request_id] = rows[0].version
        approvers = {request_id: tuple(Approver(*a) for a in rows[0].approvers or ())} if naming else None
        return (await self._hydrate(rows[:1], {request_id: _decided(rows)}, approvers))[0]

    def lost_race(self, exc: BaseException) -> bool:
        if not self._writing_if_unchanged or not isinstance(exc, DBAPIError):
            return False
        for error in _driver_errors(exc):
            if isinstance(error, asyncpg.NotNullViolationError):
                return bool(error.table_name == DECISIONS.name and error.column_name == "request_id")
            if isinstance(error, asyncpg.UniqueViolationError):  # the approver's decision, committed first
                return bool(error.constraint_name == _ONE_DECISION_EACH)
            if isinstance(error, asyncpg.DeadlockDetectedError):
                return True  # PostgreSQL rolled the statement back: nothing was written
        return False

    async def _get(self, request_id: str, *, for_update: bool) -> AccessRequest | None:
        locking = for_update and self.session.get_bind().dialect.name == "postgresql"
        rows = await self.sql.rows(_GET_LOCKED if locking else _GET, {"b_id": request_id})
        if not rows:
            return None
        if locking:
            self._locked.add(request_id)
        if locking and not rows[0].unchanged:  # another transaction decided meanwhile: its decision is not here
            return (await self._hydrate(rows[:1]))[0]
        return (await self._hydrate(rows[:1], {request_id: _decided(rows)}))[0]

    async def by_ids(self, request_ids: Sequence[str]) -> list[AccessRequest]:
        if not request_ids:
            return []
        return await self._hydrate(await self.sql.rows(_BY_IDS, {"ids": list(request_ids)}))

    def committed(self, version: str | None) -> None:
        if version is None:
            return
        for request_id in self._written:
            request = self.seen[request_id]
            if request.status is Status.PENDING:
                _keep_written(request, version)

    async def save(self, request: AccessRequest) -> None:
        _WRITTEN.pop(request.id, None)
        status, known = self._loaded[request.id]
        new = request.decisions[known:]
        version = self._versions.pop(request.id, None)
        if version is not None:
            await self._decide_if_unchanged(request, status, new, version)
            return
        for d in new:  # written with the status move (on PostgreSQL inside it: one round trip for both)
            self.sql.defer(
                DECISIONS,
                {
                    "request_id": request.id,
                    "approver_id": d.approver_id,
                    "verdict": d.verdict.value,
                    "reason": d.reason,
                    "decided_at": d.decided_at,
                },
            )
        move = {"b_id": request.id, "b_was": status.value, "b_status": request.status.value, "b_at": request.updated_at}
        follow: Any = None
        params: dict[str, Any] = {}
        if request.status is not Status.PENDING and status is Status.PENDING:
            follow, params = _NONE_AWAITING, {"b_id": request.id}
        elif new:
            follow, params = _DECIDED, {"b_id": request.id, "b_users": [d.approver_id for d in new]}
        postgres = self.session.get_bind().dialect.name == "postgresql"
        together = follow is not None and postgres
        statement, values = (_MOVE_WITH[id(follow)], {**move, **params}) if together else (_MOVE_STATUS, move)
        if postgres and request.id in self._locked:
            # Its row locked since it was read: the status is the one read, the move cannot miss. It rides along
            # with the unit's next statement (its notices, as it commits) instead of a round trip of its own.
            await self.sql.defer_statement(statement, values)
        else:
            try:
                moved = await self.sql.execute(statement, values)
            except IntegrityError as exc:  # one approver's decision is stored once
                raise ConcurrentUpdate(f"decision on {request.id} already recorded") from exc
            if moved != 1:
                raise ConcurrentUpdate(f"request {request.id} changed under us")
            if follow is not None and not together:
                await self.sql.execute(follow, params)
        self._loaded[request.id] = (request.status, len(request.decisions))

    async def _decide_if_unchanged(
        self, request: AccessRequest, was: Status, new: list[Decision], version: str
    ) -> None:
        """Write one decision read by ``for_decision`` with the unit's last statement, if the request's row is still
        ``version`` (``_decision_if_unchanged``)."""
        if len(new) != 1 or was is not Status.PENDING:
            raise ValueError("a request read for a decision is saved with exactly one new decision")
        (d,) = new
        values: dict[str, Any] = {
            "b_id": request.id,
            "b_version": version,
            "b_status": request.status.value,
            "b_at": request.updated_at,
            "b_approver": d.approver_id,
            "b_verdict": d.verdict.value,
            "b_reason": d.reason,
            "b_decided_at": d.decided_at,
        }
        statement = _DECISION_PENDING if request.status is Status.PENDING else _DECISION_CLOSING
        await self.sql.defer_statement(statement, values)
        self._writing_if_unchanged = True
        self._written.append(request.id)
        self._loaded[request.id] = (request.status, len(request.decisions))

    async def find(self, where: RequestFilter, *, limit: int, offset: int = 0) -> list[AccessRequest]:
        params = {**_filter_params(where), "b_limit": limit, "b_offset": offset}
        return await self._hydrate(await self.sql.rows(_search(where, "find"), params))

    async def count(self, where: RequestFilter, *, up_to: int | None = None) -> int:
        params = _filter_params(where)
        if up_to is None:
            found = await self.sql.rows(_search(where, "count"), params)
        else:  # stop counting at ``up_to``: a page footer says "1,000+" rather than scan 60,000 rows
            found = await self.sql.rows(_search(where, "count_up_to"), {**params, "b_up_to": up_to})
        return int(found[0][0])

    async def pending_for_approver(self, approver_id: str, *, limit: int) -> list[AccessRequest]:
        # Driven from the approver's rows still awaiting them (a partial index): the cost follows how many
        # requests wait for this person, not how many ever named them nor the table's size. Status and decisions
        # are checked too: the flag narrows the search, the request's own rows decide.
        rows = await self.sql.rows(_AWAITING, {"b_user": approver_id, "b_limit": limit})
        return await self._hydrate(rows)

    async def name_approvers(self, named: Mapping[str, Sequence[Approver]]) -> None:
        rows = [
            {"b_id": rid, "b_position": i, "b_user": a.user_id, "b_name": a.display_name, "b_email": a.email}
            for rid, approvers in named.items()
            for i, a in enumerate(approvers)
        ]
        await self.sql.execute_many(_NAME_APPROVER, rows)  # on PostgreSQL one round trip for them all
        for rid, approvers in named.items():
            _remember_named(rid, tuple(approvers))
            if (written := _WRITTEN.get(rid)) is not None:  # as its row is now
                _WRITTEN[rid] = (written[0], replace(written[1], approvers=tuple(approvers)))

    async def remove(self, request_id: str) -> None:
        _NAMED.pop(request_id, None)
        _WRITTEN.pop(request_id, None)
        for statement in _REMOVE:
            await self.sql.execute(statement, {"b_id": request_id})

    async def _hydrate(
        self,
        rows: Sequence[Any],
        decided: dict[str, list[_Decided]] | None = None,
        approvers: dict[str, tuple[Approver, ...]] | None = None,
    ) -> list[AccessRequest]:
        """Requests from their rows; their decisions are read unless ``decided`` has them, their approvers unless
        the process keeps them or ``approvers`` has them."""
        ids = [r.id for r in rows]
        if not ids:
            return []
        decisions: dict[str, list[Any]] = defaultdict(list, decided or {})
        dialect = self.session.get_bind().dialect.name
        named = {i: _NAMED[i] for i in ids if i in _NAMED}
        for rid, read in (approvers or {}).items():
            named[rid] = read
            _remember_named(rid, read)
        unknown = [i for i in ids if i not in named]
        approvers_of: dict[str, list[Approver]] = defaultdict(list)
        if decided is None:  # the decisions, and the approvers not kept, in one statement
            for row in await self.sql.rows(_BOTH[dialect], {"named": unknown, "ids": ids}):
                if row.kind == 0:
                    approvers_of[row.request_id].append(Approver(row.who, row.a, row.b))
                else:
                    decisions[row.request_id].append(_Decided(row.who, row.a, row.at, row.b))
        elif unknown:
            for a in await self.sql.rows(_APPROVERS_OF[dialect], {"ids": unknown}):
                approvers_of[a.request_id].append(Approver(a.user_id, a.display_name, a.email))
        for rid in unknown:
            named[rid] = tuple(approvers_of[rid])
            _remember_named(rid, named[rid])
        result = []
        for r in rows:
            request = AccessRequest(
                id=r.id,
                requester_id=r.requester_id,
                requester_name=r.requester_name,
                resource=r.resource,
                justification=r.justification,
                duration_minutes=r.duration_minutes,
                required_approvals=r.required_approvals,
                status=Status(r.status),
                created_at=utc(r.created_at),
                updated_at=utc(r.updated_at),
                approvers=named[r.id],
                decisions=[
                    Decision(d.approver_id, Verdict(d.verdict), utc(d.decided_at), d.reason) for d in decisions[r.id]
                ],
            )
            self._loaded[r.id] = (request.status, len(request.decisions))
            result.append(request)
        return result


def _decided(rows: Sequence[Any]) -> list[_Decided]:
    """A request's decisions from the rows of ``_GET`` (one per decision; one with none)."""
    return [_Decided(r.d_approver_id, r.d_verdict, r.d_decided_at, r.d_reason) for r in rows if r.d_id is not None]


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AbstractAuditLog(abc.ABC):
    @abc.abstractmethod
    async def record(
        self,
        *,
        action: str,
        actor_id: str | None,
        request_id: str | None,
        details: dict[str, Any],
        at: datetime,
    ) -> None: ...

    @abc.abstractmethod
    async def for_request(self, request_id: str) -> list[AuditRow]: ...


class SqlAuditLog(AbstractAuditLog):
    """Entries are written with the unit's next statement (``Driver.defer``): on PostgreSQL they take no round
    trip of their own. Reading the log writes the unit's entries first."""

    def __init__(self, session: AsyncSession, driver: Driver | None = None) -> None:
        self.session = session
        self.sql = driver or Driver(session)

    async def record(
        self,
        *,
        action: str,
        actor_id: str | None,
        request_id: str | None,
        details: dict[str, Any],
        at: datetime,
    ) -> None:
        self.sql.defer(
            AUDIT, {"at": at, "actor_id": actor_id, "action": action, "request_id": request_id, "details": details}
        )

    async def for_request(self, request_id: str) -> list[AuditRow]:
        await self.sql.write_deferred()
        await self.session.flush()
        query = select(AuditRow).where(AuditRow.request_id == request_id).order_by(col(AuditRow.id))
        return list((await self.session.execute(query)).scalars())


@dataclass(frozen=True)
class PostedMessage:
    request_id: str
    purpose: str
    channel_id: str
    ts: str


class AbstractMessageLog(abc.ABC):
    """Slack messages posted about each request, keyed by purpose (``dm:U123``, ``channel``, ...)."""

    @abc.abstractmethod
    async def for_requests(self, request_ids: Sequence[str]) -> dict[str, dict[str, tuple[str, str]]]:
        """Request id -> purpose -> (channel id, ts), for several requests at once."""

    @abc.abstractmethod
    async def record_many(self, posted: Sequence[PostedMessage], *, at: datetime) -> None:
        """Record several posted messages; a purpose already recorded keeps its first message."""


class SqlMessageLog(AbstractMessageLog):
    def __init__(self, session: AsyncSession, driver: Driver | None = None) -> None:
        self.session = session
        self.sql = driver or Driver(session)

    async def for_requests(self, request_ids: Sequence[str]) -> dict[str, dict[str, tuple[str, str]]]:
        found: dict[str, dict[str, tuple[str, str]]] = {rid: {} for rid in request_ids}
        if request_ids:
            for m in await self.sql.rows(_MESSAGES_OF, {"ids": list(request_ids)}):
                found[m.request_id][m.purpose] = (m.channel_id, m.ts)
        return found

    async def record_many(self, posted: Sequence[PostedMessage], *, at: datetime) -> None:
        # With the unit's next statement (on PostgreSQL inside it): nothing in the unit reads them.
        for p in posted:
            row = {"request_id": p.request_id, "purpose": p.purpose, "channel_id": p.channel_id, "ts": p.ts}
            self.sql.defer(MESSAGES, {**row, "posted_at": at}, keep_existing=True)


class AbstractDeliveryLog(abc.ABC):
    """Slack event ids already handled (Slack retries events; each must take effect once)."""

    @abc.abstractmethod
    async def first_time(self, event_id: str, *, at: datetime) -> bool: ...


class SqlDeliveryLog(AbstractDeliveryLog):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def first_time(self, event_id: str, *, at: datetime) -> bool:
        if await self.session.get(ProcessedEventRow, event_id) is not None:
            return False
        self.session.add(ProcessedEventRow(event_id=event_id, received_at=at))
        return True
