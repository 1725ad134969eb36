"""Batches judged by several models: the versions a batch asked for (``models=all`` or a list).

One nullable column; existing batches keep NULL (one model each) and are shown as before.

Revision ID: 0004_batch_models
Revises: 0003_batches
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_batch_models"
down_revision = "0003_batches"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("batch", sa.Column("models", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("batch") as batch:
        batch.drop_column("models")
