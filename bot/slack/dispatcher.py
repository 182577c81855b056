"""Delivers the outbox: every Slack message owed about a request, exactly once, in order per message.

Woken right after a commit that queued notices, and sweeping every few seconds for whatever is left (after a
crash, say). Retries with exponential backoff and jitter, honouring Retry-After; permanent errors are recorded
and, where a person is waiting, explained to them; after ``max_attempts`` a notice is a dead letter.

chat.postMessage is not idempotent: when an earlier attempt may have reached Slack (a timeout, a 5xx, a crash
between Slack's answer and our commit), the dispatcher first looks for the message by the notice key it
carries in its metadata, and only posts if it is not there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import socket
import time
import uuid
from bisect import insort
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from heapq import heappop, heappush
from operator import attrgetter
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.outbox import UPDATES, Claimed
from bot.domain.values import Approver, Status
from bot.service_layer import delivery
from bot.service_layer import notices as n
from bot.service_layer.results import RequestView
from bot.service_layer.unit_of_work import UnitOfWorkFactory
from bot.slack import blocks as b
from bot.slack import text as t

log = logging.getLogger("bot.outbox")
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "user_not_found",
    "user_disabled",
    "cannot_dm_bot",
    "is_archived",
    "invalid_blocks",
    "msg_too_long",
    "no_text",
    "invalid_metadata_format",
    "invalid_metadata_schema",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "restricted_action",
    "missing_scope",
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "no_permission",
    "thread_not_found",
}
REASONS = {
    "channel_not_found": "the channel does not exist or is private",
    "not_in_channel": "the bot is not in that channel: invite it with /invite",
    "user_not_found": "that person is not in this workspace",
    "user_disabled": "their account is deactivated",
    "cannot_dm_bot": "it is an app, which cannot receive messages",
    "is_archived": "the channel is archived",
}


Key = tuple[str, str]  # a message: request id and target
RATIONED_AFTER = 0.05  # seconds notices nobody waits for wait behind the others before taking one turn in five
MAX_LAG = 0.5  # seconds after which a notice nobody waits for goes ahead of every other (``_next_ready``)
CREATING_HOLD = 0.05  # seconds a new request's store and check hold back deliveries but approvers' DMs (``creating``)


def _waited_for(notice: Claimed) -> int | None:
    """How soon a notice goes: those a person is waiting for before the others. First (0) an approver's DM (a
    request cannot move until its approvers see it; under the benchmark's burst, DMs that waited behind outcomes
    came 2.9x the baseline's, served first 1.3x); then (1) the requester's outcome (the end of a request) and the
    update of the DM in which its approver has just clicked. Slack shows nothing for a click until its message
    changes: rationed with the other updates, that update came 21 ms after the click at 5 in flight (SQLite; the
    baseline's 1.8 ms), 111 ms on PostgreSQL, 0.85 s at 20 in flight."""
    if notice.action == n.POST_DM:
        return 0
    if notice.action == n.POST_OUTCOME or (notice.action == n.UPDATE_DM and notice.details.get(n.DECIDER)):
        return 1
    return None


class Skip(Exception):
    """Nothing to deliver (e.g. an update of a message that could never be posted)."""


class Dispatcher:
    """Delivers notices: those units of work in this process hand over as they commit (leased to it in the same
    transaction, with the request's committed state), and those it claims from the database (a sweep every
    ``sweep_every`` seconds, and at once when a commit queued notices it could not lease). It holds them in one
    queue per message (request and target), in id order, and delivers one notice of a message at a time."""

    def __init__(
        self,
        client: AsyncWebClient,
        uow: UnitOfWorkFactory,
        notify_channel: str | None,
        *,
        lease: timedelta = timedelta(seconds=30),
        max_attempts: int = 8,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        sweep_every: float = 2.0,
        batch: int = 20,
        batch_while_acking: int = 3,
        backlog_places: int = 3,
        flush_pause: float = 0.2,
        remember: int = 500,
        max_lag: float = MAX_LAG,
        dm_places: int = 2,
    ) -> None:
        self.client, self.uow, self.notify_channel = client, uow, notify_channel
        self.lease, self.max_attempts, self.base_delay, self.max_delay = lease, max_attempts, base_delay, max_delay
        self.sweep_every, self.batch, self.flush_pause, self.remember = sweep_every, batch, flush_pause, remember
        self.max_lag, self.dm_places = max_lag, dm_places
        # Slack gives a request 3 s for its ack; a notice can wait. While requests wait for their ack (counted by
        # the app's middleware), fewer deliveries are started, so that the acks get the event loop first: three, and
        # six under a backlog (``_limit``). Six at all times (2026-11-28, the eleventh session, alternating, 6 rounds of
        # 300 flows on PostgreSQL on a fast VM): at 20 in flight a flow ends with the requester's notice, which waited
        # behind a backlog of deliveries, so flows per second 0.67x -> 0.77x the baseline's, acks 0.75x -> 0.86x; at 5
        # in flight unchanged. But on a slow VM (the twelfth session), at 5 in flight, six kept the slash command's
        # ack at 1.44-1.50x the baseline's; three there, six under a backlog: 1.23x (5 rounds), and at 20 in flight
        # flows per second unchanged (0.81x -> 0.82x). (Twenty made acks 1.43x the baseline's.)
        self.batch_while_acking, self.backlog_places, self.awaiting_ack = batch_while_acking, backlog_places, 0
        self.creating_hold = CREATING_HOLD
        self._creating: dict[object, float] = {}  # new requests being stored and checked: since when (``creating``)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._running = False  # the loop has started: deliveries may start
        self._in_flight: set[asyncio.Task[None]] = set()
        self._queues: dict[Key, list[Claimed]] = {}  # notices held, by message, in id order
        # Messages with a notice held and none in flight, by the most waited-for of their notices (``_waited_for``):
        # an approver's DM; an outcome or a clicked DM; anything else (with when each became ready). A message may
        # have a second place among the waited-for (``_hold``); whichever comes first starts it.
        self._ready: list[tuple[float, Key]] = []  # a heap: since when each has waited, oldest first
        self._ready_first: tuple[deque[Key], deque[Key]] = (deque(), deque())
        self._turn = 0
        self._busy: set[Key] = set()  # messages with a delivery in flight
        self._given_up: OrderedDict[Key, None] = OrderedDict()  # messages whose notices go back to the database
        # Notices held or in flight, by id: by when each must have started. A lease must not run out while its
        # notice waits here (another process could claim it); past half the lease it goes back instead.
        self._held: dict[int, float] = {}
        self._came: dict[int, float] = {}  # and when each came (a renewed lease moves ``_held``, not this)
        self._owed: dict[str, int] = {}  # notices held or in flight, by request
        self._claim_now = True
        # The newest state seen of requests and where their messages are: what a delivery renders. Kept while a
        # request has notices held here (however far behind a burst leaves them: read back, the four statements
        # of a request's context cost more than its delivery), then for the ``remember`` most recent others.
        self._views: dict[str, RequestView] = {}
        self._refs: dict[str, dict[str, tuple[str, str]]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()  # requests known here and owed nothing, oldest first
        # Bookkeeping recorded together by the next group commit.
        self._delivered: list[delivery.Delivery] = []
        self._superseded: list[Claimed] = []
        self._released: list[Claimed] = []
        self._naming: dict[str, tuple[Approver, ...]] = {}  # approvers' names learnt after their request was stored
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    @contextmanager
    def creating(self) -> Iterator[None]:
        """A new request is being stored and checked (the slash command's listener, the form's). Meanwhile only
        approvers' DMs start, for at most ``creating_hold`` after the newest such request began, and not under a
        backlog (``_holding``): on PostgreSQL the request's statement waits for its answer to be read, on SQLite its
        check for Slack's, and both wait behind whatever else the event loop has to run. Alternating, 6 rounds at 5
        in flight (the sixteenth session): both DMs 4.93 -> 4.34 ms on PostgreSQL, 4.52 -> 4.16 ms on SQLite (5
        rounds); at 20 in flight flows per second 0.737x -> 0.746x the baseline's (5 rounds)."""
        token = object()
        self._creating[token] = time.monotonic()
        try:
            yield
        finally:
            del self._creating[token]
            self._wake.set()  # what it held back may go

    def _holding(self) -> float:
        """Seconds for which only approvers' DMs may start (0: any delivery may)."""
        if not self._creating:
            return 0.0
        left = next(reversed(self._creating.values())) + self.creating_hold - time.monotonic()
        return 0.0 if left <= 0 or self._backlog() else left

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="outbox-dispatcher")

    async def stop(self) -> None:
        """Finish the deliveries in flight, give back the notices held but not started, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    # -- notices in ---------------------------------------------------------------------------------------------

    def handed(
        self, leased: list[Claimed], views: dict[str, RequestView], *, others: bool, since: float | None = None
    ) -> None:
        """A unit of work committed notices leased to this dispatcher (``Handover``)."""
        for view in views.values():
            self._see(view, {})
        for notice in leased:
            self._hold(notice, since)
        self._claim_now |= others
        if any(notice.action == n.POST_DM for notice in leased):
            self._start_ready()  # an approver's DM: started now, not after the loop's next turn
        self._wake.set()

    def name_later(self, names: Mapping[str, tuple[Approver, ...]]) -> None:
        """Approvers' names to record with the next bookkeeping (``Handover``)."""
        self._naming.update(names)
        self._schedule_flush()

    def _hold(self, notice: Claimed, leased_at: float | None = None) -> None:
        if notice.id in self._held:
            return  # held already (claimed again by this process's sweep): delivered once, by the first
        key = (notice.request_id, notice.target)
        if key in self._given_up or self._stopping:
            # An earlier notice of this message failed and waits in the database for its retry: this one must
            # not overtake it, so it goes back too and is claimed after it.
            self._released.append(notice)
            self._schedule_flush()
            return
        self._came[notice.id] = time.monotonic()
        leased_at = self._came[notice.id] if leased_at is None else leased_at
        self._held[notice.id] = leased_at + self.lease.total_seconds() / 2
        rid = notice.request_id
        if rid not in self._owed:
            self._recent.pop(rid, None)  # kept until its last notice here is done
        self._owed[rid] = self._owed.get(rid, 0) + 1
        queue = self._queues.setdefault(key, [])
        insort(queue, notice, key=attrgetter("id"))
        if key in self._busy:
            return  # made ready when its delivery in flight is done
        if len(queue) == 1:
            self._make_ready(key, queue)
        elif (rank := _waited_for(notice)) is not None:
            # Ready already, maybe behind the others: now also among the waited-for. Whichever of its places comes
            # first starts its next notice; the other finds it busy or done (``_start_ready``).
            self._ready_first[rank].append(key)

    def _make_ready(self, key: Key, queue: list[Claimed]) -> None:
        """The message ``key`` has ``queue`` to deliver and nothing in flight: it goes with the most waited-for of
        them (its first is delivered first all the same; an update made redundant by a later one is skipped)."""
        ranks = [rank for rank in map(_waited_for, queue) if rank is not None]
        if ranks:
            self._ready_first[min(ranks)].append(key)
        else:
            # Since its oldest notice came (not since its previous delivery): a message's lag does not add up.
            heappush(self._ready, (self._came[queue[0].id], key))

    def _next_ready(self, others: bool = True) -> Key | None:
        """The message whose notice goes next: approvers' DMs, then the other waited-for notices (``_waited_for``),
        then the rest in the order they became ready. Once the oldest of the rest has waited ``RATIONED_AFTER``, it
        takes one turn in five while waited-for ones wait: under a burst updates fall behind but keep going (held back
        entirely, their backlog took 30 MB and left messages stale for seconds). Until then it waits, so that a new
        request's channel message does not go before its approvers' DMs (with a turn in five counted from the first,
        it went before one of them for 81 of 210 requests at 1 in flight, and Slack had that DM ~0.5 ms later).
        ``others``: whether the rest may go now at all. But one that has waited ``max_lag`` goes ahead of every other,
        ``others`` or not: while requests kept waiting for their acks, the notify channel's messages (which went only
        when nothing else was in flight) fell further and further behind, 10 s after 1,500 flows at 5 in flight and 30
        s after 2,500."""
        first = self._ready_first[0] or self._ready_first[1]
        rest = self._ready
        if self._overdue():
            return heappop(rest)[1]
        if not first:
            return heappop(rest)[1] if rest and others else None
        if rest and others and time.monotonic() - rest[0][0] >= RATIONED_AFTER:
            self._turn = (self._turn + 1) % 5
            if not self._turn:
                return heappop(rest)[1]
        return first.popleft()

    def _overdue(self) -> bool:
        """The oldest of the notices nobody waits for has waited ``max_lag``: it goes ahead of every other."""
        return bool(self._ready) and time.monotonic() - self._ready[0][0] >= self.max_lag

    def _see(self, view: RequestView, refs: dict[str, tuple[str, str]]) -> None:
        """Remember a request's state if it is newer than the one known, and where its messages are."""
        known = self._views.get(view.id)
        if known is None or _version(view) >= _version(known):
            self._views[view.id] = view
        self._refs.setdefault(view.id, {}).update(refs)
        self._recently(view.id)

    def _recently(self, rid: str) -> None:
        """Note that a request owed nothing here was seen; forget the oldest such beyond ``remember``."""
        if rid in self._owed:
            return
        self._recent[rid] = None
        self._recent.move_to_end(rid)
        while len(self._recent) > self.remember:
            old, _ = self._recent.popitem(last=False)
            self._views.pop(old, None)
            self._refs.pop(old, None)

    def _unhold(self, notice_id: int, rid: str) -> None:
        """A notice is no longer held here (done, superseded, given back)."""
        self._came.pop(notice_id, None)
        if self._held.pop(notice_id, None) is None:
            return
        left = self._owed[rid] - 1
        if left:
            self._owed[rid] = left
        else:
            del self._owed[rid]
            self._recently(rid)

    async def _claim(self, room: int) -> int:
        """Claim due notices from the database (after a crash, a retry, another process's turn) and read their
        requests; returns how many were claimed."""
        try:
            claimed = await delivery.claim_notices(uow=self.uow(), by=self.name, lease=self.lease, limit=room)
        except Exception:
            log.exception("outbox: claiming notices failed; trying again shortly")
            return 0
        if claimed:
            try:
                contexts = await delivery.notice_contexts(uow=self.uow(), request_ids={n.request_id for n in claimed})
            except Exception:
                log.exception("outbox: reading the requests of claimed notices failed")
                contexts = {}
            for view, refs in contexts.values():
                self._see(view, refs)
            for notice in claimed:
                self._given_up.pop((notice.request_id, notice.target), None)  # its turn has come again
                self._hold(notice)
        return len(claimed)

    async def _renew(self) -> None:
        """Extend the leases of the notices waiting here that must otherwise go back before their turn comes (a
        sustained burst keeps updates waiting longer than half a lease). Given back, a notice is claimed again as
        one that may have been delivered, and looked for in Slack before it is made; at 5 in flight over 1,500
        flows 386 went back, and the claims' queries over the pending rows left took 2.3 ms each on SQLite."""
        soon = time.monotonic() + self.lease.total_seconds() / 4
        waiting = [n.id for queue in self._queues.values() for n in queue if self._held.get(n.id, math.inf) < soon]
        if not waiting:
            return
        began = time.monotonic()
        try:
            renewed = await delivery.renew_leases(uow=self.uow(), notice_ids=waiting, by=self.name, lease=self.lease)
        except Exception:
            log.exception("outbox: renewing leases failed; notices that wait too long go back to the database")
            return
        for notice_id in renewed:
            if notice_id in self._held:  # not finished or given back meanwhile
                self._held[notice_id] = began + self.lease.total_seconds() / 2

    # -- the loop -----------------------------------------------------------------------------------------------

    async def _loop(self) -> None:
        """Keep up to ``batch`` deliveries in flight, one per message; claim from the database on the sweep, and
        at once when there may be notices no unit handed over."""
        in_flight = self._in_flight
        last_claim = -math.inf
        renew_every = self.lease.total_seconds() / 8  # twice in the last quarter of a held notice's half lease
        next_renewal = time.monotonic() + renew_every
        self._running = True
        while not self._stopping:
            self._wake.clear()
            room = self._limit() - len(in_flight)
            if room > 0 and (self._claim_now or time.monotonic() - last_claim >= self.sweep_every):
                self._claim_now, last_claim = False, time.monotonic()
                if await self._claim(room) == room:
                    self._claim_now = True  # there may be more due
            if time.monotonic() >= next_renewal:
                await self._renew()
                next_renewal = time.monotonic() + renew_every
            self._start_ready()
            if self._claim_now and len(in_flight) < self._limit():
                continue
            now = time.monotonic()
            # The oldest of the rest goes ahead of every other once it has waited ``max_lag``: be awake then (if it
            # has already, it waits for a place, and a delivery that finishes wakes the loop).
            stale = self._ready[0][0] + self.max_lag - now if self._ready else math.inf
            stale = stale if stale > 0 else math.inf
            held = self._holding() or math.inf  # what a new request holds back goes when its hold ends
            try:
                await asyncio.wait_for(
                    self._wake.wait(),
                    max(0.0, min(self.sweep_every - (now - last_claim), next_renewal - now, stale, held)),
                )
            except TimeoutError:
                pass
        await asyncio.gather(*in_flight, return_exceptions=True)
        for key in list(self._queues):
            self._give_back(key)  # held, not started: leave them to the next start or another process
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()

    def _limit(self) -> int:
        """How many deliveries may be in flight: ``batch``; while requests wait for their acks, ``batch_while_acking``,
        and ``backlog_places`` more once more than twice that many waited-for messages are ready (a backlog: an
        approver's DM, an outcome, a clicked DM)."""
        if not self.awaiting_ack:
            return self.batch
        return self.batch_while_acking + (self.backlog_places if self._backlog() else 0)

    def _backlog(self) -> bool:
        """More than twice ``batch_while_acking`` waited-for messages are ready (``_waited_for``)."""
        return len(self._ready_first[0]) + len(self._ready_first[1]) > 2 * self.batch_while_acking

    def _start_ready(self) -> None:
        """Start deliveries of the messages ready, up to the limit: from the loop, and as a unit hands over an
        approver's DM, which then starts one turn of the event loop after its request's commit instead of two or
        three (the loop's wake-up, then the task's start): at 5 in flight both DMs 7.7 -> 7.2 ms. Started this way
        for every notice handed over or delivery finished, the bot used more CPU per flow (8.0 ms against 7.7)."""
        if not self._running or self._stopping:
            return
        limit, in_flight = self._limit(), self._in_flight
        # While requests wait for their acks, a delivery nobody is waiting for (an update of a message nobody just
        # clicked in, the channel's messages and replies) starts only when no other is in flight, or once it has
        # waited ``max_lag`` (``_next_ready``): the places go to approvers' DMs, outcomes and the clicked DMs.
        # Alternating, 3 rounds at 5 in flight: both DMs 1.79x -> 1.29x the baseline (SQLite), 2.59x -> 2.06x
        # (PostgreSQL); at 20 in flight within the noise.
        only_dms = self._holding() > 0  # a new request is being stored and checked (``creating``)
        while True:
            if only_dms and len(in_flight) < limit and self._overdue():
                key: Key | None = heappop(self._ready)[1]  # what nobody waits for, after ``max_lag``, as ever
            elif not only_dms and len(in_flight) < limit:
                key = self._next_ready(not (self.awaiting_ack and in_flight))
            elif self._ready_first[0] and len(in_flight) < limit + self.dm_places:
                # Approvers' DMs have places more (``dm_places``): the request cannot move until its approvers see
                # it, and at 5 in flight on a slow VM it waited 3.3-4.7 ms for one of the three. Alternating, 3 rounds
                # (2026-11-28): at 5 in flight both DMs 1.39x -> 1.14x the baseline (SQLite), 1.71x -> 1.57x
                # (PostgreSQL), acks no slower; at 20 in flight acks and DMs faster, flows per second within the
                # noise, and the clicked DM's update ~60 ms later (~0.19 -> ~0.25 s on PostgreSQL). Two places, not
                # one (the fifteenth session, 4 rounds): with one, a request's second DM waited ~1.1 ms for a place
                # after its first had one (``python -m bench.timeline``); both DMs 7.83 -> 7.12 ms on PostgreSQL and
                # 6.91 -> 6.51 ms on SQLite.
                key = self._ready_first[0].popleft()
            else:
                break
            if key is None:
                break
            if key in self._busy:
                continue  # a second place of a message (``_hold``): its first place started it
            notice = self._next(key)
            if notice is None:
                continue
            if time.monotonic() > self._held[notice.id]:
                self._give_back(key, notice)  # waited too long here: claimed again, with a fresh lease
                self._claim_soon()
                continue
            self._busy.add(key)
            task = asyncio.create_task(self._deliver(notice))
            in_flight.add(task)
            task.add_done_callback(self._finished(key, notice.id))

    def _give_back(self, key: Key, *first: Claimed) -> None:
        """Release the message's notices held here (``first`` and those queued): they are claimed again from the
        database, in order, and any handed over meanwhile follows them there."""
        self._given_up[key] = None
        while len(self._given_up) > self.remember:
            self._given_up.popitem(last=False)
        for notice in (*first, *self._queues.pop(key, [])):
            self._unhold(notice.id, notice.request_id)
            self._released.append(notice)
        self._schedule_flush()

    def _next(self, key: Key) -> Claimed | None:
        """The message's next notice. An update followed by another of the same message is not made: the later
        one renders the same state or a newer one (fewer calls, same final message)."""
        queue = self._queues.get(key)
        if not queue:
            return None
        notice = queue.pop(0)
        while notice.action in UPDATES and any(later.action == notice.action for later in queue):
            self._superseded.append(notice)
            self._unhold(notice.id, notice.request_id)
            self._schedule_flush()
            notice = queue.pop(0)
        if not queue:
            del self._queues[key]
        return notice

    def _finished(self, key: Key, notice_id: int) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._in_flight.discard(task)
            self._busy.discard(key)
            self._unhold(notice_id, key[0])
            if key in self._queues:
                self._make_ready(key, self._queues[key])  # the message's next notice
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox: a delivery failed unexpectedly", exc_info=task.exception())
            self._wake.set()

        return done

    # -- recording (a group commit) -------------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        """Record what was done within ``flush_pause`` in one transaction. Until then a delivered notice stays
        pending and leased: after a crash its next attempt finds the posted message. 50 ms rather than 10: on
        PostgreSQL a recording is four round trips, and the benchmark's flows needed 0.34 recordings each instead
        of 0.57. 200 ms rather than 50 (2026-11-28, alternating, 3 rounds at 5 in flight on PostgreSQL): its CPU per
        flow 4.43 -> 3.83-3.93 ms, both DMs 1.45x -> 1.34x and 1.39x -> 1.33x the baseline; 500 ms saved little more
        (3.80) and makes each recording a longer statement; a crash leaves more deliveries to look for in Slack."""
        if not self._unrecorded():
            return
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_after_pause(), name="outbox-flush")

    async def _flush_after_pause(self) -> None:
        # What is done while a flush is recording goes into the next one: no other flush is scheduled meanwhile.
        while self._unrecorded():
            await asyncio.sleep(self.flush_pause)
            try:
                await self._flush()
            except Exception:  # the notices stay leased; their next attempt finds the posted messages
                log.exception("outbox: recording deliveries failed")
                return

    def _unrecorded(self) -> bool:
        return bool(self._delivered or self._superseded or self._released or self._naming)

    async def _flush(self) -> None:
        async with self._flush_lock:
            done, self._delivered = self._delivered, []
            superseded, self._superseded = self._superseded, []
            released, self._released = self._released, []
            names, self._naming = self._naming, {}
            if done or superseded or released:
                await delivery.notices_delivered(
                    uow=self.uow(), deliveries=done, superseded=superseded, released=released
                )
            if names:  # a unit of their own: with the deliveries', that one statement would be four round trips
                await delivery.name_approvers(uow=self.uow(), names=names)
            if any(d.notice.maybe_delivered_before for d in done):
                self._claim_soon()  # a recovered notice is recorded: the next of its message may wait in the database

    def _claim_soon(self) -> None:
        self._claim_now = True
        self._wake.set()

    # -- one delivery -------------------------------------------------------------------------------------------

    async def _deliver(self, notice: Claimed) -> None:
        try:
            view, refs = await self._context(notice)
            placed = await self._perform(notice, view, refs)
        except Skip as skip:
            await delivery.notice_skipped(uow=self.uow(), notice=notice, why=str(skip))
        except SlackApiError as exc:
            await self._on_slack_error(notice, exc)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            await self._retry(notice, f"no answer from Slack ({type(exc).__name__})")
        except Exception as exc:
            log.exception("outbox: delivering %s failed unexpectedly", notice.dedupe_key)
            await self._retry(notice, f"unexpected error ({type(exc).__name__})")
        else:
            if placed is not None:
                purpose, channel, ts = placed
                self._refs.setdefault(notice.request_id, {})[purpose] = (channel, ts)
            self._delivered.append(delivery.Delivery(notice, *(placed or (None, None, None))))
            self._schedule_flush()

    async def _context(self, notice: Claimed) -> delivery.NoticeContext:
        """The newest known state of the notice's request and its messages' places; read from the database when
        this process does not know them (e.g. a message another process posted)."""
        rid = notice.request_id
        view, refs = self._views.get(rid), self._refs.get(rid, {})
        needs = _needs(notice)
        if needs == "channel" and not self.notify_channel:
            needs = None  # never posted: the delivery skips it, no need to look
        if view is None or (needs is not None and needs not in refs):
            self._see(*await delivery.notice_context(uow=self.uow(), request_id=rid))
            view, refs = self._views[rid], self._refs[rid]
        return view, refs

    async def _on_slack_error(self, notice: Claimed, exc: SlackApiError) -> None:
        status = getattr(exc.response, "status_code", 200)
        error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
        if status == 429:
            retry_after = float(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1)))
            await self._retry(notice, f"rate limited (Retry-After {retry_after:g}s)", at_least=retry_after)
        elif status >= 500 or error not in PERMANENT:
            await self._retry(notice, f"Slack answered {status} {error}".strip())
        else:
            log.error("outbox: notice %s failed for good: %s", notice.dedupe_key, error)
            await delivery.notice_failed(
                uow=self.uow(), notice=notice, error=error, tell_requester=_problem_text(notice, error)
            )

    async def _retry(self, notice: Claimed, error: str, at_least: float = 0.0) -> None:
        # The message's later notices go back to the database before the retry is scheduled, and so does any
        # handed over until then: claimed in order after this one, none overtakes it.
        self._give_back((notice.request_id, notice.target))
        delay = min(self.max_delay, self.base_delay * 2**notice.attempts) * random.uniform(0.5, 1.5)
        alive = await delivery.notice_retry(
            uow=self.uow(),
            notice=notice,
            error=error,
            delay=timedelta(seconds=max(delay, at_least)),
            max_attempts=self.max_attempts,
            tell_requester=_problem_text(notice, "Slack kept failing; an admin can retry it"),
        )
        (log.warning if alive else log.error)(
            "outbox: notice %s %s: %s", notice.dedupe_key, "will be retried" if alive else "is a dead letter", error
        )
        asyncio.get_running_loop().call_later(max(delay, at_least) if alive else 0.0, self._claim_soon)

    # -- what each notice does ------------------------------------------------------------------------------

    async def _perform(
        self, notice: Claimed, view: RequestView, refs: dict[str, tuple[str, str]]
    ) -> tuple[str, str, str] | None:
        subject = notice.subject or ""
        match notice.action:
            case n.POST_DM:
                return await self._post(notice, view, refs, f"dm:{subject}", subject, b.approver_message(view, subject))
            case n.UPDATE_DM:
                await self._update(view, refs, f"dm:{subject}", b.approver_message(view, subject))
                return None
            case n.POST_CHANNEL:
                if not self.notify_channel:
                    raise Skip("NOTIFY_CHANNEL is not set")
                return await self._post(notice, view, refs, "channel", self.notify_channel, b.channel_message(view))
            case n.UPDATE_CHANNEL:
                await self._update(view, refs, "channel", b.channel_message(view))
                return None
            case n.POST_REPLY:
                if "channel" not in refs:
                    raise Skip("the channel message was never posted")
                channel, parent = refs["channel"]
                return await self._post(
                    notice, view, refs, f"reply:{subject}", channel, b.decision_reply(view, subject), thread_ts=parent
                )
            case n.POST_OUTCOME:
                return await self._post(notice, view, refs, "outcome", view.requester_id, b.requester_outcome(view))
            case n.POST_CONFIRMATION:
                return await self._post(notice, view, refs, "confirmation", view.requester_id, b.confirmation(view))
            case n.POST_PROBLEM:
                return await self._post(
                    notice,
                    view,
                    refs,
                    f"problem:{subject}",
                    view.requester_id,
                    b.notice(":warning: " + str(notice.details.get("text", ""))),
                )
        raise Skip(f"unknown action {notice.action}")

    async def _post(
        self,
        notice: Claimed,
        view: RequestView,
        refs: dict[str, tuple[str, str]],
        purpose: str,
        channel: str,
        content: tuple[str, Sequence[Block | b.Json]],
        thread_ts: str | None = None,
    ) -> tuple[str, str, str] | None:
        if purpose in refs:
            return None  # posted and recorded already
        if notice.maybe_delivered_before:
            found = await self._find_posted(notice, channel, thread_ts)
            if found is not None:
                log.info("outbox: %s was already posted (%s %s); not posting again", notice.dedupe_key, *found)
                return purpose, *found
        text, blocks = content
        response = await self.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            metadata=b.metadata(view, notice=notice.dedupe_key),
        )
        return purpose, str(response["channel"]), str(response["ts"])

    async def _update(
        self,
        view: RequestView,
        refs: dict[str, tuple[str, str]],
        purpose: str,
        content: tuple[str, Sequence[Block | b.Json]],
    ) -> None:
        if purpose not in refs:
            raise Skip(f"no {purpose} message was ever posted")
        channel, ts = refs[purpose]
        text, blocks = content
        # The update keeps the key of the notice that posted the message: an update replaces the metadata, and a
        # retry of that post (its success not recorded before a crash) finds the message by this key.
        posted_by = b.metadata(view, notice=n.post_key(view.id, purpose))
        await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks, metadata=posted_by)

    async def _find_posted(self, notice: Claimed, channel: str, thread_ts: str | None) -> tuple[str, str] | None:
        """The message an earlier attempt posted, found by the notice key in its metadata."""
        if channel[:1] in ("U", "W"):
            channel = str((await self.client.conversations_open(users=channel))["channel"]["id"])
        oldest = f"{notice.created_at.timestamp() - 60:.6f}"
        cursor: str | None = None
        for _ in range(10):
            kwargs: dict[str, Any] = {
                "channel": channel,
                "oldest": oldest,
                "limit": 200,
                "include_all_metadata": True,
                "cursor": cursor,
            }
            if thread_ts:
                page = await self.client.conversations_replies(ts=thread_ts, **kwargs)
            else:
                page = await self.client.conversations_history(**kwargs)
            for message in page.get("messages") or []:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("notice") == notice.dedupe_key:
                    return channel, str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return None


def _version(view: RequestView) -> tuple[int, bool, datetime]:
    """Orders the states of one request: decisions only accumulate, and a closed request stays closed."""
    return len(view.decisions), view.status is not Status.PENDING, view.updated_at


def _needs(notice: Claimed) -> str | None:
    """The posted message a notice acts on (its place must be known)."""
    if notice.action == n.UPDATE_DM:
        return f"dm:{notice.subject}"
    if notice.action in (n.UPDATE_CHANNEL, n.POST_REPLY):
        return "channel"
    return None


def _problem_text(notice: Claimed, error: str) -> str | None:
    reason = REASONS.get(error, error)
    if notice.target.startswith("dm:") and notice.action == n.POST_DM:
        return (
            f"I could not message {t.user(notice.subject or '')} about your request {notice.request_id} "
            f"({reason}). The request waits for them in the bot's App Home; or cancel it and name someone else."
        )
    if notice.action == n.POST_CHANNEL:
        return f"I could not post your request {notice.request_id} to the notification channel ({reason})."
    return None
