"""Fault injection for the fake Slack: what the next calls of a method should suffer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    status: int = 200  # HTTP status to answer with (5xx, 429)
    error: str | None = None  # an ``ok: false`` error to answer with
    retry_after: int | None = None  # seconds, with 429
    delay: float = 0.0  # seconds before answering (then the fault's other effect, if any)
    apply_after: bool = False  # with ``delay`` only: perform the call, then delay (an answer lost in flight)

    @classmethod
    def http(cls, status: int = 500) -> Fault:
        return cls(status=status)

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> Fault:
        return cls(status=429, retry_after=retry_after, error="ratelimited")

    @classmethod
    def slack_error(cls, error: str) -> Fault:
        return cls(error=error)

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        return cls(delay=seconds)
