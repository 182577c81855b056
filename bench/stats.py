"""Percentiles and small helpers for the benchmarks."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import sys
from typing import Any


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 in milliseconds."""
    ms = [v * 1000 for v in values]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "n": len(ms),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_apart(module: str, url: str, n: int) -> dict[str, Any]:
    """``python -m <module> <url> <n>`` in a process of its own (so that its timings do not depend on what the
    caller ran before); the figures it prints as JSON."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, url, str(n), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{module} failed on {url}")
    figures: dict[str, Any] = json.loads(out)
    return figures
