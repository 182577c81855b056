"""Two bot processes on one PostgreSQL: 100 requests whose two approvals arrive at different processes at the
same moment -> one outcome each, every notice exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from sqlmodel import select

from bot.adapters.db import Database
from bot.adapters.tables import AuditRow
from bot.domain.values import Status
from bot.service_layer import delivery, services
from bot.testing import FakeSlack
from bot.testing.workspace import Person
from tests.databases import create_pg_database, drop_pg_database, pg_url, require_postgres
from tests.reliability.ledger import Ledger
from tests.reliability.processes import BotProcess

REQUESTS = 100


async def test_two_replicas_one_outcome_each(tmp_path: Path) -> None:
    require_postgres()
    name = await asyncio.to_thread(create_pg_database)
    url = pg_url(name)
    async with FakeSlack() as slack:
        a = BotProcess(slack, url, tmp_path, OUTBOX_LEASE_SECONDS="10", SLACK_TIMEOUT="5")
        b = BotProcess(slack, url, tmp_path, OUTBOX_LEASE_SECONDS="10", SLACK_TIMEOUT="5")
        db = Database(url)
        try:
            await a.start()
            await b.start()
            for i in range(REQUESTS):
                slack.add_person(Person(f"UREQ{i}", f"req{i}", f"Requester {i}"))
            ids = await asyncio.gather(*(_create(slack, i, (a, b)[i % 2].url) for i in range(REQUESTS)))
            await _until(lambda: all(slack.dm_about(u, rid) for rid in ids for u in ("UALICE", "UBOB")))
            clicks = []
            for rid in ids:  # Alice's click reaches one replica and Bob's the other, at the same moment
                clicks += [
                    slack.click("UALICE", slack.dm_about("UALICE", rid), "approve_request", to=a.url),  # type: ignore[arg-type]
                    slack.click("UBOB", slack.dm_about("UBOB", rid), "approve_request", to=b.url),
                ]  # type: ignore[arg-type]
            replies = await asyncio.gather(*clicks)
            assert {r.status for r in replies} == {200}
            await _settled(db)
            views = [await services.get(uow=db.uow(), request_id=rid) for rid in ids]
            assert {v.status for v in views} == {Status.APPROVED}
            async with db.uow() as uow:
                became = Counter(
                    row.request_id
                    for row in (
                        await uow.session.execute(  # type: ignore[attr-defined]
                            select(AuditRow).where(AuditRow.action == "status.approved")
                        )
                    ).scalars()
                )
            assert became == Counter(dict.fromkeys(ids, 1))
            Ledger.of(slack, views).assert_exactly_once()
            outcome_dms = [m for m in slack.messages.values() if m.channel.startswith("DUREQ")]
            assert len(outcome_dms) == REQUESTS
        finally:
            await a.stop()
            await b.stop()
            await slack.close_http()
            await db.dispose()
            await asyncio.to_thread(drop_pg_database, name)


async def _create(slack: FakeSlack, i: int, to: str) -> str:
    reply = await slack.slash(f"UREQ{i}", f"db-{i} <@UALICE> <@UBOB> replica test {i}", to=to)
    assert reply.status == 200 and "is sent to" in reply.text, reply.text
    return reply.text.split("Request ")[1].split(" ")[0]


async def _until(condition: object, timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def _settled(db: Database, timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.1)):
        if not await delivery.outbox_entries(uow=db.uow(), statuses=("pending",), limit=1):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the outbox did not drain")
