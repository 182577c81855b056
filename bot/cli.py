"""Command line: ``python -m bot`` runs the bot; ``migrate`` upgrades the schema; ``demo`` plays the demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.config import MissingSettings, Settings, database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Access-request Slack bot.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sub.add_parser("migrate", help="upgrade the database schema to the latest version and exit")
    sub.add_parser("demo", help="play a scripted demo against a local fake Slack")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    if args.command == "migrate":
        return asyncio.run(_migrate(database_url()))
    if args.command == "demo":
        from bot.demo import run_demo

        return asyncio.run(run_demo())
    try:
        settings = Settings()
        settings.require_slack()
    except MissingSettings as missing:
        print(missing, file=sys.stderr)
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
