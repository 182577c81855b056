"""What Slack sends an app: slash commands, block_actions, view_submission, app_home_opened; and signing.

Shapes follow Slack's recorded payloads (checked against ../shared/slack/samples/payloads in the tests).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import TYPE_CHECKING, Any

from bot.testing.workspace import APP_ID, TEAM_DOMAIN, TEAM_ID, Message

if TYPE_CHECKING:
    from bot.testing.core import SlackCore

COMMAND = "/access-request"
VERIFICATION_TOKEN = "fake-verification-token"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The ``v0`` signature headers Slack puts on every HTTP request it sends an app."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def _user(fake: SlackCore, user_id: str) -> dict[str, Any]:
    person = fake.people.get(user_id)
    name = person.name if person else user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": TEAM_ID}


def slash_command(
    fake: SlackCore, user_id: str, text: str, *, channel_id: str = "CGENERAL", command: str = COMMAND
) -> dict[str, Any]:
    channel = fake.channels.get(channel_id)
    person = fake.people.get(user_id)
    return {
        "token": VERIFICATION_TOKEN,
        "api_app_id": APP_ID,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel.name if channel else "directmessage",
        "user_id": user_id,
        "user_name": person.name if person else user_id.lower(),
        "command": command,
        "text": text,
        "response_url": fake.new_response_url(user_id, channel_id),
        "trigger_id": fake.issue_trigger(user_id),
        "is_enterprise_install": "false",
    }


def find_element(blocks: list[dict[str, Any]], action_id: str, value: str | None = None) -> tuple[str, dict[str, Any]]:
    for block in blocks:
        for element in [*list(block.get("elements") or []), block.get("accessory") or {}]:
            if element.get("action_id") == action_id and (value is None or element.get("value") == value):
                return block.get("block_id", ""), element
    raise LookupError(f"no element with action_id {action_id!r}" + (f" and value {value!r}" if value else ""))


def _action(block_id: str, element: dict[str, Any]) -> dict[str, Any]:
    action = {
        "action_id": element["action_id"],
        "block_id": block_id,
        "type": element["type"],
        "action_ts": f"{time.time():.6f}",
    }
    for key in ("text", "value", "style"):
        if key in element:
            action[key] = element[key]
    return action


def block_actions_from_message(
    fake: SlackCore, user_id: str, message: Message, action_id: str, value: str | None = None
) -> dict[str, Any]:
    block_id, element = find_element(message.blocks, action_id, value)
    channel = fake.channels[message.channel]
    return {
        "type": "block_actions",
        "user": _user(fake, user_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
        },
        "trigger_id": fake.issue_trigger(user_id),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel.id, "name": channel.name if not channel.is_im else "directmessage"},
        "message": message.as_api(),
        "state": {"values": {}},
        "response_url": fake.new_response_url(user_id, message.channel, (message.channel, message.ts)),
        "actions": [_action(block_id, element)],
    }


def _view_payload(view: dict[str, Any], values: dict[str, Any] | None = None) -> dict[str, Any]:
    keys = (
        "id",
        "team_id",
        "type",
        "title",
        "submit",
        "close",
        "private_metadata",
        "callback_id",
        "external_id",
        "hash",
        "clear_on_close",
        "notify_on_close",
        "root_view_id",
        "previous_view_id",
        "app_id",
        "bot_id",
    )
    out = {k: view[k] for k in keys if k in view}
    out["state"] = {"values": values or {}}
    return out


def block_actions_from_view(
    fake: SlackCore, user_id: str, view: dict[str, Any], action_id: str, value: str | None = None
) -> dict[str, Any]:
    block_id, element = find_element(view.get("blocks", []), action_id, value)
    return {
        "type": "block_actions",
        "user": _user(fake, user_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": fake.issue_trigger(user_id),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": _view_payload(view),
        "actions": [_action(block_id, element)],
    }


def _state_value(element: dict[str, Any], value: Any) -> dict[str, Any]:
    kind = element["type"]
    if kind in ("plain_text_input", "number_input", "email_text_input", "url_text_input"):
        return {"type": kind, "value": value}
    if kind == "users_select":
        return {"type": kind, "selected_user": value}
    if kind == "multi_users_select":
        return {"type": kind, "selected_users": list(value or [])}
    if kind == "static_select":
        option = next((o for o in element.get("options", []) if o["value"] == value), None)
        return {"type": kind, "selected_option": option}
    raise ValueError(f"the fake cannot fill a {kind} element yet")


def view_submission(fake: SlackCore, user_id: str, view: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` maps each input block's block_id to what the person entered (None: left empty)."""
    state: dict[str, dict[str, Any]] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        entered = values.get(block["block_id"])
        state[block["block_id"]] = {element["action_id"]: _state_value(element, entered)}
    unknown = set(values) - set(state)
    if unknown:
        raise LookupError(f"the view has no input blocks {sorted(unknown)}")
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": _user(fake, user_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": fake.issue_trigger(user_id),
        "view": _view_payload(view, state),
        "enterprise": None,
        "is_enterprise_install": False,
    }


def app_home_opened(fake: SlackCore, user_id: str, *, event_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": fake.dm_channel(user_id).id,
        "tab": "home",
        "event_ts": f"{time.time():.6f}",
    }
    home = fake.homes.get(user_id)
    if home is not None:
        event["view"] = _view_payload(home)
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "event_context": uuid.uuid4().hex,
        "is_ext_shared_channel": False,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": "UBOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
    }
