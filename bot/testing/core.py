"""The fake Slack's core: its server, its workspace state, the Web API and response_url, Socket Mode, and
the assertion API. It answers as Slack does, with Slack's limits and errors."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web

from bot.testing import api
from bot.testing.blockkit import visible_text
from bot.testing.faults import Fault
from bot.testing.socket_mode import SocketModeServer
from bot.testing.workspace import BOT_USER, Channel, Clock, Ephemeral, Message, Person, default_people

log = logging.getLogger(__name__)

BOT_TOKEN, APP_TOKEN, SIGNING_SECRET = "xoxb-fake-bot-token", "xapp-fake-app-token", "fake-signing-secret"


class SlackCore:
    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        signing_secret: str = SIGNING_SECRET,
        people: list[Person] | None = None,
    ) -> None:
        self.bot_token, self.app_token, self.signing_secret = bot_token, app_token, signing_secret
        self.clock = Clock()
        self.people: dict[str, Person] = {p.id: p for p in people or default_people()}
        self.channels: dict[str, Channel] = {}
        self.add_channel("CNOTIFY", "access-requests", bot_is_member=True)
        self.add_channel("COUTSIDE", "random", bot_is_member=False)
        self.add_channel("CGENERAL", "general", bot_is_member=False)
        self.messages: dict[tuple[str, str], Message] = {}
        self.deleted: list[Message] = []
        self.ephemerals: list[Ephemeral] = []
        self.views: dict[str, dict[str, Any]] = {}  # view id -> view (with "user")
        self.homes: dict[str, dict[str, Any]] = {}  # user id -> published home view
        self.triggers: dict[str, tuple[str, float, bool]] = {}  # trigger -> (user, issued, used)
        self.response_urls: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.unexpected: list[str] = []
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        # A fault for any call, chosen from its method and arguments (e.g. at random); None: no fault.
        self.chaos: Callable[[str, dict[str, Any]], Fault | None] | None = None
        self.faults_suffered: list[tuple[str, Fault]] = []
        self.on_post: list[Callable[[Message], None]] = []  # called with every message posted (benchmarks)
        self.on_update: list[Callable[[Message], None]] = []  # and with every message updated (chat.update)
        self.socket = SocketModeServer(self)
        self.bot_url: str | None = None
        self.mode: str | None = None  # "http" or "socket"; None picks Socket Mode when the bot is connected
        self.slow_acks: list[tuple[str, float]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{key}", self._response_url)
        app.router.add_get("/socket", self.socket.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        await self.socket.close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """The Web API base URL to give the bot (``SLACK_API_URL``)."""
        return f"{self.base_url}/api/"

    # -- setup and faults ----------------------------------------------------------------------------------

    def add_channel(self, channel_id: str, name: str, *, bot_is_member: bool) -> Channel:
        members = set(self.people) if not channel_id.startswith("D") else set()
        channel = Channel(channel_id, name, bot_is_member, members)
        self.channels[channel_id] = channel
        return channel

    def add_person(self, person: Person) -> None:
        self.people[person.id] = person
        for channel in self.channels.values():
            if not channel.is_im:
                channel.members.add(person.id)

    def inject(self, method: str, *faults: Fault) -> None:
        """Queue faults for the next calls of ``method`` (one call each)."""
        self.faults[method].extend(faults)

    def dm_channel(self, user_id: str) -> Channel:
        channel_id = "D" + user_id
        if channel_id not in self.channels:
            channel = Channel(channel_id, channel_id, True, {user_id, BOT_USER}, is_im=True)
            self.channels[channel_id] = channel
        return self.channels[channel_id]

    def issue_trigger(self, user_id: str) -> str:
        trigger = f"{int(time.time())}.{uuid.uuid4().hex[:12]}"
        self.triggers[trigger] = (user_id, time.monotonic(), False)
        return trigger

    def new_response_url(self, user_id: str, channel_id: str, message: tuple[str, str] | None = None) -> str:
        key = uuid.uuid4().hex
        self.response_urls[key] = {"user": user_id, "channel": channel_id, "message": message, "posts": []}
        return f"{self.base_url}/response/{key}"

    # -- assertions: what people and channels see ----------------------------------------------------------

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def channel_messages(self, channel_id: str, *, thread_ts: str | None = None) -> list[Message]:
        found = [m for (c, _), m in self.messages.items() if c == channel_id]
        if thread_ts is None:
            found = [m for m in found if m.thread_ts is None]
        else:
            found = [m for m in found if m.thread_ts == thread_ts]
        return sorted(found, key=lambda m: float(m.ts))

    def dms(self, user_id: str) -> list[Message]:
        """The bot's messages in its DM with ``user_id``, oldest first, each in its latest state."""
        return self.channel_messages("D" + user_id)

    def dm_about(self, user_id: str, request_id: str) -> Message | None:
        """The bot's DM to ``user_id`` about ``request_id`` (found by its message metadata), if any."""
        return next(
            (
                m
                for m in self.dms(user_id)
                if ((m.metadata or {}).get("event_payload") or {}).get("request_id") == request_id
            ),
            None,
        )

    def ephemerals_for(self, user_id: str) -> list[Ephemeral]:
        return [e for e in self.ephemerals if e.user == user_id]

    def last_ephemeral(self, user_id: str) -> str:
        seen = self.ephemerals_for(user_id)
        assert seen, f"{user_id} has seen no ephemeral message"
        return text_of(seen[-1].text, seen[-1].blocks)

    def message(self, channel_id: str, ts: str) -> Message:
        return self.messages[(channel_id, ts)]

    def open_views(self, user_id: str) -> list[dict[str, Any]]:
        return [v for v in self.views.values() if v["user"] == user_id and v["type"] == "modal"]

    def home(self, user_id: str) -> dict[str, Any] | None:
        return self.homes.get(user_id)

    # -- the Web API ----------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        self.calls.append((method, params))
        faults = self.faults.get(method)
        fault = faults.popleft() if faults else None
        if fault is None and self.chaos is not None:
            fault = self.chaos(method, params)
        if fault is not None:
            self.faults_suffered.append((method, fault))
        if fault is not None and not fault.apply_after:
            failed = await _suffer(fault)
            if failed is not None:
                return failed
        handler = api.HANDLERS.get(method)
        if handler is None:
            self.unexpected.append(method)
            log.error("fake Slack: the bot called unknown method %s", method)
            return web.json_response({"ok": False, "error": "unknown_method"})
        token = _bearer(request) or params.get("token")
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            wrong_kind = method == "apps.connections.open" and token == self.bot_token
            return web.json_response({"ok": False, "error": "not_allowed_token_type" if wrong_kind else "invalid_auth"})
        result = handler(self, params)
        if fault is not None and fault.apply_after:
            failed = await _suffer(fault)
            if failed is not None:
                return failed
        return web.json_response(result)

    async def _response_url(self, request: web.Request) -> web.Response:
        target = self.response_urls.get(request.match_info["key"])
        if target is None:
            return web.Response(status=404, text="expired_url")
        body = await request.json()
        target["posts"].append(body)
        self.calls.append(("response_url", body))
        message = target["message"]
        if body.get("delete_original") and message:
            self.deleted.append(self.messages.pop(message))
        elif body.get("replace_original") and message and message in self.messages:
            stored = self.messages[message]
            stored.text, stored.blocks = body.get("text", ""), body.get("blocks", [])
            stored.edits += 1
        else:
            self.ephemerals.append(
                Ephemeral(
                    target["user"],
                    target["channel"],
                    body.get("text", ""),
                    body.get("blocks") or [],
                    "response_url",
                    bool(body.get("replace_original")),
                )
            )
        return web.Response(text="ok")


async def _suffer(fault: Fault) -> web.Response | None:
    """Apply a fault: wait, then answer with its HTTP status or ``ok: false`` error, if it has one."""
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status != 200:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return web.json_response(
            {"ok": False, "error": fault.error or "fatal_error"}, status=fault.status, headers=headers
        )
    if fault.error:
        return web.json_response({"ok": False, "error": fault.error})
    return None


def text_of(text: str, blocks: list[dict[str, Any]]) -> str:
    """What a person reads: the blocks when there are any (Slack shows them instead of text)."""
    return visible_text(blocks) if blocks else text


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        raw = await request.read()
        if request.content_type == "application/json":
            params.update(json.loads(raw or b"{}"))
        else:
            params.update(parse_qsl(raw.decode(), keep_blank_values=True))
    return params
