"""FakeSlack: a local Slack for tests and the demo.

Besides the Web API (see ``core``), it plays the Slack side of interactivity: slash commands, button clicks,
view submissions and App Home events go to the bot over signed HTTP or over the Socket Mode websocket, and
what the bot answers is recorded as what people see."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.testing import payloads
from bot.testing.core import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, SlackCore, text_of
from bot.testing.workspace import Ephemeral, Message

ACK_LIMIT = 3.0
__all__ = ["APP_TOKEN", "BOT_TOKEN", "SIGNING_SECRET", "FakeSlack", "Reply", "text_of"]


@dataclass(frozen=True)
class Reply:
    """The bot's answer to one delivery: HTTP status (200 for a Socket Mode ack), its body, how long it took."""

    status: int
    body: dict[str, Any] | None
    seconds: float

    @property
    def text(self) -> str:
        body = self.body or {}
        return text_of(str(body.get("text", "")), body.get("blocks") or [])


class FakeSlack(SlackCore):
    _http: aiohttp.ClientSession | None = None

    async def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        signing_secret: str | None = None,
        timestamp: int | None = None,
        to: str | None = None,
    ) -> Reply:
        started = time.monotonic()
        use_socket = self.mode == "socket" or (self.mode is None and self.socket.connections)
        if use_socket:
            ack = await self.socket.send(kind, payload, retry_attempt=retry_attempt, timeout=ACK_LIMIT + 2)
            reply = Reply(200, ack.get("payload") or None, time.monotonic() - started)
        else:
            reply = await self._post(
                kind, payload, retry_attempt, signing_secret or self.signing_secret, timestamp, started, to
            )
        if reply.seconds > ACK_LIMIT:
            self.slow_acks.append((kind, reply.seconds))
        return reply

    async def _post(
        self,
        kind: str,
        payload: dict[str, Any],
        retry_attempt: int,
        secret: str,
        timestamp: int | None,
        started: float,
        to: str | None = None,
    ) -> Reply:
        if not (to or self.bot_url):
            raise RuntimeError("the bot is neither connected over Socket Mode nor given a bot_url for HTTP")
        if kind == "slash_commands":
            body, content_type = urlencode(payload).encode(), "application/x-www-form-urlencoded"
        elif kind == "interactive":
            body = urlencode({"payload": json.dumps(payload)}).encode()
            content_type = "application/x-www-form-urlencoded"
        else:
            body, content_type = json.dumps(payload).encode(), "application/json"
        headers = {"Content-Type": content_type, **payloads.sign(secret, body, timestamp)}
        if retry_attempt:
            headers.update({"X-Slack-Retry-Num": str(retry_attempt), "X-Slack-Retry-Reason": "http_timeout"})
        return await self.post_raw(body, headers, started=started, to=to)

    async def post_raw(
        self, body: bytes, headers: dict[str, str], *, started: float | None = None, to: str | None = None
    ) -> Reply:
        """POST exactly these bytes and headers to the bot (for forged or replayed requests); ``to`` names
        another bot URL than ``bot_url`` (e.g. a second replica)."""
        started = time.monotonic() if started is None else started
        if self._http is None:
            self._http = aiohttp.ClientSession()
        url = to or self.bot_url
        assert url
        async with self._http.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=ACK_LIMIT + 2)
        ) as response:
            raw = await response.text()
            parsed: dict[str, Any] | None = None
            if raw:
                try:
                    loaded = json.loads(raw)
                    parsed = loaded if isinstance(loaded, dict) else {"text": raw}
                except ValueError:
                    parsed = {"text": raw}
            return Reply(response.status, parsed, time.monotonic() - started)

    async def close_http(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- what people do -------------------------------------------------------------------------------------

    async def slash(self, user_id: str, text: str, *, channel_id: str = "CGENERAL", to: str | None = None) -> Reply:
        """``user_id`` types ``/access-request <text>``; the ack's answer is shown to them alone."""
        payload = payloads.slash_command(self, user_id, text, channel_id=channel_id)
        reply = await self.deliver("slash_commands", payload, to=to)
        body = reply.body or {}
        if body.get("text") or body.get("blocks"):
            self.ephemerals.append(
                Ephemeral(user_id, channel_id, str(body.get("text", "")), body.get("blocks") or [], "ack")
            )
        return reply

    async def click(
        self, user_id: str, message: Message, action_id: str, value: str | None = None, *, to: str | None = None
    ) -> Reply:
        """``user_id`` presses the button ``action_id`` on a message they can see."""
        payload = payloads.block_actions_from_message(self, user_id, message, action_id, value)
        return await self.deliver("interactive", payload, to=to)

    async def click_home(self, user_id: str, action_id: str, value: str | None = None) -> Reply:
        home = self.homes.get(user_id)
        assert home is not None, f"{user_id} has no App Home published"
        return await self.deliver(
            "interactive", payloads.block_actions_from_view(self, user_id, home, action_id, value)
        )

    async def submit(
        self, user_id: str, view: dict[str, Any], values: dict[str, Any], *, to: str | None = None
    ) -> Reply:
        """``user_id`` fills in the modal and presses its submit button."""
        reply = await self.deliver("interactive", payloads.view_submission(self, user_id, view, values), to=to)
        action = (reply.body or {}).get("response_action")
        stored = self.views.get(view["id"])
        if stored is not None:
            if action == "errors":
                stored["errors"] = (reply.body or {}).get("errors", {})
            elif action == "update":
                self.views[view["id"]] = {**reply.body["view"], "id": view["id"], "user": user_id}  # type: ignore[index]
            elif action != "push":
                del self.views[view["id"]]  # the modal closes
        return reply

    async def open_home(self, user_id: str, *, event_id: str | None = None, retry_attempt: int = 0) -> Reply:
        return await self.deliver(
            "events_api",
            payloads.app_home_opened(self, user_id, event_id=event_id),
            retry_attempt=retry_attempt,
        )
