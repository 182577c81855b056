"""Admin-only subcommands (ADMIN_USERS): everyone's requests, a request's audit trail, the outbox."""

from __future__ import annotations

from typing import Any

from bot.domain.errors import DomainError
from bot.service_layer import delivery, services
from bot.slack import blocks as b
from bot.slack import text as t
from bot.slack.deps import Deps


class NotAdmin(DomainError):
    code = "not_admin"


async def require_admin(deps: Deps, user: str, action: str, request_id: str | None = None) -> None:
    """Refuse, and write the refusal to the audit log, unless ``user`` is one of the bot's admins."""
    if user in deps.admins:
        return
    message = f"Only the bot's admins (ADMIN_USERS) can {action}."
    await services.record_refusal(
        uow=deps.uow(), actor_id=user, action=f"admin.{action.split()[0]}", request_id=request_id, message=message
    )
    raise NotAdmin(message)


async def export(deps: Deps, user: str, request_id: str) -> tuple[str, list[Any]]:
    await require_admin(deps, user, "export a request's audit trail", request_id)
    view = await services.get(uow=deps.uow(), request_id=request_id)
    lines = [
        f"{e.at:%Y-%m-%d %H:%M:%S} UTC · {t.user(e.actor_id) if e.actor_id else 'the bot'} · `{e.action}`"
        + (f" · {t.safe(_details(e.details), 300)}" if e.details else "")
        for e in await services.audit_trail(uow=deps.uow(), request_id=request_id)
    ]
    return b.notice(f"*Audit trail of {view.id}* ({view.status.value})\n" + "\n".join(lines))


async def outbox(deps: Deps, user: str, *, retry: bool) -> tuple[str, list[Any]]:
    await require_admin(deps, user, "see or retry the outbox")
    if retry:
        count = await delivery.retry_outbox(uow=deps.uow())
        return b.notice(f"Queued {count} notice(s) again.")
    entries = await delivery.outbox_entries(uow=deps.uow(), limit=30)
    if not entries:
        return b.notice("Every notice was delivered.")
    lines = [f"`{e.id}` {e.status} · `{e.dedupe_key}` · {t.safe(e.last_error or '', 100)}" for e in entries]
    return b.notice("*Notices Slack did not accept*\n" + "\n".join(lines) + "\n`/access-request outbox retry`")


def _details(details: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in details.items() if v not in (None, "", []))
