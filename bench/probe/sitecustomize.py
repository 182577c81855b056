"""``bench.timeline``'s probe, loaded into an app's process (bot or baseline) through PYTHONPATH: when each slash
command reached the app, when its users.info calls went out and came back, when each approver's DM was handed to
slack_sdk and when its request was written to the socket; in the bot, when each new request's statement was sent
and answered, and every step of the event loop (what the loop ran while that statement was out). Written as JSON to
``$BENCH_TIMELINE.<pid>`` as the process ends. Python imports a ``sitecustomize`` module found on its path at
start; without BENCH_TIMELINE in the environment this one does nothing."""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import json
import os
import signal
import time
from typing import Any

_OUT = os.environ.get("BENCH_TIMELINE")
_COMMANDS: list[dict[str, Any]] = []  # per slash command: its text, arrival, users.info calls
_DMS: dict[str, dict[str, float]] = {}  # per "request id/channel": the DM's call
_STORED: dict[str, float] = {}  # per request id (the bot only): when its notices were handed to the dispatcher
_STARTED: dict[str, float] = {}  # per "request id/approver" (the bot only): when its DM's delivery started
_REQUEST: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("request", default=None)
_CALL: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("call", default=None)
# The bot only, on time.perf_counter(): each new request's first statement (sent, answered), and the event loop's
# steps of 20 us or more (start, duration, what ran: a task's coroutine or the callback).
_STATEMENTS: list[tuple[float, float]] = []
_STEPS: list[tuple[float, float, str]] = []
_STORE: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("store", default=None)


def _install() -> None:
    import aiohttp.client_reqrep
    import slack_bolt.async_app
    from slack_sdk.web.async_base_client import AsyncBaseClient

    dispatch = slack_bolt.async_app.AsyncApp.async_dispatch
    api_call = AsyncBaseClient.api_call
    send = aiohttp.client_reqrep.ClientRequest.send
    write_bytes = aiohttp.client_reqrep.ClientRequest.write_bytes

    async def timed_dispatch(self: Any, req: Any) -> Any:
        if isinstance(req.body, dict) and req.body.get("command"):
            command = {"arrived": time.time(), "text": req.body.get("text", ""), "users_info": []}
            _COMMANDS.append(command)
            _REQUEST.set(command)  # the listener's task is started from here: it sees this
        return await dispatch(self, req)

    async def timed_call(self: Any, api_method: str, **kwargs: Any) -> Any:
        call = {"start": time.time()}
        _CALL.set(call)
        try:
            return await api_call(self, api_method, **kwargs)
        finally:
            call["end"] = time.time()
            body = kwargs.get("json") or {}
            payload = (body.get("metadata") or {}).get("event_payload") or {}
            channel = str(body.get("channel", ""))
            if api_method == "users.info" and (command := _REQUEST.get()) is not None:
                command["users_info"].append(call)
            elif api_method == "chat.postMessage" and payload.get("request_id") and not body.get("thread_ts"):
                _DMS.setdefault(f"{payload['request_id']}/{channel.lstrip('D')}", call)

    async def timed_send(self: Any, conn: Any) -> Any:
        response = await send(self, conn)
        if (call := _CALL.get()) is not None and self._writer is None:  # no body, or written already
            call.setdefault("written", time.time())
        return response

    async def timed_write_bytes(self: Any, *args: Any, **kwargs: Any) -> Any:
        # aiohttp buffers a request's headers and writes its body (and them) from a task of its own, which on
        # Python 3.11 starts at the event loop's next turn: the request leaves when that task has run.
        try:
            return await write_bytes(self, *args, **kwargs)
        finally:
            if (call := _CALL.get()) is not None:
                call.setdefault("written", time.time())

    try:
        from bot.slack.dispatcher import Dispatcher
    except ImportError:  # not the bot's tree
        pass
    else:
        handed, deliver = Dispatcher.handed, Dispatcher._deliver

        def timed_handed(self: Any, leased: list[Any], *args: Any, **kwargs: Any) -> Any:
            for notice in leased:
                if notice.action == "post_dm":
                    _STORED.setdefault(notice.request_id, time.time())
            return handed(self, leased, *args, **kwargs)

        async def timed_deliver(self: Any, notice: Any) -> Any:
            if notice.action == "post_dm":
                _STARTED.setdefault(f"{notice.request_id}/{notice.subject}", time.time())
            return await deliver(self, notice)

        Dispatcher.handed = timed_handed  # type: ignore[method-assign]
        Dispatcher._deliver = timed_deliver  # type: ignore[method-assign]
        _install_store_window()
    slack_bolt.async_app.AsyncApp.async_dispatch = timed_dispatch  # type: ignore[method-assign]
    AsyncBaseClient.api_call = timed_call  # type: ignore[method-assign]
    aiohttp.client_reqrep.ClientRequest.send = timed_send  # type: ignore[method-assign]
    aiohttp.client_reqrep.ClientRequest.write_bytes = timed_write_bytes  # type: ignore[method-assign]


def _install_store_window() -> None:
    """Time each new request's first statement, and every step of the event loop (the bot's process)."""
    from bot.adapters import driver
    from bot.service_layer import services

    create, run, step = services.create_request, driver._run, asyncio.events.Handle._run

    async def timed_create(**kwargs: Any) -> Any:
        _STORE.set([])
        return await create(**kwargs)

    async def timed_run(*args: Any, **kwargs: Any) -> Any:
        times, started = _STORE.get(), time.perf_counter()
        try:
            return await run(*args, **kwargs)
        finally:
            if times is not None and not times:
                times.append(started)
                _STATEMENTS.append((started, time.perf_counter()))

    def timed_step(self: Any) -> None:
        started = time.perf_counter()
        try:
            step(self)
        finally:
            took = time.perf_counter() - started
            if took >= 20e-6:
                task = getattr(self._callback, "__self__", None)
                what = task.get_coro() if isinstance(task, asyncio.Task) else self._callback
                _STEPS.append((started, took, getattr(what, "__qualname__", type(what).__name__)))

    services.create_request = timed_create
    driver._run = timed_run
    asyncio.events.Handle._run = timed_step  # type: ignore[method-assign]


def _dump() -> None:
    with open(f"{_OUT}.{os.getpid()}", "w") as out:
        probed = {"commands": _COMMANDS, "dms": _DMS, "stored": _STORED, "started": _STARTED}
        json.dump({**probed, "statements": _STATEMENTS, "steps": _STEPS}, out)


def _on_term(*_: Any) -> None:  # the baseline has no handler of its own: SIGTERM would skip atexit
    _dump()
    os._exit(0)


if _OUT:
    _install()
    atexit.register(_dump)
    signal.signal(signal.SIGTERM, _on_term)  # the bot replaces it with its own, then exits through atexit
