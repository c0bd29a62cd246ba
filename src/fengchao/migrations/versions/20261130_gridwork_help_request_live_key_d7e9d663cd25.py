"""gridwork help request live key: a unique key held by the request a repeat within the
duplicate window gets back (rows made before stay NULL; the window check still finds them).

Revision ID: d7e9d663cd25
Revises: 794211d75bbf
Create Date: 2026-11-30 00:30:46.165561
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7e9d663cd25"
down_revision: str | None = "794211d75bbf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gridwork_help_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("live_key", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_gridwork_help_request_live_key"), ["live_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("gridwork_help_request", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_gridwork_help_request_live_key"), type_="unique")
        batch_op.drop_column("live_key")
