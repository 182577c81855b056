"""The database path: the approval transaction through the service and Unit of Work, against the raw driver
(aiosqlite, asyncpg) running the same SQL; sequential and at 50 in flight."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import asyncpg

from bench.stats import summary
from bot.adapters import repository
from bot.adapters.db import Database
from bot.domain.values import Approver, Policy
from bot.service_layer import services

POLICY = Policy(max_open_per_requester=1_000_000)


async def _requests(db: Database, n: int) -> list[str]:
    ids = []
    for i in range(n):
        view = await services.create_request(
            uow=db.uow(),
            requester_id=f"UREQ{i % 50}",
            resource=f"db-{i}",
            justification="benchmark",
            # Named, as the bot's are once Slack has said who they are: a process keeps named approvers in memory
            # (unnamed ones, still being checked, it reads with the request), and the raw side's SQL assumes so.
            approvers=[Approver("UALICE", "Alice"), Approver("UBOB", "Bob")],
            policy=POLICY,
        )
        ids.append(view.id)
    # On PostgreSQL a process decides the requests it wrote itself from what it kept, without reading them
    # (``repository._WRITTEN``): forgotten here, so that the service reads each request as the raw side does (the
    # decision of a request another process stored; the kept one is a statement fewer, in the Slack path's figures).
    repository._WRITTEN.clear()
    return ids


async def _service(db: Database, rid: str) -> None:
    await services.approve(uow=db.uow(), request_id=rid, approver_id="UALICE")


# The statements the service runs for a first approval (see the SQL log of one call): load the request with its
# decisions in one statement (an outer join; the approvers the process knows since it made the request); insert
# the decision; move the status if unchanged; mark the approver as no longer awaited; audit; queue the four notices
# it owes (updates of both DMs and the channel message, a thread reply) in one INSERT, those already queued left
# out by ON CONFLICT. On SQLite in one IMMEDIATE transaction. On PostgreSQL the request is read without a lock or a
# transaction, with its row's version (xmin), and the decision, the approver's flag, the status move (only where
# the row is still that version) and the audit entry ride in the notices' INSERT as data-modifying CTEs, committed
# alone: the raw driver runs the same statements. (In the bot, whose units lease notices to its dispatcher, the
# notices' INSERT also works out each one's lease.)
def _notice_rows(rid: str, now: str) -> list[tuple[Any, ...]]:
    owed = [
        (f"{rid}:update:dm:UALICE:1:PENDING", "dm:UALICE", "update_dm", "UALICE"),
        (f"{rid}:update:dm:UBOB:1:PENDING", "dm:UBOB", "update_dm", "UBOB"),
        (f"{rid}:update:channel:1:PENDING", "channel", "update_channel", None),
        (f"{rid}:post:reply:UALICE", "channel", "post_reply", "UALICE"),
    ]
    return [
        (key, rid, target, action, subject, "{}", "pending", 0, 0, now, now, None, None)
        for key, target, action, subject in owed
    ]


OUTBOX_INSERT = (
    "INSERT INTO outbox (dedupe_key, request_id, target, action, subject, details, status, attempts,"
    " claims, next_attempt_at, created_at, lease_until, claimed_by) VALUES {}"
    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key"
)


GET = (
    "SELECT access_requests.*, decisions.id AS d_id, decisions.approver_id AS d_approver_id, decisions.verdict AS"
    " d_verdict, decisions.reason AS d_reason, decisions.decided_at AS d_decided_at{} FROM access_requests"
    " LEFT OUTER JOIN decisions ON decisions.request_id = access_requests.id WHERE access_requests.id = ?"
    " ORDER BY decisions.id"
)
VERSION = ", CAST(access_requests.xmin AS TEXT) AS version"
DECIDED = (
    "WITH moved AS (UPDATE access_requests SET status = {to}, updated_at = {now}"
    " WHERE id = {rid} AND CAST(xmin AS TEXT) = {version} RETURNING id),"
    " approvers AS (UPDATE request_approvers SET awaiting = false"
    " WHERE request_id = (SELECT id FROM moved) AND user_id = {who}),"
    " d0 AS (INSERT INTO decisions (request_id, approver_id, verdict, reason, decided_at)"
    " VALUES ((SELECT id FROM moved), {who}, {verdict}, {reason}, {now})),"
    " d1 AS (INSERT INTO audit_log (at, actor_id, action, request_id, details)"
    " VALUES ({now}, {who}, {act}, {rid}, {details}::json)) "
)


async def _raw_sqlite(conn: aiosqlite.Connection, rid: str) -> None:
    now = datetime.now(UTC).isoformat(" ")
    await conn.execute("BEGIN IMMEDIATE")
    await (await conn.execute(GET.format(""), (rid,))).fetchall()
    await conn.execute(
        "INSERT INTO decisions (request_id, approver_id, verdict, reason, decided_at) VALUES (?, ?, ?, ?, ?)",
        (rid, "UALICE", "APPROVE", None, now),
    )
    await conn.execute(
        "UPDATE access_requests SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
        ("PENDING", now, rid, "PENDING"),
    )
    await conn.execute(
        "UPDATE request_approvers SET awaiting = 0 WHERE request_id = ? AND user_id IN (?)", (rid, "UALICE")
    )
    await conn.execute(
        "INSERT INTO audit_log (at, actor_id, action, request_id, details) VALUES (?, ?, ?, ?, ?)",
        (now, "UALICE", "decision.approve", rid, json.dumps({"reason": None})),
    )
    rows = _notice_rows(rid, now)
    values = ", ".join(["(" + ", ".join("?" * 13) + ")"] * len(rows))
    await (await conn.execute(OUTBOX_INSERT.format(values), [v for r in rows for v in r])).fetchall()
    await conn.execute("COMMIT")


async def _raw_pg(pool: asyncpg.Pool, rid: str) -> None:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        (request, *_) = await conn.fetch(GET.format(VERSION).replace("?", "$1"), rid)
        rows = [(*r[:9], now, now, None, None) for r in _notice_rows(rid, "")]
        values = ", ".join(
            "(" + ", ".join(f"${13 * n + i}" + ("::json" if i == 6 else "") for i in range(1, 14)) + ")"
            for n in range(len(rows))
        )
        n = len(rows) * 13  # then: rid, approver, verdict, reason, now, status, audit action and details, version
        names = ("rid", "who", "verdict", "reason", "now", "to", "act", "details", "version")
        places = {name: f"${n + i}" for i, name in enumerate(names, 1)}
        await conn.fetch(
            DECIDED.format(**places) + OUTBOX_INSERT.format(values),
            *(v for r in rows for v in r),
            rid,
            "UALICE",
            "APPROVE",
            None,
            now,
            "PENDING",
            "decision.approve",
            json.dumps({"reason": None}),
            request["version"],
        )


async def _timed(work: Any, ids: list[str], in_flight: int) -> tuple[list[float], float]:
    gate, times = asyncio.Semaphore(in_flight), []

    async def one(rid: str) -> None:
        async with gate:
            started = time.perf_counter()
            await work(rid)
            times.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(rid) for rid in ids))
    return times, time.perf_counter() - started


async def _raw_sqlite_run(url: str, ids: list[str], in_flight: int, warm: list[str]) -> tuple[list[float], float]:
    path = url.split("///", 1)[1]
    conns = [await aiosqlite.connect(path, isolation_level=None, timeout=30) for _ in range(5)]
    free: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
    for c in conns:
        await c.execute("PRAGMA busy_timeout=30000")
        free.put_nowait(c)

    async def raw(rid: str) -> None:
        conn = await free.get()
        try:
            await _raw_sqlite(conn, rid)
        finally:
            free.put_nowait(conn)

    try:
        await _timed(raw, warm, in_flight)
        return await _timed(raw, ids, in_flight)
    finally:
        for c in conns:
            await c.close()


async def _raw_pg_run(url: str, ids: list[str], in_flight: int, warm: list[str]) -> tuple[list[float], float]:
    pool = await asyncpg.create_pool(url.replace("postgresql+asyncpg", "postgresql"), min_size=5, max_size=15)
    try:
        await _timed(lambda rid: _raw_pg(pool, rid), warm, in_flight)
        return await _timed(lambda rid: _raw_pg(pool, rid), ids, in_flight)
    finally:
        await pool.close()


async def run(url: str, *, n: int = 300, rounds: int = 3) -> dict[str, Any]:
    """The service and the raw driver take turns, ``rounds`` times at each number in flight; the ratio is the
    median of the rounds' ratios (PostgreSQL's speed drifts with what ran before, e.g. a checkpoint)."""
    db = Database(url)
    await db.upgrade()
    figures: dict[str, Any] = {}
    raw_run = _raw_sqlite_run if db.engine.dialect.name == "sqlite" else _raw_pg_run
    try:
        for in_flight in (1, 50):
            service_times: list[float] = []
            raw_times: list[float] = []
            service_rates, raw_rates = [], []
            for _ in range(rounds):
                # Each side first runs ``in_flight`` approvals untimed, so that both measure with their connections
                # open (opening up to 25 PostgreSQL connections inside a timed run of 300 made the ratio swing). The
                # service's requests made last: the process knows their approvers, as the bot knows recent ones.
                warm_raw, warm_service = await _requests(db, in_flight), await _requests(db, in_flight)
                raw_ids, service_ids = await _requests(db, n), await _requests(db, n)
                await _timed(lambda rid: _service(db, rid), warm_service, in_flight)
                times, elapsed = await _timed(lambda rid: _service(db, rid), service_ids, in_flight)
                service_times += times
                service_rates.append(n / elapsed)
                times, elapsed = await raw_run(url, raw_ids, in_flight, warm_raw)
                raw_times += times
                raw_rates.append(n / elapsed)
            figures[f"in_flight_{in_flight}"] = {
                "service": {**summary(service_times), "per_second": statistics.median(service_rates)},
                "raw": {**summary(raw_times), "per_second": statistics.median(raw_rates)},
                "ratio": statistics.median(s / r for s, r in zip(service_rates, raw_rates, strict=True)),
                "each_round": [s / r for s, r in zip(service_rates, raw_rates, strict=True)],
            }
    finally:
        await db.dispose()
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(sys.argv[1], n=int(sys.argv[2])))))
