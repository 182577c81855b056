"""A unit of work leases the notices it queues to the process's dispatcher in the same transaction and hands
them over after the commit, except where an earlier notice of the same message is pending and not that
dispatcher's: then the new one waits in the database and is claimed in its turn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.adapters import repository
from bot.adapters.db import Database
from bot.adapters.outbox import OUTBOX, Claimed
from bot.domain.errors import CheckTooSlow, InvalidRequest, TooManyOpenRequests
from bot.domain.values import Approver, Policy, Status
from bot.service_layer import delivery, services
from bot.service_layer.results import RequestView
from tests.databases import audit_entries, rows_about_requests

ALICE, BOB = Approver("UALICE", "Alice"), Approver("UBOB", "Bob")


class Recorder:
    """Stands in for the dispatcher: records what it is handed."""

    name = "this-process"
    lease = timedelta(seconds=30)

    def __init__(self) -> None:
        self.since: float | None = None
        self.names: Mapping[str, tuple[Approver, ...]] | None = None
        self.handed_over: list[tuple[list[Claimed], dict[str, RequestView], bool]] = []

    def handed(
        self, leased: list[Claimed], views: dict[str, RequestView], *, others: bool, since: float | None = None
    ) -> None:
        self.handed_over.append((leased, views, others))
        self.since = since

    def name_later(self, names: Mapping[str, tuple[Approver, ...]]) -> None:
        self.names = names


async def _rows(db: Database, request_id: str) -> dict[str, tuple[str | None, int, str]]:
    async with db.engine.connect() as conn:
        found = await conn.execute(
            sa.select(OUTBOX.c.action, OUTBOX.c.subject, OUTBOX.c.claimed_by, OUTBOX.c.claims, OUTBOX.c.status).where(
                OUTBOX.c.request_id == request_id
            )
        )
        return {f"{r.action}:{r.subject or ''}": (r.claimed_by, r.claims, r.status) for r in found}


async def _create(db: Database) -> str:
    view = await services.create_request(
        uow=db.uow(), requester_id="UREQ", resource="prod-db", justification="why", approvers=[ALICE, BOB]
    )
    return view.id


async def test_queued_notices_are_leased_and_handed_over_with_the_state(db: Database) -> None:
    db.handover = recorder = Recorder()
    rid = await _create(db)
    [(leased, views, others)] = recorder.handed_over
    posts = {("post_dm", "UALICE"), ("post_dm", "UBOB"), ("post_channel", None)}
    assert {(n.action, n.subject) for n in leased} == posts
    assert all(n.claims == 1 and not n.maybe_delivered_before for n in leased)
    assert views[rid].status is Status.PENDING and not others
    assert set((await _rows(db, rid)).values()) == {("this-process", 1, "pending")}
    # Leased: another dispatcher claims none of them.
    assert await delivery.claim_notices(uow=db.uow(), by="another-process", lease=timedelta(seconds=30)) == []

    await services.approve(uow=db.uow(), request_id=rid, approver_id="UALICE")
    leased, views, others = recorder.handed_over[-1]
    assert {n.action for n in leased} == {"update_dm", "update_channel", "post_reply"}
    assert views[rid].approvals == 1 and not others  # queued behind this process's own, held in its memory


async def test_a_message_with_a_notice_pending_elsewhere_keeps_its_order(db: Database) -> None:
    db.handover = recorder = Recorder()
    rid = await _create(db)
    # Another process holds the channel message's post (say it claimed it after a lease ran out).
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.request_id == rid, OUTBOX.c.action == "post_channel")
            .values(claimed_by="another-process")
        )
    await services.approve(uow=db.uow(), request_id=rid, approver_id="UALICE")
    leased, _views, others = recorder.handed_over[-1]
    assert {n.action for n in leased} == {"update_dm"} and others  # the DMs' updates only
    rows = await _rows(db, rid)
    assert rows["update_channel:"] == (None, 0, "pending") and rows["post_reply:UALICE"] == (None, 0, "pending")

    # Once the other process has delivered its post, the channel's next notice is claimed, in order.
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.request_id == rid, OUTBOX.c.action == "post_channel")
            .values(status="done", lease_until=None, finished_at=datetime.now(UTC))
        )
    [claimed] = [
        n
        for n in await delivery.claim_notices(uow=db.uow(), by="this-process", lease=timedelta(seconds=30))
        if n.target == "channel"
    ]
    assert claimed.action == "update_channel"


async def test_without_a_dispatcher_nothing_is_leased(db: Database) -> None:
    rid = await _create(db)  # e.g. the command line, or another tool writing to the database
    assert set((await _rows(db, rid)).values()) == {(None, 0, "pending")}


def _checked_create(db: Database, check: Awaitable[Sequence[Approver]], **extra: Any) -> Awaitable[RequestView]:
    return services.create_request_while_checking(
        uow=db.uow(),
        approver_ids=["UALICE", "UBOB"],
        check=check,
        requester_id="UREQ",
        resource="prod-db",
        justification="why",
        **extra,
    )


async def test_a_request_stored_while_its_approvers_are_checked_goes_out_only_once_they_pass(db: Database) -> None:
    db.handover = recorder = Recorder()
    passed: asyncio.Future[list[Approver]] = asyncio.get_running_loop().create_future()
    creating = asyncio.ensure_future(_checked_create(db, passed))
    for _ in range(400):  # stored before the check has answered
        if (await rows_about_requests(db.engine))["access_requests"]:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    assert recorder.handed_over == [] and not creating.done()
    named = [Approver("UALICE", "Alice", "alice@example.com"), Approver("UBOB", "Bob")]
    passed.set_result(named)
    view = await creating
    [(leased, _, _)] = recorder.handed_over
    assert {(n.action, n.subject) for n in leased} == {
        ("post_dm", "UALICE"),
        ("post_dm", "UBOB"),
        ("post_channel", None),
    }
    assert view.approvers == tuple(named)
    # Their names go to the dispatcher, which records them with its next bookkeeping; read back by another process
    # (nothing kept in this one).
    assert recorder.names == {view.id: tuple(named)}
    assert (await services.get(uow=db.uow(), request_id=view.id)).approvers == (Approver("UALICE"), Approver("UBOB"))
    await delivery.name_approvers(uow=db.uow(), names=recorder.names)
    repository._NAMED.clear()
    assert (await services.get(uow=db.uow(), request_id=view.id)).approvers == tuple(named)


async def test_a_request_whose_approvers_fail_the_check_is_removed_before_anybody_is_told(db: Database) -> None:
    db.handover = recorder = Recorder()
    before = await rows_about_requests(db.engine)

    async def refuse() -> list[Approver]:
        await asyncio.sleep(0.05)  # after the request is stored
        raise InvalidRequest("<@UBOB> is an app, not a person: approvers must be people.", field="approver_2")

    with pytest.raises(InvalidRequest, match="is an app"):
        await _checked_create(db, refuse())
    assert recorder.handed_over == []
    assert await rows_about_requests(db.engine) == before
    assert (await audit_entries(db.engine))[-1] == (
        "request.removed",
        {"why": "<@UBOB> is an app, not a person: approvers must be people."},
    )
    assert await delivery.claim_notices(uow=db.uow(), by="another-process", lease=timedelta(seconds=30)) == []


async def test_a_request_refused_as_it_is_stored_is_refused_whatever_the_check_says(db: Database) -> None:
    db.handover = recorder = Recorder()
    policy = Policy(max_open_per_requester=1)
    await _checked_create(db, _named(), policy=policy)
    before = await rows_about_requests(db.engine)
    with pytest.raises(TooManyOpenRequests):
        await _checked_create(db, _named(), policy=policy)
    assert len(recorder.handed_over) == 1  # the first request's notices only
    assert await rows_about_requests(db.engine) == before


async def _named() -> list[Approver]:
    return [ALICE, BOB]


async def test_a_check_that_outlasts_a_quarter_of_the_lease_removes_the_request(db: Database) -> None:
    """A dispatcher elsewhere may claim notices whose lease ran out: the check must end well before."""
    db.handover = recorder = Recorder()
    recorder.lease = timedelta(seconds=0.4)  # the check may take 0.1 s
    before = await rows_about_requests(db.engine)

    async def slow() -> list[Approver]:
        await asyncio.sleep(1)
        return [ALICE, BOB]

    with pytest.raises(CheckTooSlow, match="nothing was stored"):
        await _checked_create(db, slow())
    assert recorder.handed_over == [] and await rows_about_requests(db.engine) == before


async def test_notices_held_back_for_the_check_are_handed_over_with_when_their_lease_began(db: Database) -> None:
    """The dispatcher counts half the lease from when it began, not from the handover: time spent checking is
    time the lease has run."""
    db.handover = recorder = Recorder()

    answered = []

    async def checked() -> list[Approver]:
        await asyncio.sleep(0.2)
        answered.append(time.monotonic())
        return [ALICE, BOB]

    started = time.monotonic()
    await _checked_create(db, checked())
    assert recorder.since is not None and started < recorder.since < answered[0] - 0.1


async def test_without_a_dispatcher_here_the_approvers_are_checked_before_anything_is_stored(db: Database) -> None:
    """Notices not leased to this process could be claimed by any dispatcher at once: nothing is held back."""
    stored_while_checking = []

    async def refuse() -> list[Approver]:
        await asyncio.sleep(0.05)
        stored_while_checking.append((await rows_about_requests(db.engine))["access_requests"])
        raise InvalidRequest("<@UBOB> is an app, not a person: approvers must be people.", field="approver_2")

    with pytest.raises(InvalidRequest):
        await _checked_create(db, refuse())
    assert stored_while_checking == [0]
    assert (await rows_about_requests(db.engine))["access_requests"] == 0


async def test_known_approvers_are_answered_once_stored_and_the_check_still_decides(db: Database) -> None:
    db.handover = recorder = Recorder()
    passed: asyncio.Future[list[Approver]] = asyncio.get_running_loop().create_future()
    answered: list[RequestView] = []

    async def on_stored(view: RequestView) -> None:
        answered.append(view)

    creating = asyncio.ensure_future(_checked_create(db, passed, known=[ALICE, BOB], on_stored=on_stored))
    for _ in range(400):
        if answered:
            break
        await asyncio.sleep(0.005)
    [early] = answered  # before the check has answered, with the approvers as last checked
    assert early.approvers == (ALICE, BOB) and not creating.done() and recorder.handed_over == []
    passed.set_result([ALICE, BOB])
    assert (await creating).id == early.id
    [(leased, _, _)] = recorder.handed_over
    assert {n.action for n in leased} == {"post_dm", "post_channel"}


async def test_known_approvers_refused_before_the_store_ends_are_not_answered_as_sent(db: Database) -> None:
    db.handover = recorder = Recorder()
    before = await rows_about_requests(db.engine)
    answered: list[RequestView] = []

    async def on_stored(view: RequestView) -> None:
        answered.append(view)

    async def refuse_now() -> list[Approver]:
        raise InvalidRequest("<@UBOB>'s account is deactivated: choose someone else.", field="approver_2")

    with pytest.raises(InvalidRequest, match="deactivated"):
        await _checked_create(db, refuse_now(), known=[ALICE, BOB], on_stored=on_stored)
    assert answered == [] and recorder.handed_over == []
    assert await rows_about_requests(db.engine) == before


async def test_a_check_that_does_not_answer_leaves_known_approvers_standing(db: Database) -> None:
    db.handover = recorder = Recorder()
    recorder.lease = timedelta(seconds=0.4)  # the check may take 0.1 s
    never: asyncio.Future[list[Approver]] = asyncio.get_running_loop().create_future()

    async def on_stored(view: RequestView) -> None:
        return None

    view = await _checked_create(db, never, known=[ALICE, BOB], on_stored=on_stored)
    assert view.approvers == (ALICE, BOB)
    [(leased, _, _)] = recorder.handed_over
    assert {n.action for n in leased} == {"post_dm", "post_channel"}


@pytest.mark.parametrize("check_first", [True, False], ids=["check-first", "store-first"])
async def test_a_request_whose_person_could_not_be_answered_is_removed_before_anybody_is_told(
    db: Database, check_first: bool
) -> None:
    """Answering the person (``on_stored``) comes before the approvers are told: if it fails, the command's guard says
    nothing was changed, and nothing is, whether the check had passed already or not."""
    db.handover = recorder = Recorder()
    before = await rows_about_requests(db.engine)
    passed: asyncio.Future[list[Approver]] = asyncio.get_running_loop().create_future()
    if check_first:
        passed.set_result([ALICE, BOB])

    async def on_stored(view: RequestView) -> None:
        if not passed.done():
            passed.set_result([ALICE, BOB])
        raise RuntimeError("the answer could not be built")

    with pytest.raises(RuntimeError, match="could not be built"):
        await _checked_create(db, passed, known=[ALICE, BOB], on_stored=on_stored)
    assert recorder.handed_over == []
    assert await rows_about_requests(db.engine) == before
    assert (await audit_entries(db.engine))[-1] == ("request.removed", {"why": "RuntimeError"})
