from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import errors, events
from bot.domain.model import AccessRequest, DecisionOutcome
from bot.domain.values import Approver, Policy, Status, Verdict

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALICE, BOB, CAROL, REQ = Approver("UALICE", "Alice"), Approver("UBOB", "Bob"), Approver("UCAROL"), "UREQ"


def make(**overrides: object) -> AccessRequest:
    args: dict[str, object] = dict(
        id="AR-1",
        requester_id=REQ,
        resource="prod-db",
        justification="incident 42",
        approvers=[ALICE, BOB],
        now=T0,
        policy=Policy(),
    )
    args.update(overrides)
    return AccessRequest.create(**args)  # type: ignore[arg-type]


def test_new_request_is_pending_and_announces_itself() -> None:
    r = make()
    assert r.status is Status.PENDING
    assert r.required_approvals == 2
    assert r.events == [events.RequestCreated("AR-1", REQ)]


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"resource": "   "}, "resource", "The resource is missing"),
        ({"resource": "x" * 201}, "resource", "201 characters long; the limit is 200"),
        ({"justification": ""}, "justification", "The justification is missing"),
        ({"justification": "j" * 2001}, "justification", "2,001 characters long; the limit is 2,000"),
        ({"approvers": [ALICE]}, "approvers", "Name exactly 2 approvers; you named 1"),
        ({"approvers": [ALICE, BOB, CAROL]}, "approvers", "Name exactly 2 approvers; you named 3"),
        ({"approvers": [ALICE, ALICE]}, "approvers", "the same person is named twice"),
        ({"approvers": [ALICE, Approver(REQ)]}, "approvers", "cannot approve your own request"),
        ({"duration_minutes": 0}, "duration", "between 1 minute and 90 days"),
        ({"duration_minutes": 90 * 24 * 60 + 1}, "duration", "between 1 minute and 90 days"),
    ],
)
def test_invalid_requests_are_refused_with_a_message_for_a_person(
    overrides: dict[str, object], field: str, says: str
) -> None:
    with pytest.raises(errors.InvalidRequest) as refused:
        make(**overrides)
    assert refused.value.field == field
    assert says in refused.value.message


def test_limits_at_the_edge_are_accepted() -> None:
    r = make(resource="r" * 200, justification="j" * 2000, duration_minutes=90 * 24 * 60)
    assert len(r.resource) == 200 and len(r.justification) == 2000


def test_limits_and_approver_count_are_settings() -> None:
    policy = Policy(approvers=3, max_resource_length=5)
    r = make(approvers=[ALICE, BOB, CAROL], resource="db-01", policy=policy)
    assert r.required_approvals == 3
    with pytest.raises(errors.InvalidRequest, match="limit is 5"):
        make(approvers=[ALICE, BOB, CAROL], resource="db-001", policy=policy)


def test_first_approval_keeps_pending_second_approves() -> None:
    r = make()
    assert r.decide(approver_id=ALICE.user_id, verdict=Verdict.APPROVE, now=T0) is DecisionOutcome.RECORDED
    assert r.status is Status.PENDING
    r.decide(approver_id=BOB.user_id, verdict=Verdict.APPROVE, now=T0 + timedelta(minutes=1))
    assert r.status is Status.APPROVED
    assert r.updated_at == T0 + timedelta(minutes=1)
    assert r.events[-1] == events.StatusChanged("AR-1", Status.PENDING, Status.APPROVED, BOB.user_id)


def test_one_denial_denies_with_its_reason() -> None:
    r = make()
    r.decide(approver_id=ALICE.user_id, verdict=Verdict.APPROVE, now=T0)
    r.decide(approver_id=BOB.user_id, verdict=Verdict.DENY, reason="  not on call ", now=T0)
    assert r.status is Status.DENIED
    assert r.decision_of(BOB.user_id).reason == "not on call"  # type: ignore[union-attr]


def test_only_named_approvers_decide() -> None:
    r = make()
    for stranger in (CAROL.user_id, REQ):
        with pytest.raises(errors.NotAnApprover, match="Only the approvers named on request AR-1"):
            r.decide(approver_id=stranger, verdict=Verdict.APPROVE, now=T0)
    assert r.decisions == [] and r.status is Status.PENDING


def test_repeating_a_decision_is_a_harmless_no_op() -> None:
    r = make()
    r.decide(approver_id=ALICE.user_id, verdict=Verdict.APPROVE, now=T0)
    n_events = len(r.events)
    again = r.decide(approver_id=ALICE.user_id, verdict=Verdict.APPROVE, now=T0)
    assert again is DecisionOutcome.ALREADY_RECORDED
    assert len(r.decisions) == 1 and len(r.events) == n_events


def test_changing_ones_mind_is_refused() -> None:
    r = make()
    r.decide(approver_id=ALICE.user_id, verdict=Verdict.APPROVE, now=T0)
    with pytest.raises(errors.DecisionConflict, match="already chose to approve"):
        r.decide(approver_id=ALICE.user_id, verdict=Verdict.DENY, now=T0)
    assert r.status is Status.PENDING


def test_cancel_only_by_requester_while_pending() -> None:
    r = make()
    with pytest.raises(errors.NotRequester):
        r.cancel(by=ALICE.user_id, now=T0)
    r.cancel(by=REQ, now=T0)
    assert r.status is Status.CANCELLED
    with pytest.raises(errors.RequestClosed, match="already cancelled"):
        r.cancel(by=REQ, now=T0)


def test_expire_only_from_pending() -> None:
    r = make()
    r.expire(now=T0)
    assert r.status is Status.EXPIRED
    with pytest.raises(errors.RequestClosed):
        r.expire(now=T0)


@pytest.mark.parametrize("end", ["approve", "deny", "cancel", "expire"])
def test_nothing_changes_a_terminal_request(end: str) -> None:
    r = make()
    if end == "approve":
        r.decide(approver_id=ALICE.user_id, verdict=Verdict.APPROVE, now=T0)
        r.decide(approver_id=BOB.user_id, verdict=Verdict.APPROVE, now=T0)
    elif end == "deny":
        r.decide(approver_id=ALICE.user_id, verdict=Verdict.DENY, now=T0)
    elif end == "cancel":
        r.cancel(by=REQ, now=T0)
    else:
        r.expire(now=T0)
    final = r.status
    assert final.is_terminal
    attempts = [
        lambda: r.cancel(by=REQ, now=T0),
        lambda: r.expire(now=T0),
    ]
    if end != "approve":  # Bob has not decided yet in these cases
        attempts.append(lambda: r.decide(approver_id=BOB.user_id, verdict=Verdict.APPROVE, now=T0))
    for attempt in attempts:
        with pytest.raises(errors.RequestClosed):
            attempt()
    assert r.status is final
