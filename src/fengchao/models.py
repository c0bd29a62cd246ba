"""Imports every slice's tables so that metadata (and Alembic) sees all of them."""

from __future__ import annotations


def load_all_models() -> None:
    import fengchao.access.face_models
    import fengchao.access.models
    import fengchao.auth.models
    import fengchao.duty.models
    import fengchao.gridwork.models
    import fengchao.notify.models
    import fengchao.registry.models
    import fengchao.sampling.models
    import fengchao.tracing.models
    import fengchao.visitors.models  # noqa: F401
