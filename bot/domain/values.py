"""Value objects of the access-request domain: statuses, verdicts, approvers, decisions, policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self is not Status.PENDING


class Verdict(StrEnum):
    APPROVE = "APPROVE"
    DENY = "DENY"


@dataclass(frozen=True)
class Approver:
    user_id: str
    display_name: str = ""
    email: str | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.user_id


@dataclass(frozen=True)
class Decision:
    approver_id: str
    verdict: Verdict
    decided_at: datetime
    reason: str | None = None


MAX_DURATION_MINUTES = 90 * 24 * 60


@dataclass(frozen=True)
class Policy:
    """The configurable rules. ``approvers`` is how many must be named and must all approve."""

    approvers: int = 2
    max_resource_length: int = 200
    max_justification_length: int = 2000
    max_reason_length: int = 2000
    max_open_per_requester: int = 10
    max_duration_minutes: int = MAX_DURATION_MINUTES
