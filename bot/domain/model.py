"""The access request aggregate. Pure Python: no Slack, no SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.domain import errors, events
from bot.domain.values import Approver, Decision, Policy, Status, Verdict


class DecisionOutcome(StrEnum):
    RECORDED = "RECORDED"
    ALREADY_RECORDED = "ALREADY_RECORDED"


@dataclass
class AccessRequest:
    id: str
    requester_id: str
    resource: str
    justification: str
    approvers: tuple[Approver, ...]
    required_approvals: int
    created_at: datetime
    updated_at: datetime
    requester_name: str = ""
    duration_minutes: int | None = None
    status: Status = Status.PENDING
    decisions: list[Decision] = field(default_factory=list)
    events: list[events.Event] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        *,
        id: str,
        requester_id: str,
        resource: str,
        justification: str,
        approvers: Sequence[Approver],
        now: datetime,
        policy: Policy,
        requester_name: str = "",
        duration_minutes: int | None = None,
    ) -> AccessRequest:
        resource = resource.strip()
        justification = justification.strip()
        _check_text(resource, "resource", "The resource", 1, policy.max_resource_length)
        _check_text(justification, "justification", "The justification", 1, policy.max_justification_length)
        _check_approvers(requester_id, approvers, policy)
        if duration_minutes is not None and not 1 <= duration_minutes <= policy.max_duration_minutes:
            days = policy.max_duration_minutes // (24 * 60)
            raise errors.InvalidRequest(f"The duration must be between 1 minute and {days} days.", field="duration")
        request = cls(
            id=id,
            requester_id=requester_id,
            requester_name=requester_name,
            resource=resource,
            justification=justification,
            approvers=tuple(approvers),
            required_approvals=len(approvers),
            duration_minutes=duration_minutes,
            created_at=now,
            updated_at=now,
        )
        request.events.append(events.RequestCreated(request_id=id, requester_id=requester_id))
        return request

    # -- queries -------------------------------------------------------------------------------------------

    def approver(self, user_id: str) -> Approver | None:
        return next((a for a in self.approvers if a.user_id == user_id), None)

    def decision_of(self, user_id: str) -> Decision | None:
        return next((d for d in self.decisions if d.approver_id == user_id), None)

    @property
    def approvals(self) -> int:
        return sum(1 for d in self.decisions if d.verdict is Verdict.APPROVE)

    # -- commands ------------------------------------------------------------------------------------------

    def decide(
        self, *, approver_id: str, verdict: Verdict, now: datetime, reason: str | None = None
    ) -> DecisionOutcome:
        if self.check_decision(approver_id=approver_id, verdict=verdict) is DecisionOutcome.ALREADY_RECORDED:
            return DecisionOutcome.ALREADY_RECORDED
        reason = (reason or "").strip() or None
        self.decisions.append(Decision(approver_id, verdict, now, reason))
        self.events.append(events.DecisionRecorded(self.id, approver_id, verdict, reason))
        if verdict is Verdict.DENY:
            self._move_to(Status.DENIED, approver_id, now)
        elif self.approvals >= self.required_approvals:
            self._move_to(Status.APPROVED, approver_id, now)
        else:
            self.updated_at = now
        return DecisionOutcome.RECORDED

    def check_decision(self, *, approver_id: str, verdict: Verdict) -> DecisionOutcome | None:
        """Refuse as ``decide`` would, changing nothing; ALREADY_RECORDED for a repeat, else None."""
        if self.approver(approver_id) is None:
            raise errors.NotAnApprover(
                f"Only the approvers named on request {self.id} can decide it, and you are not one of them."
            )
        previous = self.decision_of(approver_id)
        if previous is not None:
            if previous.verdict is verdict:
                return DecisionOutcome.ALREADY_RECORDED
            raise errors.DecisionConflict(
                f"You already chose to {previous.verdict.lower()} request {self.id}; a decision cannot be changed."
            )
        self._require_pending("decided")
        return None

    def cancel(self, *, by: str, now: datetime) -> None:
        if by != self.requester_id:
            raise errors.NotRequester(f"Only the person who made request {self.id} can cancel it.")
        self._require_pending("cancelled")
        self._move_to(Status.CANCELLED, by, now)

    def expire(self, *, now: datetime) -> None:
        self._require_pending("expired")
        self._move_to(Status.EXPIRED, None, now)

    def _require_pending(self, verb: str) -> None:
        if self.status.is_terminal:
            raise errors.RequestClosed(
                f"Request {self.id} is already {self.status.lower()}; it can no longer be {verb}."
            )

    def _move_to(self, new: Status, actor_id: str | None, now: datetime) -> None:
        old, self.status, self.updated_at = self.status, new, now
        self.events.append(events.StatusChanged(self.id, old, new, actor_id))


def _check_text(value: str, name: str, label: str, low: int, high: int) -> None:
    if len(value) < low:
        raise errors.InvalidRequest(f"{label} is missing: say what you need access to and why.", field=name)
    if len(value) > high:
        raise errors.InvalidRequest(f"{label} is {len(value):,} characters long; the limit is {high:,}.", field=name)


def _check_approvers(requester_id: str, approvers: Sequence[Approver], policy: Policy) -> None:
    ids = [a.user_id for a in approvers]
    if requester_id in ids:
        raise errors.InvalidRequest("You cannot approve your own request: name two other people.", field="approvers")
    if len(set(ids)) != len(ids):
        raise errors.InvalidRequest(
            f"The approvers must be {policy.approvers} different people; the same person is named twice.",
            field="approvers",
        )
    if len(ids) != policy.approvers:
        raise errors.InvalidRequest(
            f"Name exactly {policy.approvers} approvers; you named {len(ids)}.", field="approvers"
        )
