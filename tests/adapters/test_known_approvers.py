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
