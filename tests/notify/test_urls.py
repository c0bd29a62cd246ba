"""Robot addresses: http(s) only, never the platform itself, never link-local; loopback and
private networks only when the deployment allows them."""

from __future__ import annotations

import pytest

from fengchao.notify.urls import AddressRefused, check_url, url_hint


def refused(url: str, **kw: object) -> str:
    with pytest.raises(AddressRefused) as caught:
        check_url(url, allow_private=kw.pop("allow_private", False), **kw)  # type: ignore[arg-type]
    assert caught.value.field == "url"
    return caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://oapi.dingtalk.com/robot",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "oapi.dingtalk.com/robot",
    ],
)
def test_only_http_and_https(url: str) -> None:
    assert "http://" in refused(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.20/hook",
        "http://172.16.0.9/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_loopback_and_private_refused_by_default(url: str) -> None:
    assert "本机或内网" in refused(url)


def test_private_allowed_when_the_setting_says_so() -> None:
    assert check_url("http://192.168.1.20/hook", allow_private=True) == "http://192.168.1.20/hook"
    assert check_url(" http://127.0.0.1:9/x ", allow_private=True) == "http://127.0.0.1:9/x"


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data", "http://0.0.0.0/", "http://224.0.0.1/"]
)
def test_link_local_and_unspecified_refused_always(url: str) -> None:
    assert "链路本地" in refused(url, allow_private=True)


def test_the_platform_itself_is_refused_even_on_a_private_network() -> None:
    message = refused(
        "http://127.0.0.1:8000/registry", allow_private=True, own_origins=["http://127.0.0.1:8000"]
    )
    assert "本平台自己" in message
    assert "本平台自己" in refused(
        "https://fengchao.example.org/api/x", own_origins=["https://fengchao.example.org/"]
    )


def test_credentials_empty_and_overlong_refused() -> None:
    assert "用户名或密码" in refused("https://user:pw@oapi.dingtalk.com/robot/send")
    assert "webhook" in refused("   ")
    assert "太长" in refused("https://oapi.dingtalk.com/" + "a" * 2000)


def test_public_names_that_do_not_resolve_here_are_accepted() -> None:
    # No network in tests: the name does not resolve, and the test message will say so.
    url = "https://oapi.dingtalk.com/robot/send?access_token=abcdef0123456789"
    assert check_url(url, allow_private=False) == url


def test_hint_hides_the_token() -> None:
    hint = url_hint("https://oapi.dingtalk.com/robot/send?access_token=abcdef0123456789")
    assert hint == "https://oapi.dingtalk.com/…6789" and "abcdef" not in hint
