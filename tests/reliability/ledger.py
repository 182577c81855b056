"""Counting, in the fake Slack, every message posted about each request: nothing missing, nothing twice."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.service_layer.results import RequestView
from bot.testing import FakeSlack
from bot.testing.workspace import Message


def _first_metadata(message: Message) -> dict[str, Any]:
    """The metadata a message was posted with (updates replace it)."""
    original = message.history[0]["metadata"] if message.history else message.metadata
    return original or {}


def expected_notices(view: RequestView) -> set[str]:
    rid = view.id
    owed = {f"{rid}:post:dm:{a.user_id}" for a in view.approvers} | {f"{rid}:post:channel"}
    owed |= {f"{rid}:post:reply:{d.approver_id}" for d in view.decisions}
    if view.status.value in ("APPROVED", "DENIED", "EXPIRED"):
        owed.add(f"{rid}:post:outcome")
    return owed


@dataclass
class Ledger:
    posted: Counter[str] = field(default_factory=Counter)
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, slack: FakeSlack, views: list[RequestView]) -> Ledger:
        ledger = cls()
        for message in slack.messages.values():
            key = (_first_metadata(message).get("event_payload") or {}).get("notice")
            if key:
                ledger.posted[key] += 1
        ledger.duplicates = sorted(k for k, n in ledger.posted.items() if n > 1)
        for view in views:
            ledger.missing += sorted(k for k in expected_notices(view) if ledger.posted[k] == 0)
            for message in slack.messages.values():
                payload = (message.metadata or {}).get("event_payload") or {}
                if (
                    payload.get("request_id") == view.id
                    and message.thread_ts is None
                    and payload.get("status") != view.status.value
                ):
                    ledger.stale.append(f"{view.id} {message.channel} shows {payload.get('status')}")
        return ledger

    def assert_exactly_once(self) -> None:
        assert self.duplicates == [], f"posted more than once: {self.duplicates[:10]}"
        assert self.missing == [], f"never posted: {self.missing[:10]}"
        assert self.stale == [], f"messages not converged: {self.stale[:10]}"
