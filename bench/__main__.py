"""``python -m bench`` (``make bench``): every benchmark, on SQLite and PostgreSQL; prints tables, writes JSON.

python -m bench [--flows 300] [--concurrency 1,5,20] [--rounds 3] [--rss-flows 10000] [--scale 100000]
                 [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg

from bench import slack_path, targets
from bench.stats import run_apart

RESULTS = Path(__file__).resolve().parent / "results"
PG = "postgresql://postgres@127.0.0.1:5432/test"


async def _pg_database() -> str:
    name = f"bench_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(PG)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "started": time.strftime("%F %T"),
        "rounds": args.rounds,
        "scale_requests": args.scale,
    }
    db_names = ["sqlite"] if args.skip_postgres else ["sqlite", "postgres"]
    pg_names: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:

        async def url(db_name: str, name: str) -> str:
            if db_name == "sqlite":
                return f"sqlite+aiosqlite:///{tmp}/{name}.db"
            pg_names.append(await _pg_database())
            return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_names[-1]}"

        try:
            # The apps take turns, round after round: this VM's speed drifts by more than the differences measured,
            # so each figure is the median of its rounds and the ratios compare apps measured side by side.
            runs: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
            for r in range(1, args.rounds + 1):
                for c in args.concurrency:
                    print(f"Slack path, round {r} of {args.rounds}, {c} in flight: baseline (a bare Bolt app)...")
                    runs[(c, "baseline")].append(await slack_path.run("baseline", flows=args.flows, concurrency=c))
                    for db_name in db_names:
                        print(
                            f"Slack path, round {r} of {args.rounds}, {c} in flight: the bot on {db_name}...",
                            flush=True,
                        )
                        runs[(c, f"bot_{db_name}")].append(
                            await slack_path.run(
                                "bot",
                                flows=args.flows,
                                concurrency=c,
                                database_url=await url(db_name, f"slack{r}_{c}"),
                            )
                        )
            out["slack"] = {str(c): {} for c in args.concurrency}
            for (c, key), figures in runs.items():
                out["slack"][str(c)][key] = {**slack_path.median(figures), "each_round": figures}
            if args.rss_flows:
                print(f"Memory of the bot over {args.rss_flows:,} flows (SQLite)...", flush=True)
                memory = await slack_path.run(
                    "bot",
                    flows=args.flows,
                    concurrency=max(args.concurrency),
                    database_url=await url("sqlite", "memory"),
                    rss_flows=args.rss_flows,
                )
                out["memory"] = {k: memory[k] for k in ("rss_before_mb", "rss_after_mb", "rss_flows")}
            for db_name in db_names:
                print(f"Database path on {db_name}...", flush=True)
                out[f"db_{db_name}"] = await run_apart("bench.db_path", await url(db_name, "db"), 300)
                print(f"Scale ({args.scale:,} requests) on {db_name}...", flush=True)
                out[f"scale_{db_name}"] = await run_apart("bench.scale", await url(db_name, "scale"), args.scale)
        finally:
            for name in pg_names:
                await _drop(name)
    return out


def report(out: dict[str, Any]) -> None:
    for c, apps in out["slack"].items():
        _report_slack(int(c), apps, out["rounds"])
    if "memory" in out:
        r = out["memory"]
        print(
            f"RSS of the bot: {r['rss_before_mb']:.1f} MB -> {r['rss_after_mb']:.1f} MB over {r['rss_flows']:,} "
            f"more flows ({r['rss_after_mb'] - r['rss_before_mb']:+.1f} MB)"
        )
    print("\n== Approval transaction: service + Unit of Work vs the raw driver ==")
    for key in ("db_sqlite", "db_postgres"):
        for mode, r in out.get(key, {}).items():
            svc, raw = r["service"], r["raw"]
            print(
                f"{key:<12}{mode:<13} service {svc['per_second']:>7.0f}/s p50 {svc['p50_ms']:>6.2f} ms"
                f" | raw {raw['per_second']:>7.0f}/s p50 {raw['p50_ms']:>6.2f} ms | ratio {r['ratio']:.2f}"
                f" (rounds: {', '.join(f'{x:.2f}' for x in r['each_round'])})"
            )
    print(f"\n== Scale: queries on {out['scale_requests']:,} requests (ms) ==")
    for key in ("scale_sqlite", "scale_postgres"):
        r = out.get(key)
        if r:
            print(f"{key:<16} seeded in {r['seed_seconds']:.1f}s")
            for q in targets.SCALE_QUERIES:
                print(f"  {q:<22} p50 {r[q]['p50_ms']:>6.2f}  p95 {r[q]['p95_ms']:>6.2f}")


def _report_slack(concurrency: int, apps: dict[str, Any], rounds: int) -> None:
    base = apps["baseline"]
    print(
        f"\n== Slack path, {concurrency} flows in flight (ms; flows/s; CPU ms per flow: the app, the load generator"
        " + fake Slack, PostgreSQL) =="
    )
    print(
        f"{'':<14}{'ack p50':>8}{'p95':>6}{'p99':>6}{'click p50':>10}{'both DMs':>9}{'notice':>7}{'flows/s':>8}"
        f"{'ack x':>6}{'click x':>8}{'DMs x':>6}{'tput x':>7}{'CPU app':>8}{'load':>6}{'pg':>6}"
        f"{'shown':>7}{'x':>6}{'channel':>8}"
    )
    for key in ("baseline", "bot_sqlite", "bot_postgres"):
        if key not in apps:
            continue
        r = apps[key]
        ack, click, dms, notice, tput = (
            r["ack"],
            r["click_ack"]["p50_ms"],
            r["both_dms"]["p50_ms"],
            r["requester_notice"]["p50_ms"],
            r["flows_per_second"],
        )
        ratios = _ratios(base, r)
        pg = r.get("postgres_cpu_ms_per_flow")
        pg_text = "" if pg is None else f"{pg:.1f}"
        print(
            f"{key:<14}{ack['p50_ms']:>8.1f}{ack['p95_ms']:>6.0f}{ack['p99_ms']:>6.0f}{click:>10.1f}{dms:>9.1f}"
            f"{notice:>7.1f}{tput:>8.1f}{ratios[0]:>6.2f}{ratios[1]:>8.2f}{ratios[2]:>6.2f}{ratios[3]:>7.2f}"
            f"{r['app_cpu_ms_per_flow']:>8.1f}{r['harness_cpu_ms_per_flow']:>6.1f}{pg_text:>6}"
            f"{r['click_shown']['p50_ms']:>7.1f}{r['click_shown']['p50_ms'] / base['click_shown']['p50_ms']:>6.2f}"
            f"{r['channel_outcome']['p50_ms']:>8.0f}"
        )
    print(
        f"(medians of {rounds} rounds; the apps took turns; ack = the slash command's, click = an approval's ack,"
        " shown = from that click until Slack shows it in the clicker's message, and its ratio; channel = from the"
        " second approval until the notify channel's message shows the outcome)"
    )
    for key in ("bot_sqlite", "bot_postgres"):
        if key in apps:
            each = zip(base["each_round"], apps[key]["each_round"], strict=True)
            print(
                f"  {key} round by round (ack x, click x, DMs x, tput x): "
                + "; ".join(", ".join(f"{x:.2f}" for x in _ratios(b_, o)) for b_, o in each)
            )


def _ratios(base: dict[str, Any], r: dict[str, Any]) -> tuple[float, float, float, float]:
    """The app's figures over the baseline's: ack p50, click ack p50, both DMs p50, flows per second."""
    return (
        r["ack"]["p50_ms"] / base["ack"]["p50_ms"],
        r["click_ack"]["p50_ms"] / base["click_ack"]["p50_ms"],
        r["both_dms"]["p50_ms"] / base["both_dms"]["p50_ms"],
        r["flows_per_second"] / base["flows_per_second"],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--flows", type=int, default=300)
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[1, 5, 20],
        help="flows in flight, one or more (comma-separated); each is measured in every round",
    )
    parser.add_argument("--rss-flows", type=int, default=10_000)
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    figures = asyncio.run(main(parser.parse_args()))
    checked = targets.check(figures)
    figures["targets"] = targets.as_json(checked)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(figures, indent=2, default=str))
    report(figures)
    targets.report(checked)
    print(f"\nFigures written to {RESULTS / 'latest.json'}")
