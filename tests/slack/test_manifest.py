"""manifest.yml is valid against Slack's schema and asks for exactly the scopes the bot uses."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from jsonschema import Draft7Validator

from bot.testing import Fault
from tests.reference import slack_reference
from tests.slack.conftest import World, eventually
from tests.slack.test_surfaces import create

ROOT = Path(__file__).resolve().parents[2]
SCOPE_OF = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.delete": "chat:write",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "conversations.open": "im:write",
    "conversations.history": "history",
    "conversations.replies": "history",
    "views.open": None,
    "views.update": None,
    "views.push": None,
    "views.publish": None,
    "auth.test": None,
    "apps.connections.open": None,
}


def manifest() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_is_valid_against_slacks_schema() -> None:
    schema = slack_reference("manifest-schema", "manifest.schema.1.0.0.json")
    errors = list(Draft7Validator(json.loads(schema.read_text())).iter_errors(manifest()))
    assert errors == [], [e.message for e in errors]


def test_manifest_declares_every_surface() -> None:
    m = manifest()
    [command] = m["features"]["slash_commands"]
    assert command["command"] == "/access-request" and command["should_escape"] is True
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert m["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert m["settings"]["socket_mode_enabled"] is True
    assert m["features"]["app_home"]["home_tab_enabled"] is True


def _scope(method: str, params: dict[str, object]) -> str | None:
    scope = SCOPE_OF[method]
    if scope == "history":  # which history scope depends on the conversation
        return {"C": "channels:history", "D": "im:history", "G": "groups:history"}[str(params["channel"])[0]]
    return scope


async def test_scopes_are_exactly_what_the_flows_use(world: World) -> None:
    slack = world.slack
    # Answers lost after Slack posted: the bot must look before posting again (DM, channel, thread reply).
    slack.inject("chat.postMessage", *[Fault.lost_answer()] * 3)
    request_id = await create(world)
    await slack.open_home("UALICE")
    await slack.slash("UREQ", "")
    await slack.click("UBOB", slack.dms("UBOB")[-1], "deny_request")
    await eventually(lambda: slack.open_views("UBOB"))
    await slack.submit("UBOB", slack.open_views("UBOB")[0], {"reason": "no"})
    await eventually(lambda: len(slack.dms("UREQ")) == 1)
    await world.settled()
    used = {_scope(method, params) for method, params in slack.calls if method in SCOPE_OF} - {None}
    declared = set(manifest()["oauth_config"]["scopes"]["bot"]) - {"commands"}
    assert used == declared, f"used {used}, declared {declared}"
    assert request_id
