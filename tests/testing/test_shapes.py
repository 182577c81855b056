"""The fake answers, and its payload builders send, only keys and types that Slack's own samples have;
every key the bot reads is in those samples."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.testing import APP_TOKEN, BOT_TOKEN, FakeSlack, payloads
from tests.testing.shapes import has_path, mismatches, sample

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
MODAL = {
    "type": "modal",
    "title": {"type": "plain_text", "text": "T"},
    "submit": {"type": "plain_text", "text": "Go"},
    "callback_id": "cb",
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        }
    ],
}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


async def answers(slack: FakeSlack) -> dict[str, dict[str, Any]]:
    c = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    posted = await c.chat_postMessage(
        channel="CNOTIFY",
        text="t",
        blocks=[SECTION],
        metadata={"event_type": "access_request", "event_payload": {"a": 1}},
    )
    threaded = await c.chat_postMessage(channel="CNOTIFY", text="reply", thread_ts=posted["ts"])
    opened = await c.views_open(trigger_id=slack.issue_trigger("UALICE"), view=MODAL)
    out = {
        "auth.test": (await c.auth_test()).data,
        "users.info": (await c.users_info(user="UALICE")).data,
        "users.info (bot)": (await c.users_info(user="UOTHERBOT")).data,
        "users.lookupByEmail": (await c.users_lookupByEmail(email="bob@example.com")).data,
        "conversations.open": (await c.conversations_open(users="UBOB")).data,
        "chat.postMessage": posted.data,
        "chat.postMessage (thread)": threaded.data,
        "chat.update": (await c.chat_update(channel="CNOTIFY", ts=posted["ts"], text="u", blocks=[SECTION])).data,
        "chat.postEphemeral": (await c.chat_postEphemeral(channel="CNOTIFY", user="UBOB", text="e")).data,
        "views.open": opened.data,
        "views.update": (await c.views_update(view_id=opened["view"]["id"], view=MODAL)).data,
        "views.publish": (await c.views_publish(user_id="UBOB", view={"type": "home", "blocks": [SECTION]})).data,
        "apps.connections.open": (await c.apps_connections_open(app_token=APP_TOKEN)).data,
    }
    return {k: v for k, v in out.items() if isinstance(v, dict)}


async def test_web_api_answers_match_slacks_shapes(slack: FakeSlack) -> None:
    for name, answer in (await answers(slack)).items():
        method = name.split(" ")[0]
        assert answer["ok"] is True
        assert mismatches(answer, sample("api", method)) == [], name


def test_error_answers_match_slacks_shapes() -> None:
    error = {"ok": False, "error": "invalid_blocks", "response_metadata": {"messages": ["[ERROR] x"]}}
    assert mismatches(error, sample("api", "chat.postMessage")) == []


async def test_payloads_match_slacks_shapes(slack: FakeSlack) -> None:
    c = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    button = {
        "type": "actions",
        "block_id": "decide",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Approve"},
                "action_id": "approve_request",
                "value": "AR-1",
                "style": "primary",
            }
        ],
    }
    posted = await c.chat_postMessage(channel="UALICE", text="t", blocks=[button])
    message = slack.message(posted["channel"], posted["ts"])
    opened = await c.views_open(trigger_id=slack.issue_trigger("UALICE"), view=MODAL)
    await c.views_publish(user_id="UALICE", view={"type": "home", "blocks": [button]})
    built = {
        # A slash command arrives form-encoded, so its booleans are the strings "true"/"false".
        "SlashCommandPayload": {
            k: v == "true" if v in ("true", "false") else v
            for k, v in payloads.slash_command(slack, "UREQ", "help").items()
        },
        "BlockActionPayload": payloads.block_actions_from_message(slack, "UALICE", message, "approve_request"),
        "BlockActionPayload (home)": payloads.block_actions_from_view(
            slack,
            "UALICE",
            slack.home("UALICE"),  # type: ignore[arg-type]
            "approve_request",
        ),
        "ViewSubmissionPayload": payloads.view_submission(
            slack, "UALICE", slack.views[opened["view"]["id"]], {"reason": "because"}
        ),
        "AppHomeOpenedPayload": payloads.app_home_opened(slack, "UALICE"),
    }
    for name, payload in built.items():
        assert mismatches(payload, sample("payloads", name.split(" ")[0])) == [], name


@pytest.mark.parametrize(
    ("kind", "name", "path"),
    [
        ("api", "chat.postMessage", "channel"),
        ("api", "chat.postMessage", "ts"),
        ("api", "users.info", "user.is_bot"),
        ("api", "users.info", "user.is_app_user"),
        ("api", "users.info", "user.deleted"),
        ("api", "users.info", "user.profile.display_name"),
        ("api", "users.info", "user.profile.real_name"),
        ("api", "users.info", "user.profile.email"),
        ("api", "users.info", "user.real_name"),
        ("api", "users.info", "user.name"),
        ("api", "apps.connections.open", "url"),
        ("payloads", "SlashCommandPayload", "user_id"),
        ("payloads", "SlashCommandPayload", "user_name"),
        ("payloads", "SlashCommandPayload", "text"),
        ("payloads", "SlashCommandPayload", "trigger_id"),
        ("payloads", "SlashCommandPayload", "response_url"),
        ("payloads", "BlockActionPayload", "user.id"),
        ("payloads", "BlockActionPayload", "actions.value"),
        ("payloads", "BlockActionPayload", "trigger_id"),
        ("payloads", "BlockActionPayload", "response_url"),
        ("payloads", "BlockActionPayload", "container.type"),
        ("payloads", "BlockActionPayload", "view.type"),
        ("payloads", "ViewSubmissionPayload", "user.id"),
        ("payloads", "ViewSubmissionPayload", "user.name"),
        ("payloads", "ViewSubmissionPayload", "view.state"),
        ("payloads", "ViewSubmissionPayload", "view.private_metadata"),
        ("payloads", "AppHomeOpenedPayload", "event_id"),
        ("payloads", "AppHomeOpenedPayload", "event.user"),
        ("payloads", "AppHomeOpenedPayload", "event.tab"),
    ],
)
def test_every_key_the_bot_reads_is_one_slack_sends(kind: str, name: str, path: str) -> None:
    assert has_path(sample(kind, name), path)
