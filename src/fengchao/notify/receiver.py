"""A local stand-in for the chat services, for the tests and the outbox benchmark (not
used by the running platform): an HTTP server on 127.0.0.1 that checks each request as
the service documents it — WeCom's key and markdown size, DingTalk's signed query and
keyword, Feishu's signed body and keyword, the webhook's HMAC header — and answers as the
service would, HTTP 200 with an error code included. Its checks are written here again,
independently of the platform's signing code, so that a test compares two readings of
the documentation rather than the code with itself.

A robot can be scripted to misbehave for its next requests: ``"500"``, ``"slow:S"``
(answer after S seconds), ``"drop"`` (read the request, close without answering),
``"hold"`` (answer only after :meth:`ChatReceiver.release`), ``"rate"`` (the service's
rate-limit error) or ``"busy"`` (an error code of the service that is worth a retry).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Robot:
    kind: str  # wecom, dingtalk, feishu, webhook
    token: str
    secret: str | None = None
    keyword: str | None = None
    script: list[str] = field(default_factory=list)
    fail_every: int = 0  # answer 500 to every n-th request
    drop_every: int = 0  # drop the connection of every n-th request
    seen: int = 0


@dataclass(frozen=True)
class Received:
    token: str
    kind: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    verdict: str  # "ok" or what the service would refuse it for
    action: str  # what the robot was scripted to do
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The message's visible text, whatever the service."""
        data = self.json
        if self.kind == "wecom":
            return str(data["markdown"]["content"])
        if self.kind == "dingtalk":
            return f"{data['markdown']['title']}\n{data['markdown']['text']}"
        if self.kind == "feishu":
            post = data["content"]["post"]["zh_cn"]
            parts = [post["title"]]
            for line in post["content"]:
                for element in line:
                    parts.append(element.get("text", ""))
                    parts.append(element.get("href", ""))
            return "\n".join(parts)
        return f"{data['title']}\n{data['body']}"


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


class ChatReceiver:
    """The server. ``add(kind, ...)`` makes a robot and returns its webhook address."""

    def __init__(self) -> None:
        self.robots: dict[str, Robot] = {}
        self.received: list[Received] = []
        self.keys: Counter[str] = Counter()  # webhook idempotency keys seen
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.holding = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm
                # and the client's delayed ACK add 40 ms to every answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @contextmanager
    def running(self) -> Iterator[ChatReceiver]:
        self._thread.start()
        try:
            yield self
        finally:
            self.released.set()
            self.server.shutdown()
            self.server.server_close()

    def add(
        self,
        kind: str,
        *,
        secret: str | None = None,
        keyword: str | None = None,
        script: list[str] | None = None,
        fail_every: int = 0,
        drop_every: int = 0,
    ) -> str:
        token = secrets.token_hex(8)
        self.robots[token] = Robot(
            kind, token, secret, keyword, list(script or []), fail_every, drop_every
        )
        return self.url(kind, token)

    def url(self, kind: str, token: str) -> str:
        return {
            "wecom": f"{self.base}/cgi-bin/webhook/send?key={token}",
            "dingtalk": f"{self.base}/robot/send?access_token={token}",
            "feishu": f"{self.base}/open-apis/bot/v2/hook/{token}",
            "webhook": f"{self.base}/hooks/{token}",
        }[kind]

    def release(self) -> None:
        self.released.set()

    def of(self, url: str) -> list[Received]:
        token = self._token(urlsplit(url).path, parse_qs(urlsplit(url).query))
        with self.lock:
            return [r for r in self.received if r.token == token]

    # --- handling ---------------------------------------------------------------------------

    @staticmethod
    def _token(path: str, query: dict[str, list[str]]) -> str:
        if path == "/cgi-bin/webhook/send":
            return query.get("key", [""])[0]
        if path == "/robot/send":
            return query.get("access_token", [""])[0]
        return path.rsplit("/", 1)[-1]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query_lists = parse_qs(parts.query)
        query = {k: v[0] for k, v in query_lists.items()}
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        token = self._token(parts.path, query_lists)
        with self.lock:
            robot = self.robots.get(token)
            action = "ok"
            if robot is not None:
                robot.seen += 1
                if robot.script:
                    action = robot.script.pop(0)
                elif robot.drop_every and robot.seen % robot.drop_every == 0:
                    action = "drop"
                elif robot.fail_every and robot.seen % robot.fail_every == 0:
                    action = "500"
        kind = robot.kind if robot else self._kind_of(parts.path)
        verdict, status, answer = self._verify(kind, robot, query, handler.headers, body)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.received.append(
                Received(token, kind, query, headers, body, verdict, action, time.time())
            )
            if kind == "webhook" and verdict == "ok" and action == "ok":
                self.keys[headers.get("idempotency-key", "")] += 1
        if action == "drop":
            handler.close_connection = True
            with suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if action == "hold":
            self.holding.set()
            self.released.wait(60)
        elif action.startswith("slow:"):
            time.sleep(float(action.split(":", 1)[1]))
        elif action == "500":
            status, answer = 500, {"error": "upstream error"}
        elif action == "rate":
            status, answer = self._rate_limited(kind)
        elif action == "busy":
            status, answer = (
                200,
                (
                    {"code": 9999, "msg": "system busy"}
                    if kind == "feishu"
                    else {"errcode": -1, "errmsg": "系统繁忙"}
                ),
            )
        raw = json.dumps(answer, ensure_ascii=False).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
        except OSError:
            pass  # the client went away (a killed worker)

    @staticmethod
    def _kind_of(path: str) -> str:
        if path.startswith("/cgi-bin"):
            return "wecom"
        if path.startswith("/robot"):
            return "dingtalk"
        if path.startswith("/open-apis"):
            return "feishu"
        return "webhook"

    @staticmethod
    def _rate_limited(kind: str) -> tuple[int, dict[str, Any]]:
        if kind == "wecom":
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        if kind == "dingtalk":
            return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        if kind == "feishu":
            return 200, {"code": 9499, "msg": "Too Many Request"}
        return 429, {"error": "too many requests"}

    def _verify(
        self, kind: str, robot: Robot | None, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[str, int, dict[str, Any]]:
        try:
            data = json.loads(body)
        except ValueError:
            return "not json", 400, {"errcode": 40001, "errmsg": "invalid json"}
        if kind == "wecom":
            return self._wecom(robot, data)
        if kind == "dingtalk":
            return self._dingtalk(robot, query, data)
        if kind == "feishu":
            return self._feishu(robot, data)
        return self._webhook(robot, headers, body, data)

    @staticmethod
    def _wecom(robot: Robot | None, data: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
        if robot is None:
            return "bad key", 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
        content = data.get("markdown", {}).get("content")
        if data.get("msgtype") != "markdown" or not isinstance(content, str):
            return "not markdown", 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if len(content.encode("utf-8")) > 4096:
            return "too long", 200, {"errcode": 40058, "errmsg": "content exceed max length 4096"}
        return "ok", 200, {"errcode": 0, "errmsg": "ok"}

    @staticmethod
    def _dingtalk(
        robot: Robot | None, query: dict[str, str], data: dict[str, Any]
    ) -> tuple[str, int, dict[str, Any]]:
        if robot is None:
            return "bad token", 200, {"errcode": 300001, "errmsg": "token is not exist"}
        if robot.secret:
            timestamp, sign = query.get("timestamp", ""), query.get("sign", "")
            if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > 3600_000:
                return "timestamp", 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
            # DingTalk: HmacSHA256 keyed with the secret over "timestamp\nsecret", Base64,
            # then URL-encoded in the query (parse_qs has decoded it).
            expected = _b64_hmac(robot.secret.encode(), f"{timestamp}\n{robot.secret}".encode())
            if not hmac.compare_digest(expected, sign):
                return "sign", 200, {"errcode": 310000, "errmsg": "sign not match, more: [..]"}
        markdown = data.get("markdown", {})
        if (
            data.get("msgtype") != "markdown"
            or not markdown.get("title")
            or not markdown.get("text")
        ):
            return "not markdown", 200, {"errcode": 40035, "errmsg": "缺少参数 markdown"}
        if robot.keyword and robot.keyword not in markdown["text"] + markdown["title"]:
            return (
                "keyword",
                200,
                {"errcode": 310000, "errmsg": "keywords not in content, more: [..]"},
            )
        return "ok", 200, {"errcode": 0, "errmsg": "ok"}

    @staticmethod
    def _feishu(robot: Robot | None, data: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
        if robot is None:
            return (
                "bad token",
                200,
                {
                    "code": 19001,
                    "msg": "param invalid: incoming webhook access token invalid",
                },
            )
        if robot.secret:
            timestamp, sign = str(data.get("timestamp", "")), str(data.get("sign", ""))
            # Feishu: HmacSHA256 keyed with "timestamp\nsecret" over an empty message, Base64.
            fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 3600
            expected = _b64_hmac(f"{timestamp}\n{robot.secret}".encode(), b"")
            if not fresh or not hmac.compare_digest(expected, sign):
                return (
                    "sign",
                    200,
                    {
                        "code": 19021,
                        "msg": "sign match fail or timestamp is not within one hour "
                        "from current time",
                    },
                )
        post = data.get("content", {}).get("post", {}).get("zh_cn")
        if data.get("msg_type") != "post" or not isinstance(post, dict) or not post.get("title"):
            return "not post", 200, {"code": 9499, "msg": "Bad Request"}
        if len(json.dumps(data, ensure_ascii=False).encode()) > 20 * 1024:
            return "too long", 200, {"code": 9499, "msg": "request body too large"}
        text = post["title"] + "".join(
            e.get("text", "") for line in post.get("content", []) for e in line
        )
        if robot.keyword and robot.keyword not in text:
            return "keyword", 200, {"code": 19024, "msg": "Key Words Not Found"}
        return (
            "ok",
            200,
            {
                "StatusCode": 0,
                "StatusMessage": "success",
                "code": 0,
                "data": {},
                "msg": "success",
            },
        )

    def _webhook(
        self, robot: Robot | None, headers: Any, body: bytes, data: dict[str, Any]
    ) -> tuple[str, int, dict[str, Any]]:
        if robot is None:
            return "unknown hook", 404, {"error": "no such hook"}
        timestamp = headers.get("X-Fengchao-Timestamp", "")
        mac = hmac.new((robot.secret or "").encode(), f"{timestamp}.".encode() + body, "sha256")
        if not hmac.compare_digest(
            "sha256=" + mac.hexdigest(), headers.get("X-Fengchao-Signature", "")
        ):
            return "signature", 401, {"error": "bad signature"}
        if headers.get("Idempotency-Key") != data.get("id"):
            return "key", 400, {"error": "idempotency key differs from id"}
        with self.lock:
            duplicate = self.keys[data["id"]] > 0
        return "ok", 200, {"ok": True, "duplicate": duplicate}
