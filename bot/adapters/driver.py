"""The hot paths' statements, run on the unit's own driver connection.

Running a statement through SQLAlchemy (greenlet hand-off, execution context, events, generic parameter and
row processing) costs about 0.2 ms of CPU; on SQLite in WAL mode the SQL itself takes a tenth of that. A
request's flow runs ~45 statements, which made them half of the bot's CPU. So the repositories hand their
prebuilt Core statements (module-level constants built from the SQLModel tables) to ``Driver``, which has
SQLAlchemy compile each once per dialect and set of keys, keeps the dialect's own bind and result processors
(datetimes, JSON, booleans), and runs it on the connection the unit's session holds, inside the transaction the
session began and later commits or rolls back. Statements built per call (search filters) use the session.

On PostgreSQL every statement is a round trip, and a round trip is the event loop's turn to come back: rows
that nothing later in the unit reads (audit entries, a new request's approvers, a decision) are ``defer``red and
ride in front of the unit's next statement as data-modifying CTEs (``WITH d0 AS (INSERT ...) UPDATE ...``), which
PostgreSQL runs in full whatever the main statement does. A statement that touches a deferred row's table would
not see the row (a statement does not see its own CTEs' writes): the rows are written before it. On SQLite,
which has no such CTEs and no round trips, they are written just before the next statement.

On PostgreSQL a writing unit's transaction is begun by the driver, before the first statement that needs one: a
write or a locking read. Plain reads before it run on their own, which at READ COMMITTED (every statement its own
snapshot) reads what they would read inside the transaction. A unit whose one write is its last statement (its
notices, with its deferred rows riding along, as it commits) sends neither BEGIN nor COMMIT: PostgreSQL runs and
commits that one statement as a whole, two round trips fewer.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import GenerativeSelect
from sqlalchemy.sql.util import find_tables

Processor = Callable[[Any], Any] | None
_KEEP_LENGTHS = 1024  # IN lists up to this long (padded: 11 lengths) have their SQL kept


class _Prepared:
    """A statement compiled for one dialect and set of parameter keys."""

    def __init__(self, statement: Any, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)
        self.compiled = compiled
        self.dialect = dialect
        self.expanding = tuple(name for name, b in compiled.binds.items() if b.expanding)
        self._expanded: dict[tuple[int, ...], tuple[str, list[tuple[str, int, Processor]]]] = {}
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        self.binds = tuple(_bind_processor(compiled, name, dialect) for name in self.names)
        # Values written into the statement (``.values(awaiting=False)``, ``claims + 1``) are bound parameters too.
        self.fixed = {n: b.value for n, b in compiled.binds.items() if not b.required}
        self.statement = statement
        columns = list(statement.selected_columns if isinstance(statement, Select) else statement.exported_columns)
        if columns:
            self.row: Any = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
            self.results = [
                (i, p)
                for i, p in enumerate(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
                if p is not None
            ]
        else:
            self.row, self.results = None, []

    def args(self, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        if self.fixed:
            params = {**self.fixed, **params}
        if self.expanding:  # IN lists: the SQL depends on their lengths
            params = _padded(params, self.expanding)
            lengths = tuple(len(params[name]) for name in self.expanding)
            expanded = self._expanded.get(lengths)
            if expanded is None:
                expanded = self._expand(params)
                if max(lengths, default=0) <= _KEEP_LENGTHS:  # a long list is rare: kept, they add up to megabytes
                    self._expanded[lengths] = expanded
            sql, places = expanded
            return sql, tuple(
                (p(params[n][i]) if p else params[n][i]) if i >= 0 else (p(params[n]) if p else params[n])
                for n, i, p in places
            )
        return self.sql, tuple(p(params[n]) if p else params[n] for n, p in zip(self.names, self.binds, strict=True))

    def _expand(self, params: dict[str, Any]) -> tuple[str, list[tuple[str, int, Processor]]]:
        """The SQL for these lengths of the IN lists, and where each of its parameters comes from."""
        state = self.compiled.construct_expanded_state(params)
        places = []
        for name in state.positiontup or ():
            if name in self.compiled.binds and name not in self.expanding:
                places.append((name, -1, _bind_processor(self.compiled, name, self.dialect)))
                continue
            base, _, number = name.rpartition("_")  # ids_3: the third of ``ids``
            places.append((base, int(number) - 1, _bind_processor(self.compiled, base, self.dialect)))
        return state.statement, places

    def rows(self, raw: Sequence[Any]) -> list[Any]:
        if not self.results:
            return [self.row._make(r) for r in raw]
        out = []
        for r in raw:
            values = list(r)
            for i, process in self.results:
                values[i] = process(values[i])
            out.append(self.row._make(values))
        return out


def _padding(n: int) -> int:
    """How many values make ``n`` a power of two (0 for 0)."""
    return (1 << (n - 1).bit_length()) - n if n else 0


def _padded(params: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """``params`` with each IN list ``names`` padded to a power of two by repeating its last value (which
    changes no IN): a statement takes a handful of shapes instead of one per length. Each shape is a statement
    that PostgreSQL parses and plans, and asyncpg prepares in a round trip of its own, on each connection: the
    outbox's recordings (notices done, of 1 to 40-odd messages) made a new one at almost every run."""
    padded = None
    for name in names:
        values = params[name]
        if extra := _padding(len(values)):
            padded = padded or dict(params)
            padded[name] = [*values, *[values[-1]] * extra]
    return padded or params


def _bind_processor(compiled: SQLCompiler, name: str, dialect: Dialect) -> Processor:
    type_ = compiled.binds[name].type
    impl = type_.dialect_impl(dialect)
    processor: Processor = impl.bind_processor(dialect)
    if processor is not None and isinstance(type_, sa.DateTime):
        # A unit stamps many columns with the same moment (a notice's created_at, next_attempt_at and lease, for
        # each of a handful of notices): formatting it once per unit instead of ~40 times a request's flow.
        key = (dialect.name, repr(impl))  # the same type makes the same of a value
        memo = _SAME_AS_LAST.get(key)
        if memo is None:
            memo = _SAME_AS_LAST[key] = _SameAsLast(processor)
        return memo
    return processor


class _SameAsLast:
    """A bind processor that remembers its last value (by identity) and what it made of it."""

    def __init__(self, process: Callable[[Any], Any]) -> None:
        self.process, self.last, self.made = process, object(), None

    def __call__(self, value: Any) -> Any:
        if value is not self.last:
            self.made, self.last = self.process(value), value
        return self.made


_SAME_AS_LAST: dict[tuple[str, str], _SameAsLast] = {}


_PREPARED: dict[tuple[int, str, tuple[str, ...]], _Prepared] = {}
# Deferred rows ride along with a statement as one data-modifying CTE per table: built once per shape.
Shape = tuple[tuple[str, tuple[str, ...]], ...]  # (table, columns) for each table
_RIDING: dict[tuple[int, Shape, int, frozenset[str]], Any] = {}
_INSERT_INTO: dict[tuple[str, str, bool], Any] = {}
_TOUCHES: dict[int, frozenset[str]] = {}


def _touches(statement: Any) -> frozenset[str]:
    """The tables a statement reads or writes (its CTEs and subqueries included)."""
    found = _TOUCHES.get(id(statement))
    if found is None:
        tables = find_tables(statement, include_crud=True, check_columns=True)
        # (A literal column, such as ``xmin``, comes with a table of no name: not a table.)
        found = _TOUCHES[id(statement)] = frozenset(n for t in tables if (n := str(getattr(t, "name", ""))))
    return found


def _insert(table: sa.Table, dialect: str, keep_existing: bool) -> Any:
    """INSERT into ``table``; ``keep_existing``: a row whose key is there already is not inserted (no error)."""
    if not keep_existing:
        return sa.insert(table)
    return (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table).on_conflict_do_nothing()


def _riding(
    statement: Any, tables: dict[str, sa.Table], shape: Shape, later: Any = None, keeping: frozenset[str] = frozenset()
) -> Any:
    """``statement`` with the deferred rows' INSERTs in front of it (``WITH d0 AS (INSERT ...) <statement>``), and
    the deferred statement ``later`` (``s0``). A table's rows come as one array per column, unnested
    (``INSERT ... SELECT unnest($1::VARCHAR[]), ...``): the statement has one shape whatever the number of rows. As a
    VALUES list, each number of rows was a statement of its own, which PostgreSQL parsed and planned and asyncpg
    prepared (a round trip) on each connection: the deliveries' group commit, 20-odd requests' messages, was a new
    one at every run, ~4.7 ms of PostgreSQL's CPU in parse and bind (plan) out of ~10.6 for the whole run."""
    key = (id(statement), shape, id(later), keeping)
    combined = _RIDING.get(key)
    if combined is None:
        combined = statement if later is None else statement.add_cte(later.cte("s0"))
        for t, (name, columns) in enumerate(shape):
            table = tables[name]
            arrays = [sa.func.unnest(sa.bindparam(f"d{t}_{c}", type_=ARRAY(table.c[c].type))) for c in columns]
            insert = _insert(table, "postgresql", name in keeping).from_select(list(columns), sa.select(*arrays))
            combined = combined.add_cte(insert.cte(f"d{t}"))
        _RIDING[key] = combined
    return combined


class Driver:
    """Runs prebuilt statements for one unit of work, on its session's connection (taken on first use). Only
    statements built once (module constants) belong here: each is compiled and kept for the process's life."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._connection: Any = None
        self._dialect: Dialect | None = None
        self._deferred: dict[str, tuple[sa.Table, list[dict[str, Any]]]] = {}
        self._later: tuple[Any, dict[str, Any]] | None = None  # a deferred statement (``defer_statement``)
        self._keeping: set[str] = set()  # tables whose deferred rows keep a row already there (``defer``)
        self._begin: Callable[[], Any] | None = None  # the unit's transaction, not begun yet (``use``)
        self.closing = False  # the unit is committing: a statement that leaves nothing deferred is its last
        self._revive: Callable[[], Any] | None = None  # a new connection, when the first statement finds it closed
        self._used = False  # a statement has run (or was retried) in this unit
        # The unit's writes insert a new key (a new request's id): run again after a commit the connection did not
        # report, they fail on it instead of writing twice, so a write sent alone may run again on a new connection.
        self.rerunnable = False

    def defer(self, table: sa.Table, row: dict[str, Any], *, keep_existing: bool = False) -> None:
        """Insert ``row`` with the unit's next statement: on PostgreSQL inside it (a data-modifying CTE, no round
        trip of its own) unless that statement touches ``table``; otherwise just before it; at the latest before
        the commit (``write_deferred``). Rows of one table have the same keys. ``keep_existing``: a row whose key
        is in the table already is not inserted (ON CONFLICT DO NOTHING), for all of the table's rows."""
        self._deferred.setdefault(table.name, (table, []))[1].append(row)
        if keep_existing:
            self._keeping.add(table.name)

    async def defer_statement(self, statement: Any, params: dict[str, Any]) -> None:
        """Run ``statement`` (whose row count nothing needs) with the unit's next one: on PostgreSQL inside it, as a
        data-modifying CTE, like deferred rows. One at a time: an earlier one is run now."""
        if self._later is not None:
            await self._run_later(last=False)
        self._later = (statement, params)

    async def _run_later(self, *, last: bool) -> None:
        if self._later is None:
            return
        (statement, params), self._later = self._later, None
        # Last: as the unit commits, if nothing is left once the deferred rows ride along (``execute`` works it out).
        await self.execute(statement, params, last=None if last else False)

    async def write_deferred(self, *, last: bool = False) -> None:
        """Insert the deferred rows now (before reading their table; ``last``: as the unit commits)."""
        if self._later is not None:
            await self._run_later(last=last)  # the deferred rows ride along with it
        deferred, self._deferred = self._deferred, {}
        keeping, self._keeping = self._keeping, set()
        if not deferred:
            return
        _, dialect = await self._open()
        for table, rows in deferred.values():
            key = (table.name, dialect.name, table.name in keeping)
            insert = _INSERT_INTO.get(key)
            if insert is None:
                insert = _INSERT_INTO[key] = _insert(table, dialect.name, key[2])
            await self.execute_many(insert, rows, last=last and len(deferred) == 1)

    def _last(self) -> bool:
        """The statement about to run is the unit's last: it is committing and nothing is left to write after it."""
        return self.closing and not self._deferred and self._later is None

    async def _transaction(self, *, plain_read: bool = False, last: bool = False) -> None:
        """Begin the unit's transaction, if it is not begun yet, before a statement that needs it: one that writes
        or locks and is not the unit's last. (An executemany runs in one implicit transaction, as one statement.)"""
        if self._begin is None or plain_read or last:
            return
        begin, self._begin = self._begin, None
        await begin()

    async def _with_deferred(self, statement: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The statement to run, and its parameters, with any deferred rows and statement riding along."""
        if not self._deferred and self._later is None:
            return statement, params
        _, dialect = await self._open()
        later = self._later
        if later is not None and (
            dialect.name != "postgresql" or _touches(statement) & _touches(later[0]) or later[1].keys() & params.keys()
        ):
            await self._run_later(last=False)  # first, on its own (the rows ride along with it)
            later = None
        if self._deferred and (dialect.name != "postgresql" or _touches(statement) & self._deferred.keys()):
            # A statement does not see what a CTE of its own writes: one that touches their table goes after them.
            await self.write_deferred()
        if not self._deferred and later is None:
            return statement, params
        deferred, self._deferred, self._later = self._deferred, {}, None
        keeping, self._keeping = frozenset(self._keeping), set()
        shape = tuple((name, tuple(rows[0])) for name, (_, rows) in deferred.items())
        tables = {name: table for name, (table, _) in deferred.items()}
        params = dict(params) if later is None else {**later[1], **params}
        for t, ((_, columns), (_, rows)) in enumerate(zip(shape, deferred.values(), strict=True)):
            params.update({f"d{t}_{c}": [row[c] for row in rows] for c in columns})
        return _riding(statement, tables, shape, None if later is None else later[0], keeping), params

    def use(
        self,
        connection: Any,
        dialect: Dialect,
        begin: Callable[[], Any] | None = None,
        revive: Callable[[], Any] | None = None,
    ) -> None:
        """Run on ``connection`` (the session's, checked out by the Unit of Work). ``begin``: its transaction is
        not begun yet, and this begins it. ``revive``: gives a new connection (and its ``begin``) in its place."""
        self._connection, self._dialect, self._begin, self._revive = connection, dialect, begin, revive

    async def _open(self) -> tuple[Any, Dialect]:
        if self._connection is None:
            # Taking the session's connection begins its transaction (BEGIN IMMEDIATE on SQLite).
            self._connection, self._dialect = await self.session.run_sync(_driver_connection)
        assert self._dialect is not None
        return self._connection, self._dialect

    async def _prepared(self, statement: ClauseElement, keys: Sequence[str]) -> tuple[Any, Dialect, _Prepared]:
        connection, dialect = await self._open()
        key = (id(statement), dialect.name, tuple(keys))
        prepared = _PREPARED.get(key)
        if prepared is None or prepared.statement is not statement:
            prepared = _PREPARED[key] = _Prepared(statement, dialect, keys)
        return connection, dialect, prepared

    async def rows(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> list[Any]:
        """The rows a SELECT (or a statement with RETURNING) gives."""
        plain_read = isinstance(statement, GenerativeSelect) and statement._for_update_arg is None
        riding, params = await self._with_deferred(statement, params or {})
        plain_read = plain_read and riding is statement
        _, dialect, prepared = await self._prepared(riding, list(params))
        sql, args = prepared.args(params)
        rows = await self._send(dialect, sql, args, fetch=True, plain_read=plain_read, last=self._last())
        return prepared.rows(rows)

    async def execute(
        self, statement: ClauseElement, params: dict[str, Any] | None = None, *, last: bool | None = None
    ) -> int:
        """Run an INSERT, UPDATE or DELETE; returns how many rows it touched."""
        statement, params = await self._with_deferred(statement, params or {})
        _, dialect, prepared = await self._prepared(statement, list(params))
        sql, args = prepared.args(params)
        return int(await self._send(dialect, sql, args, fetch=False, last=self._last() if last is None else last))

    async def execute_many(
        self, statement: ClauseElement, rows: Sequence[dict[str, Any]], *, last: bool = False
    ) -> None:
        """Run a statement once per parameter set (rows of an INSERT); ``last``: the unit's last statement."""
        if not rows:
            return
        if self._deferred or self._later is not None:
            await self.write_deferred()  # an executemany takes no CTE: they go first
        _, dialect, prepared = await self._prepared(statement, list(rows[0]))
        batch = [prepared.args(r)[1] for r in rows]
        await self._send(dialect, prepared.sql, batch, many=True, last=last)

    async def _send(
        self,
        dialect: Dialect,
        sql: str,
        args: Any,
        *,
        fetch: bool = False,
        many: bool = False,
        plain_read: bool = False,
        last: bool = False,
    ) -> Any:
        """Run a statement (beginning the unit's transaction first if it needs it). If the unit's first one fails
        on a connection found closed (a server restart the event loop had not seen yet), nothing was done: it runs
        again on a new connection (``revive``). Not a write run on its own (``last``): the connection may have
        closed after PostgreSQL committed it; unless the unit is ``rerunnable``."""
        while True:
            try:
                await self._transaction(plain_read=plain_read, last=last)
                if many:
                    await _run_many(self._connection, dialect, sql, args)
                    result = None
                else:
                    result = await _run(self._connection, dialect, sql, args, fetch=fetch)
            except Exception:
                alone = last and not plain_read and self._begin is not None and not self.rerunnable
                if self._used or alone or self._revive is None or not self._connection.is_closed():
                    raise
                self._used = True  # once
                self._connection, self._begin = await self._revive()
                continue
            self._used = True
            return result


async def commit_adapted(adapted: Any) -> None:
    """COMMIT the transaction SQLAlchemy's asyncpg adapter ``adapted`` began, as its own commit would."""
    try:
        await adapted._call_and_discard(adapted._transaction.commit)
    except asyncpg.PostgresError as exc:
        raise translated(exc, "COMMIT", ()) from exc


def checkout(session: Session) -> tuple[Any, Any, Dialect]:
    """The session's connection (begun on SQLAlchemy's side; run inside its greenlet): its DBAPI adapter, the
    driver's own connection, the dialect."""
    connection = session.connection()
    return connection.connection.dbapi_connection, connection.connection.driver_connection, connection.dialect


def _driver_connection(session: Session) -> tuple[Any, Dialect]:
    adapted, driver, dialect = checkout(session)
    autocommit = getattr(adapted, "autocommit", False)
    if isinstance(driver, asyncpg.Connection) and not autocommit and not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with the first statement it runs: run one, so that ours are
        # inside the transaction it will commit (a Unit of Work begins it itself and hands it over with ``use``).
        session.connection().exec_driver_sql("SELECT 1")
    return driver, dialect


async def _run_many(connection: Any, dialect: Dialect, sql: str, batch: list[tuple[Any, ...]]) -> None:
    try:
        if dialect.name == "sqlite":
            await connection._execute(connection._conn.executemany, sql, batch)
        else:
            await connection.executemany(sql, batch)
    except (sqlite3.Error, asyncpg.PostgresError) as exc:
        raise translated(exc, sql, batch) from exc


async def _run(connection: Any, dialect: Dialect, sql: str, args: tuple[Any, ...], *, fetch: bool) -> Any:
    try:
        if dialect.name == "sqlite":
            # On sqlite_inline's connection: runs now, and retries after a pause while another writer holds the lock.
            return await connection._execute(_sqlite, connection._conn, sql, args, fetch)
        if fetch:
            return await connection.fetch(sql, *args)
        status = await connection.execute(sql, *args)  # e.g. "UPDATE 1"
        return int(status.rsplit(" ", 1)[-1])
    except (sqlite3.Error, asyncpg.PostgresError) as exc:
        raise translated(exc, sql, args) from exc


def _sqlite(connection: sqlite3.Connection, sql: str, args: tuple[Any, ...], fetch: bool) -> Any:
    cursor = connection.execute(sql, args)
    try:
        return cursor.fetchall() if fetch else cursor.rowcount
    finally:
        cursor.close()


def translated(exc: Exception, sql: str, args: Any) -> DBAPIError:
    """The error SQLAlchemy would have raised, so callers catch one kind whichever path ran the statement."""
    if isinstance(exc, sqlite3.IntegrityError | asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(sql, args, exc)
    return DBAPIError(sql, args, exc)
