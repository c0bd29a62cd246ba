"""Logging in: failures wait longer and longer and then lock the account, per account name
and per client address; failed logins, locks and logouts are audited; names ignore case."""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fengchao.auth import service
from fengchao.auth.models import AuditEvent, LoginSession, LoginThrottle, Role, ScopeLevel, User
from fengchao.auth.service import GridScope, LoginAttempt
from fengchao.auth.views import login_error
from fengchao.settings import get_settings
from fengchao.testing import served_app
from tests.conftest import PASSWORD, Grid, Persona

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
HERE = "10.1.2.3"
ELSEWHERE = "10.9.9.9"


def attempt(
    session: Session, username: str, password: str, at: dt.datetime, address: str = HERE
) -> LoginAttempt:
    return service.attempt_login(
        session=session, username=username, password=password, address=address, now=at
    )


def fail_until_locked(session: Session, username: str, address: str = HERE) -> dt.datetime:
    """Wrong passwords, each sent as soon as the wait allows, until the name is locked;
    returns the time of the locking attempt."""
    at = T0
    while True:
        result = attempt(session, username, "wrong-password-0", at, address)
        assert result.checked and result.user is None
        if result.locked:
            return at
        at += dt.timedelta(seconds=result.wait_seconds)


def events(session: Session, action: str, **where: object) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action)
    for column, value in where.items():
        query = query.where(getattr(AuditEvent, column) == value)
    return list(session.scalars(query.order_by(AuditEvent.id)))


def test_wrong_passwords_wait_longer_each_time_then_lock_even_the_right_password(
    session: Session, worker: Persona
) -> None:
    cfg = get_settings().login
    name = worker.user.username
    at = T0
    waits = []
    for _ in range(cfg.lock_after - 1):
        result = attempt(session, name, "wrong-password-0", at)
        assert result.checked and result.user is None and not result.locked
        waits.append(result.wait_seconds)
        if result.wait_seconds:
            # The right password is refused, unchecked, until the wait is over.
            early = attempt(session, name, PASSWORD, at + dt.timedelta(seconds=1))
            assert early.user is None and not early.checked
            assert early.wait_seconds == result.wait_seconds - 1
        at += dt.timedelta(seconds=result.wait_seconds)
    assert waits == [0, 0, 0, 2, 4, 8, 16, 32, 64]
    fourth = attempt(session, name, "wrong-password-0", T0)  # still waiting: unchecked
    assert not fourth.checked

    locking = attempt(session, name, "wrong-password-0", at)
    assert locking.locked and locking.wait_seconds == cfg.lock_minutes * 60
    assert "账号已锁定" in login_error(locking) and "请 15 分钟后再试" in login_error(locking)
    [lock] = events(session, "lock", user_id=worker.user.id)
    assert lock.detail["failures"] == cfg.lock_after and lock.detail["address"] == HERE

    during = attempt(session, name, PASSWORD, at + dt.timedelta(minutes=10))
    assert during.user is None and during.locked and not during.checked
    assert during.wait_seconds == 5 * 60
    elsewhere = attempt(session, name, PASSWORD, at + dt.timedelta(minutes=10), ELSEWHERE)
    assert elsewhere.user is None and elsewhere.locked

    after = attempt(session, name, PASSWORD, at + dt.timedelta(minutes=cfg.lock_minutes))
    assert after.user is not None and after.user.id == worker.user.id


def test_wait_message_names_the_seconds(session: Session, worker: Persona) -> None:
    for _ in range(3):
        assert login_error(attempt(session, worker.user.username, "wrong-pass-00", T0)) == (
            "用户名或密码错误"
        )
    fourth = attempt(session, worker.user.username, "wrong-pass-00", T0)
    assert login_error(fourth) == "用户名或密码错误。登录失败次数太多。请 2 秒后再试"
    refused = attempt(session, worker.user.username, PASSWORD, T0)
    assert login_error(refused) == "登录失败次数太多。请 2 秒后再试"


def test_success_clears_the_account_count(session: Session, worker: Persona) -> None:
    name = worker.user.username
    for _ in range(3):
        assert attempt(session, name, "wrong-password-0", T0).wait_seconds == 0
    assert attempt(session, name, PASSWORD, T0).user is not None
    # Three more free failures: the count started again.
    for _ in range(3):
        assert attempt(session, name, "wrong-password-0", T0).wait_seconds == 0
    assert attempt(session, name, "wrong-password-0", T0).wait_seconds == 2


def test_failures_are_forgiven_with_time(session: Session, worker: Persona) -> None:
    cfg = get_settings().login
    name = worker.user.username
    for _ in range(3):
        attempt(session, name, "wrong-password-0", T0)
    # Much later one failure has been forgiven per forgive_minutes: three free again.
    later = T0 + dt.timedelta(minutes=3 * cfg.forgive_minutes)
    for _ in range(3):
        assert attempt(session, name, "wrong-password-0", later).wait_seconds == 0
    assert attempt(session, name, "wrong-password-0", later).wait_seconds == 2


def test_another_account_from_the_same_address_is_not_locked_but_the_address_limit_is_higher(
    session: Session, worker: Persona, lead5: Persona
) -> None:
    cfg = get_settings().login
    locked_at = fail_until_locked(session, worker.user.username)
    at = locked_at + dt.timedelta(seconds=1)
    # The same address, another account: its own count, so it logs in.
    assert attempt(session, lead5.user.username, PASSWORD, at).user is not None

    # Spraying names from that address: one failure each, so no name waits, but the
    # address reaches its own (higher) limit.
    counted = cfg.lock_after
    sprayed = 0
    while counted < cfg.address_free_failures:
        result = attempt(session, f"nobody-{sprayed}", "wrong-password-0", at)
        assert result.checked and result.wait_seconds == 0
        counted += 1
        sprayed += 1
    over = attempt(session, f"nobody-{sprayed}", "wrong-password-0", at)
    assert over.checked and over.wait_seconds == 2 and over.address_limited
    assert "这个网络地址登录失败次数太多" in login_error(over)

    blocked = attempt(session, lead5.user.username, PASSWORD, at + dt.timedelta(seconds=1))
    assert blocked.user is None and not blocked.checked and blocked.address_limited
    from_elsewhere = attempt(
        session, lead5.user.username, PASSWORD, at + dt.timedelta(seconds=1), ELSEWHERE
    )
    assert from_elsewhere.user is not None
    # The lock belongs to the account, wherever the attempt comes from.
    assert attempt(session, worker.user.username, PASSWORD, at, ELSEWHERE).locked


def test_a_right_password_does_not_wipe_the_address_count(
    session: Session, worker: Persona, lead5: Persona
) -> None:
    cfg = get_settings().login
    for i in range(cfg.address_free_failures):
        attempt(session, f"nobody-{i}", "wrong-password-0", T0)
    # One good account in between takes back only its own attempt.
    assert attempt(session, lead5.user.username, PASSWORD, T0).user is not None
    over = attempt(session, "nobody-x", "wrong-password-0", T0)
    assert over.address_limited and over.wait_seconds == 2


def test_wrong_username_behaves_like_wrong_password(session: Session, worker: Persona) -> None:
    def run(name: str, address: str) -> list[tuple[bool, int, bool, bool, str]]:
        at, seen = T0, []
        for _ in range(get_settings().login.lock_after + 1):
            result = attempt(session, name, "wrong-password-0", at, address)
            seen.append(
                (
                    result.checked,
                    result.wait_seconds,
                    result.locked,
                    result.address_limited,
                    login_error(result),
                )
            )
            at += dt.timedelta(seconds=result.wait_seconds)
        return seen

    nobody = f"nobody-{uuid.uuid4().hex[:6]}"
    assert run(nobody, "10.0.0.1") == run(worker.user.username, "10.0.0.2")
    assert session.scalar(select(User).where(User.username == nobody)) is None
    # The lock of a name that is no account is not an account lock: nothing to audit. The
    # account is locked twice: a failure after the lock runs out locks it again at once.
    assert [e.user_id for e in events(session, "lock")] == [worker.user.id] * 2
    failed = events(session, "login_failed", username=nobody)
    assert len(failed) == get_settings().login.lock_after + 1
    assert {e.user_id for e in failed} == {None}


def test_typed_phone_or_id_number_is_masked_in_the_audit_log(session: Session, grid: Grid) -> None:
    for typed in ("13812345678", "11010519491231002X", "guard-123456", "lead5"):
        attempt(session, typed, "wrong-password-0", T0)
    logged = [(e.username, e.detail["address"]) for e in events(session, "login_failed")]
    assert logged == [
        ("138******78", HERE),
        ("110*************2X", HERE),
        ("guard-123456", HERE),  # a username with digits, not a phone number
        ("lead5", HERE),
    ]


def test_failed_login_login_and_logout_are_audited(
    app_client: TestClient, session: Session, worker: Persona
) -> None:
    app_client.get("/login")
    csrf = app_client.cookies.get("fc_csrf")
    name = worker.user.username
    bad = app_client.post(
        "/login", data={"username": name, "password": "wrong-password-0", "csrf_token": csrf}
    )
    assert bad.status_code == 401 and "用户名或密码错误" in bad.text
    [failed] = events(session, "login_failed")
    assert failed.user_id == worker.user.id and failed.username == name
    assert failed.detail["address"] == "testclient"

    good = app_client.post(
        "/login", data={"username": name, "password": PASSWORD, "csrf_token": csrf}
    )
    assert good.status_code == 303
    [login] = events(session, "login", user_id=worker.user.id)
    assert login.detail["address"] == "testclient"
    token = session.scalar(
        select(LoginSession.csrf_token).where(LoginSession.user_id == worker.user.id)
    )
    out = app_client.post("/logout", headers={"X-CSRF-Token": token or ""})
    assert out.status_code == 303
    [logout] = events(session, "logout", user_id=worker.user.id)
    assert logout.username == name and logout.detail["address"] == "testclient"
    assert session.scalar(select(func.count()).select_from(LoginSession)) == 0


def test_throttled_page_says_how_long_to_wait(
    app_client: TestClient, worker: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "utcnow", lambda: T0)  # the clock stands still
    app_client.get("/login")
    form = {"username": worker.user.username, "csrf_token": app_client.cookies.get("fc_csrf")}
    for _ in range(3):
        assert (
            app_client.post("/login", data={**form, "password": "nope-nope-1"}).status_code == 401
        )
    fourth = app_client.post("/login", data={**form, "password": "nope-nope-1"})
    assert fourth.status_code == 401 and "请 2 秒后再试" in fourth.text
    assert fourth.headers["Retry-After"] == "2"
    refused = app_client.post("/login", data={**form, "password": PASSWORD})
    assert refused.status_code == 429 and "请 2 秒后再试" in refused.text
    app_client.cookies.set("fc_lang", "en")
    english = app_client.post("/login", data={**form, "password": PASSWORD})
    assert english.status_code == 429 and "try again in 2 s" in english.text


def test_capitalised_username_logs_in(app_client: TestClient, worker: Persona) -> None:
    app_client.get("/login")
    response = app_client.post(
        "/login",
        data={
            "username": " " + worker.user.username.capitalize(),
            "password": PASSWORD,
            "csrf_token": app_client.cookies.get("fc_csrf"),
        },
    )
    assert response.status_code == 303


def test_login_field_does_not_capitalise(app_client: TestClient) -> None:
    page = app_client.get("/login").text
    field = page.split('name="username"')[1].split(">")[0]
    assert 'autocapitalize="none"' in field and 'autocorrect="off"' in field
    assert 'spellcheck="false"' in field


def test_forwarded_for_is_trusted_only_when_configured(
    app_client: TestClient, session: Session, grid: Grid, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failed_from(forwarded: str) -> str:
        app_client.get("/login")
        app_client.post(
            "/login",
            data={
                "username": "nobody",
                "password": "wrong-password-0",
                "csrf_token": app_client.cookies.get("fc_csrf"),
            },
            headers={"X-Forwarded-For": forwarded},
        )
        return str(events(session, "login_failed")[-1].detail["address"])

    assert failed_from("203.0.113.7") == "testclient"
    monkeypatch.setenv("FENGCHAO_LOGIN__TRUST_FORWARDED_FOR", "true")
    get_settings.cache_clear()
    try:
        # The last entry is the one the proxy added; the first is whatever the client said.
        assert failed_from("1.1.1.1, 203.0.113.7") == "203.0.113.7"
    finally:
        monkeypatch.delenv("FENGCHAO_LOGIN__TRUST_FORWARDED_FOR")
        get_settings.cache_clear()


# ----- the app as production runs it: its own process(es), its own database sessions -----


def _account(db: Engine, community_id: int, username: str) -> None:
    with Session(db) as s:
        service.create_user(
            session=s,
            username=username,
            password=PASSWORD,
            role=Role.community_worker,
            scope=GridScope(ScopeLevel.community, community_id),
        )
        s.commit()


def _post_login(
    client: httpx.Client, username: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    if not client.cookies.get("fc_csrf"):
        client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": client.cookies.get("fc_csrf"),
        },
        headers=headers,
    )


def test_served_app_throttles_audits_and_ignores_case(
    own_database: tuple[Engine, int], tmp_path: Path
) -> None:
    db, community_id = own_database
    _account(db, community_id, "Worker")
    _account(db, community_id, "guard1")
    with (
        served_app(db.url.render_as_string(hide_password=False), tmp_path) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        # A phone keyboard's capital W.
        ok = _post_login(client, "Worker", PASSWORD)
        assert ok.status_code == 303, ok.text
        page = client.get("/registry")
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303

        for _ in range(3):
            assert _post_login(client, "guard1", "wrong-password-0").status_code == 401
        # Not behind a trusted proxy: a forged X-Forwarded-For changes nothing.
        forged = {"X-Forwarded-For": "192.0.2.1"}
        fourth = _post_login(client, "GUARD1", "wrong-password-0", forged)
        assert fourth.status_code == 401 and "请 2 秒后再试" in fourth.text
        right_too_soon = _post_login(client, "guard1", PASSWORD)
        assert right_too_soon.status_code == 429
        assert int(right_too_soon.headers["Retry-After"]) in (1, 2)
    with Session(db) as s:
        assert s.scalar(select(User.username).where(User.username == "worker")) == "worker"
        actions = [(e.action, e.username, e.detail.get("address")) for e in events(s, "login")]
        assert actions == [("login", "worker", "127.0.0.1")]
        assert [e.username for e in events(s, "logout")] == ["worker"]
        failed = events(s, "login_failed")
        assert len(failed) == 4 and {e.detail["address"] for e in failed} == {"127.0.0.1"}


def test_parallel_guesses_across_processes_are_counted_before_they_are_checked(
    own_database: tuple[Engine, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty guesses at once, spread over two server processes: only as many are checked
    as the lock allows, because each is counted (and committed) before its hash is."""
    db, community_id = own_database
    _account(db, community_id, "sampler1")
    monkeypatch.setenv("FENGCHAO_LOGIN__LOCK_AFTER", "2")
    monkeypatch.setenv("FENGCHAO_LOGIN__LOCK_MINUTES", "60")
    with served_app(db.url.render_as_string(hide_password=False), tmp_path, workers=2) as base:

        def guess(i: int) -> int:
            with httpx.Client(base_url=base, timeout=60) as client:
                return _post_login(client, "sampler1", f"wrong-password-{i}").status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = sorted(pool.map(guess, range(20)))
        with httpx.Client(base_url=base, timeout=30) as client:
            locked = _post_login(client, "sampler1", PASSWORD)
    assert statuses == [401] * 2 + [429] * 18
    assert locked.status_code == 429 and "账号已锁定" in locked.text
    with Session(db) as s:
        assert len(events(s, "login_failed")) == 2 and len(events(s, "lock")) == 1


def test_a_shift_change_behind_one_address_all_log_in_and_leave_no_count(
    own_database: tuple[Engine, int], tmp_path: Path
) -> None:
    """Twenty logins at once from one NAT address (two server processes): each attempt is
    counted for the address before its hash is checked and taken back after; none is
    refused, and the address is left with no failures."""
    db, community_id = own_database
    names = [f"guard{i}" for i in range(10)]
    for name in names:
        _account(db, community_id, name)
    with served_app(db.url.render_as_string(hide_password=False), tmp_path, workers=2) as base:

        def log_in(name: str) -> int:
            with httpx.Client(base_url=base, timeout=60) as client:
                return _post_login(client, name, PASSWORD).status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(log_in, names * 2))
    assert statuses == [303] * 20
    with Session(db) as s:
        assert s.scalars(select(LoginThrottle)).all() == []
        assert len(events(s, "login")) == 20


def test_a_phone_typed_as_the_username_is_not_kept_in_clear(session: Session) -> None:
    service.attempt_login(
        session=session, username="13812345678", password="wrong-password-1", address="10.9.9.9"
    )
    keys = session.scalars(select(LoginThrottle.key)).all()
    assert keys and all("13812345678" not in key for key in keys)
    typed = session.scalars(select(AuditEvent.username)).all()
    assert all("13812345678" not in name for name in typed)
