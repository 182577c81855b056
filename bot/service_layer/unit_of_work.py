"""The Unit of Work: one database transaction, rolled back unless committed.

Units nest: a service entered inside another service's unit joins it, and only the outermost
``commit`` commits, so several services' writes commit or roll back together.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot.adapters.driver import Driver
from bot.adapters.kept import Kept, KeptConnections
from bot.adapters.outbox import AbstractOutbox, Claimed, Lease, SqlOutbox
from bot.adapters.repository import (
    AbstractAuditLog,
    AbstractDeliveryLog,
    AbstractMessageLog,
    AbstractRequestRepository,
    ConcurrentUpdate,
    SqlAuditLog,
    SqlDeliveryLog,
    SqlMessageLog,
    SqlRequestRepository,
)
from bot.domain.events import Event
from bot.domain.values import Approver
from bot.service_layer import notices
from bot.service_layer.results import RequestView


class Handover(Protocol):
    """The process's deliverer of notices (the outbox dispatcher). A unit leases the notices it queues to it, in
    the same transaction, and after the commit hands them over with the requests' committed state: they go out
    without being claimed and read back. A notice whose target has an earlier one pending elsewhere is not leased;
    ``others`` says so, and the dispatcher claims it in its turn."""

    name: str
    lease: timedelta

    def handed(
        self, leased: list[Claimed], views: dict[str, RequestView], *, others: bool, since: float | None = None
    ) -> None:
        """``since``: when their lease began (``time.monotonic()``), if not now."""

    def name_later(self, names: Mapping[str, tuple[Approver, ...]]) -> None:
        """Approvers' names learnt after their requests were stored, by request id: recorded with the dispatcher's
        next bookkeeping."""


class AbstractUnitOfWork(abc.ABC):
    requests: AbstractRequestRepository
    audit: AbstractAuditLog
    messages: AbstractMessageLog
    deliveries: AbstractDeliveryLog
    outbox: AbstractOutbox

    def __init__(self, handover: Handover | None = None) -> None:
        self._depth = 0
        self._committed = False
        self.committed_events: list[Event] = []
        self._handover = handover
        self._queued: list[Claimed] = []
        self._read_only = False
        self._withholding = False
        self._withheld: Callable[[], None] | None = None

    def reading(self) -> Self:
        """Use as ``async with uow.reading():`` for a unit that only reads: on SQLite it neither waits for nor
        holds the write lock. Inside another unit it simply joins that unit."""
        if self._depth == 0:
            self._read_only = True
        return self

    def withholding(self) -> Self:
        """Use as ``async with uow.withholding():`` for a unit whose notices must not go out yet: after its commit
        they wait, leased to this process, until ``hand_over()`` (or, if this process dies first, until their
        lease runs out and a dispatcher claims them)."""
        self._withholding = True
        return self

    def hand_over(self, names: Mapping[str, tuple[Approver, ...]] | None = None) -> None:
        """Hand over the notices a ``withholding`` unit queued (nothing if it committed none), and ``names``, the
        names of its requests' approvers to record meanwhile."""
        withheld, self._withheld = self._withheld, None
        if withheld is not None:
            withheld()
        if names and self._handover is not None:
            self._handover.name_later(names)

    @property
    def lease(self) -> timedelta | None:
        """How long the notices a unit queues are leased to this process's dispatcher; None: they are not."""
        return None if self._handover is None else self._handover.lease

    async def __aenter__(self) -> Self:
        self._depth += 1
        if self._depth == 1:
            self._committed, self._queued = False, []
            read_only, self._read_only = self._read_only, False
            await self._begin(read_only=read_only)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._depth -= 1
        if self._depth > 0:
            return  # the outermost unit decides
        self._withholding = False
        try:
            if not self._committed:
                await self._rollback()
        finally:
            await self._end()

    @property
    def nested(self) -> bool:
        """True inside another unit of work: this unit's fate is the outer unit's."""
        return self._depth > 0

    async def commit(self) -> None:
        if self._depth > 1:
            return  # joined an outer unit: it commits for everyone
        self._committing()
        found = self._collect_new_events()
        # The notices these events owe go out in the same transaction as the change itself.
        now = datetime.now(UTC)
        owed = notices.for_events(found, self.requests.seen)
        try:
            if owed:
                await self._add(owed, now)
            await self._commit()
        except Exception as exc:
            if self.requests.lost_race(exc):  # nothing was written: the caller runs the unit again
                raise ConcurrentUpdate("the request changed before its decision was written") from exc
            raise
        self._committed = True
        self.committed_events.extend(found)
        if self._queued and self._handover is not None:
            leased = [c for c in self._queued if c.claims]
            seen = self.requests.seen
            views = {c.request_id: RequestView.of(seen[c.request_id]) for c in leased if c.request_id in seen}
            others = len(leased) < len(self._queued)
            handed = partial(self._handover.handed, leased, views, others=others, since=time.monotonic())
            if self._withholding:
                self._withheld = handed
            else:
                handed()

    async def queue(self, notice: notices.Notice) -> None:
        """Queue a notice not tied to an event (e.g. a confirmation by message)."""
        await self._add([notice], datetime.now(UTC))

    async def _add(self, owed: list[notices.Notice], now: datetime) -> None:
        handover = self._handover
        lease = None if handover is None else Lease(handover.name, now + handover.lease)
        fresh = self.requests.added
        self._queued.extend(await self.outbox.add_many(owed, at=now, lease=lease, fresh=fresh))

    async def rollback(self) -> None:
        await self._rollback()

    def _committing(self) -> None:  # noqa: B027 (a hook; only a unit on a database needs it)
        """The unit's last statements follow (its notices, the rows still deferred)."""

    def _collect_new_events(self) -> list[Event]:
        found: list[Event] = []
        for request in self.requests.seen.values():
            found.extend(request.events)
            request.events.clear()
        return found

    @abc.abstractmethod
    async def _begin(self, *, read_only: bool) -> None: ...

    @abc.abstractmethod
    async def _commit(self) -> None: ...

    @abc.abstractmethod
    async def _rollback(self) -> None: ...

    @abc.abstractmethod
    async def _end(self) -> None: ...


class SqlUnitOfWork(AbstractUnitOfWork):
    """One AsyncSession per unit; never shared across tasks. A unit that writes begins on a connection kept for
    writing units (``kept``: SQLite's one writing connection, or PostgreSQL's kept connections) and runs its hot
    statements on the driver; its session joins that transaction only if a repository uses it. On SQLite it
    first takes ``write_lock`` (one writer at a time in this process: the one connection is the lock holder's).
    Reading units use ``read_session_factory`` (SQLite: deferred transactions, WAL lets them run beside the
    writer; PostgreSQL: autocommit)."""

    def __init__(
        self,
        kept: KeptConnections,
        read_session_factory: async_sessionmaker[AsyncSession],
        *,
        write_lock: asyncio.Lock | None = None,
        handover: Handover | None = None,
    ) -> None:
        super().__init__(handover)
        self._kept = kept
        self._read_session_factory = read_session_factory
        self._write_lock = write_lock
        self._holding = False
        self._held: Kept | None = None  # the transaction this unit began on a kept connection, while it is open

    async def _begin(self, *, read_only: bool) -> None:
        if self._write_lock is not None and not read_only:
            await self._write_lock.acquire()
            self._holding = True
        try:
            self._closed = False
            if read_only:
                self.session = self._read_session_factory()
                self.driver = Driver(self.session)  # the unit's hot statements, on the session's connection
            else:
                self._held = held = await self._kept.begin()
                # Begins (joining the transaction begun on the kept connection) only if a repository uses it.
                self.session = AsyncSession(bind=held.connection, expire_on_commit=False, autoflush=False)
                self.driver = Driver(self.session)
                self.driver.use(held.driver, held.dialect, held.begin, self._revive if held.begin else None)
            driver = self.driver
            self.requests = SqlRequestRepository(self.session, driver)
            self.audit = SqlAuditLog(self.session, driver)
            self.messages = SqlMessageLog(self.session, driver)
            self.deliveries = SqlDeliveryLog(self.session)
            self.outbox = SqlOutbox(self.session, driver)
        except BaseException:
            self._release()
            raise

    def _committing(self) -> None:
        self.driver.closing = True

    async def _revive(self) -> tuple[Any, Any]:
        """The unit's connection was found closed by its first statement: a new one in its place, the session
        (unused so far) bound to it."""
        assert self._held is not None
        self._held = held = await self._kept.revive(self._held)
        self.session.bind = held.connection
        return held.driver, held.begin

    # Each call into the session crosses into a greenlet and back, which cost more than the SQL of a small unit:
    # a reading unit's commit and rollback each close the session in the same crossing.
    async def _commit(self) -> None:
        await self.driver.write_deferred(last=True)  # rows no statement took along (e.g. a unit that only audits)
        if self._held is not None:
            await self._finish(commit=True)
        else:
            await self.session.run_sync(_commit_and_close)
            self._closed = True
        self.requests.committed(self.outbox.written_in)

    async def _rollback(self) -> None:
        if self._closed:
            return  # ended already (e.g. a commit that failed)
        if self._held is not None:
            await self._finish(commit=False)
            return
        await self.session.run_sync(Session.close)
        self._closed = True

    async def _finish(self, *, commit: bool) -> None:
        """End the transaction begun on the kept connection: through the session if it joined (its commit or
        rollback ends it for both), else on the connection; the connection is then kept again."""
        held, self._held = self._held, None
        assert held is not None
        ending = commit
        try:
            if self.session.in_transaction():
                ending = False  # the session ends it; if its commit fails, what is open is rolled back
                try:
                    await self.session.run_sync(_commit_and_close if commit else Session.close)
                except BaseException:
                    with suppress(Exception):
                        await self.session.run_sync(Session.close)
                    raise
        finally:
            self._closed = True
            await held.end(ending)

    async def _end(self) -> None:
        try:
            if not self._closed:
                await self._rollback()
        finally:
            self._release()

    def _release(self) -> None:
        if self._holding and self._write_lock is not None:
            self._holding = False
            self._write_lock.release()


def _commit_and_close(session: Session) -> None:
    session.commit()
    session.close()


UnitOfWorkFactory = Callable[[], AbstractUnitOfWork]
