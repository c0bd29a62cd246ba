"""Group-chat robots: WeCom (企业微信群机器人), DingTalk (钉钉自定义机器人) and Feishu
(飞书自定义机器人), each rendering the same message in its own format and signing it as
the service documents. Each answers HTTP 200 with an error code in the body: that code
decides, not the status."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from fengchao.notify.channels import (
    FailureKind,
    HttpPost,
    Notifier,
    Outcome,
    RobotConfig,
    judge_by_status,
)
from fengchao.notify.render import ChatMessage, fit_body, more_note, utf8_len
from fengchao.web.i18n import _


def _answer(body: bytes) -> dict[str, Any] | None:
    try:
        found = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) else None


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _with_keyword(headline: str, keyword: str | None, text: str) -> str:
    """A robot with a custom keyword drops messages without it: put it in front."""
    if keyword and keyword not in headline and keyword not in text:
        return f"【{keyword}】{headline}"
    return headline


def _markdown_lines(text: str) -> str:
    # A single newline is not a line break in these services' markdown.
    return "  \n".join(text.splitlines())


class WeComRobot(Notifier):
    """企业微信群机器人: ``{"msgtype": "markdown", "markdown": {"content": …}}`` posted to
    the robot's address (its ``key`` is in the address; there is no signature). The content
    may be 4096 bytes; 20 messages a minute per robot."""

    kind: ClassVar[str] = "wecom"
    label: ClassVar[str] = "企业微信群机器人"
    max_bytes: ClassVar[int] = 4096
    limits: ClassVar[tuple[tuple[int, float], ...]] = ((20, 60.0),)
    uses_secret: ClassVar[bool] = False

    def content(self, message: ChatMessage) -> str:
        colour = {"urgent": "warning", "info": "comment"}.get(message.urgency, "info")
        head = (
            f'**<font color="{colour}">【{message.urgency_label}】</font>{message.title}**\n'
            f"> {message.community}　{message.time_text}\n\n"
        )
        tail = f"\n\n[{_('查看详情')}]({message.link})" if message.link else ""
        room = self.max_bytes - utf8_len(head) - utf8_len(tail)
        body, _cut = fit_body(
            _markdown_lines(message.body), room=room, more=more_note(message.more_link, True)
        )
        return head + body + tail

    def request(self, message: ChatMessage, config: RobotConfig, now: dt.datetime) -> HttpPost:
        payload = {"msgtype": "markdown", "markdown": {"content": self.content(message)}}
        return HttpPost(config.url, _dumps(payload))

    def judge(self, status: int, body: bytes) -> Outcome:
        answer = _answer(body)
        if answer is None or "errcode" not in answer:
            return judge_by_status(status)
        code, detail = (
            answer.get("errcode"),
            f"errcode {answer.get('errcode')}: {answer.get('errmsg', '')}",
        )
        if code == 0:
            return Outcome(True, status=status)
        if code == 93000:  # invalid webhook url: the key is wrong or the robot is gone
            return Outcome(False, FailureKind.bad_address, status, detail)
        if code == 45009:  # api freq out of limit
            return Outcome(False, FailureKind.rate_limited, status, detail, retry_after=60.0)
        if code == 40058:  # a parameter is out of range (the content too long)
            return Outcome(False, FailureKind.too_large, status, detail)
        return Outcome(False, FailureKind.robot_error, status, detail)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(key=secret, msg="timestamp\\nsecret"))."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    return base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    extra = urlencode(params)  # URL-encodes the base64 signature (+ / =), as DingTalk asks
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class DingTalkRobot(Notifier):
    """钉钉自定义机器人: a markdown message posted to the robot's address (``access_token``
    in it). Signed mode adds ``timestamp`` (ms) and ``sign`` (URL-encoded base64 of
    HMAC-SHA256 of "timestamp\\nsecret" keyed with the secret) to the query; keyword mode
    needs the keyword in the text. 20 messages a minute per robot."""

    kind: ClassVar[str] = "dingtalk"
    label: ClassVar[str] = "钉钉自定义机器人"
    max_bytes: ClassVar[int] = 5000
    limits: ClassVar[tuple[tuple[int, float], ...]] = ((20, 60.0),)
    uses_keyword: ClassVar[bool] = True

    def request(self, message: ChatMessage, config: RobotConfig, now: dt.datetime) -> HttpPost:
        headline = _with_keyword(message.headline, config.keyword, message.body)
        head = f"#### {headline}\n\n> {message.community}　{message.time_text}\n\n"
        tail = f"\n\n[{_('查看详情')}]({message.link})" if message.link else ""
        room = self.max_bytes - utf8_len(head) - utf8_len(tail)
        body, _cut = fit_body(
            _markdown_lines(message.body), room=room, more=more_note(message.more_link, True)
        )
        payload = {
            "msgtype": "markdown",
            "markdown": {"title": headline, "text": head + body + tail},
        }
        url = config.url
        if config.secret:
            timestamp = int(now.timestamp() * 1000)
            url = _with_query(
                url, timestamp=str(timestamp), sign=dingtalk_sign(config.secret, timestamp)
            )
        return HttpPost(url, _dumps(payload))

    def judge(self, status: int, body: bytes) -> Outcome:
        answer = _answer(body)
        if answer is None or "errcode" not in answer:
            return judge_by_status(status)
        code, message = answer.get("errcode"), str(answer.get("errmsg", ""))
        detail = f"errcode {code}: {message}"[:300]
        if code == 0:
            return Outcome(True, status=status)
        lowered = message.lower()
        if code == 310000:  # a security setting refused the message: which one, errmsg says
            if "keyword" in lowered:
                return Outcome(False, FailureKind.keyword, status, detail)
            if "whitelist" in lowered or "ip " in lowered:
                return Outcome(False, FailureKind.ip_not_allowed, status, detail)
            return Outcome(False, FailureKind.wrong_secret, status, detail)
        if code in (300001, 300005, 400101, 400102):  # token unknown, robot stopped or gone
            return Outcome(False, FailureKind.bad_address, status, detail)
        if code in (130101, 410100):  # send too fast
            return Outcome(False, FailureKind.rate_limited, status, detail, retry_after=60.0)
        return Outcome(False, FailureKind.robot_error, status, detail)


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's signature: base64(HMAC-SHA256(key="timestamp\\nsecret", msg=b""))."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class FeishuRobot(Notifier):
    """飞书自定义机器人: a rich-text ("post") message; signed mode puts ``timestamp``
    (seconds, a string) and ``sign`` in the JSON body. 100 messages a minute and 5 a second
    per robot; the request body may be 20 KB."""

    kind: ClassVar[str] = "feishu"
    label: ClassVar[str] = "飞书自定义机器人"
    max_bytes: ClassVar[int] = 8000
    limits: ClassVar[tuple[tuple[int, float], ...]] = ((5, 1.0), (100, 60.0))
    uses_keyword: ClassVar[bool] = True

    def request(self, message: ChatMessage, config: RobotConfig, now: dt.datetime) -> HttpPost:
        title = _with_keyword(message.headline, config.keyword, message.body)
        meta = f"{message.community}　{message.time_text}"
        room = self.max_bytes - utf8_len(title) - utf8_len(meta) - 200
        body, _cut = fit_body(message.body, room=room, more=more_note(message.more_link, False))
        content: list[list[dict[str, str]]] = [
            [{"tag": "text", "text": meta}],
            [{"tag": "text", "text": body}],
        ]
        if message.link:
            content.append([{"tag": "a", "text": _("查看详情"), "href": message.link}])
        payload: dict[str, Any] = {
            "msg_type": "post",
            "content": {"post": {"zh_cn": {"title": title, "content": content}}},
        }
        if config.secret:
            timestamp = int(now.timestamp())
            payload = {
                "timestamp": str(timestamp),
                "sign": feishu_sign(config.secret, timestamp),
                **payload,
            }
        return HttpPost(config.url, _dumps(payload))

    def judge(self, status: int, body: bytes) -> Outcome:
        answer = _answer(body)
        if answer is None or ("code" not in answer and "StatusCode" not in answer):
            return judge_by_status(status)
        code = answer.get("code", answer.get("StatusCode"))
        message = str(answer.get("msg", answer.get("StatusMessage", "")))
        detail = f"code {code}: {message}"[:300]
        if code == 0:
            return Outcome(True, status=status)
        if code == 19021:  # sign match fail or timestamp is not within one hour
            return Outcome(False, FailureKind.wrong_secret, status, detail)
        if code == 19024:  # Key Words Not Found
            return Outcome(False, FailureKind.keyword, status, detail)
        if code == 19022:  # Ip Not Allowed
            return Outcome(False, FailureKind.ip_not_allowed, status, detail)
        if code in (19001, 19002):  # the hook's token is invalid
            return Outcome(False, FailureKind.bad_address, status, detail)
        if code in (9499, 11232):  # too many requests
            return Outcome(False, FailureKind.rate_limited, status, detail, retry_after=60.0)
        return Outcome(False, FailureKind.robot_error, status, detail)
