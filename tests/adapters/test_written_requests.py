"""On PostgreSQL a process keeps the pending requests it wrote, with their rows' version, and decides from them
without reading the row; the decision is written only if the row is still that version. Another process (here: a
kept copy put back as it was before another decision) makes the write miss: nothing is written, the decision is
read and made again."""

from __future__ import annotations

import pytest

from bot.adapters import repository
from bot.adapters.db import Database
from bot.domain import errors
from bot.domain.values import Approver, Status
from bot.service_layer import services

APPROVERS = [Approver("UA", "Alice A"), Approver("UB", "Bob B", "bob@example.com")]


def _reads(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.lstrip().startswith("SELECT")]


async def _create(db: Database) -> str:
    view = await services.create_request(
        uow=db.uow(), requester_id="UREQ", resource="db-prod", justification="why", approvers=APPROVERS
    )
    return view.id


async def test_decisions_after_the_process_wrote_the_request_read_nothing_on_postgresql(
    db: Database, sent: list[str]
) -> None:
    rid = await _create(db)
    sent.clear()
    first = await services.approve(uow=db.uow(), request_id=rid, approver_id="UB")
    second = await services.approve(uow=db.uow(), request_id=rid, approver_id="UA")
    assert second.request.status is Status.APPROVED
    assert [d.approver_id for d in second.request.decisions] == ["UB", "UA"]
    assert first.request.approvers == second.request.approvers == tuple(APPROVERS)
    if db.engine.dialect.name == "postgresql":
        assert _reads(sent) == []
        assert len(sent) == 2  # each decision one statement: its notices' INSERT, the decision riding along
        assert rid not in repository._WRITTEN  # no longer pending: nothing left to decide from it
    stored = await services.get(uow=db.uow(), request_id=rid)
    assert stored.status is Status.APPROVED
    assert (stored.decisions, stored.approvers) == (second.request.decisions, tuple(APPROVERS))


async def test_what_the_process_keeps_is_what_a_fresh_read_gives(db: Database) -> None:
    rid = await _create(db)
    await services.approve(uow=db.uow(), request_id=rid, approver_id="UB", reason="on call <tonight> & ok")
    if db.engine.dialect.name != "postgresql":
        assert rid not in repository._WRITTEN  # only PostgreSQL's repository keeps them
        return
    _, kept = repository._WRITTEN[rid]
    uow = db.uow()
    async with uow:
        read = await uow.requests.get(rid)
    assert read == kept  # every field, the decisions (their times, reasons) and the approvers included


async def test_a_decision_from_a_stale_copy_writes_nothing_and_is_made_again_from_the_row(
    db: Database, sent: list[str]
) -> None:
    """Bob approves through another process; this one still keeps the request as it was before. Alice's denial from
    that copy misses the row's version: the unit reads the request (with Bob's approval) and denies it."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL's repository keeps requests it wrote")
    rid = await _create(db)
    before_bob = repository._WRITTEN[rid]
    await services.approve(uow=db.uow(), request_id=rid, approver_id="UB")
    repository._WRITTEN[rid] = before_bob  # this process did not see Bob's decision
    sent.clear()
    result = await services.deny(uow=db.uow(), request_id=rid, approver_id="UA", reason="not now")
    assert result.request.status is Status.DENIED
    assert [(d.approver_id, d.verdict.value) for d in result.request.decisions] == [("UB", "APPROVE"), ("UA", "DENY")]
    assert len(_reads(sent)) == 1  # the second attempt read the row
    stored = await services.get(uow=db.uow(), request_id=rid)
    assert stored.status is Status.DENIED
    assert [(d.approver_id, d.verdict.value) for d in stored.decisions] == [("UB", "APPROVE"), ("UA", "DENY")]
    trail = [e.action for e in await services.audit_trail(uow=db.uow(), request_id=rid)]
    assert trail.count("decision.deny") == 1 and trail.count("decision.approve") == 1


async def test_a_stale_copy_of_a_request_another_process_closed_decides_nothing(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL's repository keeps requests it wrote")
    rid = await _create(db)
    before_bob = repository._WRITTEN[rid]
    await services.deny(uow=db.uow(), request_id=rid, approver_id="UB", reason="no")
    repository._WRITTEN[rid] = before_bob  # pending, as this process last saw it
    with pytest.raises(errors.DomainError) as refused:
        await services.approve(uow=db.uow(), request_id=rid, approver_id="UA")
    assert "denied" in refused.value.message.lower()
    stored = await services.get(uow=db.uow(), request_id=rid)
    assert stored.status is Status.DENIED
    assert [d.approver_id for d in stored.decisions] == ["UB"]


async def test_names_recorded_later_reach_the_kept_copy(db: Database) -> None:
    """A request stored while its approvers were being looked up has them unnamed until ``name_approvers``."""
    view = await services.create_request(
        uow=db.uow(),
        requester_id="UREQ",
        resource="db",
        justification="why",
        approvers=[Approver("UA"), Approver("UB")],
    )
    uow = db.uow()
    async with uow:
        await uow.requests.name_approvers({view.id: APPROVERS})
        await uow.commit()
    result = await services.approve(uow=db.uow(), request_id=view.id, approver_id="UA")
    assert result.request.approvers == tuple(APPROVERS)
