"""Chat services behind one contract: the ``Notifier`` base, what a post comes to
(``Outcome``), the typed robot configuration, the lazy registry, and the one place that
talks HTTP (``post``)."""

from __future__ import annotations

import datetime as dt
import enum
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from fengchao.notify.render import ChatMessage
from fengchao.notify.urls import address_problem, resolve
from fengchao.vision.backends import load_backend
from fengchao.web.i18n import _


class FailureKind(enum.StrEnum):
    """Why a chat service did not take a message."""

    wrong_secret = "wrong_secret"  # signature refused (or the server's clock is off)
    keyword = "keyword"  # the robot's keyword is missing from the message
    bad_address = "bad_address"  # unknown token/key, robot removed
    ip_not_allowed = "ip_not_allowed"  # the server's IP is not on the robot's allowlist
    refused_address = "refused_address"  # the address points where we may not post
    unreachable = "unreachable"  # no connection, or it was dropped
    timeout = "timeout"
    rate_limited = "rate_limited"  # the service says: too many messages
    server_error = "server_error"  # HTTP 5xx
    client_error = "client_error"  # another HTTP 4xx
    too_large = "too_large"
    robot_error = "robot_error"  # an error code we do not know (treated as passing)


# Faults that no retry mends: the delivery is dead-lettered at once, with the reason, and
# sent again with "retry now" after the channel's settings are fixed.
PERMANENT = frozenset(
    {
        FailureKind.wrong_secret,
        FailureKind.keyword,
        FailureKind.bad_address,
        FailureKind.ip_not_allowed,
        FailureKind.refused_address,
        FailureKind.client_error,
        FailureKind.too_large,
    }
)


@dataclass(frozen=True)
class Outcome:
    """What became of one post. ``detail`` is the service's own words (kept for the
    outbox page); ``retry_after`` the wait a rate-limited service asked for."""

    ok: bool
    kind: FailureKind | None = None
    status: int | None = None
    detail: str = ""
    retry_after: float | None = None
    # The request may have reached the service although no answer came back (a read
    # timeout, a connection dropped after sending): a retry may then be a duplicate.
    maybe_sent: bool = False

    @property
    def permanent(self) -> bool:
        return self.kind in PERMANENT


OK = Outcome(True)


def failure_text(kind: str | None, detail: str = "", status: int | None = None) -> str:
    """A failure said for the people who configure the robot (in their language)."""
    match kind:
        case None:
            return _("机器人已应答，消息已发出")
        case FailureKind.wrong_secret:
            text = _("签名校验失败：加签密钥不对，或本服务器的时间不准")
        case FailureKind.keyword:
            text = _("消息里没有机器人设置的自定义关键词：请检查关键词")
        case FailureKind.bad_address:
            text = _("机器人地址无效：webhook 地址（key 或 access_token）不对，或机器人已被移出群")
        case FailureKind.ip_not_allowed:
            text = _("本服务器的 IP 不在机器人的 IP 白名单里")
        case FailureKind.refused_address:
            text = _("该地址不允许使用")
        case FailureKind.unreachable:
            text = _("连不上机器人服务器")
        case FailureKind.timeout:
            text = _("机器人服务器没有按时应答（超时）")
        case FailureKind.rate_limited:
            text = _("发送太频繁，被机器人限流：稍后会自动重发")
        case FailureKind.server_error:
            text = _("机器人服务器出错（HTTP {status}）").format(status=status)
        case FailureKind.client_error:
            text = _("机器人服务器拒绝了请求（HTTP {status}）").format(status=status)
        case FailureKind.too_large:
            text = _("消息太长，被机器人拒绝")
        case "channel_removed":
            text = _("这个群已停用")
        case _:
            text = _("机器人返回了错误")
    return f"{text}（{detail}）" if detail else text


class RobotConfig(BaseModel):
    """How to reach one robot: its address (which may carry its token), the signing
    secret, and the keyword its security setting asks every message to contain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="The robot's webhook address.")
    secret: str | None = Field(None, description="Signing secret (加签), if the robot has one.")
    keyword: str | None = Field(None, description="Custom keyword (自定义关键词), if any.")


@dataclass(frozen=True)
class HttpPost:
    """The request a notifier wants sent: a JSON body, posted as it is."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Notifier(ABC):
    """A chat service (企业微信, 钉钉, 飞书, a webhook).

    ``request`` turns a :class:`ChatMessage` into the one HTTP POST the service expects,
    fitting the text within ``max_bytes`` (cut with a link to the whole message, never
    refused) and signing it with ``config.secret`` at ``now``; it does no I/O and raises
    nothing for a well-formed message. ``judge`` reads the service's answer: HTTP 200 is
    not enough where a service reports errors in the body. ``limits`` are the service's
    own rate limits per robot, as (requests, seconds) windows: the outbox never exceeds
    them and keeps what waits queued.
    """

    kind: ClassVar[str]
    label: ClassVar[str]  # shown on pages (a Chinese message id)
    max_bytes: ClassVar[int]
    limits: ClassVar[tuple[tuple[int, float], ...]]
    # A chat's own rate when none is set (None: the service's limit per minute).
    default_per_minute: ClassVar[int | None] = None
    uses_secret: ClassVar[bool] = True
    secret_required: ClassVar[bool] = False
    uses_keyword: ClassVar[bool] = False
    # Whether the receiver drops a repeated idempotency key: only then can a resend after
    # a crash never become a duplicate.
    deduplicates: ClassVar[bool] = False

    @abstractmethod
    def request(self, message: ChatMessage, config: RobotConfig, now: dt.datetime) -> HttpPost:
        """The POST that carries ``message``."""

    @abstractmethod
    def judge(self, status: int, body: bytes) -> Outcome:
        """What the answer ``status``/``body`` means."""

    def send(
        self,
        client: httpx.Client,
        message: ChatMessage,
        config: RobotConfig,
        *,
        now: dt.datetime,
        allow_private: bool,
    ) -> Outcome:
        return post(client, self.request(message, config, now), self, allow_private)


def judge_by_status(status: int, detail: str = "") -> Outcome:
    """An answer without a readable error code, judged by its HTTP status."""
    if 200 <= status < 300:
        return Outcome(False, FailureKind.robot_error, status, detail or "unreadable answer")
    if status >= 500:
        return Outcome(False, FailureKind.server_error, status, detail)
    if status in (401, 403):
        return Outcome(False, FailureKind.wrong_secret, status, detail)
    if status in (404, 410):
        return Outcome(False, FailureKind.bad_address, status, detail)
    if status == 413:
        return Outcome(False, FailureKind.too_large, status, detail)
    if status == 408:
        return Outcome(False, FailureKind.timeout, status, detail)
    return Outcome(False, FailureKind.client_error, status, detail)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def post(
    client: httpx.Client,
    request: HttpPost,
    notifier: Notifier,
    allow_private: bool,
) -> Outcome:
    """Send ``request`` and judge the answer; every network failure becomes an
    :class:`Outcome` (this never raises for the network). The address is checked again
    here, since its name may resolve elsewhere than when it was saved; redirects are not
    followed (one could lead inside)."""
    parts = urlsplit(request.url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    for ip in resolve(host, port):
        problem = address_problem(ip, allow_private=allow_private)
        if problem:
            return Outcome(False, FailureKind.refused_address, detail=str(ip))
    headers = {"Content-Type": "application/json; charset=utf-8", **request.headers}
    try:
        response = client.post(request.url, content=request.body, headers=headers)
    except (httpx.ConnectTimeout, httpx.PoolTimeout):
        return Outcome(False, FailureKind.timeout, detail="connect")
    except httpx.TimeoutException:
        return Outcome(False, FailureKind.timeout, maybe_sent=True)
    except httpx.ConnectError as exc:
        return Outcome(False, FailureKind.unreachable, detail=_connect_detail(exc))
    except httpx.TransportError as exc:
        # The connection broke after the request went out.
        return Outcome(False, FailureKind.unreachable, detail=type(exc).__name__, maybe_sent=True)
    if response.status_code == 429:
        wait = _retry_after(response.headers.get("retry-after"))
        return Outcome(False, FailureKind.rate_limited, 429, retry_after=wait)
    return notifier.judge(response.status_code, response.content)


def _connect_detail(exc: Exception) -> str:
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "DNS"
    if "refused" in text.lower():
        return "connection refused"
    return type(exc).__name__


def http_client(timeout: float) -> httpx.Client:
    """One client per worker thread: connections are kept alive between messages."""
    return httpx.Client(timeout=timeout, follow_redirects=False)


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


NOTIFIERS: dict[str, str] = {
    "wecom": "fengchao.notify.robots:WeComRobot",
    "dingtalk": "fengchao.notify.robots:DingTalkRobot",
    "feishu": "fengchao.notify.robots:FeishuRobot",
    "webhook": "fengchao.notify.webhook:JsonWebhook",
}


def notifier_for(kind: str) -> Notifier:
    """The notifier registered as ``kind`` (imported on first use)."""
    cls: type[Notifier] = load_backend(NOTIFIERS, kind, "notifier")
    return cls()
