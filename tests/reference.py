"""Slack-written reference data in ../shared/slack (laid beside the checkout in CI and in sessions)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_SLACK = Path(__file__).resolve().parents[2] / "shared" / "slack"


def slack_reference(*parts: str) -> Path:
    """A file of Slack's reference data; fails in CI, skips elsewhere, when it is not there."""
    path = SHARED_SLACK.joinpath(*parts)
    if not path.exists():
        reason = f"Slack's reference data is not at {path} (expected ../shared/slack beside the checkout)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path
