"""The outbox repository: notices owed to Slack, claimed by dispatchers under a lease."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from bot.adapters.repository import utc
from bot.adapters.tables import OutboxRow
from bot.service_layer.notices import Notice

PENDING, DONE, SKIPPED, FAILED, DEAD = "pending", "done", "skipped", "failed", "dead"


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
    def of(cls, row: OutboxRow) -> Claimed:
        assert row.id is not None
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


class AbstractOutbox(abc.ABC):
    @abc.abstractmethod
    async def add(self, notice: Notice, *, at: datetime) -> bool:
        """Queue a notice; False if one with its dedupe key was ever queued."""

    @abc.abstractmethod
    async def claim(self, *, by: str, now: datetime, lease: timedelta, limit: int) -> list[Claimed]: ...

    @abc.abstractmethod
    async def finish(self, notice_id: int, *, status: str, at: datetime, error: str | None = None) -> None: ...

    @abc.abstractmethod
    async def reschedule(self, notice_id: int, *, at: datetime, error: str) -> int:
        """Release the lease and retry at ``at``; returns the attempts so far."""

    @abc.abstractmethod
    async def release_leases(self) -> int: ...

    @abc.abstractmethod
    async def find(self, *, statuses: tuple[str, ...], limit: int) -> list[Claimed]: ...

    @abc.abstractmethod
    async def requeue(self, notice_ids: list[int] | None, *, at: datetime) -> int: ...


class SqlOutbox(AbstractOutbox):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, notice: Notice, *, at: datetime) -> bool:
        exists = select(OutboxRow.id).where(OutboxRow.dedupe_key == notice.dedupe_key)
        if (await self.session.execute(exists)).first() is not None:
            return False
        self.session.add(
            OutboxRow(
                dedupe_key=notice.dedupe_key,
                request_id=notice.request_id,
                target=notice.target,
                action=notice.action,
                subject=notice.subject,
                details=notice.details,
                next_attempt_at=at,
                created_at=at,
            )
        )
        return True

    async def claim(self, *, by: str, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        earlier = aliased(OutboxRow)
        blocked = (
            select(earlier.id)
            .where(
                earlier.request_id == OutboxRow.request_id,
                earlier.target == OutboxRow.target,
                col(earlier.id) < col(OutboxRow.id),
                earlier.status == PENDING,
            )
            .exists()
        )
        query = (
            select(OutboxRow)
            .where(
                OutboxRow.status == PENDING,
                col(OutboxRow.next_attempt_at) <= now,
                sa.or_(col(OutboxRow.lease_until).is_(None), col(OutboxRow.lease_until) < now),
                ~blocked,
            )
            .order_by(col(OutboxRow.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        rows = list((await self.session.execute(query)).scalars())
        for row in rows:
            row.lease_until, row.claimed_by, row.claims = now + lease, by, row.claims + 1
        await self.session.flush()
        return [Claimed.of(r) for r in rows]

    async def finish(self, notice_id: int, *, status: str, at: datetime, error: str | None = None) -> None:
        await self.session.execute(
            sa.update(OutboxRow)
            .where(col(OutboxRow.id) == notice_id)
            .values(status=status, finished_at=at, lease_until=None, last_error=error)
            .execution_options(synchronize_session=False)
        )

    async def reschedule(self, notice_id: int, *, at: datetime, error: str) -> int:
        row = await self.session.get(OutboxRow, notice_id, populate_existing=True)
        assert row is not None
        row.attempts, row.next_attempt_at, row.lease_until, row.last_error = row.attempts + 1, at, None, error[:255]
        await self.session.flush()
        return row.attempts

    async def release_leases(self) -> int:
        result = await self.session.execute(
            sa.update(OutboxRow)
            .where(col(OutboxRow.status) == PENDING, col(OutboxRow.lease_until).is_not(None))
            .values(lease_until=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def find(self, *, statuses: tuple[str, ...], limit: int) -> list[Claimed]:
        query = select(OutboxRow).where(col(OutboxRow.status).in_(statuses)).order_by(col(OutboxRow.id)).limit(limit)
        return [Claimed.of(r) for r in (await self.session.execute(query)).scalars()]

    async def requeue(self, notice_ids: list[int] | None, *, at: datetime) -> int:
        query = sa.update(OutboxRow).where(col(OutboxRow.status).in_((DEAD, FAILED)))
        if notice_ids is not None:
            query = query.where(col(OutboxRow.id).in_(notice_ids))
        result = await self.session.execute(
            query.values(
                status=PENDING, attempts=0, next_attempt_at=at, lease_until=None, finished_at=None
            ).execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
