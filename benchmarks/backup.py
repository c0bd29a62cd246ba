"""Backup and restore of the demo community (4,883 households, ~15,700 people): seconds,
MB/s, file size and peak memory of each step, each in its own process.

--quick: the demo community on SQLite. Full size: the demo community with 250,000 audit
events (months of audited reads), on SQLite and on PostgreSQL, and SQLite → PostgreSQL.
    python benchmarks/backup.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

AUDIT_EVENTS = 250_000


def _status_mb(field: str) -> float:
    """A figure of /proc/self/status in MB (Linux reports kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def child(step: str, url: str, file: Path) -> None:
    """Back up the database at ``url`` to ``file``, or restore ``file`` into it."""
    from sqlalchemy import create_engine

    from fengchao import backup
    from fengchao.db import make_engine
    from fengchao.settings import get_settings

    engine = make_engine(url) if url.startswith("sqlite") else create_engine(url)
    key = get_settings().security.data_key_bytes()
    backup.backup_tables()  # every model imported before the baseline
    with engine.connect():  # the driver loaded and a connection in the pool
        pass
    # Start the peak afresh (Linux ≥ 4.0), so that it is this step's and not the imports'.
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _status_mb("VmRSS")
    started = time.perf_counter()
    if step == "backup":
        header = backup.backup_to_file(engine, file, data_key=key, overwrite=True)
    else:
        header = backup.restore_from_file(engine, file, data_key=key)
    seconds = time.perf_counter() - started
    engine.dispose()
    print(
        json.dumps(
            {
                "rows": header.rows,
                "seconds": seconds,
                "peak_mb": _status_mb("VmHWM"),
                "baseline_mb": baseline,
            }
        )
    )


def run_child(step: str, url: str, file: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", step, url, str(file)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def add_audit_history(engine: object, community_id: int, events: int) -> None:
    from sqlalchemy import Engine, insert

    from fengchao.auth.models import AuditEvent
    from fengchao.db import utcnow

    assert isinstance(engine, Engine)
    now = utcnow()
    with engine.begin() as connection:
        for start in range(0, events, 10_000):
            connection.execute(
                insert(AuditEvent),
                [
                    {
                        "at": now,
                        "user_id": 2,
                        "username": "worker",
                        "action": "read",
                        "object_type": "person",
                        "object_id": str(1 + n % 15_000),
                        "community_id": community_id,
                        "detail": {"id_unmasked": n % 7 == 0},
                    }
                    for n in range(start, min(start + 10_000, events))
                ],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the demo community on SQLite")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], Path(args.child[2]))
        return

    from _common import database, emit, postgres_available
    from sqlalchemy.orm import Session

    from fengchao.registry.demo import build_demo

    folder = Path(tempfile.mkdtemp(prefix="fc-bench-backup-"))
    kinds = ["sqlite"] + (["postgresql"] if postgres_available() and not args.quick else [])
    # (source, target) pairs: each database to itself, and across when both are here.
    pairs = [(k, k) for k in kinds] + ([("sqlite", "postgresql")] if len(kinds) == 2 else [])
    figures: dict[str, object] = {"audit_events": 0 if args.quick else AUDIT_EVENTS}
    baseline_mb = 0.0
    print(
        f"{'source → target':<24}{'rows':>9}{'file MB':>9}{'backup s':>10}{'MB/s':>7}"
        f"{'peak MB':>9}{'restore s':>11}{'MB/s':>7}{'peak MB':>9}"
    )
    for source_kind, target_kind in pairs:
        with database(source_kind, folder) as source, database(target_kind, folder) as target:
            with Session(source) as session:
                summary = build_demo(session)
                session.commit()
            if not args.quick:
                add_audit_history(source, summary.community_id, AUDIT_EVENTS)
            file = folder / f"{source_kind}.fcb"
            source_url = source.url.render_as_string(hide_password=False)
            target_url = target.url.render_as_string(hide_password=False)
            made = run_child("backup", source_url, file)
            size_mb = file.stat().st_size / 1e6
            back = run_child("restore", target_url, file)
        name = source_kind if source_kind == target_kind else f"{source_kind}_to_{target_kind}"
        row = {
            "rows": int(made["rows"]),
            "file_mb": round(size_mb, 2),
            "backup_seconds": round(made["seconds"], 3),
            "backup_mb_per_s": round(size_mb / made["seconds"], 2),
            "backup_rows_per_s": round(made["rows"] / made["seconds"]),
            "backup_peak_mb": round(made["peak_mb"], 1),
            "restore_seconds": round(back["seconds"], 3),
            "restore_mb_per_s": round(size_mb / back["seconds"], 2),
            "restore_rows_per_s": round(back["rows"] / back["seconds"]),
            "restore_peak_mb": round(back["peak_mb"], 1),
        }
        baseline_mb = max(baseline_mb, made["baseline_mb"], back["baseline_mb"])
        figures[name] = row
        print(
            f"{source_kind + ' → ' + target_kind:<24}{row['rows']:>9}{row['file_mb']:>9}"
            f"{row['backup_seconds']:>10}{row['backup_mb_per_s']:>7}{row['backup_peak_mb']:>9}"
            f"{row['restore_seconds']:>11}{row['restore_mb_per_s']:>7}{row['restore_peak_mb']:>9}"
        )
    figures["baseline_mb"] = round(baseline_mb, 1)
    print(f"peak MB includes {baseline_mb:.0f} MB of interpreter, SQLAlchemy and models")
    emit(figures)


if __name__ == "__main__":
    main()
