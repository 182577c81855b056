"""approver rows say whether the request awaits that approver's decision

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 20:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AWAITING_ONLY = sa.text("awaiting")


def upgrade() -> None:
    with op.batch_alter_table("request_approvers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("awaiting", sa.Boolean(), server_default=sa.false(), nullable=False))
    # Existing rows: pending requests this approver has not decided yet.
    op.execute(
        "UPDATE request_approvers SET awaiting = TRUE WHERE request_id IN "
        "(SELECT id FROM access_requests WHERE status = 'PENDING') AND NOT EXISTS "
        "(SELECT 1 FROM decisions WHERE decisions.request_id = request_approvers.request_id "
        "AND decisions.approver_id = request_approvers.user_id)"
    )
    with op.batch_alter_table("request_approvers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_request_approvers_awaiting",
            ["user_id", "request_id"],
            unique=False,
            sqlite_where=AWAITING_ONLY,
            postgresql_where=AWAITING_ONLY,
        )


def downgrade() -> None:
    with op.batch_alter_table("request_approvers", schema=None) as batch_op:
        batch_op.drop_index("ix_request_approvers_awaiting")
        batch_op.drop_column("awaiting")
