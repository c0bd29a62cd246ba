"""Vision tests use no database; they run once (in the SQLite pass), not per database."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/vision/" in item.nodeid:
            item.add_marker(pytest.mark.vision)
