"""Import of a full community's resident sheet (15,000 people): validate + write.

Each database runs in its own child process so that peak memory is that import's alone.
    python benchmarks/import.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_sheet(path: Path, people: int) -> None:
    """A sheet shaped like an office's register, for households of the demo grid."""
    import openpyxl

    from fengchao.registry.demo import COMPOUNDS, _Generator
    from fengchao.registry.models import Gender

    gen = _Generator(7)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("居民")
    sheet.append(["宏侨社区居民登记表"])
    sheet.append(
        [
            "序号",
            "姓名",
            "性别",
            "身份证号码",
            "联系电话",
            "小区",
            "楼栋",
            "单元",
            "房号",
            "与户主关系",
        ]
    )
    n = 0
    for compound, buildings, units, floors, per_floor in COMPOUNDS:
        for b in range(1, buildings + 1):
            for u in range(1, units + 1):
                for f in range(1, floors + 1):
                    for r in range(1, per_floor + 1):
                        for rel in ("户主", "配偶", "子女", "父母"):
                            if n >= people:
                                break
                            gender = gen.rng.choice(list(Gender))
                            birth = gen.birth(5, 80)
                            n += 1
                            sheet.append(
                                [
                                    n,
                                    gen.name("陈", gender),
                                    "男" if gender == Gender.male else "女",
                                    gen.id_number(birth, gender),
                                    gen.phone(),
                                    compound,
                                    str(b),
                                    str(u),
                                    f"{f}{r:02d}",
                                    rel,
                                ]
                            )
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(buffer.getvalue())


def child(kind: str, sheet: Path, folder: Path) -> None:
    from _common import database, peak_rss_mb
    from sqlalchemy.orm import Session

    from fengchao.auth.service import SYSTEM_ACTOR
    from fengchao.registry.demo import build_demo
    from fengchao.registry.imports import ImportReport, import_residents
    from fengchao.registry.models import BuildingLead, Person

    with database(kind, folder) as engine:
        with Session(engine) as session:
            # The grid only: households without people, as before a first import.
            summary = build_demo(session)
            session.query(BuildingLead).delete()
            session.query(Person).delete()
            session.commit()
        content = sheet.read_bytes()
        before_mb = peak_rss_mb()

        def timed_import() -> tuple[ImportReport, float]:
            with Session(engine) as session:
                started = time.perf_counter()
                result = import_residents(
                    session=session,
                    actor=SYSTEM_ACTOR,
                    community_id=summary.community_id,
                    content=content,
                    filename=sheet.name,
                    dry_run=False,
                )
                session.commit()
                return result, time.perf_counter() - started

        report, seconds = timed_import()
        again, reimport_seconds = timed_import()  # everything unchanged: idempotence
    assert report.written and not report.errors, report.errors[:3]
    assert again.unchanged == report.created
    print(
        json.dumps(
            {
                "rows": report.rows,
                "created": report.created,
                "seconds": seconds,
                "reimport_seconds": reimport_seconds,
                "peak_mb": peak_rss_mb(),
                "baseline_mb": before_mb,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3,000 rows instead of 15,000")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return

    from _common import emit, postgres_available

    people = 3000 if args.quick else 15000
    folder = Path(tempfile.mkdtemp(prefix="fc-bench-import-"))
    sheet = folder / "residents.xlsx"
    make_sheet(sheet, people)
    results: dict[str, dict[str, float]] = {}
    kinds = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    for kind in kinds:
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, str(sheet), str(folder)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[kind] = json.loads(out.strip().splitlines()[-1])
    print(
        f"{'database':<12}{'rows':>8}{'seconds':>10}{'rows/s':>10}{'re-import s':>13}"
        f"{'peak MB':>10}"
    )
    for kind, r in results.items():
        print(
            f"{kind:<12}{r['rows']:>8}{r['seconds']:>10.2f}{r['rows'] / r['seconds']:>10.0f}"
            f"{r['reimport_seconds']:>13.2f}{r['peak_mb']:>10.0f}"
        )
    first = results["sqlite"]
    figures: dict[str, object] = {
        "rows": first["rows"],
        "seconds": round(first["seconds"], 3),
        "rows_per_s": round(first["rows"] / first["seconds"]),
        "peak_mb": round(first["peak_mb"], 1),
        "reimport_seconds": round(first["reimport_seconds"], 3),
    }
    for kind, r in results.items():
        figures[f"{kind}_seconds"] = round(r["seconds"], 3)
        figures[f"{kind}_rows_per_s"] = round(r["rows"] / r["seconds"])
        figures[f"{kind}_peak_mb"] = round(r["peak_mb"], 1)
    emit(figures)


if __name__ == "__main__":
    main()
