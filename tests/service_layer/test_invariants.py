"""Hypothesis: random sequences of create / approve / deny / cancel by random users keep the invariants."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.db import Database
from bot.domain import errors
from bot.domain.values import Approver, Status, Verdict
from bot.service_layer import services
from tests.databases import sqlite_url

USERS = ["U0", "U1", "U2", "U3"]
user = st.sampled_from(USERS)
op = st.one_of(
    st.tuples(st.just("create"), user, user, user),
    st.tuples(st.sampled_from(["approve", "deny", "cancel"]), st.integers(0, 5), user),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, Database]]:
    with asyncio.Runner() as runner:
        db = runner.run(_open(tmp_path_factory.mktemp("hyp") / "h.db"))
        yield runner, db
        runner.run(db.dispose())


async def _open(path: Path) -> Database:
    db = Database(sqlite_url(path))
    await db.upgrade()
    return db


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(op, min_size=1, max_size=25))
def test_random_operations_keep_the_invariants(world: tuple[asyncio.Runner, Database], ops: list[tuple]) -> None:
    runner, db = world
    runner.run(_play(db, ops))


async def _play(db: Database, ops: list[tuple]) -> None:
    created: list[str] = []
    cancelled_by_requester: set[str] = set()
    last: dict[str, services.RequestView] = {}
    for name, *args in ops:
        try:
            if name == "create":
                requester, a, b = args
                view = await services.create_request(
                    uow=db.uow(),
                    requester_id=requester,
                    resource="db",
                    justification="j",
                    approvers=[Approver(a), Approver(b)],
                )
                created.append(view.id)
                assert requester not in (a, b) and a != b
            elif created:
                rid, who = created[args[0] % len(created)], args[1]
                if name == "cancel":
                    await services.cancel(uow=db.uow(), request_id=rid, user_id=who)
                    cancelled_by_requester.add(rid)
                else:
                    verdict = Verdict.APPROVE if name == "approve" else Verdict.DENY
                    await services.decide(uow=db.uow(), request_id=rid, approver_id=who, verdict=verdict)
        except (
            errors.InvalidRequest,
            errors.NotAnApprover,
            errors.DecisionConflict,
            errors.RequestClosed,
            errors.NotRequester,
            errors.TooManyOpenRequests,
        ):
            pass
        for rid in created:
            now = await services.get(uow=db.uow(), request_id=rid)
            _check(now, last.get(rid), rid in cancelled_by_requester)
            last[rid] = now


def _check(r: services.RequestView, before: services.RequestView | None, cancelled: bool) -> None:
    approvers = {a.user_id for a in r.approvers}
    deciders = [d.approver_id for d in r.decisions]
    assert len(deciders) == len(set(deciders)) and set(deciders) <= approvers
    assert r.requester_id not in approvers
    denials = [d for d in r.decisions if d.verdict is Verdict.DENY]
    assert len(denials) <= 1
    assert (r.status is Status.DENIED) == bool(denials)
    assert (r.status is Status.APPROVED) == (r.approvals == r.required_approvals and not denials)
    assert (r.status is Status.CANCELLED) == cancelled
    if before is not None:
        assert r.decisions[: len(before.decisions)] == before.decisions
        if before.status.is_terminal:
            assert r == before  # nothing changes a terminal request
