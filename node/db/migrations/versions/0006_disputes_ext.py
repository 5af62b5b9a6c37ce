"""Disputes beyond the ruling: evidence, assignment, deadlines; trade events outbox and webhooks.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=512), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_webhook_subscriptions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_subscriptions_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "trade_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("p2p_order_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["p2p_order_id"],
            ["p2p_crypto_orders.id"],
            name=op.f("fk_trade_events_p2p_order_id_p2p_crypto_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trade_events")),
        sa.UniqueConstraint("seq", name=op.f("uq_trade_events_seq")),
    )
    with op.batch_alter_table("trade_events", schema=None) as batch_op:
        batch_op.create_index("ix_trade_events_order", ["p2p_order_id", "id"], unique=False)

    op.create_table(
        "p2p_dispute_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispute_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=24), nullable=False),
        sa.Column("respondent_user_id", sa.Integer(), nullable=True),
        sa.Column("response_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ruling_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_missed", sa.Boolean(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["p2p_crypto_trade_disputes.id"],
            name=op.f("fk_p2p_dispute_cases_dispute_id_p2p_crypto_trade_disputes"),
        ),
        sa.ForeignKeyConstraint(
            ["respondent_user_id"],
            ["users.id"],
            name=op.f("fk_p2p_dispute_cases_respondent_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_p2p_dispute_cases")),
        sa.UniqueConstraint("dispute_id", name=op.f("uq_p2p_dispute_cases_dispute_id")),
    )
    with op.batch_alter_table("p2p_dispute_cases", schema=None) as batch_op:
        batch_op.create_index("ix_p2p_dispute_cases_stage", ["stage"], unique=False)

    op.create_table(
        "p2p_dispute_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispute_id", sa.Integer(), nullable=False),
        sa.Column("author_user_id", sa.Integer(), nullable=False),
        sa.Column("author_role", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("file_key", sa.String(length=512), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_user_id"],
            ["users.id"],
            name=op.f("fk_p2p_dispute_evidence_author_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["p2p_crypto_trade_disputes.id"],
            name=op.f("fk_p2p_dispute_evidence_dispute_id_p2p_crypto_trade_disputes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_p2p_dispute_evidence")),
    )
    with op.batch_alter_table("p2p_dispute_evidence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_p2p_dispute_evidence_dispute_id"), ["dispute_id"], unique=False
        )

    op.create_table(
        "p2p_dispute_rulings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispute_id", sa.Integer(), nullable=False),
        sa.Column("p2p_order_id", sa.Integer(), nullable=False),
        sa.Column("arbitrator_user_id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=40), nullable=False),
        sa.Column("escrow_key", sa.String(length=128), nullable=False),
        sa.Column("buyer_bps", sa.Integer(), nullable=False),
        sa.Column("reason_hash", sa.String(length=66), nullable=False),
        sa.Column("signed_at", sa.BigInteger(), nullable=False),
        sa.Column("scheme", sa.String(length=16), nullable=False),
        sa.Column("signer_address", sa.String(length=42), nullable=True),
        sa.Column("digest", sa.String(length=66), nullable=True),
        sa.Column("signature", sa.String(length=200), nullable=True),
        sa.Column("typed_data", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["arbitrator_user_id"],
            ["users.id"],
            name=op.f("fk_p2p_dispute_rulings_arbitrator_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["p2p_crypto_trade_disputes.id"],
            name=op.f("fk_p2p_dispute_rulings_dispute_id_p2p_crypto_trade_disputes"),
        ),
        sa.ForeignKeyConstraint(
            ["p2p_order_id"],
            ["p2p_crypto_orders.id"],
            name=op.f("fk_p2p_dispute_rulings_p2p_order_id_p2p_crypto_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_p2p_dispute_rulings")),
        sa.UniqueConstraint("dispute_id", name=op.f("uq_p2p_dispute_rulings_dispute_id")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["trade_events.id"],
            name=op.f("fk_webhook_deliveries_event_id_trade_events"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "subscription_id",
            "event_id",
            name=op.f("uq_webhook_deliveries_subscription_id_event_id"),
        ),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")
    op.drop_table("webhook_deliveries")
    op.drop_table("p2p_dispute_rulings")
    with op.batch_alter_table("p2p_dispute_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_p2p_dispute_evidence_dispute_id"))
    op.drop_table("p2p_dispute_evidence")
    with op.batch_alter_table("p2p_dispute_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_p2p_dispute_cases_stage")
    op.drop_table("p2p_dispute_cases")
    with op.batch_alter_table("trade_events", schema=None) as batch_op:
        batch_op.drop_index("ix_trade_events_order")
    op.drop_table("trade_events")
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_subscriptions_user_id"))
    op.drop_table("webhook_subscriptions")
