"""The service suite, run on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.adapters.db import Database
from bot.adapters.tables import AuditRow, DecisionRow
from bot.domain import errors
from bot.domain.model import DecisionOutcome
from bot.domain.values import Approver, Policy, Status
from bot.service_layer import delivery, services

ALICE, BOB, CAROL = (
    Approver("UALICE", "Alice", "alice@example.com"),
    Approver("UBOB", "Bob"),
    Approver("UCAROL"),
)


async def new(db: Database, requester: str = "UREQ", **kw: object) -> services.RequestView:
    args: dict[str, object] = dict(resource="prod-db", justification="incident 42", approvers=[ALICE, BOB])
    args.update(kw)
    return await services.create_request(uow=db.uow(), requester_id=requester, **args)  # type: ignore[arg-type]


async def audit(db: Database, request_id: str) -> list[str]:
    async with db.uow() as uow:
        return [a.action for a in await uow.audit.for_request(request_id)]


async def test_create_and_get_round_trip(db: Database) -> None:
    created = await new(db, requester_name="Req", duration_minutes=120)
    got = await services.get(uow=db.uow(), request_id=created.id)
    assert got == created
    assert got.status is Status.PENDING and got.approvers == (ALICE, BOB)
    assert got.duration_minutes == 120 and got.created_at.tzinfo is not None
    assert created.id.startswith("AR-") and len(created.id) == 11


async def test_invalid_request_stores_nothing(db: Database) -> None:
    with pytest.raises(errors.InvalidRequest):
        await new(db, approvers=[ALICE])
    assert (await services.list_requests(uow=db.uow())).total == 0


async def test_two_approvals_approve_with_audit(db: Database) -> None:
    r = await new(db)
    first = await services.approve(uow=db.uow(), request_id=r.id, approver_id=ALICE.user_id)
    assert first.became is None and first.request.status is Status.PENDING
    second = await services.approve(uow=db.uow(), request_id=r.id, approver_id=BOB.user_id)
    assert second.became is Status.APPROVED
    assert "now approved" in second.message
    assert (await services.get(uow=db.uow(), request_id=r.id)).status is Status.APPROVED
    assert await audit(db, r.id) == [
        "request.created",
        "decision.approve",
        "decision.approve",
        "status.approved",
    ]


async def test_deny_with_reason(db: Database) -> None:
    r = await new(db)
    result = await services.deny(uow=db.uow(), request_id=r.id, approver_id=BOB.user_id, reason="not on call")
    assert result.became is Status.DENIED
    stored = await services.get(uow=db.uow(), request_id=r.id)
    assert stored.denial is not None and stored.denial.reason == "not on call"


async def test_repeat_is_no_op_and_change_of_mind_refused_and_audited(db: Database) -> None:
    r = await new(db)
    await services.approve(uow=db.uow(), request_id=r.id, approver_id=ALICE.user_id)
    again = await services.approve(uow=db.uow(), request_id=r.id, approver_id=ALICE.user_id)
    assert again.outcome is DecisionOutcome.ALREADY_RECORDED and "nothing changed" in again.message
    with pytest.raises(errors.DecisionConflict):
        await services.deny(uow=db.uow(), request_id=r.id, approver_id=ALICE.user_id)
    with pytest.raises(errors.NotAnApprover):
        await services.approve(uow=db.uow(), request_id=r.id, approver_id=CAROL.user_id)
    assert (await services.get(uow=db.uow(), request_id=r.id)).status is Status.PENDING
    assert await audit(db, r.id) == [
        "request.created",
        "decision.approve",
        "refused.decision.deny",
        "refused.decision.approve",
    ]


async def test_unknown_request(db: Database) -> None:
    with pytest.raises(errors.RequestNotFound, match="There is no request AR-NOPE"):
        await services.approve(uow=db.uow(), request_id="AR-NOPE", approver_id=ALICE.user_id)
    with pytest.raises(errors.RequestNotFound):
        await services.get(uow=db.uow(), request_id="AR-NOPE")


async def test_cancel_and_expire(db: Database) -> None:
    r1, r2 = await new(db), await new(db)
    with pytest.raises(errors.NotRequester):
        await services.cancel(uow=db.uow(), request_id=r1.id, user_id=ALICE.user_id)
    assert (await services.cancel(uow=db.uow(), request_id=r1.id, user_id="UREQ")).status is Status.CANCELLED
    assert (await services.expire(uow=db.uow(), request_id=r2.id)).status is Status.EXPIRED
    for rid in (r1.id, r2.id):
        with pytest.raises(errors.RequestClosed):
            await services.approve(uow=db.uow(), request_id=rid, approver_id=ALICE.user_id)


async def test_list_filters_and_pages(db: Database) -> None:
    mine = [await new(db, "UREQ") for _ in range(3)]
    other = await new(db, "UOTHER", approvers=[ALICE, CAROL])
    await services.deny(uow=db.uow(), request_id=mine[0].id, approver_id=ALICE.user_id)
    page = await services.list_requests(uow=db.uow(), requester_id="UREQ", per_page=2)
    assert page.total == 3 and page.pages == 2 and len(page.items) == 2
    assert page.items[0].id == mine[2].id  # newest first
    page2 = await services.list_requests(uow=db.uow(), requester_id="UREQ", per_page=2, page=2)
    assert [r.id for r in page2.items] == [mine[0].id]
    denied = await services.list_requests(uow=db.uow(), status=Status.DENIED)
    assert [r.id for r in denied.items] == [mine[0].id]
    carols = await services.list_requests(uow=db.uow(), approver_id=CAROL.user_id)
    assert [r.id for r in carols.items] == [other.id]
    # Alice decided mine[0]; she still owes mine[1], mine[2] and other.
    todo = await services.pending_for_approver(uow=db.uow(), approver_id=ALICE.user_id)
    assert {r.id for r in todo} == {mine[1].id, mine[2].id, other.id}


async def test_open_request_limit(db: Database) -> None:
    policy = Policy(max_open_per_requester=2)
    await new(db, policy=policy)
    r = await new(db, policy=policy)
    with pytest.raises(errors.TooManyOpenRequests, match="already have 2 open requests"):
        await new(db, policy=policy)
    # Held back whole (on PostgreSQL by the statement that would have stored it): no request, no notice for it.
    stored = {v.id for v in (await services.list_requests(uow=db.uow(), requester_id="UREQ")).items}
    assert len(stored) == 2
    owed = await delivery.outbox_entries(uow=db.uow(), statuses=("pending",))
    assert {e.request_id for e in owed} == stored
    await services.cancel(uow=db.uow(), request_id=r.id, user_id="UREQ")
    await new(db, policy=policy)


async def test_exception_inside_a_unit_of_work_leaves_nothing(db: Database) -> None:
    uow = db.uow()
    with pytest.raises(RuntimeError):
        async with uow:
            await services.create_request(
                uow=uow, requester_id="UREQ", resource="db", justification="j", approvers=[ALICE, BOB]
            )
            raise RuntimeError("boom")
    assert (await services.list_requests(uow=db.uow())).total == 0


async def test_second_services_failure_undoes_the_first(db: Database) -> None:
    r = await new(db)
    uow = db.uow()
    with pytest.raises(errors.NotAnApprover):
        async with uow:
            await services.approve(uow=uow, request_id=r.id, approver_id=ALICE.user_id)
            await services.create_request(
                uow=uow, requester_id="UREQ2", resource="db", justification="j", approvers=[ALICE, BOB]
            )
            await services.approve(uow=uow, request_id=r.id, approver_id=CAROL.user_id)  # refused
            await uow.commit()
    assert (await services.get(uow=db.uow(), request_id=r.id)).decisions == ()
    assert (await services.list_requests(uow=db.uow())).total == 1
    async with db.uow() as check:
        session = check.session  # type: ignore[attr-defined]
        assert (await session.execute(select(DecisionRow))).all() == []


async def test_services_in_one_unit_commit_together(db: Database) -> None:
    r = await new(db)
    uow = db.uow()
    async with uow:
        await services.approve(uow=uow, request_id=r.id, approver_id=ALICE.user_id)
        await services.approve(uow=uow, request_id=r.id, approver_id=BOB.user_id)
        await uow.commit()
    assert (await services.get(uow=db.uow(), request_id=r.id)).status is Status.APPROVED
    assert [type(e).__name__ for e in uow.committed_events] == [
        "DecisionRecorded",
        "DecisionRecorded",
        "StatusChanged",
    ]


async def test_expire_stale(db: Database) -> None:
    from datetime import timedelta

    r = await new(db)
    assert await services.expire_stale(uow=db.uow(), older_than=timedelta(days=1)) == []
    expired = await services.expire_stale(uow=db.uow(), older_than=timedelta(seconds=-1))
    assert [e.id for e in expired] == [r.id] and expired[0].status is Status.EXPIRED


def test_audit_log_is_append_only_in_code() -> None:
    import pathlib

    source = "\n".join(p.read_text() for p in pathlib.Path("bot").rglob("*.py"))
    assert "AuditRow" in source
    for forbidden in (
        "delete(AuditRow",
        "update(AuditRow",
        "AuditRow.__table__.delete",
        "AuditRow.__table__.update",
    ):
        assert forbidden not in source
    assert AuditRow.__tablename__ == "audit_log"
