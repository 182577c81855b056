"""an index of the pending requests, for "awaiting my decision"

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 19:58:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_ONLY = sa.text("status = 'PENDING'")


def upgrade() -> None:
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_access_requests_pending", ["id"], unique=False, sqlite_where=PENDING_ONLY, postgresql_where=PENDING_ONLY
        )


def downgrade() -> None:
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_access_requests_pending")
