"""Engines and sessions for SQLite (aiosqlite, the embedded default) and PostgreSQL (asyncpg).

SQLite is set up for a concurrent async bot: WAL, synchronous=NORMAL, a 30 s busy timeout (waited for without
blocking the event loop, see ``sqlite_inline``), foreign keys,
and every transaction begun IMMEDIATE so that a transaction that reads and then writes cannot fail
with "database is locked" halfway (SQLAlchemy's aiosqlite documentation gives the event-hook recipe).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only

from bot.adapters import sqlite_inline

SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(
    url: str, *, read_only: bool = False, checkpoints_elsewhere: bool = False, **kwargs: Any
) -> AsyncEngine:
    """The engine for ``url``. On SQLite, ``read_only`` engines begin deferred transactions (readers do not
    wait for the writer under WAL); the others begin IMMEDIATE. ``checkpoints_elsewhere``: its connections never
    checkpoint the log in a commit (``sqlite_checkpoint`` does it). On PostgreSQL, ``read_only`` engines
    autocommit."""
    # Every unit of work ends its transaction itself (commit, or rollback on close), so the pool need not
    # roll back again when a connection comes back: one round trip less per unit.
    kwargs.setdefault("pool_reset_on_return", None)
    if not is_sqlite(url):
        # Readers ping on checkout (one round trip in autocommit). For writers the pool's ping would cost three
        # (BEGIN; ping; ROLLBACK) before the unit's own BEGIN: a unit's BEGIN finds a dropped connection instead,
        # and the unit starts again on a fresh one (see pg_connections).
        kwargs.setdefault("pool_pre_ping", read_only)
        # Writing units are short (a decision is four round trips, a new request two): six connections kept and
        # two more for a burst serve 20 requests in flight. With 20 (+5), as many backends competed for two cores:
        # PostgreSQL's CPU per flow went up with the load, and at 20 in flight the bot did 0.67x the baseline's flows
        # per second against 0.73-0.79x with 6 (+2), acks and DMs no slower, at 5 in flight no different (alternating
        # runs, 2026-11-27). Readers keep 10 (+5). At most 8 writing and 15 reading connections per process leave
        # room for several replicas and admin sessions under PostgreSQL's default max_connections (100).
        kwargs.setdefault("pool_size", 10 if read_only else 6)
        kwargs.setdefault("max_overflow", 5 if read_only else 2)
        # asyncpg prepares every statement; after five runs PostgreSQL may switch to a generic plan that ignores
        # the values (e.g. which approver), which made "awaiting my decision" ten times slower at 100k requests:
        # reading connections plan every run. Writing units look rows up by key, where a generic plan is as good:
        # their connections always use it. Left to choose, PostgreSQL kept planning the statements that carry a
        # unit's rows along (a decision's, ~70 parameters) at every run: forced, its CPU per flow at 5 in flight
        # went 4.3-6.4 -> 3.3-4.0 ms and the bot's acks 21-27 -> 16-26 ms (three alternating rounds, 2026-11-27).
        # random_page_cost 1.1 (the default, 4, is for spinning disks):
        # with it PostgreSQL reaches an approver's pending requests through their ~400 rows by primary key instead
        # of hash-joining every pending request.
        settings = {"random_page_cost": "1.1"}
        settings["plan_cache_mode"] = "force_custom_plan" if read_only else "force_generic_plan"
        kwargs.setdefault("connect_args", {"server_settings": settings})
        if read_only:
            # At READ COMMITTED every statement takes its own snapshot, inside a transaction or not; without one, a
            # reading unit saves BEGIN and ROLLBACK, and the pool's ping is one round trip instead of three.
            kwargs.setdefault("isolation_level", "AUTOCOMMIT")
        engine = create_async_engine(url, **kwargs)
        if not read_only:
            event.listen(engine.sync_engine, "connect", _postgresql_array_types)
        return engine
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError(
            "An in-memory SQLite database is one per connection and would lose data: use a file, "
            "e.g. sqlite+aiosqlite:///./access_requests.db"
        )
    engine = create_async_engine(
        url, async_creator=sqlite_inline.connector(database, SQLITE_BUSY_TIMEOUT_MS / 1000), **kwargs
    )
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    if checkpoints_elsewhere:
        event.listen(engine.sync_engine, "connect", _sqlite_no_autocheckpoint)
    event.listen(engine.sync_engine, "begin", _sqlite_begin_deferred if read_only else _sqlite_on_begin)
    return engine


# The arrays a writing unit's statements send (``driver``: deferred rows as one array per column; the outbox: ids).
ARRAY_TYPES = ("VARCHAR", "INTEGER", "BOOLEAN", "TIMESTAMP WITH TIME ZONE", "JSON")


def _postgresql_array_types(dbapi_connection: Any, _record: Any) -> None:
    """asyncpg knows the array types it is sent only after asking PostgreSQL about them (a recursive query over
    the catalogue, ~15 ms of the server's CPU), once per connection: asked here, as the connection opens, rather than
    by the first unit that sends one, which would wait for it."""
    casts = ", ".join(f"${n}::{name}[]" for n, name in enumerate(ARRAY_TYPES, start=1))
    dbapi_connection.run_async(lambda connection: connection.prepare(f"SELECT {casts}"))


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not issue its own deferred BEGIN (``_sqlite_on_begin`` issues ours): the connections are
    # opened with isolation_level=None.
    _pragmas(
        dbapi_connection,
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA busy_timeout=0",  # waiting for a lock is ``sqlite_inline``'s, outside SQLite
        "PRAGMA foreign_keys=ON",
    )


def _sqlite_no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    _pragmas(dbapi_connection, "PRAGMA wal_autocheckpoint=0")


def _pragmas(dbapi_connection: Any, *pragmas: str) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in pragmas:
        cursor.execute(pragma)
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    _begin(connection, "BEGIN IMMEDIATE")


def _sqlite_begin_deferred(connection: Any) -> None:
    _begin(connection, "BEGIN")


def _begin(connection: Any, sql: str) -> None:
    # Straight to the driver (sqlite_inline: runs now, waits for a lock held elsewhere without blocking the loop):
    # through SQLAlchemy's execution machinery a BEGIN cost as much CPU as the rest of a small unit of work.
    inline = connection.connection.driver_connection
    if inline._conn.in_transaction:
        return  # begun on the driver (``sqlite_writer``): the session joins that transaction
    await_only(inline._execute(inline._conn.execute, sql))


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: attributes stay readable after commit without lazy IO (MissingGreenlet).
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
