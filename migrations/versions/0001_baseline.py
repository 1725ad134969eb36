"""Baseline: the detection table as it was before owners (what db.create_all() made).

A database file from before migrations existed is stamped with this revision
(``webapp.schema.upgrade_database``); a new one is created by it.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "detection",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=8), nullable=False),
        sa.Column("upload_name", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("frame_count", sa.Integer(), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("verdict", sa.String(length=12), nullable=True),
        sa.Column("p_fake", sa.Float(), nullable=True),
        sa.Column("frames_sampled", sa.Integer(), nullable=True),
        sa.Column("faces_found", sa.Integer(), nullable=True),
        sa.Column("n_tracks", sa.Integer(), nullable=True),
        sa.Column("processing_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_detection_sha256", "detection", ["sha256"])
    op.create_index("ix_detection_created_at", "detection", ["created_at"])
    op.create_index("ix_detection_verdict", "detection", ["verdict"])
    op.create_index("ix_detection_status", "detection", ["status"])
    op.create_index("ix_detection_sha_version", "detection", ["sha256", "model_version"])


def downgrade():
    op.drop_table("detection")
