"""Owners: every detection belongs to one; accounts, API tokens and share links.

Existing rows go to the "legacy" owner, which only admins see. Nothing is deleted.

Revision ID: 0002_owners
Revises: 0001_baseline
Create Date: 2026-11-23
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002_owners"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

LEGACY = "legacy"


def upgrade():
    owner = op.create_table(
        "owner",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(owner, [{"id": LEGACY, "kind": "legacy", "created_at": datetime.now(UTC)}])
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["owner.id"], name="fk_user_owner_id"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", name="uq_user_owner_id"),
        sa.UniqueConstraint("username", name="uq_user_username"),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["owner.id"], name="fk_api_token_owner_id"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name="fk_api_token_user_id", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
    )
    op.create_index("ix_api_token_owner_id", "api_token", ["owner_id"])
    op.create_table(
        "share_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("detection_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["detection_id"],
            ["detection.id"],
            name="fk_share_link_detection_id",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token", name="uq_share_link_token"),
    )
    op.create_index("ix_share_link_detection_id", "share_link", ["detection_id"])

    # Every existing detection becomes the legacy owner's, then the column is required.
    with op.batch_alter_table("detection") as batch:
        batch.add_column(
            sa.Column("owner_id", sa.String(length=32), nullable=False, server_default=LEGACY)
        )
    with op.batch_alter_table("detection") as batch:
        batch.alter_column("owner_id", server_default=None)
        batch.create_foreign_key("fk_detection_owner_id", "owner", ["owner_id"], ["id"])
        batch.create_index("ix_detection_owner_id", ["owner_id"])
        batch.create_index("ix_detection_owner_sha", ["owner_id", "sha256"])


def downgrade():
    with op.batch_alter_table("detection") as batch:
        batch.drop_index("ix_detection_owner_sha")
        batch.drop_index("ix_detection_owner_id")
        batch.drop_constraint("fk_detection_owner_id", type_="foreignkey")
        batch.drop_column("owner_id")
    op.drop_table("share_link")
    op.drop_table("api_token")
    op.drop_table("user")
    op.drop_table("owner")
