"""Scale: a database of 100,000 requests, and the queries people wait on: pending-for-approver, list-by-status
pages, building the App Home, status lookup; each p50 / p95, through the real service layer."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.stats import summary
from bot.adapters.db import Database
from bot.adapters.repository import APPROVERS, DECISIONS, REQUESTS
from bot.domain.values import Status
from bot.service_layer import services
from bot.slack import forms

APPROVER_POOL, REQUESTER_POOL = 500, 2_000
STATUSES = [Status.PENDING] * 10 + [Status.APPROVED] * 60 + [Status.DENIED] * 20 + [Status.CANCELLED] * 10


async def seed(db: Database, n: int, rng: random.Random) -> list[str]:
    """``n`` requests with their approvers and decisions, inserted in bulk (not through the services)."""
    start, ids = datetime.now(UTC) - timedelta(days=365), []
    for chunk in range(0, n, 10_000):
        requests, approvers, decisions = [], [], []
        for i in range(chunk, min(n, chunk + 10_000)):
            rid = f"AR-S{i:07d}"
            ids.append(rid)
            a, b = rng.sample(range(APPROVER_POOL), 2)
            status = rng.choice(STATUSES)
            at = start + timedelta(seconds=i * 300)
            requests.append(
                {
                    "id": rid,
                    "requester_id": f"UR{rng.randrange(REQUESTER_POOL)}",
                    "requester_name": "",
                    "resource": f"db-{i % 97}",
                    "justification": "seeded for the scale benchmark",
                    "duration_minutes": None,
                    "required_approvals": 2,
                    "status": status.value,
                    "created_at": at,
                    "updated_at": at,
                    "idempotency_key": None,
                }
            )
            decided = {
                Status.APPROVED: [(a, "APPROVE"), (b, "APPROVE")],
                Status.DENIED: [(a, "DENY")],
                Status.PENDING: [(a, "APPROVE")] if i % 2 else [],
                Status.CANCELLED: [],
            }[status]
            approvers += [
                {
                    "request_id": rid,
                    "position": p,
                    "user_id": f"UA{u}",
                    "display_name": "",
                    "email": None,
                    "awaiting": status is Status.PENDING and all(u != d for d, _ in decided),
                }
                for p, u in enumerate((a, b))
            ]
            decisions += [
                {"request_id": rid, "approver_id": f"UA{u}", "verdict": v, "reason": None, "decided_at": at}
                for u, v in decided
            ]
        async with db.engine.begin() as conn:
            await conn.execute(sa.insert(REQUESTS), requests)
            await conn.execute(sa.insert(APPROVERS), approvers)
            if decisions:
                await conn.execute(sa.insert(DECISIONS), decisions)
    if db.engine.dialect.name == "sqlite":
        # The bulk load left every page in the write-ahead log; SQLite's autocheckpoint keeps it short in steady use.
        with closing(sqlite3.connect(str(db.engine.url.database))) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if db.engine.dialect.name == "postgresql":
        # What autovacuum does to a table that grew over months: statistics and the visibility map (which lets
        # index-only scans skip the table).
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE"))
    return ids


async def _timed(samples: int, work: Any) -> dict[str, float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return summary(times)


async def run(url: str, *, n: int = 100_000, samples: int = 200) -> dict[str, Any]:
    rng = random.Random(7)
    db = Database(url)
    await db.upgrade()
    try:
        started = time.perf_counter()
        ids = await seed(db, n, rng)
        seeded = time.perf_counter() - started

        async def pending() -> None:
            await services.pending_for_approver(
                uow=db.uow(), approver_id=f"UA{rng.randrange(APPROVER_POOL)}", limit=100
            )

        async def by_status() -> None:
            await services.list_requests(uow=db.uow(), status=rng.choice(STATUSES), page=rng.randint(1, 50))

        async def home() -> None:
            user = f"UA{rng.randrange(APPROVER_POOL)}"
            todo, mine = await services.home_lists(
                uow=db.uow(), user_id=user, todo_limit=forms.HOME_TODO_LIMIT + 1, mine_limit=forms.HOME_MINE_LIMIT
            )
            forms.home(todo=todo, mine=mine.items, mine_total=mine.total)  # Slack's JSON

        async def status() -> None:
            await services.get(uow=db.uow(), request_id=rng.choice(ids))

        figures: dict[str, Any] = {"requests": n, "seed_seconds": seeded}
        for name, work in (
            ("pending_for_approver", pending),
            ("list_by_status_page", by_status),
            ("app_home", home),
            ("status_lookup", status),
        ):
            await _timed(10, work)  # warm caches
            figures[name] = await _timed(samples, work)
        return figures
    finally:
        await db.dispose()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(sys.argv[1], n=int(sys.argv[2])))))
