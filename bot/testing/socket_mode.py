"""The fake's Socket Mode endpoint: hello, envelopes, acks, disconnect, as Slack's websocket behaves."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from bot.testing.core import SlackCore

ACK_TIMEOUT = 3.0  # Slack's limit; after it Slack shows the person an error


class SocketModeServer:
    def __init__(self, fake: SlackCore) -> None:
        self.fake = fake
        self.tickets: set[str] = set()
        self.connections: list[web.WebSocketResponse] = []
        self.connected = asyncio.Event()
        self.acks: list[dict[str, Any]] = []
        self.envelopes: list[dict[str, Any]] = []
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.connects = 0

    def new_url(self) -> str:
        ticket = uuid.uuid4().hex
        self.tickets.add(ticket)
        return f"ws://{self.fake.base_url.removeprefix('http://')}/socket?ticket={ticket}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self.tickets:
            return web.Response(status=401, text="invalid ticket")
        self.tickets.discard(ticket)  # each URL connects once
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.append(ws)
        self.connects += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.connections),
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A0FAKEAPP"},
            }
        )
        self.connected.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_ack(json.loads(msg.data))
        finally:
            self.connections.remove(ws)
            if not self.connections:
                self.connected.clear()
        return ws

    def _on_ack(self, data: dict[str, Any]) -> None:
        self.acks.append(data)
        waiter = self._waiting.pop(str(data.get("envelope_id")), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(data)

    async def send(
        self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0, timeout: float = ACK_TIMEOUT
    ) -> dict[str, Any]:
        """Deliver an envelope and wait for its ack; returns the ack (its ``payload`` is the response)."""
        await asyncio.wait_for(self.connected.wait(), timeout=10)
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        self.envelopes.append(envelope)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[envelope_id] = waiter
        await self.connections[-1].send_json(envelope)
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiting.pop(envelope_id, None)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the bot to reconnect, as Slack does every few hours."""
        for ws in list(self.connections):
            await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}})

    async def close_all(self) -> None:
        for ws in list(self.connections):
            await ws.close()
