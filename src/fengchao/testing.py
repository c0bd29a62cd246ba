"""Helpers for the test suite and the benchmarks: a throwaway migrated database and the
app served by a real uvicorn process. Not used by the running platform."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url

from fengchao.db import make_engine
from fengchao.migrate import upgrade
from fengchao.settings import Settings, get_settings


@contextmanager
def throwaway_database(target: str, folder: Path, revision: str = "head") -> Iterator[Engine]:
    """A freshly migrated database (to ``revision``, the newest by default), removed afterwards.

    ``target`` is "sqlite" (a new file in ``folder``) or a PostgreSQL URL, where a schema of
    its own keeps concurrent runs from seeing each other's tables.
    """
    if target == "sqlite":
        engine = make_engine(f"sqlite:///{folder / f'fc-{uuid.uuid4().hex[:8]}.db'}")
        try:
            upgrade(engine, revision)
            yield engine
        finally:
            engine.dispose()
        return
    schema = f"fc_tmp_{uuid.uuid4().hex[:10]}"
    admin = create_engine(target)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    # The schema goes into the URL, so a server started from ``engine.url`` sees it too.
    url = make_url(target).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = create_engine(url)
    try:
        upgrade(engine, revision)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served_app(database_url: str, folder: Path, workers: int = 1) -> Iterator[str]:
    """Serve the app on a free loopback port in its own process (or ``workers`` processes,
    as production may); yields the base URL."""
    import httpx

    port = _free_port()
    security = get_settings().security
    env = {
        **os.environ,
        "FENGCHAO_DATABASE_URL": database_url,
        "FENGCHAO_DATA_DIR": str(folder),
        # The served app reads what this process wrote: the same keys.
        "FENGCHAO_SECURITY__SECRET_KEY": security.secret_key,
        "FENGCHAO_SECURITY__DATA_KEY": security.data_key,
    }
    # As `fengchao serve` runs it: proxy headers only when the settings trust a proxy.
    trusted = Settings().login.trust_forwarded_for
    proxy_headers = "--proxy-headers" if trusted else "--no-proxy-headers"
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "fengchao.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--workers", str(workers), "--timeout-worker-healthcheck", "30", proxy_headers],
        env=env,
        cwd=folder,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"the server on {base} did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
