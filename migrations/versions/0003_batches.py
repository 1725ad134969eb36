"""Batches: several files sent at once, one item per file (its detection, or why it was refused).

Only new tables: existing detections are untouched and belong to no batch.

Revision ID: 0003_batches
Revises: 0002_owners
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_batches"
down_revision = "0002_owners"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "batch",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["owner.id"], name="fk_batch_owner_id"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_batch_owner_id", "batch", ["owner_id"])
    op.create_index("ix_batch_created_at", "batch", ["created_at"])
    op.create_table(
        "batch_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("detection_id", sa.String(length=32), nullable=True),
        sa.Column("reused", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batch.id"], name="fk_batch_item_batch_id", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["detection_id"],
            ["detection.id"],
            name="fk_batch_item_detection_id",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_id", "position", name="uq_batch_item_position"),
    )
    op.create_index("ix_batch_item_batch_id", "batch_item", ["batch_id"])
    op.create_index("ix_batch_item_detection_id", "batch_item", ["detection_id"])


def downgrade():
    op.drop_index("ix_batch_item_detection_id", table_name="batch_item")
    op.drop_index("ix_batch_item_batch_id", table_name="batch_item")
    op.drop_table("batch_item")
    op.drop_index("ix_batch_created_at", table_name="batch")
    op.drop_index("ix_batch_owner_id", table_name="batch")
    op.drop_table("batch")
