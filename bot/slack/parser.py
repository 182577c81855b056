"""The ``/access-request`` text parser: total, pure, every failure a specific message for the person."""

from __future__ import annotations

import re
from dataclasses import dataclass

USAGE = (
    "Usage: `/access-request &lt;resource&gt; @approver1 @approver2 [for 4h] &lt;justification&gt;`\n"
    "Or: `/access-request` alone for a form; `list [mine|todo|pending|approved|denied|cancelled|expired] [page]`, "
    "`status &lt;id&gt;`, `cancel &lt;id&gt;`, `help`. Admins: `list all`, `export &lt;id&gt;`, `outbox [retry]`."
)
LIST_FILTERS = ("mine", "todo", "pending", "approved", "denied", "cancelled", "expired", "all")
SUBCOMMANDS = ("help", "list", "status", "cancel", "export", "outbox")

USER = re.compile(r"<@([UW][A-Z0-9]{1,30})(?:\|[^<>]*)?>")
TOKEN = re.compile(r"<([^<>]*)>")
BARE_AT = re.compile(r"(?<![\w<])@([\w.\-]+)")
DURATION = re.compile(r"^for\s+(\d{1,6})\s*(m|min|mins|minutes?|h|hrs?|hours?|d|days?)\b[\s,:;-]*", re.I)
REQUEST_ID = re.compile(r"^AR-[A-Z0-9]{4,12}$")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
UNIT_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class OpenForm:
    pass


@dataclass(frozen=True)
class ListRequests:
    filter: str = "mine"
    page: int = 1


@dataclass(frozen=True)
class ShowStatus:
    request_id: str


@dataclass(frozen=True)
class Cancel:
    request_id: str


@dataclass(frozen=True)
class Export:
    """Admins: a request's whole audit trail."""

    request_id: str


@dataclass(frozen=True)
class Outbox:
    """Admins: notices Slack did not accept; ``retry`` queues them again."""

    retry: bool = False


@dataclass(frozen=True)
class Create:
    resource: str
    approver_ids: tuple[str, ...]
    justification: str
    duration_minutes: int | None = None


@dataclass(frozen=True)
class Invalid:
    message: str


Command = Help | OpenForm | ListRequests | ShowStatus | Cancel | Export | Outbox | Create | Invalid


def parse(text: str, *, approvers: int = 2) -> Command:
    text = CONTROL.sub(" ", text or "").strip()
    if not text:
        return OpenForm()
    if not USER.search(text):
        first, _, rest = text.partition(" ")
        if first.lower() in SUBCOMMANDS:
            return _subcommand(first.lower(), rest.split())
        return Invalid(_not_people(text) or f"Name {approvers} approvers as @mentions after the resource.\n{USAGE}")
    return _create(text, approvers)


def parse_duration(text: str) -> int | None:
    """``4h``, ``30m``, ``2 days`` -> minutes; None when ``text`` is not a duration."""
    match = DURATION.match("for " + text.strip())
    if not match or match.end() < len(text.strip()) + 4:
        return None
    return int(match.group(1)) * UNIT_MINUTES[match.group(2)[0].lower()] or None  # "0m" is no duration


def _subcommand(name: str, args: list[str]) -> Command:
    if name == "help":
        return Help()
    if name == "list":
        words = [a.lower() for a in args]
        page = 1
        if words and words[-1].isdigit() and len(words[-1]) <= 6:
            page = max(1, int(words.pop()))
        if len(words) > 1 or (words and words[0] not in LIST_FILTERS):
            return Invalid(f"`list` takes one of {', '.join(LIST_FILTERS)}, and a page number.\n{USAGE}")
        return ListRequests(words[0] if words else "mine", page)
    if name == "outbox":
        if [a.lower() for a in args] not in ([], ["retry"]):
            return Invalid("`outbox` lists notices Slack did not accept; `outbox retry` queues them again.")
        return Outbox(retry=bool(args))
    if len(args) != 1:
        return Invalid(f"`{name}` takes one request id, e.g. `{name} AR-7K2M9QXD`.\n{USAGE}")
    request_id = args[0].strip("`*_").upper()
    if not REQUEST_ID.match(request_id):
        return Invalid(f"`{_shown(args[0])}` is not a request id; ids look like `AR-7K2M9QXD`.")
    if name == "status":
        return ShowStatus(request_id)
    return Cancel(request_id) if name == "cancel" else Export(request_id)


def _not_people(text: str) -> str | None:
    """Why what was typed where people belong is not people; None if nothing specific is wrong."""
    for token in TOKEN.findall(text):
        if token.startswith("#"):
            name = _shown(token.split("|")[-1].lstrip("#"))
            return f"Approvers must be people, not channels: replace `#{name}` with @someone.\n{USAGE}"
        if token.startswith("!subteam"):
            return f"Approvers must be people, not user groups: replace {_label(token)} with @someone.\n{USAGE}"
        if token.startswith("!"):
            return f"Approvers must be people: `@{token[1:].split('|')[0]}` notifies a whole channel.\n{USAGE}"
        if token.startswith("mailto:"):
            return f"Name approvers as @mentions, not email addresses: type @ and pick them from the list.\n{USAGE}"
    bare = BARE_AT.search(text)
    if bare:
        return (
            f"I couldn't recognise `@{_shown(bare.group(1))}` as a Slack user: type @ and pick each approver "
            f"from the list so Slack sends a mention.\n{USAGE}"
        )
    return None


def _create(text: str, approvers: int) -> Command:
    mentions = list(USER.finditer(text))
    ids = tuple(m.group(1) for m in mentions)
    if len(mentions) != approvers:
        not_people = _not_people(USER.sub("", text))
        if not_people:
            return Invalid(not_people)
        return Invalid(f"Name exactly {approvers} approvers; you named {len(mentions)}.\n{USAGE}")
    resource = text[: mentions[0].start()].strip()
    between = text[mentions[0].end() : mentions[-1].start()]
    justification = text[mentions[-1].end() :].strip()
    if re.sub(r"(?:\s|,|&|\band\b)+", "", USER.sub("", between), flags=re.I):
        return Invalid(f"Put the approvers next to each other, between the resource and the justification.\n{USAGE}")
    if TOKEN.search(resource) and not resource.startswith("<http"):
        return Invalid(f"The resource cannot contain mentions or channel links.\n{USAGE}")
    if not resource:
        return Invalid(f"Start with the resource you need access to, before the approvers.\n{USAGE}")
    if len(set(ids)) != len(ids):
        return Invalid(f"The approvers must be {approvers} different people; the same person is named twice.")
    duration = None
    match = DURATION.match(justification)
    if match:
        duration = int(match.group(1)) * UNIT_MINUTES[match.group(2)[0].lower()]
        justification = justification[match.end() :].strip()
    if not justification:
        return Invalid(f"Add a justification after the approvers: why do you need access?\n{USAGE}")
    return Create(resource, ids, justification, duration)


def _label(token: str) -> str:
    return "`" + _shown(token.split("|")[-1] if "|" in token else token) + "`"


def _shown(value: str) -> str:
    """User text quoted back in an error: no backticks, bounded, escaped for mrkdwn."""
    value = value.replace("`", "'")
    value = value if len(value) <= 40 else value[:39] + "…"
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
