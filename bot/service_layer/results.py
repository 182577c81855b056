"""Plain, immutable values the services return: what the Slack layer renders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.model import AccessRequest, DecisionOutcome
from bot.domain.values import Approver, Decision, Status, Verdict


@dataclass(frozen=True)
class RequestView:
    id: str
    requester_id: str
    requester_name: str
    resource: str
    justification: str
    duration_minutes: int | None
    status: Status
    required_approvals: int
    approvers: tuple[Approver, ...]
    decisions: tuple[Decision, ...]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, request: AccessRequest) -> RequestView:
        return cls(
            id=request.id,
            requester_id=request.requester_id,
            requester_name=request.requester_name,
            resource=request.resource,
            justification=request.justification,
            duration_minutes=request.duration_minutes,
            status=request.status,
            required_approvals=request.required_approvals,
            approvers=request.approvers,
            decisions=tuple(request.decisions),
            created_at=request.created_at,
            updated_at=request.updated_at,
        )

    def decision_of(self, user_id: str) -> Decision | None:
        return next((d for d in self.decisions if d.approver_id == user_id), None)

    def is_approver(self, user_id: str) -> bool:
        return any(a.user_id == user_id for a in self.approvers)

    @property
    def approvals(self) -> int:
        return sum(1 for d in self.decisions if d.verdict is Verdict.APPROVE)

    @property
    def denial(self) -> Decision | None:
        return next((d for d in self.decisions if d.verdict is Verdict.DENY), None)


@dataclass(frozen=True)
class DecisionResult:
    request: RequestView
    outcome: DecisionOutcome
    became: Status | None
    message: str


@dataclass(frozen=True)
class Page:
    items: tuple[RequestView, ...]
    total: int
    page: int
    per_page: int
    at_least: bool = False  # ``total`` is a lower bound: there are that many or more

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor_id: str | None
    action: str
    details: dict[str, Any]
