"""Where the time to both DMs goes: the Slack path's flows against the baseline and the bot, with a probe in each
app's process (``bench/probe``), and the p50 of each step's time since the load generator sent the slash command.
Then, for the bot, what its new requests' statements waited for: each one's round trip, and what else its event
loop ran meanwhile (on PostgreSQL the answer is read only when the loop gets to it).

python -m bench.timeline [--flows 300] [--concurrency 5] [--apps baseline,sqlite,postgres]

The probe's own cost shows in the figures (a few tenths of a millisecond on each app's): compare the apps with
each other here, and with ``make bench`` for the figures themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import slack_path
from bench.__main__ import _drop, _pg_database

PROBE = Path(__file__).resolve().parent / "probe"
STEPS = (
    ("arrived", "the slash command reaches the app (Bolt's dispatch)"),
    ("users_info_sent", "its first users.info call starts"),
    ("users_info_back", "its last users.info call has its answer"),
    ("stored", "the bot has stored and checked it (DMs handed over)"),
    ("dm1_started", "the first DM's delivery starts (the bot's dispatcher)"),
    ("dm1_call", "the first DM is handed to slack_sdk"),
    ("dm1_written", "its request is written to the socket"),
    ("dm1_posted", "Slack has it (the fake's timestamp)"),
    ("dm2_call", "the second DM is handed to slack_sdk"),
    ("dm2_written", "its request is written to the socket"),
    ("dm2_posted", "Slack has it: both DMs"),
    ("acked", "the slash command's ack is back"),
)


def steps(flow: dict[str, Any], command: dict[str, Any], probed: dict[str, Any]) -> dict[str, float]:
    """One flow's steps, in ms since it was sent; the DMs ordered by when Slack had them. The steps of the bot's
    own are not the baseline's (NaN)."""
    sent = flow["sent"]
    calls = command["users_info"]
    out = {
        "arrived": command["arrived"],
        "users_info_sent": min(c["start"] for c in calls),
        "users_info_back": max(c["end"] for c in calls),
        "acked": flow["acked"],
        "stored": probed["stored"].get(flow["rid"], math.nan),
    }
    dms = probed["dms"]
    posted = sorted((flow[user], dms[f"{flow['rid']}/{user}"], user) for user in ("UALICE", "UBOB"))
    for n, (at_slack, call, user) in enumerate(posted, start=1):
        out[f"dm{n}_call"], out[f"dm{n}_written"], out[f"dm{n}_posted"] = call["start"], call["written"], at_slack
        out[f"dm{n}_started"] = probed["started"].get(f"{flow['rid']}/{user}", math.nan)
    return {k: (v - sent) * 1000 for k, v in out.items()}


def _probed(tmp: Path, app: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """What the app's probe wrote: its slash commands by their first word (``db-<flow>``); its DMs' calls, and
    (the bot) when requests were stored and their DMs' deliveries started, its new requests' statements and its
    event loop's steps."""
    commands: dict[str, dict[str, Any]] = {}
    found: dict[str, Any] = {"dms": {}, "stored": {}, "started": {}}
    for part in tmp.glob(f"{app}.*"):
        probed = json.loads(part.read_text())
        commands.update({c["text"].split()[0]: c for c in probed["commands"]})
        for name, times in found.items():
            times.update(probed.get(name, {}))
        found["statements"] = probed.get("statements", [])
        found["steps"] = probed.get("steps", [])
    return commands, found


# What the bot's event loop ran, by the task or callback of each step.
KINDS = {
    "_install.<locals>.timed_deliver": "deliveries",  # Dispatcher._deliver, timed by the probe
    "_install_store_window.<locals>.timed_create": "the new request itself",  # services.create_request
    "AsyncioListenerRunner.run.<locals>.run_ack_function_asynchronously": "listeners (commands, clicks)",
    "RequestHandler._handle_request": "HTTP requests arriving",
    "RequestHandler.start": "HTTP requests arriving",
    "_lookup": "users.info checks",
    "resolve_approvers": "users.info checks",
    "Dispatcher._flush_after_pause": "the deliveries' group commit",
}
WINDOW = (
    ("round_trip", "the statement's round trip (p50)"),
    ("busy", "the event loop's other work meanwhile (mean)"),
    ("idle", "the event loop idle meanwhile (p50)"),
    *((kind, f"  of which {kind} (mean)") for kind in dict.fromkeys(KINDS.values())),
    ("other", "  of which the rest (mean)"),
)


def store_window(probed: dict[str, Any], flows: int) -> dict[str, float]:
    """While each new request's first statement was out (the last ``flows`` requests; ms): its round trip, and the
    other steps the bot's event loop ran meanwhile, by kind (what its answer waited for)."""
    steps = sorted(probed["steps"])
    starts = [s[0] for s in steps]
    rows = []
    for sent, back in probed["statements"][-flows:]:
        row = dict.fromkeys((k for k, _ in WINDOW), 0.0)
        for started, took, what in steps[bisect.bisect_left(starts, sent) : bisect.bisect_right(starts, back)]:
            row[KINDS.get(what, "other")] += min(took, back - started) * 1000
        row["round_trip"] = (back - sent) * 1000
        row["busy"] = sum(v for k, v in row.items() if k not in ("round_trip", "busy", "idle"))
        row["idle"] = row["round_trip"] - row["busy"]
        rows.append(row)
    if not rows:
        return {k: math.nan for k, _ in WINDOW}
    median = {"round_trip", "idle"}
    return {k: (statistics.median if k in median else statistics.mean)(r[k] for r in rows) for k, _ in WINDOW}


async def measure(app: str, flows: int, concurrency: int, tmp: Path) -> dict[str, float]:
    trace = tmp / app
    env = {"PYTHONPATH": f"{PROBE}:{slack_path.ROOT}", "BENCH_TIMELINE": str(trace)}
    record: list[dict[str, Any]] = []
    pg = await _pg_database() if app == "postgres" else None
    url = None  # the baseline has no database
    if app == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp}/timeline.db"
    elif pg is not None:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg}"
    try:
        kind = "baseline" if app == "baseline" else "bot"
        await slack_path.run(kind, flows=flows, concurrency=concurrency, database_url=url, extra_env=env, record=record)
    finally:
        if pg is not None:
            await _drop(pg)
    commands, probed = _probed(tmp, app)
    timelines = [steps(f, commands[f"db-{f['flow']}"], probed) for f in record]
    figures = {name: statistics.median(t[name] for t in timelines) for name, _ in STEPS}
    return {**figures, **({} if app == "baseline" else store_window(probed, flows))}


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        figures = {app: await measure(app, args.flows, args.concurrency, Path(tmp)) for app in args.apps}
    title = f"Time to both DMs, step by step (p50 ms since the slash command was sent; {args.concurrency} in flight)"
    print(f"\n== {title} ==")
    print(f"{'':58}" + "".join(f"{app:>10}" for app in args.apps))
    for name, what in STEPS:
        print(f"{what:58}" + "".join(f"{figures[app][name]:10.2f}" for app in args.apps))
    bots = [app for app in args.apps if app != "baseline"]
    if bots:
        print("\n== While the bot's new request's statement was out (ms per request): what its answer waited for ==")
        print(f"{'':58}" + "".join(f"{app:>10}" for app in bots))
        for name, what in WINDOW:
            print(f"{what:58}" + "".join(f"{figures[app][name]:10.2f}" for app in bots))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--apps", type=lambda s: s.split(","), default=["baseline", "sqlite", "postgres"])
    asyncio.run(main(parser.parse_args()))
