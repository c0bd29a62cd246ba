"""The models and the Alembic migrations describe the same schema."""

from __future__ import annotations

from sqlalchemy import Engine

from fengchao.migrate import schema_drift


def test_models_and_migrations_agree(engine: Engine) -> None:
    assert schema_drift(engine) == []
