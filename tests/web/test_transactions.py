"""How requests use the database: reads do not wait for writers, and no personal data
leaves without its audit row committed first."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text

from fengchao.db import WRITE_OPTION
from tests.conftest import Live


def test_a_read_is_served_while_another_request_holds_the_write_lock(live: Live) -> None:
    if live.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL readers never wait for writers")
    client = live.client("worker")
    holding, release = threading.Event(), threading.Event()

    def long_writer() -> None:
        writing = live.engine.connect().execution_options(**{WRITE_OPTION: True})
        # BEGIN IMMEDIATE: the one write lock, held until released.
        with writing as conn, conn.begin():
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=long_writer)
    writer.start()
    try:
        assert holding.wait(10)
        # Served from a snapshot while the writer still holds the lock (before: it waited
        # for the lock and failed with "database is locked" after the busy timeout).
        page = client.get("/registry")
        assert page.status_code == 200 and "华润中央公园" in page.text
        assert writer.is_alive()
    finally:
        release.set()
        writer.join()


def _refuse_audit_rows(engine: Engine, on: bool) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_event "
                    "BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END"
                )
                if on
                else text("DROP TRIGGER refuse_audit")
            )
            return
        if on:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'audit log unavailable'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_event "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
                )
            )
        else:
            conn.execute(text("DROP TRIGGER refuse_audit ON audit_event"))
            conn.execute(text("DROP FUNCTION refuse_audit()"))


def test_no_personal_data_is_sent_when_its_audit_row_cannot_be_written(live: Live) -> None:
    client = live.client("worker", raise_errors=False)
    person = f"/registry/people/{live.grid.resident5.id}"
    assert client.get(person).status_code == 200
    _refuse_audit_rows(live.engine, True)
    try:
        # The audit row is committed before the response: if it cannot be, the page with
        # the person's record is not sent (before: sent, and the audit row then lost).
        for url in (person, f"/api/registry/people/{live.grid.resident5.id}"):
            response = client.get(url)
            assert response.status_code == 500, url
            assert "林国平" not in response.text and "13800000001" not in response.text
    finally:
        _refuse_audit_rows(live.engine, False)
    assert client.get(person).status_code == 200


def test_a_500_page_carries_the_security_headers(live: Live) -> None:
    client = live.client("worker", raise_errors=False)
    _refuse_audit_rows(live.engine, True)
    try:
        response = client.get(f"/registry/people/{live.grid.resident5.id}")
    finally:
        _refuse_audit_rows(live.engine, False)
    assert response.status_code == 500
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
