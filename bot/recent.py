"""A bounded map of the most recent entries, as the process's small caches keep them."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def put_recent(mapping: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
    """Set ``key`` as the newest entry; forget the oldest beyond ``limit``."""
    mapping[key] = value
    mapping.move_to_end(key)
    while len(mapping) > limit:
        mapping.popitem(last=False)
