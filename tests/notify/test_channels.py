"""Every chat service's body and signature, checked by a local receiver that verifies them
as the service documents them; every way a post can fail, judged as the service means it."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from fengchao.notify import channels as chans
from fengchao.notify.channels import FailureKind, RobotConfig
from fengchao.notify.receiver import ChatReceiver
from fengchao.notify.render import ChatMessage, cut_utf8, fit_body
from fengchao.notify.robots import dingtalk_sign, feishu_sign
from fengchao.notify.webhook import webhook_signature


def message(body: str = "东门卡口测得体温 37.8 ℃，已劝返，请跟进。", **kw: object) -> ChatMessage:
    fields: dict[str, object] = {
        "key": "a" * 32,
        "notification_id": 7,
        "kind": "fever",
        "urgency": "urgent",
        "title": "东门测温异常",
        "body": body,
        "link": "https://fengchao.example.org/registry/buildings/5",
        "more_link": "https://fengchao.example.org/notify/messages/7",
        "community": "宏侨社区",
        "created_at": dt.datetime(2026, 3, 1, 2, 30, tzinfo=dt.UTC),
    }
    fields.update(kw)
    return ChatMessage(**fields)  # type: ignore[arg-type]


def post(
    kind: str, url: str, secret: str | None = None, keyword: str | None = None, **kw: object
) -> chans.Outcome:
    notifier = chans.notifier_for(kind)
    with httpx.Client(timeout=kw.pop("timeout", 2.0)) as client:  # type: ignore[arg-type]
        return notifier.send(
            client,
            message(**kw),
            RobotConfig(url=url, secret=secret, keyword=keyword),
            now=dt.datetime.now(dt.UTC),
            allow_private=True,
        )


def test_wecom_markdown_reaches_the_robot(receiver: ChatReceiver) -> None:
    url = receiver.add("wecom")
    assert post("wecom", url) == chans.Outcome(True, status=200)
    [got] = receiver.of(url)
    assert got.verdict == "ok"
    content = got.json["markdown"]["content"]
    assert "【紧急】" in content and "东门测温异常" in content and "宏侨社区" in content
    assert "2026-03-01 10:30" in content  # shown in Asia/Shanghai
    assert "[查看详情](https://fengchao.example.org/registry/buildings/5)" in content


@pytest.mark.parametrize("secret", [None, "SEC0123456789abcdef+/=="])
def test_dingtalk_signed_and_unsigned(receiver: ChatReceiver, secret: str | None) -> None:
    url = receiver.add("dingtalk", secret=secret)
    assert post("dingtalk", url, secret=secret).ok
    [got] = receiver.of(url)
    assert got.verdict == "ok"
    assert ("sign" in got.query) == (secret is not None)
    assert got.json["markdown"]["title"] == "【紧急】东门测温异常"


def test_dingtalk_signature_is_url_encoded_base64(receiver: ChatReceiver) -> None:
    # A secret whose signature has + and / in it: they must arrive URL-encoded.
    secret = "SECf00"
    url = receiver.add("dingtalk", secret=secret)
    assert post("dingtalk", url, secret=secret).ok
    [got] = receiver.of(url)
    sign = dingtalk_sign(secret, int(got.query["timestamp"]))
    assert got.query["sign"] == sign
    assert len(got.query["timestamp"]) == 13  # milliseconds


def test_dingtalk_wrong_secret_is_a_failure_despite_http_200(receiver: ChatReceiver) -> None:
    url = receiver.add("dingtalk", secret="SECright")
    outcome = post("dingtalk", url, secret="SECwrong")
    assert outcome.status == 200 and not outcome.ok
    assert outcome.kind == FailureKind.wrong_secret and outcome.permanent
    assert "310000" in outcome.detail
    assert chans.failure_text(outcome.kind).startswith("签名校验失败")


def test_dingtalk_keyword_is_put_in_front_when_missing(receiver: ChatReceiver) -> None:
    url = receiver.add("dingtalk", keyword="疫情")
    assert post("dingtalk", url, keyword="疫情").ok
    [got] = receiver.of(url)
    assert got.verdict == "ok" and got.json["markdown"]["title"].startswith("【疫情】")


def test_dingtalk_robot_with_keyword_refuses_a_message_without_it(receiver: ChatReceiver) -> None:
    url = receiver.add("dingtalk", keyword="疫情")
    outcome = post("dingtalk", url)  # the chat's settings lack the robot's keyword
    assert outcome.kind == FailureKind.keyword and outcome.status == 200


def test_dingtalk_unknown_token(receiver: ChatReceiver) -> None:
    outcome = post("dingtalk", receiver.url("dingtalk", "nobody"))
    assert outcome.kind == FailureKind.bad_address and outcome.permanent


@pytest.mark.parametrize("secret", [None, "f3Kq0bsecret"])
def test_feishu_post_signed_and_unsigned(receiver: ChatReceiver, secret: str | None) -> None:
    url = receiver.add("feishu", secret=secret, keyword="防疫")
    assert post("feishu", url, secret=secret, keyword="防疫").ok
    [got] = receiver.of(url)
    assert got.verdict == "ok"
    if secret:
        assert got.json["sign"] == feishu_sign(secret, int(got.json["timestamp"]))
        assert len(got.json["timestamp"]) == 10  # seconds, as a string
    else:
        assert "sign" not in got.json
    assert "https://fengchao.example.org/registry/buildings/5" in got.text


def test_feishu_wrong_secret_and_missing_keyword(receiver: ChatReceiver) -> None:
    signed = receiver.add("feishu", secret="right")
    wrong = post("feishu", signed, secret="wrong")
    assert (wrong.ok, wrong.kind, wrong.status) == (False, FailureKind.wrong_secret, 200)
    guarded = receiver.add("feishu", keyword="防疫")
    missing = post("feishu", guarded)
    assert missing.kind == FailureKind.keyword and "19024" in missing.detail


def test_webhook_is_signed_and_carries_the_idempotency_key(receiver: ChatReceiver) -> None:
    url = receiver.add("webhook", secret="hook-secret")
    assert post("webhook", url, secret="hook-secret").ok
    [got] = receiver.of(url)
    assert got.verdict == "ok"
    assert got.headers["idempotency-key"] == "a" * 32 == got.json["id"]
    expected = webhook_signature("hook-secret", got.headers["x-fengchao-timestamp"], got.body)
    assert got.headers["x-fengchao-signature"] == expected
    assert got.json["title"] == "东门测温异常" and got.json["urgency"] == "urgent"


def test_webhook_wrong_secret(receiver: ChatReceiver) -> None:
    url = receiver.add("webhook", secret="hook-secret")
    outcome = post("webhook", url, secret="other")
    assert (outcome.kind, outcome.status) == (FailureKind.wrong_secret, 401)


@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "feishu", "webhook"])
def test_server_error_is_worth_a_retry(receiver: ChatReceiver, kind: str) -> None:
    url = receiver.add(kind, secret="s" if kind == "webhook" else None, script=["500"])
    outcome = post(kind, url, secret="s" if kind == "webhook" else None)
    assert (outcome.kind, outcome.status, outcome.permanent) == (
        FailureKind.server_error,
        500,
        False,
    )


@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "feishu", "webhook"])
def test_rate_limit_answer_is_recognised(receiver: ChatReceiver, kind: str) -> None:
    url = receiver.add(kind, secret="s" if kind == "webhook" else None, script=["rate"])
    outcome = post(kind, url, secret="s" if kind == "webhook" else None)
    assert outcome.kind == FailureKind.rate_limited and not outcome.permanent


def test_robot_busy_code_in_a_200_is_a_failure(receiver: ChatReceiver) -> None:
    url = receiver.add("wecom", script=["busy"])
    outcome = post("wecom", url)
    assert outcome.status == 200 and outcome.kind == FailureKind.robot_error
    assert not outcome.permanent


def test_timeout_may_have_been_delivered(receiver: ChatReceiver) -> None:
    url = receiver.add("wecom", script=["slow:1.5"])
    outcome = post("wecom", url, timeout=0.3)
    assert outcome.kind == FailureKind.timeout and outcome.maybe_sent


def test_dropped_connection_may_have_been_delivered(receiver: ChatReceiver) -> None:
    url = receiver.add("dingtalk", script=["drop"])
    outcome = post("dingtalk", url)
    assert outcome.kind == FailureKind.unreachable and outcome.maybe_sent
    assert len(receiver.of(url)) == 1


def test_refused_connection_was_not_delivered() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = post("wecom", f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key=x")
    assert outcome.kind == FailureKind.unreachable and not outcome.maybe_sent
    assert "connection refused" in outcome.detail


def test_private_address_refused_at_send_time_unless_allowed() -> None:
    notifier = chans.notifier_for("wecom")
    with httpx.Client() as client:
        outcome = notifier.send(
            client,
            message(),
            RobotConfig(url="http://10.0.0.8/cgi-bin/webhook/send?key=x"),
            now=dt.datetime.now(dt.UTC),
            allow_private=False,
        )
    assert outcome.kind == FailureKind.refused_address and outcome.permanent


@pytest.mark.parametrize(
    ("kind", "limit"), [("wecom", 4096), ("dingtalk", 5000), ("feishu", 8000), ("webhook", 16000)]
)
def test_long_message_is_cut_with_a_link_to_the_whole(
    receiver: ChatReceiver, kind: str, limit: int
) -> None:
    secret = "s" if kind == "webhook" else None
    url = receiver.add(kind, secret=secret)
    body = "居民反映：" + "楼道消杀不到位，请尽快安排。" * 2000  # about 84 KB
    assert post(kind, url, secret=secret, body=body).ok
    [got] = receiver.of(url)
    assert got.verdict == "ok"  # accepted: within the service's size limit
    assert "内容过长，已截断" in got.text
    assert "https://fengchao.example.org/notify/messages/7" in got.text
    assert len(got.body) < limit + 2000
    if kind == "wecom":
        assert len(got.json["markdown"]["content"].encode()) <= 4096
    if kind == "webhook":
        assert got.json["truncated"] is True


def test_cut_never_splits_a_character() -> None:
    assert cut_utf8("蜂巢社区", 7) == "蜂巢"  # 6 bytes; a third character would need 9
    text, cut = fit_body("甲" * 100, room=60, more="…")
    assert cut and text.endswith("…") and len(text.encode()) <= 60
    assert fit_body("短", room=60, more="…") == ("短", False)


def test_registry_names_every_backend_and_refuses_unknown() -> None:
    for kind in chans.NOTIFIERS:
        assert chans.notifier_for(kind).kind == kind
    with pytest.raises(ValueError, match="unknown notifier 'slack'"):
        chans.notifier_for("slack")


def test_message_bodies_are_json_in_utf8(receiver: ChatReceiver) -> None:
    url = receiver.add("wecom")
    post("wecom", url)
    [got] = receiver.of(url)
    assert "东门" in got.body.decode("utf-8") and json.loads(got.body)
