"""A local Slack for testing the bot, and for testing your own changes to it (like Starlette's TestClient).

async with FakeSlack() as slack:
    ...start the bot with SLACK_API_URL=slack.api_url, then:
    reply = await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
    assert "AR-" in slack.last_ephemeral("UREQ")
"""

from bot.testing.fake_slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack, Reply, text_of
from bot.testing.faults import Fault
from bot.testing.payloads import sign
from bot.testing.workspace import Message, Person

__all__ = [
    "APP_TOKEN",
    "BOT_TOKEN",
    "SIGNING_SECRET",
    "FakeSlack",
    "Fault",
    "Message",
    "Person",
    "Reply",
    "sign",
    "text_of",
]
