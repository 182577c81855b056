"""Runs the bot: HTTP (aiohttp, ``POST /slack/events``, ``GET /healthz``) or Socket Mode; stops cleanly on
SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from datetime import timedelta

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.adapters.database import is_sqlite
from bot.adapters.db import Database
from bot.config import Settings
from bot.service_layer import delivery, services
from bot.slack import intake
from bot.slack.app import build_app

log = logging.getLogger("bot")
EVENTS_PATH = "/slack/events"
SOCKET_CONNECT_TIMEOUT = 30.0


class BotServer:
    """The bot, started and stopped from code (``python -m bot`` and the end-to-end tests use it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, background_checkpoints=True)
        self.http = aiohttp.ClientSession()  # for the Web API: connections are reused
        self.app, self.dispatcher = build_app(settings, self.db.uow, self.http)
        self.db.handover = self.dispatcher
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._expirer: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> None:
        await self.db.upgrade()
        self.db.start()
        if is_sqlite(self.settings.database_url):
            # SQLite has one dispatcher, this one: a lease still held is a crashed run's.
            settle = timedelta(seconds=self.settings.slack_timeout)
            released = await delivery.release_leases(uow=self.db.uow(), settle=settle)
            if released:
                log.warning(
                    "Outbox: took back %d notice(s) a previous run was delivering; trying them in %g s, when any "
                    "call it left in flight has been answered",
                    released,
                    self.settings.slack_timeout,
                )
        self.dispatcher.start()
        if self.settings.request_ttl_hours:
            self._expirer = asyncio.create_task(self._expire_stale(), name="expire-stale-requests")
        if self.settings.socket_mode:
            assert self.settings.slack_app_token is not None
            app_token = self.settings.slack_app_token.get_secret_value()
            # slack-sdk's client retries a refused token forever; ask once ourselves so a wrong one fails fast.
            await self.app.client.apps_connections_open(app_token=app_token)
            self._socket = AsyncSocketModeHandler(self.app, app_token)
            await asyncio.wait_for(self._socket.connect_async(), SOCKET_CONNECT_TIMEOUT)  # type: ignore[no-untyped-call]
            log.info("Connected to Slack over Socket Mode")
            return
        web_app = intake.routes(self.app, EVENTS_PATH)
        web_app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("Listening for Slack on http://%s:%s%s", self.settings.host, self.port, EVENTS_PATH)

    async def _expire_stale(self) -> None:
        """Expire pending requests older than REQUEST_TTL_HOURS; their messages and requesters are told."""
        older_than = timedelta(hours=self.settings.request_ttl_hours)
        while True:
            try:
                expired = await services.expire_stale(uow=self.db.uow(), older_than=older_than)
                if expired:
                    log.info("Expired %d pending request(s) older than %s", len(expired), older_than)
            except Exception:
                log.exception("expiring stale requests failed; trying again later")
            await asyncio.sleep(self.settings.expire_check_seconds)

    async def _healthz(self, _request: web.Request) -> web.Response:
        try:
            await self.db.ping()
        except Exception as exc:
            log.error("health check: database unreachable: %s", type(exc).__name__)
            return web.json_response({"ok": False, "database": "unreachable"}, status=503)
        return web.json_response({"ok": True, "mode": "socket" if self.settings.socket_mode else "http"})

    async def stop(self) -> None:
        """Stop taking requests, finish those in flight, deliver what is being delivered, close the database."""
        if self._expirer is not None:
            self._expirer.cancel()
            await asyncio.gather(self._expirer, return_exceptions=True)
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        if self._runner is not None:
            await self._runner.cleanup()  # finishes in-flight requests first
        await self.dispatcher.stop()
        await self.http.close()
        await self.db.dispose()


GC_YOUNGEST = 5000  # allocations between collections of the youngest generation (Python's default: 700)


def tune_garbage_collector() -> None:
    """Once the bot is up: what it loaded (SQLAlchemy, slack_sdk, pydantic: most of its ~130,000 objects) is moved
    out of the collector's sight (``gc.freeze``), and the youngest generation is collected every 5,000 allocations
    instead of 700. A flow allocates many short-lived objects, and each collection of the oldest generation went
    over everything loaded (~70 ms); the collector took ~0.7 ms of a flow's ~9 ms of CPU, ~0.2 ms after this.
    Refcounting still frees what has no cycle at once; cycles wait a little longer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNGEST, *gc.get_threshold()[1:])


async def run_bot(settings: Settings) -> int:
    logging.getLogger().setLevel(settings.log_level.upper())
    server = BotServer(settings)
    try:
        await server.start()
    except SlackApiError as refused:
        error = refused.response.get("error")
        print(
            f"Slack refused to connect ({error}): check SLACK_APP_TOKEN (an app-level xapp- token with "
            "connections:write); see README.md, 'Installing it in your workspace'.",
            file=sys.stderr,
        )
        await server.stop()
        return 2
    tune_garbage_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("Stopping: finishing in-flight work")
    await server.stop()
    return 0
