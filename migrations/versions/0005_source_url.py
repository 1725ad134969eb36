"""Detections made from a link: the URL the file was fetched from (see services/links.py).

One nullable column; uploaded files keep NULL.

Revision ID: 0005_source_url
Revises: 0004_batch_models
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_source_url"
down_revision = "0004_batch_models"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("detection", sa.Column("source_url", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("detection") as batch:
        batch.drop_column("source_url")
