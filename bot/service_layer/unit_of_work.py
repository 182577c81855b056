"""The Unit of Work: one database transaction, rolled back unless committed.

Units nest: a service entered inside another service's unit joins it, and only the outermost
``commit`` commits, so several services' writes commit or roll back together.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot.adapters.driver import Driver, checkout
from bot.adapters.outbox import AbstractOutbox, Claimed, Lease, SqlOutbox
from bot.adapters.pg_connections import PgConnections
from bot.adapters.repository import (
    AbstractAuditLog,
    AbstractDeliveryLog,
    AbstractMessageLog,
    AbstractRequestRepository,
    SqlAuditLog,
    SqlDeliveryLog,
    SqlMessageLog,
    SqlRequestRepository,
)
from bot.adapters.sqlite_writer import SqliteWriter
from bot.domain.events import Event
from bot.service_layer import notices
from bot.service_layer.results import RequestView


class Handover(Protocol):
    """The process's deliverer of notices (the outbox dispatcher). A unit leases the notices it queues to it, in
    the same transaction, and after the commit hands them over with the requests' committed state: they go out
    without being claimed and read back. A notice whose target has an earlier one pending elsewhere is not leased;
    ``others`` says so, and the dispatcher claims it in its turn."""

    name: str
    lease: timedelta

    def handed(self, leased: list[Claimed], views: dict[str, RequestView], *, others: bool) -> None: ...


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

    def reading(self) -> Self:
        """Use as ``async with uow.reading():`` for a unit that only reads: on SQLite it neither waits for nor
        holds the write lock. Inside another unit it simply joins that unit."""
        if self._depth == 0:
            self._read_only = True
        return self

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
        found = self._collect_new_events()
        # The notices these events owe go out in the same transaction as the change itself.
        now = datetime.now(UTC)
        owed = notices.for_events(found, self.requests.seen)
        if owed:
            await self._add(owed, now)
        await self._commit()
        self._committed = True
        self.committed_events.extend(found)
        if self._queued and self._handover is not None:
            leased = [c for c in self._queued if c.claims]
            seen = self.requests.seen
            views = {c.request_id: RequestView.of(seen[c.request_id]) for c in leased if c.request_id in seen}
            self._handover.handed(leased, views, others=len(leased) < len(self._queued))

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
    """One AsyncSession per unit, made by the injected factory; never shared across tasks. On SQLite, units
    that write take ``write_lock`` (one writer at a time in this process) and, given the process's ``writer``,
    run on its one connection, begun and committed on the driver (the unit's session joins that transaction if
    a repository uses it); reading units use ``read_session_factory`` (deferred transactions, WAL lets them run
    beside the writer)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        write_lock: asyncio.Lock | None = None,
        handover: Handover | None = None,
        read_session_factory: async_sessionmaker[AsyncSession] | None = None,
        *,
        writer: SqliteWriter | None = None,
        pg: PgConnections | None = None,
    ) -> None:
        super().__init__(handover)
        self._session_factory = session_factory
        self._read_session_factory = read_session_factory or session_factory
        self._write_lock = write_lock
        self._holding = False
        self._writer = writer if write_lock is not None else None  # its connection is the lock holder's
        self._on_writer: Any = None  # the writer's driver connection, while this unit's transaction is open on it
        self._pg = pg
        self._pg_connection: Any = None  # a kept PostgreSQL connection, while this unit's transaction is open on it
        # SQLite files do not go away under us; a PostgreSQL server may restart between two units.
        self._check_connection = session_factory.kw["bind"].dialect.name != "sqlite"

    async def _begin(self, *, read_only: bool) -> None:
        if self._write_lock is not None and not read_only:
            await self._write_lock.acquire()
            self._holding = True
        try:
            self._closed, self._transaction = False, None
            if self._writer is not None and not read_only:
                connection, self._on_writer, dialect = await self._writer.begin()
                # Begins (joining the writer's transaction) only if a repository uses it.
                self.session = AsyncSession(bind=connection, expire_on_commit=False, autoflush=False)
                self.driver = Driver(self.session)
                self.driver.use(self._on_writer, dialect)
            elif self._pg is not None and not read_only:
                connection, self._transaction, driver_connection, dialect = await self._pg.begin()
                self._pg_connection = connection
                # Begins (joining the transaction begun on the adapter) only if a repository uses it.
                self.session = AsyncSession(bind=connection, expire_on_commit=False, autoflush=False)
                self.driver = Driver(self.session)
                self.driver.use(driver_connection, dialect)
            else:
                self.session = (self._read_session_factory if read_only else self._session_factory)()
                self.driver = Driver(self.session)  # the unit's hot statements, on the session's connection
            if self._check_connection and not read_only and self._pg_connection is None:
                await self._live_transaction()  # may start again on a fresh session
            driver = self.driver
            self.requests = SqlRequestRepository(self.session, driver)
            self.audit = SqlAuditLog(self.session, driver)
            self.messages = SqlMessageLog(self.session, driver)
            self.deliveries = SqlDeliveryLog(self.session)
            self.outbox = SqlOutbox(self.session, driver)
        except BaseException:
            self._release()
            raise

    async def _live_transaction(self) -> None:
        """Send BEGIN now (one round trip; the Driver's statements then run inside the transaction SQLAlchemy will
        commit). If the pooled connection turns out dead (the database restarted), nothing has been done yet: drop
        it and begin again on a new connection."""
        for attempt in (1, 2):
            # One crossing into SQLAlchemy's greenlet: the session's connection, handed to the Driver too.
            adapted, driver_connection, dialect = await self.session.run_sync(checkout)
            try:
                if adapted._transaction is None:
                    await adapted._start_transaction()
                self._transaction = adapted
                self.driver.use(driver_connection, dialect)
                return
            except Exception as exc:
                dead = dialect.is_disconnect(exc, adapted, None)  # type: ignore[arg-type]
                if attempt == 2 or not dead:
                    raise
                await (await self.session.connection()).invalidate()
                await self.session.close()
                self.session = self._session_factory()
                self.driver = Driver(self.session)

    # Each call into the session crosses into a greenlet and back, which cost more than the SQL of a small unit:
    # commit and rollback each close the session in the same crossing (closing rolls back what is not committed).
    async def _commit(self) -> None:
        await self.driver.write_deferred()  # rows no statement took along (e.g. a unit that only audits)
        if self._on_writer is not None:
            assert self._writer is not None
            if self.session.in_transaction():
                await self.session.run_sync(_commit_and_close)  # a session that joined commits for both
            else:
                await self._writer.commit(self._on_writer)
            self._on_writer = None
        elif self._pg_connection is not None:
            await self._commit_kept()
            return
        elif self._transaction is not None:
            # PostgreSQL: COMMIT on the transaction the unit began, without SQLAlchemy's commit machinery; closing
            # the session then finds nothing left to roll back and returns the connection to the pool.
            await self.driver.commit(self._transaction)
            self._transaction = None
            await self.session.run_sync(Session.close)
        else:
            await self.session.run_sync(_commit_and_close)
        self._closed = True

    async def _commit_kept(self) -> None:
        """Commit on a kept PostgreSQL connection (through the session if it joined) and give it back."""
        assert self._pg is not None
        connection, adapted = self._pg_connection, self._transaction
        self._pg_connection = self._transaction = None
        try:
            if self.session.in_transaction():
                try:
                    await self.session.run_sync(_commit_and_close)  # a session that joined commits for both
                except BaseException:
                    with suppress(Exception):
                        await self.session.run_sync(Session.close)
                    raise
                finally:
                    await self._pg.end(connection, adapted, commit=False)  # nothing left open: kept
            else:
                await self._pg.end(connection, adapted, commit=True)
        finally:
            self._closed = True

    async def _rollback(self) -> None:
        if self._closed:
            return  # ended already (a commit that failed on a kept connection)
        if self._pg_connection is not None:
            assert self._pg is not None
            connection, adapted = self._pg_connection, self._transaction
            self._pg_connection = self._transaction = None
            try:
                if self.session.in_transaction():
                    await self.session.run_sync(Session.close)  # a session that joined rolls back for both
            finally:
                await self._pg.end(connection, adapted, commit=False)
            self._closed = True
            return
        if self._on_writer is not None:
            assert self._writer is not None
            driver_connection, self._on_writer = self._on_writer, None
            try:
                if self.session.in_transaction():
                    await self.session.run_sync(Session.close)  # a session that joined rolls back for both
            finally:
                await self._writer.rollback(driver_connection)
        else:
            await self.session.run_sync(Session.close)
        self._closed = True

    async def _end(self) -> None:
        try:
            if self._on_writer is not None or not self._closed:
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
