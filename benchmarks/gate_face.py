"""A face frame through the gate's face step (``access.faces.identify_for_gate``) against
the bare ``FacePipeline`` on the same frames, in the same run, interleaved frame by frame.

Residents: the first photo of every person in ../shared/data/faces is enrolled through
``faces.enrol`` into a throwaway database (SQLite by default); the gallery is then filled
to 15,000 and 100,000 people with synthetic descriptors (four templates each, as an
enrolment with three synthetic masks keeps), added to the process's gallery in memory,
so the search is as large as a real community's. Frames: the *other* photos of the
enrolled people (and a few strangers) placed on a 640×480 and a 1280×720 canvas, JPEG.

Bare = ``decode_image`` + ``FacePipeline.largest_face`` + ``FacePipeline.identify`` (what
any caller must do with a JPEG from a camera); also reported without the decoding
(``bare_pixels``). Service = ``identify_for_gate`` with a new database session per frame
(decode, change-log poll, largest centred face, search, the match confirmed on file).
``overhead_ratio`` = service p50 / bare p50 (goal ≤ 1.10); top-level figures are for
640×480 and 100,000 people (goal p95 ≤ 200 ms).
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import canvas, database, emit, postgres_available
from sqlalchemy.orm import Session, sessionmaker

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
SIZES = ((640, 480), (1280, 720))
GALLERIES = (15_000, 100_000)


def grid(session: Session, residents: int) -> list[int]:
    from fengchao.registry.models import (
        Building,
        Community,
        Compound,
        Household,
        Person,
        Street,
        Unit,
    )

    street = Street(name="宏路街道")
    session.add(street)
    session.flush()
    community = Community(street_id=street.id, name="宏侨社区")
    session.add(community)
    session.flush()
    compound = Compound(community_id=community.id, name="华润中央公园")
    session.add(compound)
    session.flush()
    building = Building(community_id=community.id, compound_id=compound.id, name="5")
    session.add(building)
    session.flush()
    unit = Unit(community_id=community.id, building_id=building.id, name="1")
    session.add(unit)
    session.flush()
    people = []
    for n in range(residents):
        household = Household(
            community_id=community.id,
            compound_id=compound.id,
            building_id=building.id,
            unit_id=unit.id,
            room=str(101 + n),
        )
        session.add(household)
        session.flush()
        person = Person(community_id=community.id, household_id=household.id, name=f"居民{n}")
        session.add(person)
        session.flush()
        people.append(person.id)
    session.commit()
    return [community.id, *people]


def synthetic(gallery: object, count: int, start: int) -> None:
    """``count`` people of four random templates each (kinds 0..3), ids from ``start``."""
    from fengchao.vision.gallery import FaceGallery

    assert isinstance(gallery, FaceGallery)
    rng = np.random.default_rng(start)
    batch = 5000
    for first in range(0, count, batch):
        entries = []
        for person in range(first, min(count, first + batch)):
            base = rng.normal(0, 0.085, 128).astype(np.float32)
            variants = base + rng.normal(0, 0.03, (4, 128)).astype(np.float32)
            entries.append((start + person, variants, np.arange(4)))
        gallery.add_many(entries)


def percentiles(values: list[float]) -> tuple[float, float]:
    return round(float(np.percentile(values, 50)), 1), round(float(np.percentile(values, 95)), 1)


def timed_bare(
    used: Any, gallery: Any, frame: bytes, bare: list[float], bare_pixels: list[float]
) -> None:
    """decode_image + FacePipeline.largest_face + FacePipeline.identify."""
    from fengchao.vision.images import decode_image

    start = time.perf_counter()
    image = decode_image(frame)
    decoded = time.perf_counter()
    face = used.largest_face(image)
    if face is not None:
        used.identify(face, gallery)
    end = time.perf_counter()
    bare.append((end - start) * 1000)
    bare_pixels.append((end - decoded) * 1000)


def timed_service(
    faces: Any, sessions: Any, community: int, frame: bytes, service: list[float]
) -> int | None:
    """identify_for_gate with a session of its own, as a request has."""
    start = time.perf_counter()
    with sessions() as session:
        outcome = faces.identify_for_gate(session, community_id=community, frame=frame)
    service.append((time.perf_counter() - start) * 1000)
    found: int | None = outcome.person_id
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    # Keys of this run only (nothing written to a keys file).
    os.environ.setdefault(
        "FENGCHAO_SECURITY__DATA_KEY", base64.b64encode(secrets.token_bytes(32)).decode()
    )
    os.environ.setdefault("FENGCHAO_SECURITY__SECRET_KEY", secrets.token_urlsafe(48))
    if not DATA.is_dir():
        raise SystemExit(f"the face photos are not at {DATA}")
    if args.database == "postgresql" and not postgres_available():
        raise SystemExit("PostgreSQL is not reachable")
    from fengchao.access import faces
    from fengchao.auth.service import SYSTEM_ACTOR
    from fengchao.vision.images import decode_image

    by_person: dict[str, list[Path]] = {}
    for path in sorted(DATA.glob("*.jpg")):
        by_person.setdefault(path.stem.rsplit("_", 1)[0], []).append(path)
    names = [name for name, files in by_person.items() if len(files) >= 2]
    enrolled_names, strangers = names[: len(names) - 4], names[len(names) - 4 :]
    rounds = 1 if args.quick else 3
    per_person = 1 if args.quick else 3
    folder = Path(tempfile.mkdtemp(prefix="gate-face-"))
    os.environ["FENGCHAO_DATA_DIR"] = str(folder)
    figures: dict[str, object] = {"database": args.database}
    with database(args.database, folder) as engine:
        sessions = sessionmaker(bind=engine, expire_on_commit=False)
        with sessions() as session:
            community, *people = grid(session, len(enrolled_names))
        identity: dict[str, int] = {}
        # The bare pipeline: one of its own (the service takes its own from its pool).
        used = faces.make_pipeline()
        for name, person_id in zip(enrolled_names, people, strict=True):
            with sessions() as session:
                try:
                    faces.enrol(
                        session,
                        SYSTEM_ACTOR,
                        person_id,
                        [by_person[name][0].read_bytes()],
                        consent=faces.ConsentGiven(name),
                        face_pipeline=used,
                    )
                    session.commit()
                    identity[name] = person_id
                except faces.FaceRefused:
                    session.rollback()
        probes = [
            (identity.get(name), decode_image(path.read_bytes()))
            for name in [*identity, *strangers]
            for path in by_person[name][1 : 1 + per_person]
        ]
        print(f"{len(identity)} people enrolled from photos, {len(probes)} probe photos")
        by_config: dict[str, dict[str, float]] = {}
        for size in GALLERIES:
            faces.reset_galleries()
            with sessions() as session:
                gallery = faces.community_gallery(session, community)
            synthetic(gallery, size - len(identity), 10_000_000)
            for width, height in SIZES:
                frames = [(who, canvas(photo, width, height)) for who, photo in probes]
                service: list[float] = []
                bare: list[float] = []
                bare_pixels: list[float] = []
                right = wrong = 0
                for _ in range(rounds):
                    for index, (who, frame) in enumerate(frames):
                        # Taken in turn, each first on every other frame (a busy machine
                        # then weighs on both alike).
                        if index % 2:
                            found = timed_service(faces, sessions, community, frame, service)
                            timed_bare(used, gallery, frame, bare, bare_pixels)
                        else:
                            timed_bare(used, gallery, frame, bare, bare_pixels)
                            found = timed_service(faces, sessions, community, frame, service)
                        if found is not None:
                            right += found == who
                            wrong += found != who
                s50, s95 = percentiles(service)
                b50, b95 = percentiles(bare)
                p50, _p95 = percentiles(bare_pixels)
                key = f"{width}x{height}_{size // 1000}k"
                by_config[key] = {
                    "p50_ms": s50,
                    "p95_ms": s95,
                    "bare_p50_ms": b50,
                    "bare_p95_ms": b95,
                    "bare_pixels_p50_ms": p50,
                    "overhead_ratio": round(s50 / b50, 3),
                    "recognised": right,
                    "wrong_person": wrong,
                    "frames": len(service),
                }
                print(
                    f"{key:>16}: service p50 {s50:6.1f} p95 {s95:6.1f} ms | bare p50 {b50:6.1f} "
                    f"p95 {b95:6.1f} ms (pixels only {p50:6.1f}) | ratio {s50 / b50:.3f} | "
                    f"recognised {right}, wrong {wrong} of {len(service)}"
                )
    top = by_config["640x480_100k"]
    figures |= {
        "p50_ms": top["p50_ms"],
        "p95_ms": top["p95_ms"],
        "overhead_ratio": top["overhead_ratio"],
        "worst_overhead_ratio": max(c["overhead_ratio"] for c in by_config.values()),
        "by_config": by_config,
    }
    emit(figures)


if __name__ == "__main__":
    main()
