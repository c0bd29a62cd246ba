"""The upload wizard's stored sheets: encrypted at rest, refused once expired, purged by
the schedule (or `fengchao purge`) without anybody uploading again."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao.auth.crypto import get_cipher
from fengchao.registry import uploads
from fengchao.registry.models import ImportUpload, Person
from tests.conftest import Browser, Grid, Persona, build_grid
from tests.registry.test_import import GOOD, xlsx


def upload(browser: Browser, content: bytes | None = None) -> str:
    sheet = content or xlsx(GOOD)
    page = browser.post("/registry/import", files={"file": ("居民.xlsx", sheet)})
    assert page.status_code == 200, page.text  # type: ignore[attr-defined]
    found = re.search(r"/registry/import/([\w-]+)/confirm", page.text)  # type: ignore[attr-defined]
    assert found, "no confirm form"
    return found[1]


def stored(session: Session, token: str) -> ImportUpload:
    return session.scalars(select(ImportUpload).where(ImportUpload.token == token)).one()


def age(session: Session, token: str, minutes: int) -> None:
    row = stored(session, token)
    row.created_at = row.created_at - dt.timedelta(minutes=minutes)
    session.flush()


def test_unconfirmed_upload_is_encrypted_at_rest(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    sheet = xlsx(GOOD)
    token = upload(browser, sheet)
    raw = bytes(
        session.execute(
            text("select content from import_upload where token = :t"), {"t": token}
        ).scalar_one()
    )
    assert raw != sheet and sheet not in raw and b"PK\x03\x04" not in raw
    context = b"import_upload:" + token.encode()
    assert get_cipher().decrypt_bytes(raw, context=context) == sheet
    done = browser.post(f"/registry/import/{token}/confirm")
    assert done.status_code == 200 and "导入完成" in done.text


def test_upload_older_than_an_hour_is_purged_without_a_new_upload(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    old, recent = upload(browser), upload(browser)
    age(session, old, 61)
    assert uploads.purge_expired_uploads(session=session) == 1
    remaining = set(session.scalars(select(ImportUpload.token)))
    assert old not in remaining and recent in remaining
    gone = browser.post(f"/registry/import/{old}/confirm")
    assert gone.status_code == 410
    assert "上传已过期" in gone.text and "请重新上传表格" in gone.text
    assert browser.get(f"/registry/import/{old}/errors.xlsx").status_code == 410


def test_upload_past_its_time_is_refused_even_before_the_purge(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    token = upload(browser)
    before = session.scalar(select(func.count()).select_from(Person))
    age(session, token, uploads.keep() // dt.timedelta(minutes=1) + 1)
    late = browser.post(f"/registry/import/{token}/confirm")
    assert late.status_code == 410 and "上传已过期" in late.text
    assert session.scalar(select(func.count()).select_from(Person)) == before


def test_another_users_token_reads_as_expired(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona, admin: Persona
) -> None:
    token = upload(login_as(worker))
    other = login_as(admin).post(f"/registry/import/{token}/confirm")
    assert other.status_code == 410 and "上传已过期" in other.text


def test_imported_upload_still_refuses_a_replay_after_an_hour(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    token = upload(browser)
    browser.post(f"/registry/import/{token}/confirm")
    age(session, token, 120)
    uploads.purge_expired_uploads(session=session)
    replay = browser.post(f"/registry/import/{token}/confirm")
    assert replay.status_code == 200 and "已经导入过" in replay.text


def test_purge_command_for_cron(cli_engine: Engine) -> None:
    from fengchao.cli import app

    now = dt.datetime.now(dt.UTC)
    with Session(cli_engine) as session:
        grid = build_grid(session)
        for token, minutes in (("stale", 61), ("fresh", 5)):
            session.add(
                ImportUpload(
                    token=token,
                    community_id=grid.community.id,
                    user_id=1,
                    kind="residents",
                    filename="a.xlsx",
                    content=b"sealed",
                    options={},
                    created_at=now - dt.timedelta(minutes=minutes),
                )
            )
        session.commit()
    result = CliRunner().invoke(app, ["purge"])
    assert result.exit_code == 0, result.output
    assert "purged 1" in result.output
    with Session(cli_engine) as session:
        assert set(session.scalars(select(ImportUpload.token))) == {"fresh"}
