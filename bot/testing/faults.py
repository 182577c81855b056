"""Fault injection for the fake Slack: what the next calls of a method should suffer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    status: int = 200  # HTTP status to answer with (5xx, 429)
    error: str | None = None  # an ``ok: false`` error to answer with
    retry_after: int | None = None  # seconds, with 429
    delay: float = 0.0  # seconds before answering (then the fault's other effect, if any)
    apply_after: bool = False  # the call takes effect, then the delay and the fault: an answer lost in flight

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

    @classmethod
    def lost_answer(cls, status: int = 500) -> Fault:
        """The call takes effect, but the caller gets an HTTP error: it cannot tell whether it worked."""
        return cls(status=status, apply_after=True)

    @classmethod
    def timeout(cls, seconds: float) -> Fault:
        """The call takes effect, then the answer is held back ``seconds`` (longer than the caller waits)."""
        return cls(delay=seconds, apply_after=True)
