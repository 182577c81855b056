"""the order of a message's notices is kept through an index of pending notices only

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_ONLY = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending",
            ["request_id", "target", "id"],
            unique=False,
            sqlite_where=PENDING_ONLY,
            postgresql_where=PENDING_ONLY,
        )
        batch_op.drop_index("ix_outbox_target")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_target", ["request_id", "target", "id"], unique=False)
        batch_op.drop_index("ix_outbox_pending")
