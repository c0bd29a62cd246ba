"""Which addresses a robot or webhook may have: http(s) only, never the platform itself,
never link-local (cloud metadata) or multicast, and loopback or private networks only when
the deployment allows them (an intranet's own receiver)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from fengchao.auth.service import Refusal
from fengchao.web.i18n import _

MAX_URL_LENGTH = 1500
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Refusal):
    """A robot address that may not be used; the message names why (field ``url``)."""

    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


def _origin(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return parts.hostname.lower().rstrip("."), port


def _ip(host: str) -> IPAddress | None:
    try:
        found = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def address_problem(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why ``ip`` may not be posted to, or None."""
    if not ip.is_loopback and (
        ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved
    ):
        return _("地址指向链路本地、组播或保留地址（{ip}），不允许使用").format(ip=ip)
    if not ip.is_global and not allow_private:
        return _(
            "地址指向本机或内网（{ip}），已拒绝；确需使用内网接收端时，"
            "请管理员开启 FENGCHAO_NOTIFY__ALLOW_PRIVATE_NETWORKS"
        ).format(ip=ip)
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (empty when it does not resolve)."""
    literal = _ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    found: list[IPAddress] = []
    for info in infos:
        address = _ip(str(info[4][0]).split("%", 1)[0])
        if address is not None and address not in found:
            found.append(address)
    return found


def check_url(url: str, *, allow_private: bool, own_origins: Iterable[str] = ()) -> str:
    """The address, trimmed, when a robot may have it; raises :class:`AddressRefused`.

    A name that does not resolve now is accepted (the test message will say it cannot be
    reached); every address it resolves to must pass, and is checked again before each
    request, since a name may later point elsewhere.
    """
    url = url.strip()
    if not url:
        raise AddressRefused(_("请填写机器人的 webhook 地址"))
    if len(url) > MAX_URL_LENGTH:
        raise AddressRefused(_("地址太长（最多 {n} 个字符）").format(n=MAX_URL_LENGTH))
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise AddressRefused(_("地址只能以 http:// 或 https:// 开头"))
    if not parts.hostname:
        raise AddressRefused(_("地址缺少主机名"))
    if parts.username is not None or parts.password is not None:
        raise AddressRefused(_("地址里不能带用户名或密码"))
    origin = _origin(url)
    if origin is None:
        raise AddressRefused(_("地址的端口不对"))
    if origin in {o for o in (_origin(u) for u in own_origins if u) if o is not None}:
        raise AddressRefused(_("地址指向本平台自己，不能作为机器人地址"))
    host, port = origin
    if host == "localhost" or host.endswith(".localhost"):
        problem = address_problem(ipaddress.ip_address("127.0.0.1"), allow_private=allow_private)
        if problem:
            raise AddressRefused(problem)
    for ip in resolve(host, port):
        problem = address_problem(ip, allow_private=allow_private)
        if problem:
            raise AddressRefused(problem)
    return url


def url_hint(url: str) -> str:
    """What a page may show of an address that carries a robot's token: the host and the
    last four characters (``qyapi.weixin.qq.com/…3f9a``)."""
    parts = urlsplit(url)
    tail = url[-4:] if len(url) > 12 else ""
    return f"{parts.scheme}://{parts.netloc}/…{tail}"
