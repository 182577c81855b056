"""Delivering the outbox: claiming notices, reading what they need, recording how each delivery went."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.adapters.outbox import DEAD, DONE, FAILED, SKIPPED, Claimed
from bot.adapters.repository import PostedMessage
from bot.domain import errors
from bot.domain.values import Approver
from bot.service_layer import notices
from bot.service_layer.results import RequestView
from bot.service_layer.unit_of_work import AbstractUnitOfWork

NoticeContext = tuple[RequestView, dict[str, tuple[str, str]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


async def notice_context(*, uow: AbstractUnitOfWork, request_id: str) -> NoticeContext:
    """A request's current state and where its messages are, read together (what delivering a notice needs)."""
    found = await notice_contexts(uow=uow, request_ids={request_id})
    if request_id not in found:
        raise errors.RequestNotFound(f"There is no request {request_id}.")
    return found[request_id]


async def claim_notices(*, uow: AbstractUnitOfWork, by: str, lease: timedelta, limit: int = 20) -> list[Claimed]:
    """Notices due now, each the earliest undelivered one of its target, leased to dispatcher ``by``."""
    async with uow:
        claimed = await uow.outbox.claim(by=by, now=utcnow(), lease=lease, limit=limit)
        await uow.commit()
    return claimed


async def renew_leases(*, uow: AbstractUnitOfWork, notice_ids: list[int], by: str, lease: timedelta) -> set[int]:
    """Extend the leases dispatcher ``by`` holds on notices waiting in its memory; returns those it still held."""
    async with uow:
        renewed = await uow.outbox.renew(notice_ids, by=by, until=utcnow() + lease)
        await uow.commit()
    return renewed


@dataclass(frozen=True)
class Delivery:
    """A notice delivered; for a posted message, where it is."""

    notice: Claimed
    purpose: str | None = None
    channel_id: str | None = None
    ts: str | None = None


async def notice_contexts(*, uow: AbstractUnitOfWork, request_ids: set[str]) -> dict[str, NoticeContext]:
    """Several requests' state and message places, read in one unit."""
    async with uow.reading():
        requests = await uow.requests.by_ids(sorted(request_ids))
        refs = await uow.messages.for_requests([r.id for r in requests])
    return {r.id: (RequestView.of(r), refs[r.id]) for r in requests}


async def notices_delivered(
    *,
    uow: AbstractUnitOfWork,
    deliveries: list[Delivery],
    superseded: Sequence[Claimed] = (),
    released: Sequence[Claimed] = (),
) -> None:
    """Record, in one transaction: notices delivered (with the place of each posted message), updates not made
    because a later update of the same message renders the same state or a newer one, and leases given up."""
    posted = [
        PostedMessage(d.notice.request_id, d.purpose, d.channel_id, d.ts)
        for d in deliveries
        if d.purpose and d.channel_id and d.ts
    ]
    async with uow:
        now = utcnow()
        await uow.messages.record_many(posted, at=now)
        await uow.outbox.finish_many([d.notice.id for d in deliveries], status=DONE, at=now)
        await uow.outbox.finish_many([n.id for n in superseded], status=SKIPPED, at=now)
        await uow.outbox.release([n.id for n in released])
        await uow.commit()


async def name_approvers(*, uow: AbstractUnitOfWork, names: Mapping[str, Sequence[Approver]]) -> None:
    """Record, in one transaction, the names of approvers learnt after their requests were stored
    (``services.create_request_while_checking``), by request id."""
    async with uow:
        await uow.requests.name_approvers(names)
        await uow.commit()


async def notice_skipped(*, uow: AbstractUnitOfWork, notice: Claimed, why: str) -> None:
    async with uow:
        await uow.outbox.finish(notice.id, status=SKIPPED, at=utcnow(), error=why[:255])
        await uow.commit()


async def notice_retry(
    *,
    uow: AbstractUnitOfWork,
    notice: Claimed,
    error: str,
    delay: timedelta,
    max_attempts: int,
    tell_requester: str | None = None,
) -> bool:
    """Try again after ``delay``; after ``max_attempts`` the notice is a dead letter (returns False), and the
    requester is told when ``tell_requester`` is given."""
    async with uow:
        attempts = await uow.outbox.reschedule(notice.id, at=utcnow() + delay, error=error)
        if attempts >= max_attempts:
            await uow.outbox.finish(notice.id, status=DEAD, at=utcnow(), error=error[:255])
            if tell_requester:
                await uow.queue(notices.problem(notice.request_id, notice.target, tell_requester))
        await uow.commit()
    return attempts < max_attempts


async def notice_failed(
    *, uow: AbstractUnitOfWork, notice: Claimed, error: str, tell_requester: str | None = None
) -> None:
    """A permanent failure: recorded, not retried; the requester is told when ``tell_requester`` is given."""
    async with uow:
        await uow.outbox.finish(notice.id, status=FAILED, at=utcnow(), error=error[:255])
        if tell_requester:
            await uow.queue(notices.problem(notice.request_id, notice.target, tell_requester))
        await uow.audit.record(
            action="notice.failed",
            actor_id=None,
            request_id=notice.request_id,
            at=utcnow(),
            details={"notice": notice.dedupe_key, "error": error},
        )
        await uow.commit()


async def release_leases(*, uow: AbstractUnitOfWork, settle: timedelta) -> int:
    """Free every lease (the one dispatcher of a SQLite database, starting after a crash). A notice the crashed run
    was delivering may have its call still in flight at Slack: it is tried again (and first looked for) only after
    ``settle``, the time Slack has to answer a call, so that the lookup finds a message that call posts."""
    async with uow:
        released = await uow.outbox.release_leases(not_before=utcnow() + settle)
        await uow.commit()
    return released


async def outbox_entries(
    *, uow: AbstractUnitOfWork, statuses: tuple[str, ...] = (DEAD, FAILED), limit: int = 100
) -> list[Claimed]:
    async with uow.reading():
        return await uow.outbox.find(statuses=statuses, limit=limit)


async def retry_outbox(*, uow: AbstractUnitOfWork, notice_ids: list[int] | None = None) -> int:
    """Queue dead or failed notices again (all of them when ``notice_ids`` is None)."""
    async with uow:
        count = await uow.outbox.requeue(notice_ids, at=utcnow())
        await uow.commit()
    return count
