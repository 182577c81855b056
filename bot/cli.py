"""Command line: ``python -m bot`` runs the bot; ``migrate`` upgrades the schema; ``demo`` plays the demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pydantic import ValidationError

from bot.config import MissingSettings, Settings, database_url, invalid_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Access-request Slack bot.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sub.add_parser("migrate", help="upgrade the database schema to the latest version and exit")
    sub.add_parser("demo", help="play a scripted demo against a local fake Slack")
    outbox = sub.add_parser("outbox", help="notices Slack did not accept: list them, or queue them again")
    outbox.add_argument("action", choices=["list", "retry"])
    outbox.add_argument("ids", nargs="*", type=int, help="with retry: the notices to retry (default: all)")
    outbox.add_argument("--pending", action="store_true", help="with list: show pending notices too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    if args.command == "migrate":
        return asyncio.run(_migrate(database_url()))
    if args.command == "outbox":
        return asyncio.run(_outbox(database_url(), args.action, args.ids, args.pending))
    if args.command == "demo":
        from bot.demo import run_demo

        return asyncio.run(run_demo())
    try:
        settings = Settings()
        settings.require_slack()
    except MissingSettings as missing:
        print(missing, file=sys.stderr)
        return 2
    except ValidationError as invalid:
        print(invalid_settings(invalid), file=sys.stderr)
        return 2
    from bot.slack.runner import run_bot

    return asyncio.run(run_bot(settings))


async def _migrate(url: str) -> int:
    from bot.adapters.db import Database

    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.dispose()
    print(f"Database schema is up to date ({db.engine.url.render_as_string(hide_password=True)}).")
    return 0


async def _outbox(url: str, action: str, ids: list[int], pending: bool) -> int:
    from bot.adapters.db import Database
    from bot.service_layer import delivery

    db = Database(url)
    try:
        if action == "retry":
            count = await delivery.retry_outbox(uow=db.uow(), notice_ids=ids or None)
            print(f"Queued {count} notice(s) again; a running bot delivers them within seconds.")
            return 0
        statuses = ("dead", "failed", "pending") if pending else ("dead", "failed")
        entries = await delivery.outbox_entries(uow=db.uow(), statuses=statuses, limit=1000)
        if not entries:
            print("Nothing: every notice was delivered." if not pending else "The outbox is empty.")
        for e in entries:
            print(f"{e.id:>7}  {e.status:<7}  {e.dedupe_key:<40}  attempts={e.attempts}  {e.last_error or ''}")
        return 0
    finally:
        await db.dispose()
