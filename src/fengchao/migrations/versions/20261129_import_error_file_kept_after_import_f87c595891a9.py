"""import error file kept after import

Revision ID: f87c595891a9
Revises: 8654fc6f64c2
Create Date: 2026-11-29 18:53:16.673329
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f87c595891a9"
down_revision: str | None = "8654fc6f64c2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The error file of the rows an import skipped, sealed; emptied by the purge.
    with op.batch_alter_table("import_upload", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_file", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("import_upload", schema=None) as batch_op:
        batch_op.drop_column("error_file")
