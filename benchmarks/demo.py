"""Generation of the full demo community (4,883 households, ~15,000 people): seconds.
python benchmarks/demo.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import database, emit, postgres_available
from sqlalchemy.orm import Session

from fengchao.registry.demo import build_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="SQLite only")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fc-bench-demo-"))
    kinds = ["sqlite"] + (["postgresql"] if postgres_available() and not args.quick else [])
    figures: dict[str, object] = {}
    print(f"{'database':<12}{'households':>11}{'people':>9}{'seconds':>9}")
    for kind in kinds:
        with database(kind, folder) as engine, Session(engine) as session:
            started = time.perf_counter()
            summary = build_demo(session)
            session.commit()
            seconds = time.perf_counter() - started
        print(f"{kind:<12}{summary.households:>11}{summary.people:>9}{seconds:>9.2f}")
        figures.setdefault("households", summary.households)
        figures.setdefault("people", summary.people)
        figures[f"{kind}_seconds"] = round(seconds, 3)
    figures["seconds"] = figures["sqlite_seconds"]
    emit(figures)


if __name__ == "__main__":
    main()
