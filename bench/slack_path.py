"""The Slack path: slash commands and approval clicks through real signed HTTP into an app in its own
process, against the fake Slack: ack latency, time to both approvers' DMs, time from the second approval
to the requester's notice, flows per second, and the app's memory."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.stats import summary
from bot.testing import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from bot.testing.workspace import Message, Person

ROOT = Path(__file__).resolve().parents[1]
REQUESTERS = 200
NOTIFY = "CNOTIFY"  # the apps' NOTIFY_CHANNEL


class Watch:
    """Futures for the messages a flow waits for, resolved as the fake Slack records each post; and callbacks for
    the next update of a message, called as the fake Slack records it."""

    def __init__(self, slack: FakeSlack) -> None:
        self.posted: dict[tuple[str, str], asyncio.Future[float]] = defaultdict(
            lambda: asyncio.get_running_loop().create_future()
        )
        self.updates: dict[tuple[str, str], Callable[[float], None]] = {}
        self.outcomes: dict[str, Callable[[float], None]] = {}
        slack.on_post.append(self._seen)
        slack.on_update.append(self._updated)

    def on_next_update(self, message: Message, then: Callable[[float], None]) -> None:
        """Call ``then`` with the time of ``message``'s next update."""
        self.updates[(message.channel, message.ts)] = then

    def on_channel_outcome(self, rid: str, then: Callable[[float], None]) -> None:
        """Call ``then`` with the time the channel's message about ``rid`` is updated to a decided status."""
        self.outcomes[rid] = then

    def _updated(self, message: Message) -> None:
        now = time.time()
        then = self.updates.pop((message.channel, message.ts), None)
        if then is not None:
            then(now)
        payload = (message.metadata or {}).get("event_payload") or {}
        if message.channel == NOTIFY and payload.get("status") not in (None, "PENDING"):
            outcome = self.outcomes.pop(str(payload.get("request_id")), None)
            if outcome is not None:
                outcome(now)

    def _seen(self, message: Message) -> None:
        rid = ((message.metadata or {}).get("event_payload") or {}).get("request_id")
        if rid and message.thread_ts is None and message.channel.startswith("D"):
            future = self.posted[(rid, message.channel[1:])]
            if not future.done():
                future.set_result(float(message.ts))

    async def at(self, rid: str, user: str) -> float:
        return await asyncio.wait_for(self.posted[(rid, user)], 60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float | None:
    """CPU time used so far by this machine's PostgreSQL server processes (those still running), or None when
    none can be seen (a server on another machine)."""
    total, found = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            total += cpu_seconds(int(entry.name))
            found = True
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return total if found else None


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def start_app(
    kind: str,
    slack: FakeSlack,
    port: int,
    database_url: str | None,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env.update(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        PORT=str(port),
        HOST="127.0.0.1",
        NOTIFY_CHANNEL=NOTIFY,
        LOG_LEVEL="WARNING",
        MAX_OPEN_REQUESTS="100000",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    module = ["-m", "bot"] if kind == "bot" else ["-m", "bench.baseline_app"]
    if os.environ.get("BENCH_PROFILE"):
        module = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"], *module]
    log = (workdir / f"{kind}.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, *module, env=env, cwd=workdir, stdout=log, stderr=log
    )
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return process
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"{kind} did not start; see {workdir}")


QUIET = 0.25  # seconds without a Slack call that mean an app has finished its work


async def quiet(slack: FakeSlack, timeout: float = 300) -> float:
    """Wait until the app has made no Slack call for QUIET seconds; returns when its last call came. Work an
    app puts off (the bot's queued updates, the baseline's calls after its acks) counts this way."""
    deadline = time.monotonic() + timeout
    seen, last = len(slack.calls), time.perf_counter()
    while time.perf_counter() - last < QUIET:
        await asyncio.sleep(0.02)
        if len(slack.calls) != seen:
            seen, last = len(slack.calls), time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError("the app never went quiet")
    return last


async def flow(
    slack: FakeSlack, watch: Watch, i: int, out: dict[str, list[float]], record: list[dict[str, Any]] | None = None
) -> None:
    requester = f"UREQ{i % REQUESTERS}"
    sent = time.time()
    reply = await slack.slash(requester, f"db-{i} <@UALICE> <@UBOB> benchmark flow {i}")
    if "Request " not in reply.text:
        raise RuntimeError(f"unexpected answer: {reply.text}")
    rid = reply.text.split("Request ")[1].split(" ")[0]
    out["ack"].append(reply.seconds)
    dms = await asyncio.gather(watch.at(rid, "UALICE"), watch.at(rid, "UBOB"))
    out["both_dms"].append(max(dms) - sent)
    if record is not None:  # when each step happened (``bench.timeline``)
        acked = sent + reply.seconds
        record.append({"flow": i, "rid": rid, "sent": sent, "acked": acked, "UALICE": dms[0], "UBOB": dms[1]})
    messages = {u: slack.message(f"D{u}", f"{ts:.6f}") for u, ts in zip(("UALICE", "UBOB"), dms, strict=True)}
    # Slack shows nothing for a click until its message changes: when Alice's DM is next updated. Not waited for
    # here (the flow goes on as a person would): recorded as it happens.
    clicked = time.time()
    watch.on_next_update(messages["UALICE"], lambda at: out["click_shown"].append(at - clicked))
    click = await slack.click("UALICE", messages["UALICE"].snapshot(), "approve_request", rid)
    out["click_ack"].append(click.seconds)
    second = time.time()
    watch.on_channel_outcome(rid, lambda at: out["channel_outcome"].append(at - second))
    click = await slack.click("UBOB", messages["UBOB"].snapshot(), "approve_request", rid)
    out["click_ack"].append(click.seconds)
    notified = await watch.at(rid, requester)
    out["requester_notice"].append(notified - second)


async def run(
    kind: str,
    *,
    flows: int,
    concurrency: int,
    database_url: str | None = None,
    rss_flows: int = 0,
    extra_env: dict[str, str] | None = None,
    record: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run ``flows`` flows at ``concurrency`` against the bot or the baseline; returns the figures. For
    ``bench.timeline``: ``extra_env``, more of the app's environment (its probe); ``record``, each measured flow's
    times."""
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack:
            for n in range(REQUESTERS):
                slack.add_person(Person(f"UREQ{n}", f"req{n}", f"Requester {n}"))
            from bench.stats import free_port

            port = free_port()
            process = await start_app(kind, slack, port, database_url, Path(tmp), extra_env)
            slack.bot_url, slack.mode = f"http://127.0.0.1:{port}/slack/events", "http"
            watch = Watch(slack)
            try:
                await _warm_up(slack, watch, concurrency)
                out: dict[str, list[float]] = defaultdict(list)
                gate = asyncio.Semaphore(concurrency)

                async def one(i: int) -> None:
                    async with gate:
                        await flow(slack, watch, i, out, record)

                # CPU per flow of each process on the machine's cores: the app, this process (the load generator
                # and the fake Slack) and, when the app uses it, PostgreSQL.
                pg_before = postgres_cpu_seconds() if database_url and "postgresql" in database_url else None
                started, cpu, own = time.perf_counter(), cpu_seconds(process.pid), time.process_time()
                await asyncio.gather(*(one(i) for i in range(flows)))
                flows_done = time.perf_counter() - started
                elapsed = await quiet(slack) - started  # throughput counts all the work, put off or not
                cpu_ms_per_flow = (cpu_seconds(process.pid) - cpu) * 1000 / flows
                harness_ms_per_flow = (time.process_time() - own) * 1000 / flows
                pg_after = postgres_cpu_seconds() if pg_before is not None else None
                figures: dict[str, Any] = {name: summary(values) for name, values in out.items()}
                figures["flows_per_second"] = flows / elapsed
                figures["calls_after_last_flow_s"] = elapsed - flows_done
                figures["app_cpu_ms_per_flow"] = cpu_ms_per_flow
                figures["harness_cpu_ms_per_flow"] = harness_ms_per_flow
                if pg_before is not None and pg_after is not None:
                    figures["postgres_cpu_ms_per_flow"] = (pg_after - pg_before) * 1000 / flows
                if rss_flows:
                    before = rss_kb(process.pid)
                    for start in range(0, rss_flows, 1000):
                        chunk = range(start, min(start + 1000, rss_flows))
                        await asyncio.gather(*(one(flows + i) for i in chunk))
                        await quiet(slack)
                        slack.messages.clear()  # the fake's own memory is not the app's
                        slack.calls.clear()
                        watch.posted.clear()
                    figures["rss_before_mb"] = before / 1024
                    figures["rss_after_mb"] = rss_kb(process.pid) / 1024
                    figures["rss_flows"] = rss_flows
                return figures
            finally:
                process.terminate()
                await process.wait()
                await slack.close_http()


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over several runs (of each percentile, for the latency summaries)."""
    merged: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            merged[key] = {k: statistics.median(r[key][k] for r in runs) for k in value}
        elif isinstance(value, int | float):
            merged[key] = statistics.median(r[key] for r in runs)
    return merged


async def _warm_up(slack: FakeSlack, watch: Watch, concurrency: int) -> None:
    """Flows before the measured ones, as many at once as will be in flight (an app's connection pools are
    then as large as the measured load needs)."""
    out: dict[str, list[float]] = defaultdict(list)
    await asyncio.gather(*(flow(slack, watch, 100_000 + i, out) for i in range(max(10, concurrency))))
    await quiet(slack)
