"""kill -9 the bot at random moments during a run (at least 10 kills), restart it each time: every request
ends consistent, every acked decision is stored, every notice is delivered exactly once."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from bot.adapters.db import Database
from bot.domain.values import Status, Verdict
from bot.service_layer import delivery, services
from bot.testing import FakeSlack, Fault
from bot.testing.workspace import Person
from tests.databases import sqlite_url
from tests.reliability.ledger import Ledger
from tests.reliability.processes import BotProcess

REQUESTS, KILLS = 40, 12


async def test_kill_minus_nine_at_random_moments(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "crash.db")
    rng = random.Random(9)
    async with FakeSlack() as slack:
        # A notice the killed run was delivering waits SLACK_TIMEOUT after the restart (its call may be in flight).
        bot = BotProcess(slack, url, tmp_path, OUTBOX_BASE_DELAY="0.05", SLACK_TIMEOUT="1")
        slack.bot_url = bot.url
        for i in range(REQUESTS):
            slack.add_person(Person(f"UREQ{i}", f"req{i}", f"Requester {i}"))
        await bot.start()
        acked_requests: set[str] = set()
        acked_decisions: set[tuple[str, str]] = set()
        kills = 0
        done = asyncio.Event()

        async def killer() -> None:
            nonlocal kills
            while not done.is_set() or kills < KILLS:
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                await bot.kill()
                kills += 1
                await asyncio.sleep(rng.uniform(0.0, 0.2))
                await bot.start()

        async def attempt(action) -> object:  # type: ignore[no-untyped-def]
            for _ in range(200):  # a person tries again when Slack says the app did not answer
                try:
                    reply = await action()
                    if reply.status == 200:
                        return reply
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
            raise AssertionError("the bot never came back")

        async def one(i: int) -> None:
            reply = await attempt(lambda: slack.slash(f"UREQ{i}", f"db-{i} <@UALICE> <@UBOB> crash test {i}"))
            rid = reply.text.split("Request ")[1].split(" ")[0]  # type: ignore[attr-defined]
            acked_requests.add(rid)
            for user in ("UALICE", "UBOB"):
                for _ in range(1200):
                    if slack.dm_about(user, rid) is not None:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"{user} never got a DM about {rid}")
                seen = slack.dm_about(user, rid).snapshot()  # what the approver has on screen when clicking
                await attempt(lambda u=user, m=seen: slack.click(u, m, "approve_request"))
                acked_decisions.add((rid, user))

        killing = asyncio.create_task(killer())
        try:
            for start in range(0, REQUESTS, 5):
                await asyncio.gather(*(one(i) for i in range(start, start + 5)))
        finally:
            done.set()
            await killing
        db = Database(url)
        try:
            for _ in range(600):
                if not await delivery.outbox_entries(uow=db.uow(), statuses=("pending",), limit=1):
                    break
                await asyncio.sleep(0.1)
            page = await services.list_requests(uow=db.uow(), per_page=100)
            views = list(page.items)
            stored = {v.id: v for v in views}
            assert acked_requests <= set(stored)  # acked means recorded
            for rid, user in acked_decisions:
                decision = stored[rid].decision_of(user)
                assert decision is not None and decision.verdict is Verdict.APPROVE
            for view in views:  # a request whose ack was lost was asked for again: it may still be pending
                assert view.status in (Status.APPROVED, Status.PENDING)
                assert (view.status is Status.APPROVED) == (len(view.decisions) == 2)
            Ledger.of(slack, views).assert_exactly_once()
            assert await delivery.outbox_entries(uow=db.uow()) == []
            print(
                f"\ncrash test: {len(views)} requests stored, {kills} kill -9s, {len(acked_decisions)} acked "
                f"decisions all stored, duplicates 0, lost 0"
            )
        finally:
            await db.dispose()
            await bot.stop()
            await slack.close_http()
    assert kills >= 10


async def test_a_post_still_in_flight_when_the_bot_is_killed_is_not_posted_again(tmp_path: Path) -> None:
    """Slack takes 2 s to post Alice's DM; the bot is killed meanwhile and restarted at once. Slack still posts
    the message (the call reached it). The restarted bot must find that message, not post a second one: it waits
    until every call the killed run made has been answered (SLACK_TIMEOUT, here 3 s) before looking."""
    async with FakeSlack() as slack:
        bot = BotProcess(slack, sqlite_url(tmp_path / "inflight.db"), tmp_path, SLACK_TIMEOUT="3")
        slack.bot_url = bot.url
        await bot.start()
        try:
            slack.inject("chat.postMessage", Fault.latency(2.0))  # the first post: Alice's DM
            reply = await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 7")
            rid = reply.text.split("Request ")[1].split(" ")[0]
            for _ in range(100):
                if any(m == "chat.postMessage" for m, _ in slack.calls):
                    break
                await asyncio.sleep(0.02)
            await bot.kill()  # Alice's DM is in flight at Slack
            await bot.start()
            await _posted_once(slack, rid, settle=4)  # anything posted twice has been posted 4 s later
            looked = [p.get("channel") for m, p in slack.calls if m == "conversations.history"]
            assert "DUALICE" in looked  # the restarted bot looked for Alice's DM before posting it
        finally:
            await bot.stop()
            await slack.close_http()


async def test_a_posted_and_updated_message_whose_post_was_not_recorded_is_found_not_posted_again(
    tmp_path: Path,
) -> None:
    """A run posts Bob's DM and the channel message and updates both (it knows where they are), then dies before
    recording the posts. The next run must find those messages by their notice keys: an update replaces a
    message's metadata, so it has to keep the key of the notice that posted it."""
    from bot.slack.runner import BotServer
    from tests.slack.conftest import bot_settings

    async with FakeSlack() as slack:
        settings = bot_settings(slack, tmp_path / "bot.db", socket=False)
        first = BotServer(settings)
        await first.start()
        slack.bot_url = f"http://127.0.0.1:{first.port}/slack/events"
        reply = await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 9")
        rid = reply.text.split("Request ")[1].split(" ")[0]
        for _ in range(200):
            if slack.dm_about("UALICE", rid) and slack.dm_about("UBOB", rid) and slack.channel_messages("CNOTIFY"):
                break
            await asyncio.sleep(0.02)
        await slack.click("UALICE", slack.dm_about("UALICE", rid).snapshot(), "approve_request")  # updates both
        for _ in range(200):
            if "1 of 2" in str(slack.dm_about("UBOB", rid).blocks):
                break
            await asyncio.sleep(0.02)
        await first.stop()
        # As if the run had died before recording the two posts: pending again, their places unknown.
        db = Database(settings.database_url)
        async with db.engine.begin() as conn:
            for key, purpose in ((f"{rid}:post:dm:UBOB", "dm:UBOB"), (f"{rid}:post:channel", "channel")):
                await conn.exec_driver_sql(
                    "UPDATE outbox SET status = 'pending', finished_at = NULL, claims = 2 WHERE dedupe_key = ?", (key,)
                )
                await conn.exec_driver_sql(
                    "DELETE FROM slack_messages WHERE request_id = ? AND purpose = ?", (rid, purpose)
                )
        await db.dispose()
        second = BotServer(settings)
        await second.start()
        try:
            for _ in range(300):
                if not await delivery.outbox_entries(uow=second.db.uow(), statuses=("pending",), limit=1):
                    break
                await asyncio.sleep(0.02)
            assert [rid in m.text for m in slack.dms("UBOB")] == [True]
            assert [rid in m.text for m in slack.channel_messages("CNOTIFY")] == [True]
        finally:
            await second.stop()
            await slack.close_http()


async def test_a_request_stored_while_its_approvers_were_checked_goes_out_after_a_kill(tmp_path: Path) -> None:
    """The bot is killed after storing a request and before Slack said who its approvers are: the person got no
    answer. After the restart its DMs go out once (when the killed run's notices are taken back, SLACK_TIMEOUT
    after the start), as for any request stored just before a crash; its approvers keep their ids, unnamed."""
    database = tmp_path / "checking.db"
    async with FakeSlack() as slack:
        bot = BotProcess(slack, sqlite_url(database), tmp_path, SLACK_TIMEOUT="1", OUTBOX_LEASE_SECONDS="8")
        slack.bot_url = bot.url
        await bot.start()
        try:
            slack.inject("users.info", Fault.latency(1.5), Fault.latency(1.5))  # the check takes 1.5 s
            asking = asyncio.ensure_future(slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 8"))
            stored: list[tuple[str, str]] = []
            for _ in range(200):
                stored = _rows(database, "SELECT id, status FROM access_requests")
                if stored:
                    break
                await asyncio.sleep(0.01)
            await bot.kill()  # stored, its approvers still being checked
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(asking, 5)  # the person got no answer: Slack shows its error
            assert slack.calls_to("chat.postMessage") == []
            [(rid, status)] = stored
            await bot.start()
            await _posted_once(slack, rid, settle=1.5)
            assert status == "PENDING"
            named = _rows(database, "SELECT user_id, display_name FROM request_approvers ORDER BY position")
            assert named == [("UALICE", ""), ("UBOB", "")]
        finally:
            await bot.stop()
            await slack.close_http()


async def _posted_once(slack: FakeSlack, rid: str, *, settle: float) -> None:
    """Wait for both DMs and the channel message of ``rid``, then ``settle`` seconds more: each was posted once."""
    for _ in range(300):
        if slack.dm_about("UALICE", rid) and slack.dm_about("UBOB", rid) and slack.channel_messages("CNOTIFY"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(settle)
    assert [rid in m.text for m in slack.dms("UALICE")] == [True]
    assert [rid in m.text for m in slack.dms("UBOB")] == [True]
    assert [rid in m.text for m in slack.channel_messages("CNOTIFY")] == [True]


def _rows(database: Path, query: str) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(database)) as conn:
        return [tuple(row) for row in conn.execute(query)]
