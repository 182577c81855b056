"""Making user text safe and short enough for Slack."""

from __future__ import annotations

from bot.domain.values import Status

ELLIPSIS = "…"
STATUS_EMOJI = {
    Status.PENDING: ":hourglass_flowing_sand:",
    Status.APPROVED: ":white_check_mark:",
    Status.DENIED: ":no_entry:",
    Status.CANCELLED: ":heavy_multiplication_x:",
    Status.EXPIRED: ":alarm_clock:",
}


def escape(text: str) -> str:
    """Escape for mrkdwn: a typed ``<!channel>``, ``<@U…>`` or ``<https://…|…>`` shows as text, pings nobody."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def safe(text: str, limit: int) -> str:
    """Escaped user text that fits ``limit`` characters once escaped (never cutting an entity in half)."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    out, size = [], 0
    for char in text:
        piece = escape(char)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + ELLIPSIS


def plain(text: str, limit: int) -> str:
    """For plain_text objects: Slack shows them literally, so only the length needs care."""
    return cut(text, limit)


def user(user_id: str) -> str:
    """A mention built from a Slack user id (ids come from Slack, never from typed text)."""
    return f"<@{user_id}>"


def duration(minutes: int | None) -> str:
    if not minutes:
        return "not specified"
    for unit, size in (("day", 1440), ("hour", 60)):
        if minutes % size == 0:
            n = minutes // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{minutes} minutes"


def status(value: Status) -> str:
    return f"{STATUS_EMOJI[value]} {value.value.capitalize()}"


def safe_chunks(text: str, limit: int, most: int) -> list[str]:
    """Escaped user text in at most ``most`` pieces of at most ``limit`` characters (one per block), never
    splitting an entity; if it still does not fit, the last piece ends in an ellipsis."""
    chunks: list[list[str]] = [[]]
    size = 0
    for piece in map(escape, text):
        if size + len(piece) > limit:
            if len(chunks) == most:
                while size + len(ELLIPSIS) > limit:
                    size -= len(chunks[-1].pop())
                chunks[-1].append(ELLIPSIS)
                break
            chunks.append([])
            size = 0
        chunks[-1].append(piece)
        size += len(piece)
    return ["".join(c) for c in chunks]
