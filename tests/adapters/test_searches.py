"""Lists and counts run statements built once per shape of their filter: every shape finds what the filter
says, newest first, paged, and counts it (capped or not), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

from bot.adapters.db import Database
from bot.adapters.repository import RequestFilter
from bot.domain.values import Approver, Status
from bot.service_layer import services

PEOPLE = ["UANN", "UBEN", "UCAT"]


async def test_every_filter_shape_finds_and_counts_what_it_says(db: Database) -> None:
    made = []  # (id, requester, approvers, status), oldest first
    for n in range(9):
        requester = PEOPLE[n % 3]
        approvers = [p for p in PEOPLE if p != requester]
        view = await services.create_request(
            uow=db.uow(),
            requester_id=requester,
            resource=f"db-{n}",
            justification="why",
            approvers=[Approver(a) for a in approvers],
        )
        status = Status.PENDING
        if n % 3 == 1:
            await services.deny(uow=db.uow(), request_id=view.id, approver_id=approvers[0])
            status = Status.DENIED
        made.append((view.id, requester, approvers, status))
    after_all = datetime.now(UTC) + timedelta(seconds=1)

    for status, requester, approver, involving, before in product(
        (None, Status.PENDING, Status.DENIED),
        (None, "UANN"),
        (None, "UBEN"),
        (None, "UCAT"),
        (None, after_all),
    ):
        where = RequestFilter(status, requester, approver, involving, before)
        expected = [
            rid
            for rid, req, apps, st in reversed(made)
            if (status is None or st is status)
            and (requester is None or req == requester)
            and (approver is None or approver in apps)
            and (involving is None or involving == req or involving in apps)
        ]
        async with db.uow().reading() as uow:
            found = [r.id for r in await uow.requests.find(where, limit=100)]
            second_page = [r.id for r in await uow.requests.find(where, limit=2, offset=2)]
            counted = await uow.requests.count(where)
            capped = await uow.requests.count(where, up_to=2)
        assert found == expected, where
        assert second_page == expected[2:4], where
        assert counted == len(expected) and capped == min(2, len(expected)), where

    async with db.uow().reading() as uow:
        long_ago = RequestFilter(created_before=datetime.now(UTC) - timedelta(days=1))
        assert await uow.requests.find(long_ago, limit=10) == [] and await uow.requests.count(long_ago) == 0
