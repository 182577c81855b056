"""``python -m bot demo``: the real bot (real HTTP, real signatures, a temporary SQLite file) against the
local fake Slack, playing three requests and printing what each person sees. Exits 0 only if every step
behaved as it should."""

from __future__ import annotations

import asyncio
import html
import logging
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from bot.config import Settings
from bot.service_layer import services
from bot.slack.runner import BotServer
from bot.testing import BOT_TOKEN, SIGNING_SECRET, FakeSlack, text_of
from bot.testing.workspace import Message

NAMES = {"UREQ": "Riley", "UALICE": "Alice", "UBOB": "Bob", "UCAROL": "Carol"}


class Demo:
    def __init__(self, slack: FakeSlack) -> None:
        self.slack, self.failures = slack, []  # type: ignore[var-annotated]

    def say(self, line: str) -> None:
        print(f"\n── {line}")

    def show(self, who: str, text: str) -> None:
        for name, user in NAMES.items():
            text = text.replace(f"<@{name}>", f"@{user}")
        text = html.unescape(text)  # Slack shows &lt; as <
        print(f"   {who} sees:")
        print(textwrap.indent(text.strip(), "   │ "))

    def check(self, what: str, ok: bool) -> None:
        print(f"   {'✓' if ok else '✗ FAILED:'} {what}")
        if not ok:
            self.failures.append(what)

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        for _ in range(int(timeout / 0.02)):
            if condition():
                return True
            await asyncio.sleep(0.02)
        return condition()

    def dm(self, user: str) -> Message | None:
        messages = self.slack.dms(user)
        return messages[-1] if messages else None

    def shown(self, message: Message | None) -> str:
        return text_of(message.text, message.blocks) if message else "(nothing)"


async def run_demo() -> int:
    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack:
            settings = Settings(
                _env_file=None,
                slack_bot_token=BOT_TOKEN,
                slack_signing_secret=SIGNING_SECRET,
                slack_app_token=None,
                slack_api_url=slack.api_url,
                host="127.0.0.1",
                port=0,
                database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}",
                notify_channel="CNOTIFY",
            )
            bot = BotServer(settings)
            await bot.start()
            slack.bot_url, slack.mode = f"http://127.0.0.1:{bot.port}/slack/events", "http"
            print(
                f"Fake Slack at {slack.base_url}; the bot at {slack.bot_url} (signed HTTP); "
                f"database {settings.database_url}"
            )
            demo = Demo(slack)
            try:
                await play(demo, slack, bot)
            finally:
                await bot.stop()
                await slack.close_http()
            unexpected = slack.unexpected
    demo.check("the bot called only methods Slack has", not unexpected)
    print("\n" + ("All steps behaved." if not demo.failures else f"{len(demo.failures)} step(s) failed."))
    return 0 if not demo.failures else 1


async def play(demo: Demo, slack: FakeSlack, bot: BotServer) -> None:
    demo.say("Riley types: /access-request prod-db @Alice @Bob for 4h Investigating incident 42")
    reply = await slack.slash("UREQ", "prod-db <@UALICE|alice> <@UBOB|bob> for 4h Investigating incident 42")
    demo.show("Riley (only Riley)", slack.last_ephemeral("UREQ"))
    demo.check(f"acked in {reply.seconds * 1000:.0f} ms (Slack allows 3000)", reply.seconds < 3)
    first = slack.last_ephemeral("UREQ").split("Request ")[-1].split(" ")[0]
    demo.check(
        "both approvers got a DM with Approve and Deny",
        await demo.until(lambda: all("[Approve]" in demo.shown(demo.dm(u)) for u in ("UALICE", "UBOB"))),
    )
    demo.show("Alice, in her DM", demo.shown(demo.dm("UALICE")))

    demo.say("Alice clicks Approve")
    await slack.click("UALICE", demo.dm("UALICE"), "approve_request")  # type: ignore[arg-type]
    demo.check(
        "Bob's DM shows Alice's approval",
        await demo.until(lambda: "<@UALICE> approved" in demo.shown(demo.dm("UBOB"))),
    )
    demo.check("the request is still pending", "Pending" in demo.shown(demo.dm("UBOB")))

    demo.say("Bob clicks Approve")
    await slack.click("UBOB", demo.dm("UBOB"), "approve_request")  # type: ignore[arg-type]
    demo.check("Riley is told it is approved", await demo.until(lambda: "approved by" in demo.shown(demo.dm("UREQ"))))
    demo.show("Riley, in a DM", demo.shown(demo.dm("UREQ")).split("\n")[0])
    await demo.until(
        lambda: (
            bool(slack.channel_messages("CNOTIFY"))
            and len(slack.channel_messages("CNOTIFY", thread_ts=slack.channel_messages("CNOTIFY")[0].ts)) >= 2
        )
    )
    channel = slack.channel_messages("CNOTIFY")[0]
    demo.show(
        "#access-requests",
        demo.shown(channel).split("\n")[0]
        + "\n"
        + "\n".join(f"  ↳ {m.text}" for m in slack.channel_messages("CNOTIFY", thread_ts=channel.ts)),
    )
    demo.check(
        "no Approve button is left anywhere",  # each message is updated by its own notice: wait for both
        await demo.until(lambda: all("[Approve]" not in demo.shown(demo.dm(u)) for u in ("UALICE", "UBOB"))),
    )

    demo.say("Riley types: /access-request staging-db @Alice @Carol Load test tonight")
    await slack.slash("UREQ", "staging-db <@UALICE|alice> <@UCAROL|carol> Load test tonight")
    second = slack.last_ephemeral("UREQ").split("Request ")[-1].split(" ")[0]
    await demo.until(lambda: demo.dm("UCAROL") is not None)
    demo.say("Carol clicks Deny, and gives a reason")
    await slack.click("UCAROL", demo.dm("UCAROL"), "deny_request")  # type: ignore[arg-type]
    demo.check("a modal asks Carol for a reason", await demo.until(lambda: bool(slack.open_views("UCAROL"))))
    await slack.submit("UCAROL", slack.open_views("UCAROL")[0], {"reason": "Use the load-test environment"})
    demo.check(
        "Riley is told it is denied, with the reason",
        await demo.until(lambda: "Use the load-test environment" in demo.shown(demo.dm("UREQ"))),
    )
    demo.show(
        "Riley, in a DM",
        demo.shown(demo.dm("UREQ")).split("\n")[0] + "\n" + demo.shown(demo.dm("UREQ")).split("\n")[1],
    )

    demo.say("Riley mistypes: /access-request prod-db @Alice because")
    await slack.slash("UREQ", "prod-db <@UALICE|alice> because")
    demo.show("Riley (only Riley)", slack.last_ephemeral("UREQ"))
    demo.check("the mistake is explained", "Name exactly 2 approvers; you named 1" in slack.last_ephemeral("UREQ"))

    demo.say("Stored in the database")
    page = await services.list_requests(uow=bot.db.uow(), per_page=10)
    for view in page.items:
        decisions = ", ".join(f"{NAMES.get(d.approver_id)}: {d.verdict.value}" for d in view.decisions)
        print(f"   {view.id}  {view.resource:<11} {view.status.value:<9} {decisions}")
    states = {v.id: v.status.value for v in page.items}
    demo.check("exactly two requests stored: approved and denied", states == {first: "APPROVED", second: "DENIED"})
