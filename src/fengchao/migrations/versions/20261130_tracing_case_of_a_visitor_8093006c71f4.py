"""tracing case of a visitor (the case's visitor pass)

Revision ID: 8093006c71f4
Revises: d7e9d663cd25
Create Date: 2026-11-30 00:01:24.330071
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8093006c71f4"
down_revision: str | None = "d7e9d663cd25"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tracing_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("visitor_pass_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracing_case", schema=None) as batch_op:
        batch_op.drop_column("visitor_pass_id")
