"""Refusals and mistakes reach every role as a page in the base layout, in their language,
with the real session lifecycle (no dependency overridden)."""

from __future__ import annotations

import pytest

from tests.conftest import Live

ROLES = ("admin", "worker", "lead5", "guard")


def _in_layout(html: str, persona_name: str) -> None:
    assert '<header class="topbar">' in html
    assert 'action="/logout"' in html, "the logged-in user keeps the logout button"
    assert persona_name in html, "the user's name shows in the top bar"
    assert 'name="viewport"' in html


@pytest.mark.parametrize("role", ROLES)
def test_missing_page_and_record_are_404_pages_in_the_layout(live: Live, role: str) -> None:
    client = live.client(role)
    name = live.personas[role].user.display_name
    urls = ["/no-such-page"]
    if role != "guard":  # the guard's role may not read the registry at all: 403 there
        urls += ["/registry/people/2147483647", "/registry/households/99999999"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 404, url
        _in_layout(response.text, name)
    # A number larger than any row id names nothing: 404, not a database overflow (500).
    huge = client.get("/registry/people/99999999999999999999999")
    assert huge.status_code == 404
    _in_layout(huge.text, name)


@pytest.mark.parametrize(
    ("role", "url"),
    [
        ("guard", "/registry"),
        ("guard", "/registry/people/{person}"),
        ("lead5", "/registry/import"),
        ("worker", "/audit"),
    ],
)
def test_refused_page_is_a_403_page_for_the_logged_in_user(live: Live, role: str, url: str) -> None:
    client = live.client(role)
    response = client.get(url.format(person=live.grid.resident5.id))
    assert response.status_code == 403
    assert "您的角色没有这项权限" in response.text
    _in_layout(response.text, live.personas[role].user.display_name)


@pytest.mark.parametrize("role", ROLES)
def test_wrong_method_is_a_405_page(live: Live, role: str) -> None:
    response = live.client(role).get("/logout")
    assert response.status_code == 405
    assert "此地址不接受这种请求方式" in response.text
    _in_layout(response.text, live.personas[role].user.display_name)


@pytest.mark.parametrize("role", ("admin", "worker", "lead5"))
def test_bad_query_is_a_422_page_naming_the_field(live: Live, role: str) -> None:
    response = live.client(role).get("/registry/completeness?building=abc")
    assert response.status_code == 422
    assert "building" in response.text and "应为整数" in response.text
    _in_layout(response.text, live.personas[role].user.display_name)


def test_api_errors_are_json_naming_the_field(live: Live) -> None:
    client = live.client("worker")
    bad = client.get("/api/registry/completeness", params={"community": "x"})
    assert bad.status_code == 422
    assert bad.json()["errors"] == [{"field": "community", "message": "应为整数"}]
    assert client.get("/api/registry/people/99999999999999").status_code == 404
    assert client.get("/api/registry/people/99999999999999").json()["detail"]


@pytest.mark.parametrize("role", ROLES)
def test_stale_csrf_token_is_a_403_page_and_keeps_the_login(live: Live, role: str) -> None:
    client = live.client(role)
    response = client.post("/logout", data={"csrf_token": "from-an-old-tab"})
    assert response.status_code == 403
    assert "CSRF" in response.text
    _in_layout(response.text, live.personas[role].user.display_name)
    # Still logged in: the refused logout changed nothing.
    assert client.get("/no-such-page").status_code == 404
    assert 'action="/logout"' in client.get("/no-such-page").text


def test_error_pages_speak_english_when_chosen(live: Live) -> None:
    client = live.client("guard", lang="en")
    response = client.get("/registry")
    assert response.status_code == 403
    assert "Your role does not have this permission" in response.text
    assert client.get("/no-such-page").text.count("Page not found") >= 1


def test_anonymous_error_pages_offer_no_menu(live: Live) -> None:
    client = live.client()
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert 'action="/logout"' not in response.text
    assert client.get("/registry/people/1").status_code == 303  # to the login form


def test_each_role_lands_on_a_page_it_may_use_after_login(live: Live) -> None:
    expected = {
        "admin": "/dashboard/street",
        "worker": "/dashboard",
        "lead5": "/registry/todo",
        "guard": "/gates",
    }
    for role, target in expected.items():
        client = live.client(role)
        home = client.get("/")
        assert home.status_code == 303 and home.headers["location"] == target, role
        page = client.get(target)
        assert page.status_code == 200, role
        if role == "guard":
            # The guard's menu offers the gates and the room check, nothing it would be refused.
            assert 'href="/registry/rooms"' in page.text
            assert 'href="/dashboard"' not in page.text
            assert 'href="/registry/search"' not in page.text
