"""``python -m bot``'s process: once started, what it loaded is kept out of the garbage collector's way, and
garbage made afterwards is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bot.slack import runner


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_what_was_loaded_is_frozen_and_new_cycles_are_still_collected(collector: None) -> None:
    runner.tune_garbage_collector()
    assert gc.get_freeze_count() > 10_000  # the modules and objects loaded so far
    assert gc.get_threshold()[0] == runner.GC_YOUNGEST
    made_later = _Node()
    gone = weakref.ref(made_later)
    del made_later
    gc.collect()
    assert gone() is None  # a cycle made after the freeze is freed
