"""The repository keeps recent requests' approvers (they never change once stored): whatever it keeps or
forgets, every request loads with its own approvers."""

from __future__ import annotations

import pytest

from bot.adapters import repository
from bot.adapters.db import Database
from bot.domain.values import Approver
from bot.service_layer import services


async def test_every_request_loads_with_its_approvers_whatever_is_kept(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository, "_NAMED_KEPT", 2)  # far fewer than a page of requests
    named = {}
    for i in range(6):
        approvers = [Approver(f"UA{i}", f"A {i}"), Approver(f"UB{i}", f"B {i}", f"b{i}@example.com")]
        view = await services.create_request(
            uow=db.uow(), requester_id="UREQ", resource=f"db-{i}", justification="why", approvers=approvers
        )
        named[view.id] = tuple(approvers)
    for _ in range(2):  # with some of them kept, then with others
        page = await services.list_requests(uow=db.uow(), requester_id="UREQ", per_page=10)
        assert {v.id: v.approvers for v in page.items} == named
    repository._NAMED.clear()  # a new process: read from the database
    for rid, approvers in named.items():
        assert (await services.get(uow=db.uow(), request_id=rid)).approvers == approvers


async def test_a_list_read_in_one_statement_has_each_requests_approvers_and_decisions(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository, "_NAMED_KEPT", 2)
    made = []
    for i in range(5):
        approvers = [Approver(f"UA{i}", f"A {i}"), Approver(f"UB{i}", f"B {i}", f"b{i}@example.com")]
        view = await services.create_request(
            uow=db.uow(), requester_id="UREQ", resource=f"db-{i}", justification="why", approvers=approvers
        )
        made.append(view.id)
        if i % 3 == 1:
            await services.approve(uow=db.uow(), request_id=view.id, approver_id=f"UB{i}")
            await services.approve(uow=db.uow(), request_id=view.id, approver_id=f"UA{i}")
        elif i % 3 == 2:
            await services.deny(uow=db.uow(), request_id=view.id, approver_id=f"UA{i}", reason="not <on> call & no")
    one_by_one = {rid: await services.get(uow=db.uow(), request_id=rid) for rid in made}
    repository._NAMED.clear()  # approvers unknown: read with the decisions, in one statement
    page = await services.list_requests(uow=db.uow(), requester_id="UREQ", per_page=10)
    assert {v.id for v in page.items} == set(made)
    for v in page.items:
        expected = one_by_one[v.id]
        assert (v.approvers, v.decisions, v.status) == (expected.approvers, expected.decisions, expected.status)
    assert [d.approver_id for d in one_by_one[made[1]].decisions] == ["UB1", "UA1"]  # in the order made
    assert one_by_one[made[2]].decisions[0].reason == "not <on> call & no"


async def test_a_decision_on_a_request_whose_approvers_are_not_kept_reads_them_with_it(
    db: Database, sent: list[str]
) -> None:
    """A process that does not keep a request's approvers yet (just started, or they were unnamed when stored)
    decides with the approvers read from the database; on PostgreSQL in the same statement as the request."""
    approvers = [Approver("UA", "A a"), Approver("UB", "", "b@example.com")]  # Bob not named (yet)
    view = await services.create_request(
        uow=db.uow(), requester_id="UREQ", resource="db", justification="why", approvers=approvers
    )
    for approver in ("UB", "UA"):
        repository._NAMED.clear()
        repository._WRITTEN.clear()  # nor the request it wrote (``test_written_requests``)
        sent.clear()
        result = await services.approve(uow=db.uow(), request_id=view.id, approver_id=approver)
        assert result.request.approvers == tuple(approvers)
        reads = [sql for sql in sent if sql.lstrip().startswith("SELECT")]
        if db.engine.dialect.name == "postgresql":
            assert len(reads) == 1 and "request_approvers" in reads[0]
    assert result.request.status.value == "APPROVED"
    assert view.id not in repository._NAMED  # Bob has no name yet: not kept, read again next time
