"""``python -m bench`` ends with the issue's targets, each met or MISSED, from the run's own figures."""

from __future__ import annotations

from typing import Any

import pytest

from bench import targets


def _app(ack: float, click: float, dms: float, flows_per_second: float) -> dict[str, Any]:
    return {
        "ack": {"p50_ms": ack},
        "click_ack": {"p50_ms": click},
        "both_dms": {"p50_ms": dms},
        "flows_per_second": flows_per_second,
    }


def _run(rss_growth: float = 5.0, raw_ratio: float = 0.9, app_home_p95: float = 2.0) -> dict[str, Any]:
    return {
        "slack": {
            "5": {
                "baseline": _app(10.0, 10.0, 4.0, 100.0),
                "bot_sqlite": _app(11.0, 10.5, 5.6, 90.0),
                "bot_postgres": _app(12.0, 12.5, 8.4, 69.0),
            }
        },
        "db_postgres": {"in_flight_1": {"ratio": raw_ratio}},
        "scale_sqlite": {
            "requests": 100_000,
            **{q: {"p95_ms": 1.0} for q in ("pending_for_approver", "list_by_status_page", "status_lookup")},
            "app_home": {"p95_ms": app_home_p95},
        },
        "memory": {"rss_before_mb": 100.0, "rss_after_mb": 100.0 + rss_growth, "rss_flows": 10_000},
    }


def _lines(capsys: pytest.CaptureFixture[str], out: dict[str, Any]) -> list[str]:
    targets.report(targets.check(out))
    return capsys.readouterr().out.splitlines()


def _line(lines: list[str], what: str) -> str:
    (found,) = [line for line in lines if what in line]
    return found


def test_each_ratio_is_checked_against_its_own_limit(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(capsys, _run())
    assert _line(lines, "SQLite, 5 in flight: both DMs p50").startswith("met ")  # 1.40x <= 1.5x
    assert "1.40x" in _line(lines, "SQLite, 5 in flight: both DMs p50")
    assert _line(lines, "PostgreSQL, 5 in flight: both DMs p50").startswith("MISSED")  # 2.10x
    assert _line(lines, "PostgreSQL, 5 in flight: click p50").startswith("MISSED")  # 1.25x > 1.2x
    assert _line(lines, "PostgreSQL, 5 in flight: ack p50").startswith("met ")  # 1.2x: at the limit
    assert _line(lines, "PostgreSQL, 5 in flight: flows/s").startswith("MISSED")  # 0.69x < 0.7x
    assert lines[-1] == "11 of 14 met; missed: 3"


def test_the_database_path_scale_and_memory(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(capsys, _run(rss_growth=20.0, raw_ratio=0.35, app_home_p95=10.01))
    assert _line(lines, "PostgreSQL, approval transaction at 1 in flight").startswith("met ")  # 0.35x: at the limit
    assert _line(lines, "SQLite, app_home p95 at 100,000 requests").startswith("MISSED")
    assert _line(lines, "RSS growth over 10,000 flows").startswith("MISSED")  # under 20 MB, not 20
    assert not [line for line in lines if "PostgreSQL, pending_for_approver" in line]  # not measured: not checked


def test_the_verdicts_go_into_the_json() -> None:
    checked = targets.as_json(targets.check(_run()))
    dms = next(t for t in checked if t["what"] == "PostgreSQL, 5 in flight: both DMs p50")
    assert dms == {
        "what": dms["what"],
        "figure": pytest.approx(2.1),
        "limit": 1.5,
        "at_most": True,
        "unit": "x",
        "strict": False,
        "met": False,
    }
