"""Publishing a person's App Home, and telling a person something wherever they clicked."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.service_layer import services
from bot.slack import forms
from bot.slack.deps import Deps


async def publish_home(client: AsyncWebClient, deps: Deps, user_id: str, notice: str | None = None) -> None:
    todo, mine = await services.home_lists(
        uow=deps.uow(), user_id=user_id, todo_limit=forms.HOME_TODO_LIMIT + 1, mine_limit=forms.HOME_MINE_LIMIT
    )
    view = forms.home(todo=todo, mine=mine.items, mine_total=mine.total, notice=notice)
    await client.views_publish(user_id=user_id, view=view)


def from_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view" and (body.get("view") or {}).get("type") == "home"


async def tell(body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond, deps: Deps, text: str) -> None:
    """Answer the person who clicked: beside the message they clicked, or at the top of their App Home."""
    if from_home(body):
        await publish_home(client, deps, body["user"]["id"], notice=text)
    elif body.get("response_url"):
        await respond(text=text, response_type="ephemeral", replace_original=False)
