"""Helpers shared by the benchmark scripts: databases, peak memory, the JSON last line."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, create_engine

from fengchao.testing import throwaway_database

# FENGCHAO_BENCHMARK_PG_URL points the benchmarks at a database of one's own (a shared
# machine's `test` database is others' too).
PG_URL = os.environ.get(
    "FENGCHAO_BENCHMARK_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def database(kind: str, folder: Path, url: str = PG_URL) -> Iterator[Engine]:
    """A freshly migrated "sqlite" file or "postgresql" schema (in ``url``'s database),
    removed afterwards."""
    with throwaway_database("sqlite" if kind == "sqlite" else url, folder) as engine:
        yield engine


def postgres_available(url: str = PG_URL) -> bool:
    try:
        with create_engine(url).connect() as conn:
            conn.exec_driver_sql("select 1")
        return True
    except Exception:
        return False


def emit(figures: dict[str, object]) -> None:
    """The last line of every benchmark: one JSON object with every figure."""
    sys.stdout.write(json.dumps(figures, ensure_ascii=False) + "\n")


def throughput(
    work: Callable[[Any], object], items: list[Any], workers: int, seconds: float
) -> float:
    """Items per second through ``work`` in a pool of worker processes (one per core)."""
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(work, items[:workers])  # load the models in every worker first
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            done += len(pool.map(work, items, chunksize=1))
        return done / (time.perf_counter() - start)


class RawHttp:
    """One kept-alive HTTP/1.1 connection written by hand over asyncio streams, with its
    own cookies: a load generator of many such coroutines in one thread costs a fraction of
    the CPU that threads of an HTTP library cost (on a 2-core machine that CPU is taken
    from the server being measured, and a thread waiting for the GIL inflates its own
    timings). Enough HTTP for this app: Content-Length or chunked bodies, Set-Cookie.

    A connection idle for longer than ``IDLE_S`` is opened anew before the next request, as
    a browser would: uvicorn closes one after 5 s of keep-alive."""

    IDLE_S = 2.0

    def __init__(self, base: str) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.cookies: dict[str, str] = {}
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._used = 0.0

    async def request(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        json_body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body); the connection is opened on
        first use and again after the server closed it."""
        body = b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if form is not None:
            body = urlencode(form).encode()
            head.append("Content-Type: application/x-www-form-urlencoded")
        elif json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode()
            head.append("Content-Type: application/json")
        if body or method not in ("GET", "HEAD"):
            head.append(f"Content-Length: {len(body)}")
        if self.cookies:
            head.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        if self._streams is not None and time.monotonic() - self._used > self.IDLE_S:
            await self.close()  # the server may be closing it right now
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(raw)
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        found: dict[str, str] = {}
        for line in lines:
            if ":" not in line:
                continue
            name, value = line.split(":", 1)
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _sep, cookie = pair.partition("=")
                if cookie and "max-age=0" not in value.lower():
                    self.cookies[key.strip()] = cookie.strip()
                else:
                    self.cookies.pop(key.strip(), None)
            found[name] = value
        if "content-length" in found:
            payload = await reader.readexactly(int(found["content-length"]))
        elif found.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            payload = b"".join(parts)
        else:
            payload = b""
        self._used = time.monotonic()
        if found.get("connection", "").lower() == "close":
            await self.close()
        return int(status_line.split()[1]), found, payload

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def canvas(photo: Any, width: int = 640, height: int = 480) -> bytes:
    """A face photo (RGB array) placed on a grey camera frame of ``width`` × ``height``, as
    the JPEG a gate device would send."""
    import io

    import cv2
    import numpy as np
    from PIL import Image

    scale = min(0.8 * height / photo.shape[0], 0.8 * width / photo.shape[1])
    small = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)))
    frame = np.full((height, width, 3), 120, dtype=np.uint8)
    top, left = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    out = io.BytesIO()
    Image.fromarray(frame).save(out, "JPEG", quality=88)
    return out.getvalue()
