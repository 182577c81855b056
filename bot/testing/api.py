"""The Web API methods of the fake Slack, each answering as Slack does (shapes from Slack's samples)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.testing.blockkit import (
    MAX_MESSAGE_BLOCKS,
    MAX_VIEW_BLOCKS,
    BlockKitError,
    decode,
    validate_blocks,
    validate_metadata,
)
from bot.testing.workspace import APP_ID, BOT_ID, BOT_USER, TEAM_DOMAIN, TEAM_ID, Ephemeral, Message

if TYPE_CHECKING:
    from bot.testing.core import SlackCore

Result = dict[str, Any]
HANDLERS: dict[str, Callable[[SlackCore, dict[str, Any]], Result]] = {}
MAX_TEXT = 40_000
TRIGGER_TTL = 3.0


def method(
    name: str,
) -> Callable[[Callable[[SlackCore, dict[str, Any]], Result]], Callable[[SlackCore, dict[str, Any]], Result]]:
    def register(
        fn: Callable[[SlackCore, dict[str, Any]], Result],
    ) -> Callable[[SlackCore, dict[str, Any]], Result]:
        HANDLERS[name] = fn
        return fn

    return register


def error(code: str, *messages: str) -> Result:
    out: Result = {"ok": False, "error": code}
    if messages:
        out["response_metadata"] = {"messages": list(messages)}
    return out


@method("auth.test")
def auth_test(fake: SlackCore, p: dict[str, Any]) -> Result:
    return {
        "ok": True,
        "url": f"https://{TEAM_DOMAIN}.slack.com/",
        "team": "Fake Workspace",
        "user": "accessbot",
        "team_id": TEAM_ID,
        "user_id": BOT_USER,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
        "app_id": APP_ID,
    }


@method("users.info")
def users_info(fake: SlackCore, p: dict[str, Any]) -> Result:
    person = fake.people.get(str(p.get("user", "")))
    return {"ok": True, "user": person.as_api()} if person else error("user_not_found")


@method("users.lookupByEmail")
def users_lookup_by_email(fake: SlackCore, p: dict[str, Any]) -> Result:
    email = str(p.get("email", "")).lower()
    person = next((u for u in fake.people.values() if (u.email or "").lower() == email and email), None)
    return {"ok": True, "user": person.as_api()} if person else error("users_not_found")


@method("conversations.open")
def conversations_open(fake: SlackCore, p: dict[str, Any]) -> Result:
    users = [u for u in str(p.get("users", "")).split(",") if u]
    if p.get("channel"):
        channel = fake.channels.get(str(p["channel"]))
        return {"ok": True, "channel": {"id": channel.id}} if channel else error("channel_not_found")
    if len(users) != 1:
        return error("not_enough_users" if not users else "too_many_users")
    person = fake.people.get(users[0])
    if person is None:
        return error("user_not_found")
    if person.is_bot:
        return error("cannot_dm_bot")
    if person.deleted:
        return error("user_disabled")
    channel = fake.dm_channel(person.id)
    return {
        "ok": True,
        "channel": {
            "id": channel.id,
            "created": int(time.time()),
            "is_im": True,
            "is_org_shared": False,
            "user": person.id,
            "is_archived": False,
        },
    }


def _message_problems(p: dict[str, Any]) -> tuple[Result | None, list[dict[str, Any]], dict[str, Any] | None]:
    text = str(p.get("text") or "")
    has_blocks = p.get("blocks") not in (None, "", "[]", [])
    if not text and not has_blocks:
        return error("no_text"), [], None
    if len(text) > MAX_TEXT:
        return error("msg_too_long"), [], None
    try:
        blocks = validate_blocks(p["blocks"], limit=MAX_MESSAGE_BLOCKS) if has_blocks else []
    except BlockKitError as exc:
        return error("invalid_blocks", *exc.messages), [], None
    metadata = None
    if p.get("metadata") not in (None, ""):
        try:
            metadata = validate_metadata(p["metadata"])
        except BlockKitError as exc:
            return error("invalid_metadata_format", *exc.messages), [], None
    return None, blocks, metadata


def _channel_for_post(fake: SlackCore, channel_id: str) -> tuple[Result | None, str]:
    if channel_id in fake.people:  # posting to a user id posts in the app's DM with them
        person = fake.people[channel_id]
        if person.is_bot:
            return error("cannot_dm_bot"), ""
        if person.deleted:
            return error("user_disabled"), ""
        channel_id = fake.dm_channel(channel_id).id
    return _readable_channel(fake, {"channel": channel_id})


@method("chat.postMessage")
def chat_post_message(fake: SlackCore, p: dict[str, Any]) -> Result:
    problem, channel_id = _channel_for_post(fake, str(p.get("channel", "")))
    if problem:
        return problem
    problem, blocks, metadata = _message_problems(p)
    if problem:
        return problem
    thread_ts = str(p["thread_ts"]) if p.get("thread_ts") else None
    if thread_ts and (channel_id, thread_ts) not in fake.messages:
        return error("thread_not_found")
    message = Message(channel_id, fake.clock.ts(), str(p.get("text") or ""), blocks, metadata, thread_ts)
    fake.messages[(channel_id, message.ts)] = message
    for listener in fake.on_post:
        listener(message)
    return {"ok": True, "channel": channel_id, "ts": message.ts, "message": message.as_api()}


@method("chat.update")
def chat_update(fake: SlackCore, p: dict[str, Any]) -> Result:
    channel_id, ts = str(p.get("channel", "")), str(p.get("ts", ""))
    if channel_id not in fake.channels:
        return error("channel_not_found")
    message = fake.messages.get((channel_id, ts))
    if message is None:
        return error("message_not_found")
    problem, blocks, metadata = _message_problems(p)
    if problem:
        return problem
    message.history.append({"text": message.text, "blocks": message.blocks, "metadata": message.metadata})
    message.text, message.blocks, message.edits = str(p.get("text") or ""), blocks, message.edits + 1
    if metadata is not None:
        message.metadata = metadata
    for listener in fake.on_update:
        listener(message)
    shown = {k: v for k, v in message.as_api().items() if k != "ts"}  # Slack's update answer has no message.ts
    return {"ok": True, "channel": channel_id, "ts": ts, "text": message.text, "message": shown}


def _readable_channel(fake: SlackCore, p: dict[str, Any]) -> tuple[Result | None, str]:
    channel_id = str(p.get("channel", ""))
    channel = fake.channels.get(channel_id)
    if channel is None:
        return error("channel_not_found"), ""
    if not channel.bot_is_member:
        return error("not_in_channel"), ""
    return None, channel_id


def _page(fake: SlackCore, found: list[Message], p: dict[str, Any]) -> Result:
    include_metadata = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
    oldest, latest = float(p.get("oldest") or 0), float(p.get("latest") or "inf")
    found = [m for m in found if oldest <= float(m.ts) <= latest]
    limit = max(1, min(int(p.get("limit") or 100), 999))
    start = int(p.get("cursor") or 0)
    page = found[start : start + limit]
    messages = []
    for m in page:
        shown = m.as_api()
        if not include_metadata:
            shown.pop("metadata", None)
        messages.append(shown)
    more = start + limit < len(found)
    return {
        "ok": True,
        "messages": messages,
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }


@method("conversations.history")
def conversations_history(fake: SlackCore, p: dict[str, Any]) -> Result:
    problem, channel_id = _readable_channel(fake, p)
    if problem:
        return problem
    top = [m for (c, _), m in fake.messages.items() if c == channel_id and m.thread_ts is None]
    return _page(fake, sorted(top, key=lambda m: float(m.ts), reverse=True), p)


@method("conversations.replies")
def conversations_replies(fake: SlackCore, p: dict[str, Any]) -> Result:
    problem, channel_id = _readable_channel(fake, p)
    if problem:
        return problem
    parent = fake.messages.get((channel_id, str(p.get("ts", ""))))
    if parent is None:
        return error("thread_not_found")
    thread = [m for (c, _), m in fake.messages.items() if c == channel_id and m.thread_ts == parent.ts]
    return _page(fake, [parent, *sorted(thread, key=lambda m: float(m.ts))], p)


@method("chat.delete")
def chat_delete(fake: SlackCore, p: dict[str, Any]) -> Result:
    key = (str(p.get("channel", "")), str(p.get("ts", "")))
    if key not in fake.messages:
        return error("message_not_found")
    fake.deleted.append(fake.messages.pop(key))
    return {"ok": True, "channel": key[0], "ts": key[1]}


@method("chat.postEphemeral")
def chat_post_ephemeral(fake: SlackCore, p: dict[str, Any]) -> Result:
    problem, channel_id = _channel_for_post(fake, str(p.get("channel", "")))
    if problem:
        return problem
    user = str(p.get("user", ""))
    if user not in fake.people:
        return error("user_not_found")
    if user not in fake.channels[channel_id].members:
        return error("user_not_in_channel")
    problem, blocks, _ = _message_problems(p)
    if problem:
        return problem
    fake.ephemerals.append(Ephemeral(user, channel_id, str(p.get("text") or ""), blocks, "chat.postEphemeral"))
    return {"ok": True, "message_ts": fake.clock.ts()}


def _check_view(view: Any, *, kind: str | None = None) -> tuple[Result | None, dict[str, Any]]:
    try:
        view = decode(view)
    except BlockKitError as exc:
        return error("invalid_arguments", *exc.messages), {}
    if not isinstance(view, dict):
        return error("invalid_arguments", "[ERROR] missing required field: view"), {}
    problems = []
    if view.get("type") not in ("modal", "home") or (kind and view.get("type") != kind):
        problems.append("[ERROR] must be a valid enum value [json-pointer:/view/type]")
    if view.get("type") == "modal":
        title = view.get("title") or {}
        if title.get("type") != "plain_text" or not title.get("text"):
            problems.append("[ERROR] missing required field: title [json-pointer:/view/title]")
        elif len(title["text"]) > 24:
            problems.append("[ERROR] must be less than 25 characters [json-pointer:/view/title/text]")
        for button in ("submit", "close"):
            if view.get(button) and len(view[button].get("text", "")) > 24:
                problems.append(f"[ERROR] must be less than 25 characters [json-pointer:/view/{button}/text]")
        if any(b.get("type") == "input" for b in view.get("blocks") or []) and not view.get("submit"):
            problems.append("[ERROR] submit is required when an input block is present [json-pointer:/view]")
    if len(str(view.get("private_metadata") or "")) > 3000:
        problems.append("[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]")
    if len(str(view.get("callback_id") or "")) > 255:
        problems.append("[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]")
    try:
        validate_blocks(view.get("blocks", []), limit=MAX_VIEW_BLOCKS, pointer="/view/blocks")
    except BlockKitError as exc:
        problems += exc.messages
    return (error("invalid_arguments", *problems), view) if problems else (None, view)


def _stored_view(fake: SlackCore, view: dict[str, Any], user: str, view_id: str | None = None) -> dict[str, Any]:
    view_id = view_id or fake.clock.id("V")
    stored = {
        **view,
        "id": view_id,
        "team_id": TEAM_ID,
        "app_id": APP_ID,
        "bot_id": BOT_ID,
        "user": user,
        "hash": f"{time.time():.6f}",
        "state": {"values": {}},
        "root_view_id": view_id,
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
    }
    fake.views[view_id] = stored
    return stored


def _public(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != "user"}


def _take_trigger(fake: SlackCore, trigger_id: str) -> tuple[Result | None, str]:
    issued = fake.triggers.get(trigger_id)
    if issued is None:
        return error("invalid_trigger_id"), ""
    user, at, used = issued
    if used:
        return error("exchanged_trigger_id"), ""
    if time.monotonic() - at > TRIGGER_TTL:
        return error("expired_trigger_id"), ""
    fake.triggers[trigger_id] = (user, at, True)
    return None, user


@method("views.open")
def views_open(fake: SlackCore, p: dict[str, Any]) -> Result:
    problem, view = _check_view(p.get("view"), kind="modal")
    if problem:
        return problem
    problem, user = _take_trigger(fake, str(p.get("trigger_id", "")))
    if problem:
        return problem
    return {"ok": True, "view": _public(_stored_view(fake, view, user))}


@method("views.push")
def views_push(fake: SlackCore, p: dict[str, Any]) -> Result:
    return views_open(fake, p)


@method("views.update")
def views_update(fake: SlackCore, p: dict[str, Any]) -> Result:
    view_id = str(p.get("view_id") or "")
    if not view_id and p.get("external_id"):
        view_id = next((v["id"] for v in fake.views.values() if v.get("external_id") == p["external_id"]), "")
    existing = fake.views.get(view_id)
    if existing is None:
        return error("not_found")
    if p.get("hash") and p["hash"] != existing["hash"]:
        return error("hash_conflict")
    problem, view = _check_view(p.get("view"))
    if problem:
        return problem
    return {"ok": True, "view": _public(_stored_view(fake, view, existing["user"], view_id))}


@method("views.publish")
def views_publish(fake: SlackCore, p: dict[str, Any]) -> Result:
    user = str(p.get("user_id", ""))
    if user not in fake.people:
        return error("user_not_found")
    problem, view = _check_view(p.get("view"), kind="home")
    if problem:
        return problem
    previous = fake.homes.get(user)
    stored = _stored_view(fake, view, user, previous["id"] if previous else None)
    fake.homes[user] = stored
    return {"ok": True, "view": _public(stored)}


@method("apps.connections.open")
def apps_connections_open(fake: SlackCore, p: dict[str, Any]) -> Result:
    return {"ok": True, "url": fake.socket.new_url()}
