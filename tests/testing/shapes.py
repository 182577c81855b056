"""Compare a JSON value's keys and types with one of Slack's recorded shape files."""

from __future__ import annotations

import json
from typing import Any

from tests.reference import slack_reference

FREE_FORM = {"blocks", "event_payload", "values", "response_metadata"}  # checked elsewhere, or free-form


def sample(kind: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(slack_reference("samples", kind, f"{name}.json").read_text())
    return loaded


def _merged(items: list[Any]) -> Any:
    if items and all(isinstance(i, dict) for i in items):
        merged: dict[str, Any] = {}
        for item in items:
            merged.update(item)
        return merged
    return items[0] if items else None


def mismatches(value: Any, shape: Any, path: str = "") -> list[str]:
    """Keys in ``value`` that the shape lacks, and values whose JSON type differs from the shape's."""
    if value is None or shape is None:
        return []
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, Slack sends an object"]
        if not shape:
            return []  # recorded as {}: free-form
        problems = []
        for key, item in value.items():
            if key not in shape:
                problems.append(f"{path}.{key}: Slack does not send this key")
            elif key not in FREE_FORM:
                problems += mismatches(item, shape[key], f"{path}.{key}")
        return problems
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, Slack sends an array"]
        element = _merged(shape)
        return [p for i, item in enumerate(value) for p in mismatches(item, element, f"{path}[{i}]")]
    if type(shape) is not type(value) and not (
        isinstance(shape, int | float)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and not isinstance(shape, bool)
    ):
        return [f"{path}: {type(value).__name__}, Slack sends {type(shape).__name__}"]
    return []


def has_path(shape: Any, path: str) -> bool:
    node = shape
    for part in path.split("."):
        if isinstance(node, list):
            node = _merged(node)
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
