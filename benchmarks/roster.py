"""The roster solver (duty/solver.py, OR-Tools CP-SAT) on three problems:

1. the reference community's week: 40 volunteers, 2 gates × 3 shifts × 7 days, the
   sampling site (3 with a medical certificate, 07:30–13:30) and the evening patrol:
   seconds to optimal or to a 1 % gap within a 5 s limit, holes, spreads, and the greedy
   baseline's spreads on the same input;
2. a street office: 400 volunteers in 10 communities, 20 gates, 14 days, at a 60 s limit
   (--quick: a 15 s limit, same size);
3. repair after one cancellation (a volunteer drops out at 22:00 from the night shift that
   starts at midnight): seconds and changed assignments.

    python benchmarks/roster.py [--quick] [--workers N] [--no-bounds]

Wall-clock seconds on a loaded machine mean little: the JSON also gives CP-SAT's branches
and deterministic seconds (``det_seconds``), which do not grow with the load. ``--no-bounds``
solves without the solver's redundant bounds (the pigeonhole bounds and duty/bounds.py's
floors), to compare in the same sitting.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit
from rich.console import Console
from rich.table import Table

from fengchao.duty import bounds, scenarios, solver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="street office at 15 s")
    parser.add_argument("--workers", type=int, default=2, help="CP-SAT threads")
    parser.add_argument(
        "--no-bounds", action="store_true", help="without the redundant bounds (to compare)"
    )
    args = parser.parse_args()
    solver.BOUNDS = not args.no_bounds
    street_limit = 15.0 if args.quick else 60.0

    week = scenarios.reference_week()
    result = solver.solve(week, time_limit=5, gap_limit=0.01, workers=args.workers)
    assert solver.check(week, result.assignments) == []
    baseline = solver.greedy(week)
    base = solver.fairness(week, baseline)
    base_holes = solver.cost(week, baseline)[0]

    street = scenarios.street_office()
    big = solver.solve(street, time_limit=street_limit, gap_limit=0.01, workers=args.workers)
    assert solver.check(street, big.assignments) == []
    street_greedy = solver.greedy(street)
    big_base = solver.fairness(street, street_greedy)
    big_base_holes = solver.cost(street, street_greedy)[0]

    # Tonight's night shift at the first gate, Wednesday; the drop-out comes at 22:00.
    night = next(s for s in week.shifts if s.id == "gate1-2026-12-09-night")
    person = next(v for s, v in result.assignments if s == night.id)
    current = replace(week, current=frozenset(result.assignments))
    fixed = solver.repair(
        current,
        [(night.id, person)],
        now=night.start - timedelta(hours=2),
        time_limit=2,
        workers=args.workers,
    )
    assert solver.check(current, fixed.assignments) == []

    table = Table(
        "problem",
        "shifts",
        "volunteers",
        "seconds",
        "status",
        "gap",
        "holes",
        "hours spread",
        "nights spread",
        "weekend spread",
    )
    table.add_row(
        "reference week",
        str(len(week.shifts)),
        str(len(week.volunteers)),
        f"{result.seconds:.2f}",
        result.status,
        f"{result.gap:.1%}",
        str(len(result.holes)),
        f"{result.hours_spread:g} h",
        str(result.nights_spread),
        str(result.weekend_spread),
    )
    table.add_row(
        "  greedy baseline",
        "",
        "",
        "",
        "",
        "",
        str(base_holes),
        f"{base['hours_spread']:g} h",
        str(base["nights_spread"]),
        str(base["weekend_spread"]),
    )
    table.add_row(
        f"street office ({street_limit:g} s limit)",
        str(len(street.shifts)),
        str(len(street.volunteers)),
        f"{big.seconds:.2f}",
        big.status,
        f"{big.gap:.1%}",
        str(len(big.holes)),
        f"{big.hours_spread:g} h",
        str(big.nights_spread),
        str(big.weekend_spread),
    )
    table.add_row(
        "  greedy baseline",
        "",
        "",
        "",
        "",
        "",
        f"{big_base_holes} missing",
        f"{big_base['hours_spread']:g} h",
        str(big_base["nights_spread"]),
        str(big_base["weekend_spread"]),
    )
    table.add_row(
        "repair after 1 cancellation",
        "",
        "",
        f"{fixed.seconds:.2f}",
        fixed.status,
        f"{fixed.gap:.1%}",
        str(len(fixed.holes)),
        f"{fixed.changes} changes",
        "",
        "",
    )
    Console(width=150).print(table)
    emit(
        {
            "seconds": result.seconds,
            "gap": result.gap,
            "status": result.status,
            "holes": len(result.holes),
            "hours_spread": result.hours_spread,
            # What the count relaxation proves no roster can beat (bounds.minutes_spread_bound).
            "hours_spread_proven_at_least": bounds.minutes_spread_bound(week) / 60,
            "objective": result.objective,
            "nights_spread": result.nights_spread,
            "weekend_spread": result.weekend_spread,
            "branches": result.branches,
            "det_seconds": result.deterministic_seconds,
            "bounds": solver.BOUNDS,
            "greedy_holes": base_holes,
            "greedy_hours_spread": base["hours_spread"],
            "greedy_nights_spread": base["nights_spread"],
            "street_limit_s": street_limit,
            "street_seconds": big.seconds,
            "street_gap": big.gap,
            "street_holes": len(big.holes),
            "street_det_seconds": big.deterministic_seconds,
            "street_hours_spread": big.hours_spread,
            "street_nights_spread": big.nights_spread,
            "street_greedy_hours_spread": big_base["hours_spread"],
            "street_greedy_missing_people": big_base_holes,
            "repair_seconds": fixed.seconds,
            "repair_changes": fixed.changes,
            "repair_holes": len(fixed.holes),
            "workers": args.workers,
        }
    )


if __name__ == "__main__":
    main()
