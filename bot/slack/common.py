"""Helpers shared by the listeners: never let an error reach Slack unanswered."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_sdk.models.blocks import Block

from bot.slack import blocks as b

log = logging.getLogger("bot.slack")
APOLOGY = (
    ":warning: Something went wrong on our side and nothing was changed. Please try again; if it keeps "
    "happening, tell your Slack admin."
)

Listener = Callable[..., Awaitable[None]]


def guarded(listener: Listener) -> Listener:
    """Log any unexpected exception and still ack, so Slack gets its 200 and the person an answer."""

    @functools.wraps(listener)
    async def wrapper(**kwargs: Any) -> None:
        try:
            await listener(**kwargs)
        except Exception:
            log.exception("listener %s failed", listener.__name__)
            ack = kwargs.get("ack")
            if ack is not None and getattr(ack, "response", None) is None:
                if kwargs.get("command") is not None:
                    await ack(**reply(b.notice(APOLOGY)))
                else:
                    await ack()

    return wrapper


def reply(content: tuple[str, Sequence[Block | b.Json]]) -> dict[str, Any]:
    """Keyword arguments for ack/respond/say from a builder's (text, blocks)."""
    text, blocks = content
    return {"text": text, "blocks": b.as_dicts(blocks)}
