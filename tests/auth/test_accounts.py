"""Accounts: the password policy, case-insensitive usernames, scopes that exist, the
migration that lower-cases old usernames, and the `fengchao users` commands."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fengchao.auth import service
from fengchao.auth.models import AuditEvent, Role, ScopeLevel, User
from fengchao.auth.passwords import password_problem
from fengchao.auth.service import AuthError, GridScope
from fengchao.migrate import upgrade
from fengchao.testing import throwaway_database
from tests.auth.conftest import database_target
from tests.conftest import PASSWORD, Grid

OLDEST = "c08eb4fb2f60"  # the revision before usernames were lower-cased


def _create(session: Session, grid: Grid, username: str, password: str = PASSWORD) -> User:
    return service.create_user(
        session=session,
        username=username,
        password=password,
        role=Role.building_lead,
        scope=GridScope(ScopeLevel.building, grid.b5.id),
    )


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("12345678", "密码太短：至少 10 位"),
        ("abc-12", "密码太短"),
        ("aaaaaaaaaaaa", "全是同一个字符"),
        ("1212121212ab", "不同的字符太少"),
        ("13812345678", "不能只有数字"),
        ("5201314520", "不能只有数字"),
        ("woaini1314", "常见密码"),
        ("Woaini1314!", "常见密码"),
        ("iloveyou2024", "常见密码"),
        ("P@ssw0rd2024", "常见密码"),
        ("qq123456789", "常见密码"),
        ("1qaz2wsx3edc", "常见密码"),
        ("88888888abcd", "常见密码"),
        ("qazwsxedcrfv", "连续或键盘上相邻"),
        ("1q2w3e4r5t6y", "连续或键盘上相邻"),
        ("!QAZ2wsx#EDC", "连续或键盘上相邻"),
        ("mnbvcxzlkjhg", "连续或键盘上相邻"),
        ("abcdefghijkl", "连续或键盘上相邻"),
        ("xyzabcxyzabc", "重复"),
        ("liuwei-mima-88", "用户名"),
    ],
)
def test_weak_password_is_refused_with_its_reason(password: str, reason: str) -> None:
    problem = password_problem(password, username="liuwei")
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    "password",
    [
        PASSWORD,  # the personas'
        "e2e-password-123",  # the browser test's
        "bench-password-1",  # the benchmarks'
        "Tr0ub4dor&3x",
        "蜂巢-宏侨社区-5号楼",
        "hello-world-2024",
    ],
)
def test_good_passwords_pass(password: str) -> None:
    assert password_problem(password, username="worker") is None


def test_create_and_reset_apply_the_policy(session: Session, grid: Grid) -> None:
    with pytest.raises(AuthError, match="密码太短：至少 10 位"):
        _create(session, grid, "zhang.wei", "12345678")
    with pytest.raises(AuthError, match="常见密码"):
        _create(session, grid, "zhang.wei", "woaini1314")
    user = _create(session, grid, "zhang.wei")
    with pytest.raises(AuthError, match="不能包含用户名"):
        service.reset_password(session=session, username="zhang.wei", password="zhang.wei-2024")
    with pytest.raises(AuthError, match="连续或键盘上相邻"):
        service.reset_password(session=session, username="Zhang.Wei", password="qazwsxedcrfv")
    service.reset_password(session=session, username="Zhang.Wei", password="Tr0ub4dor&3x")
    assert user.password_hash.startswith("$argon2")


def test_usernames_are_stored_lower_case_and_unique_ignoring_case(
    session: Session, grid: Grid
) -> None:
    user = _create(session, grid, "  Wang.Li ")
    assert user.username == "wang.li"
    for twin in ("WANG.LI", "wang.li", "ｗａｎｇ．ｌｉ"):  # the last typed full-width
        with pytest.raises(AuthError, match="已存在"):
            _create(session, grid, twin)


@pytest.mark.parametrize("level", list(ScopeLevel))
def test_unknown_scope_id_is_refused(session: Session, grid: Grid, level: ScopeLevel) -> None:
    label = {"street": "街道", "community": "社区", "compound": "小区", "building": "楼栋"}
    with pytest.raises(AuthError, match=f"没有编号为 987654 的{label[level]}"):
        service.create_user(
            session=session,
            username=f"x-{level}",
            password=PASSWORD,
            role=Role.community_worker,
            scope=GridScope(level, 987654),
        )
    assert session.scalar(select(User).where(User.username == f"x-{level}")) is None


def test_existing_scope_of_every_level_is_accepted(session: Session, grid: Grid) -> None:
    nodes = {
        ScopeLevel.street: grid.street.id,
        ScopeLevel.community: grid.community.id,
        ScopeLevel.compound: grid.park.id,
        ScopeLevel.building: grid.b6.id,
    }
    for level, node_id in nodes.items():
        service.create_user(
            session=session,
            username=f"ok-{level}",
            password=PASSWORD,
            role=Role.community_worker,
            scope=GridScope(level, node_id),
        )


def _old_user(connection: sa.Connection, username: str) -> None:
    connection.execute(
        sa.text(
            "INSERT INTO user_account (username, display_name, password_hash, role, "
            "scope_level, scope_id, active, created_at) VALUES (:u, :u, 'x', 'guard', "
            "'community', 1, true, :at)"
        ),
        {"u": username, "at": dt.datetime(2026, 11, 1, tzinfo=dt.UTC)},
    )


def test_migration_lower_cases_usernames(engine: Engine, tmp_path: Path) -> None:
    with throwaway_database(database_target(engine), tmp_path, revision=OLDEST) as db:
        with db.begin() as connection:
            for name in ("Worker", "LEAD5", "guard", " Zhang.Wei "):
                _old_user(connection, name)
        upgrade(db)
        with db.connect() as connection:
            names = connection.execute(sa.text("SELECT username FROM user_account")).scalars()
            assert sorted(names) == ["guard", "lead5", "worker", "zhang.wei"]


def test_migration_refuses_usernames_that_would_collide(engine: Engine, tmp_path: Path) -> None:
    with throwaway_database(database_target(engine), tmp_path, revision=OLDEST) as db:
        with db.begin() as connection:
            for name in ("Worker", "worker", "guard"):
                _old_user(connection, name)
        with pytest.raises(RuntimeError, match="'Worker' \\(id 1\\) / 'worker' \\(id 2\\)"):
            upgrade(db)
        # Nothing changed: the names, and the schema still at the old revision.
        with db.connect() as connection:
            names = connection.execute(sa.text("SELECT username FROM user_account")).scalars()
            assert sorted(names) == ["Worker", "guard", "worker"]
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert version.scalar() == OLDEST


def test_users_commands_refuse_bad_input_and_unlock(
    own_database: tuple[Engine, int], tmp_path: Path
) -> None:
    """`fengchao users create|list|unlock` run as an operator runs them, on a database of
    their own."""
    db, community_id = own_database
    env = {
        **os.environ,
        "FENGCHAO_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "FENGCHAO_DATA_DIR": str(tmp_path),
    }

    def fengchao(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", "from fengchao.cli import app; app()", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    create = ["users", "create", "Guard2", "--role", "guard", "--scope", "community"]
    missing = fengchao(*create, "--scope-id", "424242", "--password", PASSWORD)
    assert missing.returncode == 1 and "没有编号为 424242 的社区" in missing.stderr
    weak = fengchao(*create, "--scope-id", str(community_id), "--password", "12345678")
    assert weak.returncode == 1 and "密码太短" in weak.stderr
    made = fengchao(*create, "--scope-id", str(community_id), "--password", PASSWORD)
    assert made.returncode == 0, made.stderr

    with Session(db) as s:
        at = dt.datetime.now(dt.UTC)
        while not service.attempt_login(
            session=s, username="guard2", password="wrong-pass-00", address="10.0.0.1", now=at
        ).locked:
            at += dt.timedelta(minutes=5)
        s.commit()
    listed = fengchao("users", "list")
    assert listed.returncode == 0
    [row] = [line for line in listed.stdout.splitlines() if "guard2" in line]
    assert str(at.year) in row  # locked until …

    unlocked = fengchao("users", "unlock", "GUARD2")
    assert unlocked.returncode == 0 and "guard2 unlocked" in unlocked.stderr
    assert fengchao("users", "unlock", "nobody").returncode == 1
    with Session(db) as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "unlock"))
        assert event.username == "system" and event.detail["was_locked"] is True
        assert service.attempt_login(
            session=s, username="guard2", password=PASSWORD, address="10.0.0.1", now=at
        ).user


def test_demo_password_passes_the_policy() -> None:
    from fengchao.cli import _demo_password

    for _ in range(50):
        password = _demo_password()
        assert len(password) == 12
        for name in ("admin", "worker", "lead5", "guard"):
            assert password_problem(password, username=name) is None
