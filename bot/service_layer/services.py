"""Use cases as plain functions of keyword arguments and a Unit of Work."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from bot.adapters.repository import ConcurrentUpdate, RequestFilter, too_many_open, utc
from bot.domain import errors
from bot.domain.model import AccessRequest, DecisionOutcome
from bot.domain.values import Approver, Policy, Status, Verdict
from bot.service_layer import notices
from bot.service_layer.results import AuditEntry, DecisionResult, Page, RequestView
from bot.service_layer.unit_of_work import AbstractUnitOfWork

T = TypeVar("T")
log = logging.getLogger(__name__)
ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U: easy to read aloud and type
ATTEMPTS = 5
CHECK_TOO_SLOW = "Slack took too long to say who the approvers are; nothing was stored. Please try again in a minute."
COUNT_UP_TO = 1000  # list totals stop there ("1,000+"): counting further costs time nobody needs


def new_request_id() -> str:
    return "AR-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(8))


def utcnow() -> datetime:
    return datetime.now(UTC)


async def create_request(
    *,
    uow: AbstractUnitOfWork,
    requester_id: str,
    resource: str,
    justification: str,
    approvers: Sequence[Approver],
    requester_name: str = "",
    duration_minutes: int | None = None,
    policy: Policy | None = None,
    idempotency_key: str | None = None,
    confirm_by_message: bool = False,
) -> RequestView:
    """Store a new request and queue its notices. With ``idempotency_key`` (e.g. a modal's view id), a second
    submission of the same thing returns the first request instead of making another."""
    policy = policy or Policy()
    now = utcnow()
    request = AccessRequest.create(
        id=new_request_id(),
        requester_id=requester_id,
        requester_name=requester_name,
        resource=resource,
        justification=justification,
        approvers=approvers,
        duration_minutes=duration_minutes,
        now=now,
        policy=policy,
    )
    try:
        async with uow:
            if idempotency_key is not None:
                earlier = await uow.requests.by_idempotency_key(idempotency_key)
                if earlier is not None:
                    return RequestView.of(earlier)
            await uow.requests.add(request, idempotency_key=idempotency_key, open_limit=policy.max_open_per_requester)
            if confirm_by_message:
                await uow.queue(notices.confirmation(request.id))
            await uow.audit.record(
                action="request.created",
                actor_id=requester_id,
                request_id=request.id,
                at=now,
                details={
                    "resource": request.resource,
                    "approvers": [a.user_id for a in request.approvers],
                    "duration_minutes": duration_minutes,
                },
            )
            await uow.commit()
    except Exception as exc:
        if not too_many_open(exc):
            raise
        open_now = getattr(exc, "open_now", None)
        if open_now is None:  # found out by the statement that would have stored it: counted now, for the message
            async with uow.reading():
                open_now = await uow.requests.count(RequestFilter(Status.PENDING, requester_id=requester_id))
        raise errors.TooManyOpenRequests(
            f"You already have {max(open_now, policy.max_open_per_requester)} open requests (the limit is "
            f"{policy.max_open_per_requester}). Cancel one with `/access-request cancel <id>` or wait for a decision."
        ) from None
    return RequestView.of(request)


async def create_request_while_checking(
    *,
    uow: AbstractUnitOfWork,
    approver_ids: Sequence[str],
    check: Awaitable[Sequence[Approver]],
    requester_id: str,
    resource: str,
    justification: str,
    requester_name: str = "",
    duration_minutes: int | None = None,
    policy: Policy | None = None,
    known: Sequence[Approver] | None = None,
    on_stored: Callable[[RequestView], Awaitable[None]] | None = None,
) -> RequestView:
    """Store a new request while ``check`` (e.g. Slack's users.info for each approver) finds out whether its
    approvers can approve it: the person waits for the longer of the two, not for both. Its notices wait, leased to
    this process, until the check has passed; if it fails, the request is removed before anybody was told of it,
    and the check's refusal is raised. The approvers' names, which only the check knows, are recorded by the
    dispatcher with its next bookkeeping (lost if the process dies first): the view returned has them already.

    The check may take a quarter of the notices' lease: a dispatcher elsewhere must not claim them before it ends.
    If the process dies between storing and checking, the notices go out when their lease runs out, as for any
    request whose answer the person did not get (they see Slack's error and may ask again). Where notices are not
    leased to this process (no dispatcher here), any dispatcher could claim them at once: the check comes first.

    ``known``, the approvers as an earlier check found them lately, and ``on_stored``: the stored request is handed to
    ``on_stored``, with those approvers, as soon as it is stored, without waiting for the check (the person can be
    answered sooner). The check still decides whether anybody is told of it: a refusal then still removes it; a
    check that does not answer (in time, or ``CheckUnavailable``) leaves the recent one standing."""
    store = partial(
        create_request,
        requester_id=requester_id,
        requester_name=requester_name,
        resource=resource,
        justification=justification,
        duration_minutes=duration_minutes,
        policy=policy,
    )
    lease = uow.lease
    if lease is None:
        return await store(uow=uow, approvers=await check)
    # The check runs here and the store in a task, not the other way round: the check's first call to Slack leaves
    # at once, and the store starts while it is on its way (a task starts at the event loop's next turn). The store's
    # task answers the person (``on_stored``) as soon as it is stored, and whichever of the two ends last hands the
    # notices over (``_Join``): neither waits for a turn of the event loop in which this coroutine wakes up. A store
    # that fails (too many open requests, say) is told once the check has answered, as it always was for approvers
    # not checked lately: a users.info call or two later.
    recent = tuple(known) if known is not None and on_stored is not None else ()
    join = _Join(uow, approver_ids)

    async def stored() -> RequestView:
        view = join.written = await store(uow=uow.withholding(), approvers=[Approver(u) for u in approver_ids])
        if recent and on_stored is not None and not join.refused:
            try:
                await on_stored(replace(view, approvers=recent))
            except Exception:
                join.refused = True  # the person was not answered: nobody is told, and the request is removed
                raise
        return join.stored(view)

    storing = asyncio.ensure_future(stored())
    try:
        # A check that does not answer (in time, or at all) leaves a recent one standing: the person was answered.
        try:
            async with asyncio.timeout(lease.total_seconds() / 4):
                approvers = join.checked(tuple(await check))
        except TimeoutError:
            if not recent:
                raise errors.CheckTooSlow(CHECK_TOO_SLOW) from None
            approvers = join.checked(recent)
        except errors.CheckUnavailable:
            if not recent:
                raise
            log.warning("the approvers' check did not answer; their check of a few minutes ago stands")
            approvers = join.checked(recent)
        if not join.matches(approvers):
            raise ValueError("the check answered for other approvers than the request's")
        view = await storing  # and handed over (``_Join``)
    except BaseException as failed:
        join.refused = True  # at once: the store's task must not answer the person now
        if join.handed:  # its approvers are being told of it (nothing fails after that but a cancellation)
            raise
        await _settled(storing)
        if join.written is not None:
            why = failed.message if isinstance(failed, errors.DomainError) else type(failed).__name__
            await _remove(uow, join.written.id, why)
        raise
    return replace(view, approvers=approvers)


class _Join:
    """Hands a withheld request's notices over (``uow.hand_over``) once it is stored (and the person answered, where
    they are answered then) and its approvers have passed their check, in whichever of the two ends last: woken to do
    it, the command's coroutine would wait a turn of the event loop, a few tenths of a millisecond at 5 in flight
    that both DMs wait for. With the check run in the command's coroutine (its first users.info call leaves a turn
    sooner), alternating 6 rounds at 5 in flight (the fifteenth session): both DMs on SQLite 6.33 -> 5.78 ms; on
    PostgreSQL, where the store ends last, 7.19 -> 7.44 ms (within the noise)."""

    def __init__(self, uow: AbstractUnitOfWork, approver_ids: Sequence[str]) -> None:
        self.uow, self.approver_ids = uow, list(approver_ids)
        self.approvers: tuple[Approver, ...] | None = None
        self.written: RequestView | None = None  # committed
        self.answered = False  # committed, and the person answered where they are answered then
        self.handed = False
        self.refused = False  # the check or the answer failed: nobody is answered or told

    def matches(self, approvers: Sequence[Approver]) -> bool:
        return [a.user_id for a in approvers] == self.approver_ids

    def stored(self, view: RequestView) -> RequestView:
        self.answered = True
        self._hand_over()
        return view

    def checked(self, approvers: tuple[Approver, ...]) -> tuple[Approver, ...]:
        self.approvers = approvers
        self._hand_over()
        return approvers

    def _hand_over(self) -> None:
        view, approvers = self.written, self.approvers
        if self.handed or self.refused or not self.answered or view is None or approvers is None:
            return  # not both yet
        if not self.matches(approvers):
            return  # the check answered for others, which the caller refuses
        self.handed = True
        self.uow.hand_over(names={view.id: approvers})


async def _remove(uow: AbstractUnitOfWork, request_id: str, why: str) -> None:
    """Remove a request nobody was told of, saying why in the audit log (which keeps its entry of the request's
    making). Tried three times: left stored, its notices would go out when their lease runs out."""
    for attempt in range(1, 4):
        try:
            async with uow:
                await uow.requests.remove(request_id)
                await uow.audit.record(
                    action="request.removed", actor_id=None, request_id=request_id, at=utcnow(), details={"why": why}
                )
                await uow.commit()
            return
        except Exception:
            log.exception("removing %s (its approvers failed their check) failed, attempt %d of 3", request_id, attempt)
            if attempt == 3:
                raise
            await asyncio.sleep(0.1 * attempt)


async def _settled(task: asyncio.Future[T]) -> T | None:
    """What ``task`` returns, or None if it fails."""
    try:
        return await task
    except Exception:
        return None


async def approve(
    *, uow: AbstractUnitOfWork, request_id: str, approver_id: str, reason: str | None = None
) -> DecisionResult:
    return await decide(uow=uow, request_id=request_id, approver_id=approver_id, verdict=Verdict.APPROVE, reason=reason)


async def deny(
    *, uow: AbstractUnitOfWork, request_id: str, approver_id: str, reason: str | None = None
) -> DecisionResult:
    return await decide(uow=uow, request_id=request_id, approver_id=approver_id, verdict=Verdict.DENY, reason=reason)


async def decide(
    *,
    uow: AbstractUnitOfWork,
    request_id: str,
    approver_id: str,
    verdict: Verdict,
    reason: str | None = None,
    policy: Policy | None = None,
) -> DecisionResult:
    policy = policy or Policy()
    if reason is not None and len(reason.strip()) > policy.max_reason_length:
        raise errors.InvalidRequest(
            f"The reason is {len(reason.strip()):,} characters long; the limit is {policy.max_reason_length:,}.",
            field="reason",
        )

    async def unit() -> DecisionResult:
        async with uow:
            request = _existing(await uow.requests.for_decision(request_id), request_id)
            before = request.status
            now = utcnow()
            outcome = request.decide(approver_id=approver_id, verdict=verdict, reason=reason, now=now)
            if outcome is DecisionOutcome.ALREADY_RECORDED:
                return DecisionResult(
                    RequestView.of(request),
                    outcome,
                    None,
                    f"You had already chosen to {verdict.lower()} {request_id}; nothing changed.",
                )
            await uow.requests.save(request)
            await uow.audit.record(
                action=f"decision.{verdict.lower()}",
                actor_id=approver_id,
                request_id=request_id,
                at=now,
                details={"reason": request.decisions[-1].reason},
            )
            became = request.status if request.status is not before else None
            if became is not None:
                await _audit_status(uow, request, before, approver_id, now)
            await uow.commit()
        message = f"You chose to {verdict.lower()} {request_id}." + (
            f" The request is now {became.lower()}." if became else ""
        )
        return DecisionResult(RequestView.of(request), outcome, became, message)

    return await _audited(uow, f"decision.{verdict.lower()}", approver_id, request_id, unit)


async def check_decision(
    *, uow: AbstractUnitOfWork, request_id: str, approver_id: str, verdict: Verdict
) -> RequestView:
    """Refuse now what ``decide`` would refuse (e.g. before asking a denier for a reason); records nothing
    but the refusal."""

    async def unit() -> RequestView:
        async with uow.reading():
            request = _existing(await uow.requests.get(request_id), request_id)
            if request.check_decision(approver_id=approver_id, verdict=verdict) is DecisionOutcome.ALREADY_RECORDED:
                raise errors.DecisionConflict(f"You already chose to {verdict.lower()} {request_id}.")
            return RequestView.of(request)

    return await _audited(uow, f"decision.{verdict.lower()}", approver_id, request_id, unit)


async def first_delivery(*, uow: AbstractUnitOfWork, event_id: str) -> bool:
    """True the first time a Slack event id is seen; False for Slack's retries of it."""
    try:
        async with uow:
            first = await uow.deliveries.first_time(event_id, at=utcnow())
            await uow.commit()
        return first
    except IntegrityError:  # a concurrent delivery of the same event won
        return False


async def cancel(*, uow: AbstractUnitOfWork, request_id: str, user_id: str) -> RequestView:
    async def unit() -> RequestView:
        async with uow:
            request = _existing(await uow.requests.get(request_id, for_update=True), request_id)
            before, now = request.status, utcnow()
            request.cancel(by=user_id, now=now)
            await uow.requests.save(request)
            await _audit_status(uow, request, before, user_id, now)
            await uow.commit()
        return RequestView.of(request)

    return await _audited(uow, "request.cancel", user_id, request_id, unit)


async def expire(*, uow: AbstractUnitOfWork, request_id: str) -> RequestView:
    async def unit() -> RequestView:
        async with uow:
            request = _existing(await uow.requests.get(request_id, for_update=True), request_id)
            before, now = request.status, utcnow()
            request.expire(now=now)
            await uow.requests.save(request)
            await _audit_status(uow, request, before, None, now)
            await uow.commit()
        return RequestView.of(request)

    return await _retrying(uow, unit)


async def expire_stale(*, uow: AbstractUnitOfWork, older_than: timedelta, limit: int = 100) -> list[RequestView]:
    """Expire pending requests created more than ``older_than`` ago."""
    where = RequestFilter(Status.PENDING, created_before=utcnow() - older_than)
    async with uow.reading():
        stale = [r.id for r in await uow.requests.find(where, limit=limit)]
    expired = []
    for request_id in stale:
        try:
            expired.append(await expire(uow=uow, request_id=request_id))
        except errors.RequestClosed:
            continue  # decided meanwhile
    return expired


async def get(*, uow: AbstractUnitOfWork, request_id: str) -> RequestView:
    async with uow.reading():
        request = await uow.requests.get(request_id)
    return RequestView.of(_existing(request, request_id))


async def list_requests(
    *,
    uow: AbstractUnitOfWork,
    status: Status | None = None,
    requester_id: str | None = None,
    approver_id: str | None = None,
    involving: str | None = None,
    page: int = 1,
    per_page: int = 10,
) -> Page:
    where = RequestFilter(status, requester_id, approver_id, involving)
    page, per_page = max(1, page), max(1, min(per_page, 100))
    async with uow.reading():
        items, total = await _page_of(uow, where, limit=per_page, offset=(page - 1) * per_page)
    return Page(tuple(RequestView.of(r) for r in items), total, page, per_page, at_least=total >= COUNT_UP_TO)


async def _page_of(
    uow: AbstractUnitOfWork, where: RequestFilter, *, limit: int, offset: int
) -> tuple[list[AccessRequest], int]:
    """A page and the number of matches (up to COUNT_UP_TO). A page that is neither full nor empty is the last
    one, so it tells the total without counting."""
    items = await uow.requests.find(where, limit=limit, offset=offset)
    if 0 < len(items) < limit or (not items and offset == 0):
        return items, offset + len(items)
    return items, await uow.requests.count(where, up_to=COUNT_UP_TO)


async def pending_for_approver(*, uow: AbstractUnitOfWork, approver_id: str, limit: int = 20) -> list[RequestView]:
    async with uow.reading():
        return [RequestView.of(r) for r in await uow.requests.pending_for_approver(approver_id, limit=limit)]


async def record_refusal(
    *,
    uow: AbstractUnitOfWork,
    actor_id: str,
    action: str,
    request_id: str | None,
    message: str,
    code: str | None = None,
) -> None:
    """Write a refusal to the audit log, in a unit of its own (the refused unit rolled back)."""
    details = {"code": code, "message": message} if code else {"message": message}
    async with uow:
        await uow.audit.record(
            action=f"refused.{action}", actor_id=actor_id, request_id=request_id, at=utcnow(), details=details
        )
        await uow.commit()


async def audit_trail(*, uow: AbstractUnitOfWork, request_id: str) -> list[AuditEntry]:
    """Everything that happened to a request, oldest first."""
    async with uow.reading():
        return [
            AuditEntry(utc(a.at), a.actor_id, a.action, dict(a.details))
            for a in await uow.audit.for_request(request_id)
        ]


async def home_lists(
    *, uow: AbstractUnitOfWork, user_id: str, todo_limit: int = 100, mine_limit: int = 15
) -> tuple[list[RequestView], Page]:
    """What a person's App Home shows, read in one unit: requests awaiting their decision, and their own."""
    async with uow.reading():
        todo = await uow.requests.pending_for_approver(user_id, limit=todo_limit)
        mine, total = await _page_of(uow, RequestFilter(requester_id=user_id), limit=mine_limit, offset=0)
    page = Page(tuple(RequestView.of(r) for r in mine), total, 1, mine_limit, at_least=total >= COUNT_UP_TO)
    return [RequestView.of(r) for r in todo], page


def _existing(request: AccessRequest | None, request_id: str) -> AccessRequest:
    """The request read, or RequestNotFound naming the id asked for."""
    if request is None:
        raise errors.RequestNotFound(f"There is no request {request_id}. Check the id, e.g. AR-7K2M9QXD.")
    return request


async def _audit_status(
    uow: AbstractUnitOfWork, request: AccessRequest, before: Status, actor_id: str | None, now: datetime
) -> None:
    await uow.audit.record(
        action=f"status.{request.status.lower()}",
        actor_id=actor_id,
        request_id=request.id,
        at=now,
        details={"from": before.value, "to": request.status.value},
    )


async def _retrying(uow: AbstractUnitOfWork, unit: Callable[[], Awaitable[T]]) -> T:
    for attempt in range(ATTEMPTS):
        try:
            return await unit()
        except ConcurrentUpdate:
            if attempt == ATTEMPTS - 1 or uow.nested:
                raise
    raise AssertionError("unreachable")


async def _audited(
    uow: AbstractUnitOfWork, action: str, actor_id: str, request_id: str, unit: Callable[[], Awaitable[T]]
) -> T:
    """Run ``unit``; a refusal is written to the audit log in a unit of its own, then re-raised."""
    try:
        return await _retrying(uow, unit)
    except errors.DomainError as refusal:
        if not uow.nested:
            await record_refusal(
                uow=uow,
                actor_id=actor_id,
                action=action,
                request_id=request_id,
                message=refusal.message,
                code=refusal.code,
            )
        raise
