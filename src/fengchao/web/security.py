"""Security headers on every response and the request body limit, checked before any
route (or its CSRF check) reads the body."""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fengchao.web.i18n import current_language

# No inline script or style anywhere: the pages load their scripts and styles from
# /static, htmx's own indicator styles are turned off (base.html), and scripts set styles
# through the DOM, which CSP allows. blob:/data: images and media are for camera frames.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(response: Response | MutableHeaders, path: str, *, https: bool) -> None:
    """Headers for every response; pages and API answers are never cached (they carry
    personal data and depend on who asks), static files may be."""
    headers = response.headers if isinstance(response, Response) else response
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Permissions-Policy", "geolocation=(), microphone=(), camera=(self)")
    if not path.startswith("/static/"):
        headers["Cache-Control"] = "no-store"
    if https:
        headers.setdefault("Strict-Transport-Security", HSTS)


class BodyTooLarge(HTTPException):
    """The request body is over the limit for its route."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail="Content Too Large")
        self.limit = limit


class BodySizeLimit:
    """Refuse request bodies over the limit before anything reads them.

    A declared Content-Length over the limit is answered at once with ``refuse`` (a page
    or JSON in the user's language) without reading the body; a chunked body raises
    :class:`BodyTooLarge` from ``receive`` once it passes the limit, which the app's error
    handlers turn into the same answer. ``limit_for(path)`` gives the limit of a path.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[str], int],
        refuse: Callable[[Request, int], Response],
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = MutableHeaders(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            response = self.refuse(Request(scope), limit)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


class LanguageAndHeaders:
    """Pick the language of the request (for ``_()`` in routes and templates), and add the
    security headers and a newly issued CSRF cookie to the answer.

    Plain ASGI rather than ``@app.middleware("http")``: that wrapper runs the route in a
    second task and copies every response through a stream, which cost a gate device's
    decision more than the decision itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        language_of: Callable[[str | None], str],
        language_cookie: str,
        csrf_cookie: str,
        https: bool,
    ) -> None:
        self.app = app
        self.language_of = language_of
        self.language_cookie = language_cookie
        self.csrf_cookie = csrf_cookie
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = current_language.set(self.language_of(request.cookies.get(self.language_cookie)))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                new_csrf = scope.get("state", {}).get("new_csrf")
                if new_csrf:
                    cookie = Response()
                    cookie.set_cookie(
                        self.csrf_cookie,
                        new_csrf,
                        httponly=True,
                        samesite="lax",
                        secure=self.https,
                    )
                    headers.append("set-cookie", cookie.headers["set-cookie"])
                security_headers(headers, scope["path"], https=self.https)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            current_language.reset(token)
