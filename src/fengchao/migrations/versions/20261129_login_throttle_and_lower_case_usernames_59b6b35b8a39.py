"""login throttle and lower-case usernames

Revision ID: 59b6b35b8a39
Revises: c08eb4fb2f60
Create Date: 2026-11-29 17:19:16.485100
"""

import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fengchao.db

revision: str = "59b6b35b8a39"
down_revision: str | None = "c08eb4fb2f60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _normalise(username: str) -> str:
    # A copy of fengchao.auth.service.normalise_username as it was when this migration was
    # written: a migration must not change meaning when the application code does.
    return unicodedata.normalize("NFKC", username).strip().lower()


def _lower_case_usernames() -> None:
    """Store every username normalised; refuse (changing nothing) if two would collide."""
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, username FROM user_account ORDER BY id")).all()
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for user_id, username in rows:
        groups[_normalise(username)].append((user_id, username))
    clashes = {name: found for name, found in groups.items() if len(found) > 1}
    if clashes:
        listed = "; ".join(
            " / ".join(f"{username!r} (id {user_id})" for user_id, username in found)
            + f" → {name!r}"
            for name, found in sorted(clashes.items())
        )
        raise RuntimeError(
            "用户名不区分大小写后会重复，请先改名再升级 (usernames would collide once "
            f"lower-cased; rename one of each pair, e.g. UPDATE user_account SET username = "
            f"'...' WHERE id = N, then upgrade again): {listed}"
        )
    for name, [(user_id, username)] in groups.items():
        if name != username:
            connection.execute(
                sa.text("UPDATE user_account SET username = :name WHERE id = :id"),
                {"name": name, "id": user_id},
            )


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("account", "address", name="throttlekind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", fengchao.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retry_at", fengchao.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_throttle")),
        sa.UniqueConstraint("kind", "key", name=op.f("uq_login_throttle_kind_key")),
    )
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.create_index(
            "ix_login_throttle_last_failure_at", ["last_failure_at"], unique=False
        )
    _lower_case_usernames()


def downgrade() -> None:
    # Usernames stay lower-case: their original spelling is not kept, and lower-case names
    # work with the older code too.
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.drop_index("ix_login_throttle_last_failure_at")
    op.drop_table("login_throttle")
