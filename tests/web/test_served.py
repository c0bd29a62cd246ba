"""The app served by a real uvicorn process, as production runs it: refusals are pages,
the headers protect personal data, bodies over the limit are refused before parsing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fengchao.testing import served_app
from tests.conftest import PASSWORD, Live


@pytest.fixture(scope="module")
def base(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = live.engine.url.render_as_string(hide_password=False)
    with served_app(url, tmp_path_factory.mktemp("served")) as served:
        yield served


@contextmanager
def _login(base: str, live: Live, persona: str) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=base, timeout=30)
    client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": live.personas[persona].user.username,
            "password": PASSWORD,
            "csrf_token": client.cookies.get("fc_csrf") or "",
        },
    )
    assert response.status_code == 303
    try:
        yield client
    finally:
        client.close()


def test_guard_refused_page_is_a_page_not_a_500(base: str, live: Live) -> None:
    with _login(base, live, "guard") as client:
        response = client.get("/registry")
        assert response.status_code == 403
        assert "您的角色没有这项权限" in response.text and 'action="/logout"' in response.text
        stale = client.post("/logout", data={"csrf_token": "old"})
        assert stale.status_code == 403 and "CSRF" in stale.text


def test_pages_carry_security_headers(base: str, live: Live) -> None:
    with _login(base, live, "worker") as client:
        page = client.get(f"/registry/people/{live.grid.resident5.id}")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert page.headers["cache-control"] == "no-store"
        api = client.get("/api/registry/search", params={"q": "林"})
        assert api.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in page.headers  # plain HTTP here
        static = client.get("/static/css/app.css")
        assert static.status_code == 200 and static.headers.get("cache-control") != "no-store"


def test_body_over_the_limit_is_refused_before_the_route_reads_it(
    base: str, live: Live, tmp_path: Path
) -> None:
    with _login(base, live, "worker") as client:
        csrf = client.get("/registry").text.split('"X-CSRF-Token": "')[1].split('"')[0]
        declared = client.post(
            "/logout", content=b"x" * (2 * 1024 * 1024), headers={"X-CSRF-Token": csrf}
        )
        assert declared.status_code == 413 and "提交的内容太大" in declared.text

        def chunks() -> Iterator[bytes]:
            for _ in range(64):
                yield b"y" * 65536

        # A chunked form (no length declared): refused while the CSRF check reads it.
        streamed = client.post(
            "/logout",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert streamed.status_code == 413 and "提交的内容太大" in streamed.text
        # Neither logged the user out.
        assert client.get("/registry").status_code == 200


def test_api_docs_are_for_signed_in_staff_and_load_nothing_from_outside(
    base: str, live: Live
) -> None:
    anonymous = httpx.get(f"{base}/api/docs", follow_redirects=False)
    assert anonymous.status_code == 401
    assert httpx.get(f"{base}/api/openapi.json").status_code == 401
    with _login(base, live, "worker") as client:
        docs = client.get("/api/docs")
        assert docs.status_code == 200
        assert "cdn." not in docs.text and "https://" not in docs.text
        assert "/static/vendor/swagger-ui" in docs.text
        schema = client.get("/api/openapi.json").json()
        assert "/api/registry/search" in schema["paths"]
