"""Secrets and files that hold personal data: no constant keys, private files, HSTS
behind HTTPS, production refuses weak secrets."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from fengchao.db import make_engine
from fengchao.settings import Settings

KEY_VARS = ("FENGCHAO_SECURITY__SECRET_KEY", "FENGCHAO_SECURITY__DATA_KEY")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def no_keys_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)


def test_development_generates_private_random_keys_once(
    no_keys_in_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Settings(env="development", data_dir=tmp_path / "data")
    keys = tmp_path / "data" / "keys.json"
    assert keys.exists() and _mode(keys) == 0o600
    assert _mode(tmp_path / "data") == 0o700
    assert "generated random development keys" in capsys.readouterr().err
    assert len(base64.b64decode(first.security.data_key)) == 32
    assert first.security.secret_key != "dev-insecure-secret-change-me"
    again = Settings(env="development", data_dir=tmp_path / "data")
    assert again.security.data_key == first.security.data_key  # kept, not regenerated
    assert capsys.readouterr().err == ""
    other = Settings(env="development", data_dir=tmp_path / "elsewhere")
    assert other.security.data_key != first.security.data_key  # never a shared constant


def test_production_refuses_default_short_or_missing_secrets(no_keys_in_env: None) -> None:
    data_key = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(env="production", security={"data_key": data_key})
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(env="production", security={"secret_key": "short-secret", "data_key": data_key})
    with pytest.raises(ValidationError, match="DATA_KEY"):
        Settings(env="production", security={"secret_key": "x" * 40})
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(env="production", security={"secret_key": "x" * 40, "data_key": "c2hvcnQ="})
    ok = Settings(env="production", security={"secret_key": "x" * 40, "data_key": data_key})
    assert ok.security.data_key_bytes() == base64.b64decode(data_key)


def test_sqlite_database_and_its_folder_are_private(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'fengchao.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("create table t (x)")
    engine.dispose()
    assert _mode(tmp_path / "new") == 0o700
    assert _mode(tmp_path / "new" / "fengchao.db") == 0o600


def test_hsts_is_sent_when_cookies_are_secure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from fengchao import settings as settings_module
    from fengchao.app import create_app
    from fengchao.testing import throwaway_database

    monkeypatch.setenv("FENGCHAO_SECURITY__COOKIE_SECURE", "true")
    settings_module.get_settings.cache_clear()
    try:
        with throwaway_database("sqlite", tmp_path) as engine:
            client = TestClient(create_app(engine=engine), base_url="https://testserver")
            response = client.get("/login")
            assert "max-age=" in response.headers["strict-transport-security"]
            assert "Secure" in response.headers["set-cookie"]
    finally:
        settings_module.get_settings.cache_clear()
