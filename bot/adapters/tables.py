"""SQLModel tables. ``table=True`` models skip validation: input is validated by the domain and by the
non-table models of the service layer before anything reaches these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

UTC_TIMESTAMP = sa.DateTime(timezone=True)
OUTBOX_PENDING_ONLY = sa.text("status = 'pending'")
AWAITING_ONLY = sa.text("awaiting")


class AccessRequestRow(SQLModel, table=True):
    __tablename__ = "access_requests"
    __table_args__ = (
        sa.Index("ix_access_requests_status_created", "status", "created_at"),
        sa.Index("ix_access_requests_requester_created", "requester_id", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=16)
    requester_id: str = Field(max_length=32)
    requester_name: str = Field(default="", max_length=255)
    resource: str = Field(sa_type=sa.Text)
    justification: str = Field(sa_type=sa.Text)
    duration_minutes: int | None = None
    required_approvals: int
    status: str = Field(max_length=16)
    created_at: datetime = Field(sa_type=UTC_TIMESTAMP)
    updated_at: datetime = Field(sa_type=UTC_TIMESTAMP)
    # Set when the same submission may arrive twice (a modal's view id): the second finds the first.
    idempotency_key: str | None = Field(default=None, max_length=64, unique=True)


class ApproverRow(SQLModel, table=True):
    __tablename__ = "request_approvers"
    __table_args__ = (
        sa.Index("ix_request_approvers_user", "user_id", "request_id"),
        # "Awaiting my decision" reads only these rows: a few per person, however many requests they were ever
        # named on (it used to walk all of them and look up each request's status).
        sa.Index(
            "ix_request_approvers_awaiting",
            "user_id",
            "request_id",
            sqlite_where=AWAITING_ONLY,
            postgresql_where=AWAITING_ONLY,
        ),
    )

    request_id: str = Field(foreign_key="access_requests.id", primary_key=True, max_length=16)
    position: int = Field(primary_key=True)
    user_id: str = Field(max_length=32)
    display_name: str = Field(default="", max_length=255)
    email: str | None = Field(default=None, max_length=320)
    # True while the request is pending and this approver has not decided it (kept by the repository's save).
    awaiting: bool = Field(default=True, sa_column_kwargs={"server_default": sa.false()})


class DecisionRow(SQLModel, table=True):
    __tablename__ = "decisions"
    __table_args__ = (
        sa.UniqueConstraint("request_id", "approver_id", name="uq_decisions_request_approver"),
        sa.Index("ix_decisions_approver", "approver_id", "request_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="access_requests.id", max_length=16)
    approver_id: str = Field(max_length=32)
    verdict: str = Field(max_length=8)
    reason: str | None = Field(default=None, sa_type=sa.Text)
    decided_at: datetime = Field(sa_type=UTC_TIMESTAMP)


class AuditRow(SQLModel, table=True):
    """Append-only: the code has an insert path and no update or delete path."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_request", "request_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTC_TIMESTAMP)
    actor_id: str | None = Field(default=None, max_length=32)
    action: str = Field(max_length=64)
    request_id: str | None = Field(default=None, max_length=16)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class SlackMessageRow(SQLModel, table=True):
    """Where the bot posted about a request, so later changes update the same messages."""

    __tablename__ = "slack_messages"

    request_id: str = Field(foreign_key="access_requests.id", primary_key=True, max_length=16)
    purpose: str = Field(primary_key=True, max_length=64)
    channel_id: str = Field(max_length=32)
    ts: str = Field(max_length=32)
    posted_at: datetime = Field(sa_type=UTC_TIMESTAMP)


class ProcessedEventRow(SQLModel, table=True):
    """Slack event ids already handled: Slack retries events, each takes effect once."""

    __tablename__ = "processed_events"

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = Field(sa_type=UTC_TIMESTAMP)


class OutboxRow(SQLModel, table=True):
    """A Slack side effect owed, written in the same transaction as the change that owes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_due", "status", "next_attempt_at"),
        # The notices still owed to one message, in order: what keeps its deliveries in order. Pending ones only
        # (a few at a time, however many were ever delivered), so that the planner always takes it; queries name
        # the status as a literal, as here, or a generic plan could not use it.
        sa.Index(
            "ix_outbox_pending",
            "request_id",
            "target",
            "id",
            sqlite_where=OUTBOX_PENDING_ONLY,
            postgresql_where=OUTBOX_PENDING_ONLY,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=160, unique=True)
    request_id: str = Field(max_length=16)
    target: str = Field(max_length=64)  # messages to one target are delivered in order
    action: str = Field(max_length=32)
    subject: str | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    claims: int = 0
    next_attempt_at: datetime = Field(sa_type=UTC_TIMESTAMP)
    lease_until: datetime | None = Field(default=None, sa_type=UTC_TIMESTAMP)
    claimed_by: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_type=UTC_TIMESTAMP)
    finished_at: datetime | None = Field(default=None, sa_type=UTC_TIMESTAMP)
