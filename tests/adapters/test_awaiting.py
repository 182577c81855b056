"""``request_approvers.awaiting`` narrows "awaiting my decision" to a few rows per person: it must be true exactly
while the request is pending and that approver has not decided it, kept so by every change and by the migration
that introduced it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from bot.adapters import migrate
from bot.adapters.db import Database
from bot.adapters.repository import APPROVERS
from bot.domain.values import Approver
from bot.service_layer import services
from tests.databases import sqlite_url

ALICE, BOB = Approver("UALICE", "Alice"), Approver("UBOB", "Bob")


async def _awaiting(db: Database, request_id: str) -> dict[str, bool]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(APPROVERS.c.user_id, APPROVERS.c.awaiting).where(APPROVERS.c.request_id == request_id)
        )
        return {user: bool(flag) for user, flag in rows.all()}


async def _new(db: Database, resource: str) -> str:
    view = await services.create_request(
        uow=db.uow(), requester_id="UREQ", resource=resource, justification="why", approvers=[ALICE, BOB]
    )
    return view.id


async def test_the_flag_follows_decisions_and_closing(db: Database) -> None:
    # On PostgreSQL the flags move inside the status UPDATE (a CTE); on SQLite in a statement of their own.
    approved, denied, cancelled = [await _new(db, r) for r in ("a", "b", "c")]
    for rid in (approved, denied, cancelled):
        assert await _awaiting(db, rid) == {"UALICE": True, "UBOB": True}
    await services.approve(uow=db.uow(), request_id=approved, approver_id="UALICE")
    assert await _awaiting(db, approved) == {"UALICE": False, "UBOB": True}
    await services.approve(uow=db.uow(), request_id=approved, approver_id="UBOB")
    assert await _awaiting(db, approved) == {"UALICE": False, "UBOB": False}
    await services.deny(uow=db.uow(), request_id=denied, approver_id="UBOB", reason="no")
    assert await _awaiting(db, denied) == {"UALICE": False, "UBOB": False}  # one denial closes it for both
    await services.cancel(uow=db.uow(), request_id=cancelled, user_id="UREQ")
    assert await _awaiting(db, cancelled) == {"UALICE": False, "UBOB": False}
    todo = await services.pending_for_approver(uow=db.uow(), approver_id="UBOB")
    assert todo == []


async def test_the_migration_sets_the_flag_for_existing_requests(tmp_path: object) -> None:
    db = Database(sqlite_url(f"{tmp_path}/bot.db"))
    try:
        await db.upgrade()
        untouched, half, done = [await _new(db, r) for r in ("x", "y", "z")]
        await services.approve(uow=db.uow(), request_id=half, approver_id="UALICE")
        await services.approve(uow=db.uow(), request_id=done, approver_id="UALICE")
        await services.approve(uow=db.uow(), request_id=done, approver_id="UBOB")
        # Back to the schema before the flag (its downgrade drops the column), then up again: the upgrade sets it.
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: _downgrade_to(c, "0002"))
        await db.upgrade()
        assert await _awaiting(db, untouched) == {"UALICE": True, "UBOB": True}
        assert await _awaiting(db, half) == {"UALICE": False, "UBOB": True}
        assert await _awaiting(db, done) == {"UALICE": False, "UBOB": False}
    finally:
        await db.dispose()


def _downgrade_to(connection: sa.Connection, revision: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
