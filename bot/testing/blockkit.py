"""Block Kit checks as Slack applies them: slack_sdk's own validation, plus the limits it does not check."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from bot.recent import put_recent

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_FIELD_TEXT = 2000
MAX_SECTION_TEXT = 3000
DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")


class BlockKitError(Exception):
    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def decode(value: Any) -> Any:
    """Web API arguments arrive as JSON strings (form) or as objects (JSON body)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise BlockKitError([f"[ERROR] invalid JSON: {exc}"]) from exc
    return value


def validate_blocks(blocks: Any, *, limit: int, pointer: str = "/blocks") -> list[dict[str, Any]]:
    blocks = decode(blocks)
    if not isinstance(blocks, list):
        raise BlockKitError([f"[ERROR] must be an array [json-pointer:{pointer}]"])
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"{pointer}/{i}"
        if not isinstance(block, dict):
            problems.append(f"[ERROR] must be an object [json-pointer:{where}]")
            continue
        problem = _slack_sdk_problem(block)
        if problem is UNSUPPORTED:
            problems.append(f"[ERROR] unsupported type: {block.get('type')!r} [json-pointer:{where}/type]")
            continue
        if problem is not None:
            problems.append(f"[ERROR] {problem} [json-pointer:{where}]")
        problems += _beyond_slack_sdk(block, where)
        if "block_id" in block:
            if block["block_id"] in block_ids:
                problems.append(f"[ERROR] duplicate block_id {block['block_id']!r} [json-pointer:{where}/block_id]")
            block_ids.add(block["block_id"])
    if problems:
        raise BlockKitError(problems)
    return blocks


UNSUPPORTED = "unsupported type"
CHECKED_BLOCKS = 4096  # slack_sdk's verdicts kept (``_slack_sdk_problem``)
_checked: OrderedDict[str, str | None] = OrderedDict()


def _slack_sdk_problem(block: dict[str, Any]) -> str | None:
    """What slack_sdk finds wrong with ``block`` (``UNSUPPORTED``: a type it does not know), or None. Its verdict
    rests on the block alone, so it is kept by the block's JSON for the next time the same block comes: a request's
    blocks recur in each of its messages and their updates (four in five blocks the benchmark's flows post), and
    slack_sdk's parsing and checking took a third of the fake's time, CPU that Slack spends on its own servers, not on
    the machine that runs the app."""
    try:
        key: str | None = json.dumps(block)
    except (TypeError, ValueError):  # not JSON (a caller's object): checked, not kept
        key = None
    if key is not None and key in _checked:
        _checked.move_to_end(key)
        return _checked[key]
    problem: str | None = None
    try:
        parsed = Block.parse(block)
        if parsed is None or type(parsed) is Block:
            problem = UNSUPPORTED
        else:
            parsed.to_dict()
    except (SlackObjectFormationError, AttributeError, TypeError, KeyError) as exc:
        problem = str(exc)
    if key is not None:
        put_recent(_checked, key, problem, CHECKED_BLOCKS)
    return problem


def _beyond_slack_sdk(block: dict[str, Any], where: str) -> list[str]:
    problems = []
    kind = block.get("type")
    text = block.get("text")
    if kind == "header" and (not isinstance(text, dict) or text.get("type") != "plain_text"):
        problems.append(f"[ERROR] must be plain_text [json-pointer:{where}/text/type]")
    if isinstance(text, dict) and isinstance(text.get("text"), str):
        if not text["text"]:
            problems.append(f"[ERROR] must be more than 0 characters [json-pointer:{where}/text/text]")
        if kind == "section" and len(text["text"]) > MAX_SECTION_TEXT:
            problems.append(
                f"[ERROR] must be less than {MAX_SECTION_TEXT + 1} characters [json-pointer:{where}/text/text]"
            )
    for j, field in enumerate(block.get("fields") or []):
        if isinstance(field, dict) and len(str(field.get("text", ""))) > MAX_FIELD_TEXT:
            problems.append(
                f"[ERROR] must be less than {MAX_FIELD_TEXT + 1} characters [json-pointer:{where}/fields/{j}/text]"
            )
    action_ids: set[str] = set()
    elements = list(block.get("elements") or [])
    if isinstance(block.get("accessory"), dict):
        elements.append(block["accessory"])
    if isinstance(block.get("element"), dict):
        elements.append(block["element"])
    for element in elements:
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if action_id is None:
            continue
        if action_id in action_ids:
            problems.append(f"[ERROR] duplicate action_id {action_id!r} [json-pointer:{where}/elements]")
        action_ids.add(action_id)
    return problems


def validate_metadata(metadata: Any) -> dict[str, Any]:
    metadata = decode(metadata)
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not metadata["event_type"]
        or not isinstance(metadata.get("event_payload"), dict)
    ):
        raise BlockKitError(["[ERROR] metadata needs a string event_type and an object event_payload"])
    return metadata


def visible_text(blocks: list[dict[str, Any]]) -> str:
    """What a person reads in a message's or view's blocks: texts and fields one per line, buttons as
    [Label] on a line of their own, dates as their fallback text."""
    lines: list[str] = []
    for block in blocks:
        for key in ("text", "label"):
            if isinstance(block.get(key), dict):
                lines.append(block[key].get("text", ""))
        lines += [f.get("text", "") for f in block.get("fields") or []]
        buttons = []
        for element in [*list(block.get("elements") or []), block.get("accessory") or {}]:
            if element.get("type") == "button":
                buttons.append(f"[{element['text']['text']}]")
            elif isinstance(element.get("text"), str):
                lines.append(element["text"])
        if buttons:
            lines.append(" ".join(buttons))
        if block.get("type") == "divider":
            lines.append("---")
    return DATE.sub(r"\1", "\n".join(line for line in lines if line))
