"""duty check-in idempotency keys: the key of the check-in and of the check-out, unique per
post, so that a retried request gets the first answer (rows made before stay NULL).

Revision ID: 3c1f2a9e7b04
Revises: 8093006c71f4
Create Date: 2026-11-30 11:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c1f2a9e7b04"
down_revision: str | None = "8093006c71f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("duty_check_in", schema=None) as batch_op:
        batch_op.add_column(sa.Column("in_key", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("out_key", sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_duty_check_in_post_id_in_key"), ["post_id", "in_key"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_duty_check_in_post_id_out_key"), ["post_id", "out_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("duty_check_in", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_duty_check_in_post_id_out_key"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_duty_check_in_post_id_in_key"), type_="unique")
        batch_op.drop_column("out_key")
        batch_op.drop_column("in_key")
