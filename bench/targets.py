"""Issue #7's targets, checked against one run's figures (``python -m bench`` prints them last and writes them to
the JSON as ``targets``): each target with its figure, its limit and whether the figure meets it.

- the Slack path, at every concurrency and on every database: ack p50 and click p50 <= 1.2x the baseline's, both
  DMs p50 <= 1.5x, flows per second >= 0.7x (the ratios of the rounds' medians, as the tables print them);
- the approval transaction >= 0.35x the raw driver's approvals per second;
- every scale query's p95 <= 10 ms;
- the bot's RSS growing by less than 20 MB over the memory run's flows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SLACK = (  # figure, label, limit, at most (else at least)
    ("ack", "ack p50", 1.2, True),
    ("click_ack", "click p50", 1.2, True),
    ("both_dms", "both DMs p50", 1.5, True),
    ("flows_per_second", "flows/s", 0.7, False),
)
DATABASES = (("sqlite", "SQLite"), ("postgres", "PostgreSQL"))  # as the run's keys name them, as people do
SCALE_QUERIES = ("pending_for_approver", "list_by_status_page", "app_home", "status_lookup")
SCALE_P95_MS = 10.0
RAW_RATIO = 0.35
RSS_GROWTH_MB = 20.0


@dataclass(frozen=True)
class Target:
    what: str
    figure: float
    limit: float
    at_most: bool
    unit: str = "x"
    strict: bool = False  # under the limit, not at it

    @property
    def met(self) -> bool:
        if self.strict:
            return self.figure < self.limit if self.at_most else self.figure > self.limit
        return self.figure <= self.limit if self.at_most else self.figure >= self.limit

    def line(self) -> str:
        sign = ("<" if self.strict else "<=") if self.at_most else (">" if self.strict else ">=")
        verdict = "met" if self.met else "MISSED"
        return f"{verdict:<7}{self.what:<58}{self.figure:>8.2f}{self.unit:<3} (target {sign} {self.limit:g}{self.unit})"


def _value(figures: dict[str, Any], name: str) -> float:
    value = figures[name]
    return float(value["p50_ms"] if isinstance(value, dict) else value)


def check(out: dict[str, Any]) -> list[Target]:
    """Every target the run measured (a run without PostgreSQL, or without the memory run, checks what it has)."""
    found: list[Target] = []
    for concurrency, apps in out.get("slack", {}).items():
        base = apps["baseline"]
        for db, shown in DATABASES:
            if (app := apps.get(f"bot_{db}")) is not None:
                for name, label, limit, at_most in SLACK:
                    ratio = _value(app, name) / _value(base, name)
                    found.append(Target(f"{shown}, {concurrency} in flight: {label}", ratio, limit, at_most))
    for db, label in DATABASES:
        for mode, r in out.get(f"db_{db}", {}).items():
            in_flight = mode.removeprefix("in_flight_")
            found.append(
                Target(f"{label}, approval transaction at {in_flight} in flight", r["ratio"], RAW_RATIO, False)
            )
    for db, label in DATABASES:
        scale = out.get(f"scale_{db}")
        if scale:
            for query in SCALE_QUERIES:
                what = f"{label}, {query} p95 at {scale['requests']:,} requests"
                found.append(Target(what, scale[query]["p95_ms"], SCALE_P95_MS, True, "ms"))
    memory = out.get("memory")
    if memory:
        growth = memory["rss_after_mb"] - memory["rss_before_mb"]
        found.append(
            Target(f"RSS growth over {memory['rss_flows']:,} flows", growth, RSS_GROWTH_MB, True, "MB", strict=True)
        )
    return found


def report(targets: list[Target]) -> None:
    print("\n== Against the issue's targets (this run) ==")
    for target in targets:
        print(target.line())
    missed = [t for t in targets if not t.met]
    print(f"{len(targets) - len(missed)} of {len(targets)} met" + (f"; missed: {len(missed)}" if missed else ""))


def as_json(targets: list[Target]) -> list[dict[str, Any]]:
    return [{**asdict(t), "met": t.met} for t in targets]
