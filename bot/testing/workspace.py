"""The fake workspace's data: people, channels, messages, views, with Slack's identifiers and ts rules."""

from __future__ import annotations

import copy
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

TEAM_ID, TEAM_DOMAIN = "T0FAKE", "fake-workspace"
APP_ID, BOT_ID, BOT_USER = "A0FAKEAPP", "B0FAKEBOT", "UBOT"


@dataclass
class Person:
    id: str
    name: str
    real_name: str
    email: str | None = None
    is_bot: bool = False
    deleted: bool = False

    def as_api(self) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "real_name": self.real_name,
            "display_name": self.name,
            "real_name_normalized": self.real_name,
            "display_name_normalized": self.name,
        }
        if self.email:
            profile["email"] = self.email
        if self.is_bot:
            profile["bot_id"] = BOT_ID if self.id == BOT_USER else "B0OTHER"
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "tz": "Europe/London",
            "tz_offset": 0,
            "profile": profile,
        }


@dataclass
class Channel:
    id: str
    name: str
    bot_is_member: bool
    members: set[str] = field(default_factory=set)
    is_im: bool = False


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    user: str = BOT_USER
    edits: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def snapshot(self) -> Message:
        """This message as it is now: a copy a person still has on screen after it changes (a stale tab)."""
        return copy.deepcopy(self)

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": self.text,
            "ts": self.ts,
            "blocks": self.blocks,
        }
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class Ephemeral:
    """Something only one person sees: an ephemeral message, a slash command's reply, a response_url post."""

    user: str
    channel: str
    text: str
    blocks: list[dict[str, Any]]
    source: str  # "chat.postEphemeral", "ack" or "response_url"
    replace_original: bool = False


def default_people() -> list[Person]:
    return [
        Person("UREQ", "riley", "Riley Requester", "riley@example.com"),
        Person("UALICE", "alice", "Alice Approver", "alice@example.com"),
        Person("UBOB", "bob", "Bob Approver", "bob@example.com"),
        Person("UCAROL", "carol", "Carol Colleague", "carol@example.com"),
        Person("UDAN", "dan", "Dan Developer", "dan@example.com"),
        Person("UGONE", "gone", "Gale Gone", "gone@example.com", deleted=True),
        Person("UOTHERBOT", "deploybot", "Deploy Bot", is_bot=True),
        Person(BOT_USER, "accessbot", "Access Bot", is_bot=True),
    ]


class Clock:
    """Message timestamps: seconds.microseconds, strictly increasing, as Slack's are."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self._last = 0.0

    def ts(self) -> str:
        value = max(time.time(), self._last + 0.000001)
        self._last = value
        return f"{value:.6f}"

    def id(self, prefix: str) -> str:
        return f"{prefix}{next(self._seq):08d}"
