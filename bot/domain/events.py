"""Domain events: facts that happened, collected by the Unit of Work after a commit."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.values import Status, Verdict


@dataclass(frozen=True)
class Event:
    request_id: str


@dataclass(frozen=True)
class RequestCreated(Event):
    requester_id: str


@dataclass(frozen=True)
class DecisionRecorded(Event):
    approver_id: str
    verdict: Verdict
    reason: str | None


@dataclass(frozen=True)
class StatusChanged(Event):
    old: Status
    new: Status
    actor_id: str | None
