"""Frame-to-card latency at the gate console, measured in the browser: from the moment the
page grabs a camera frame (``performance.now()`` before the motion check) to the card
painted (the next animation frame after the card is filled), with one console and with
four consoles open at once against one server (one uvicorn worker, SQLite).

The same with a resident code held up instead of a face (``code_*``: the console's own
share, no face model).

The camera is Chromium's fake device fed a Y4M video written with numpy: an empty scene
for 1.2 s, then an enrolled resident's face for 0.8 s, in a loop. Each time the face
appears the page sees movement, sends the frame, and the real face pipeline
(``access.faces.identify_for_gate``) and the decision service answer with the card; the
page then waits for the scene to be quiet before sending again, as at a real gate. The
first two cards of each console are the warm-up (models loading) and are left out.

    python benchmarks/console.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import database, emit  # noqa: E402

FACES = ROOT.parent / "shared" / "data" / "faces"
WARM_UP = 2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def setup(engine: object, consoles: int) -> tuple[str, list[int], str]:
    from sqlalchemy.orm import Session
    from tests.conftest import PASSWORD, build_grid

    from fengchao.access import faces
    from fengchao.access import service as access
    from fengchao.auth import service as auth_service
    from fengchao.auth.models import Role, ScopeLevel
    from fengchao.auth.service import SYSTEM_ACTOR, GridScope

    with Session(engine) as session:  # type: ignore[call-overload]
        grid = build_grid(session)
        auth_service.create_user(
            session=session, username="bench-guard", password=PASSWORD, role=Role.guard,
            scope=GridScope(ScopeLevel.compound, grid.park.id), display_name="卡口",
        )  # fmt: skip
        gates = [
            access.create_gate(
                session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id,
                name=f"门{n + 1}", kind="pedestrian",
            ).id
            for n in range(consoles)
        ]  # fmt: skip
        faces.enrol(
            session, SYSTEM_ACTOR, grid.resident5.id,
            [(FACES / f"angelina_jolie_0{n}.jpg").read_bytes() for n in (1, 2)],
            consent=faces.ConsentGiven("林国平"),
        )  # fmt: skip
        session.commit()
        from fengchao.access import codes

        code = codes.personal_code(session, grid.resident6.id)
    return PASSWORD, gates, code


def run_consoles(
    browser: object, base: str, password: str, gates: list[int], samples: int, limit_s: float
) -> tuple[list[float], list[float]]:
    """Open one console per gate, wait for ``samples`` cards each (after the warm-up);
    (browser latencies, server decision times) in ms."""
    pages = []
    for gate in gates:
        context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "bench-guard")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(f"{base}/gates/{gate}/console")
        pages.append(page)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        counts = [page.evaluate("window.fcConsole.latencies.length") for page in pages]
        if min(counts) >= samples + WARM_UP:
            break
        time.sleep(0.5)
    latencies: list[float] = []
    server: list[float] = []
    for page in pages:
        seen = page.evaluate("window.fcConsole.latencies")[WARM_UP:]
        latencies += [s["ms"] for s in seen]
        server += [s["server_ms"] for s in seen if s.get("server_ms") is not None]
        page.context.close()
    return latencies, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cards per console")
    parser.add_argument(
        "--encoder-processes",
        type=int,
        default=None,
        help=(
            "face encoder worker processes of the server (0: in the web process; default: "
            "as production, one per core for the dlib encoder, none for onnx)"
        ),
    )
    args = parser.parse_args()
    if args.encoder_processes is None:
        dlib = os.environ.get("FENGCHAO_VISION__FACE_ENCODER", "onnx") == "dlib"
        args.encoder_processes = min(4, os.cpu_count() or 1) if dlib else 0
    # The server's setting as production has it (under test it would default to 0).
    os.environ["FENGCHAO_VISION__FACE_ENCODER_PROCESSES"] = str(args.encoder_processes)
    samples_one, samples_four = (10, 6) if args.quick else (40, 20)

    from playwright.sync_api import sync_playwright
    from tests.e2e.fake_camera import blank, camera_args, photo, with_qr, write_y4m
    from tests.e2e.test_import_flow import ARGS

    from fengchao.testing import served_app

    folder = Path(tempfile.mkdtemp(prefix="fc-console-bench-"))
    face = photo(FACES / "angelina_jolie_03.jpg")
    video = write_y4m(folder / "gate.y4m", [blank()] * 12 + [face] * 8, fps=10)
    with database("sqlite", folder) as engine:
        password, gates, code = setup(engine, 4)
        shown = write_y4m(folder / "code.y4m", [blank()] * 12 + [with_qr(code)] * 8, fps=10)
        url = engine.url.render_as_string(hide_password=False)
        with served_app(url, folder) as base, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=ARGS + camera_args(video)
            )
            one, one_server = run_consoles(browser, base, password, gates[:1], samples_one, 180)
            four, four_server = run_consoles(browser, base, password, gates, samples_four, 300)
            browser.close()
            # The console's own share: a resident code held up (no face model).
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=ARGS + camera_args(shown)
            )
            coded, coded_server = run_consoles(browser, base, password, gates[:1], samples_one, 180)
            browser.close()
    figures = {
        "p50_ms": round(statistics.median(one), 1) if one else None,
        "p95_ms": round(percentile(one, 95), 1) if one else None,
        "server_p50_ms": round(statistics.median(one_server), 1) if one_server else None,
        "p50_ms_4_consoles": round(statistics.median(four), 1) if four else None,
        "p95_ms_4_consoles": round(percentile(four, 95), 1) if four else None,
        "server_p50_ms_4_consoles": round(statistics.median(four_server), 1)
        if four_server
        else None,
        "code_p50_ms": round(statistics.median(coded), 1) if coded else None,
        "code_p95_ms": round(percentile(coded, 95), 1) if coded else None,
        "code_server_p50_ms": round(statistics.median(coded_server), 1) if coded_server else None,
        "cards": len(one),
        "cards_4_consoles": len(four),
        "frame": "480x360 JPEG q0.7 from the page, one enrolled face, real face pipeline",
        "encoder_processes": args.encoder_processes,
        "loadavg_1min": os.getloadavg()[0],
        "database": "sqlite",
    }
    print(
        f"{'frames':>6} {'consoles':>9} {'cards':>6} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'server p50 ms':>14}"
    )
    print(
        f"{'face':>6} {1:>9} {len(one):>6} {figures['p50_ms']!s:>8} {figures['p95_ms']!s:>8} "
        f"{figures['server_p50_ms']!s:>14}"
    )
    print(
        f"{'face':>6} {4:>9} {len(four):>6} {figures['p50_ms_4_consoles']!s:>8} "
        f"{figures['p95_ms_4_consoles']!s:>8} {figures['server_p50_ms_4_consoles']!s:>14}"
    )
    print(
        f"{'code':>6} {1:>9} {len(coded):>6} {figures['code_p50_ms']!s:>8} "
        f"{figures['code_p95_ms']!s:>8} {figures['code_server_p50_ms']!s:>14}"
    )
    emit(figures)


if __name__ == "__main__":
    main()
