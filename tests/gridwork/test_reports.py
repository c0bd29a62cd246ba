"""Residents' reports: routing to the lead or the property, photos checked, shrunk, stripped
of metadata and sealed, statuses, who sees which report."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope, NotFound
from fengchao.gridwork import photos, reports
from fengchao.gridwork.models import ReportRoute, ReportStatus
from fengchao.notify.models import Notification
from tests.conftest import Grid, Persona, make_persona


def _jpeg(width: int = 3000, height: int = 2000) -> bytes:
    image = Image.new("RGB", (width, height), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0131] = "secret-software"  # Software
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def _report(session: Session, grid: Grid, **kw: object) -> reports.ReportSubmitted:
    values: dict[str, object] = {
        "community_id": grid.community.id, "compound_id": grid.park.id,
        "building_id": grid.b5.id, "category": "tailgating", "place": "东门",
    }  # fmt: skip
    values.update(kw)
    return reports.submit(session=session, **values)  # type: ignore[arg-type]


def test_photo_is_shrunk_stripped_and_sealed(session: Session, grid: Grid, lead5: Persona) -> None:
    made = _report(session, grid, photo=_jpeg())
    stored = made.report.photo
    assert stored is not None and not stored.startswith(b"\xff\xd8")  # sealed, not a JPEG
    jpeg = reports.photo(session=session, actor=lead5.actor, report_id=made.report.id)
    kept = Image.open(io.BytesIO(jpeg))
    assert max(kept.size) == photos.KEPT_SIDE
    assert not kept.getexif() and b"PhoneMaker" not in jpeg and b"secret-software" not in jpeg


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.4 not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 50, b"x" * (9 * 1024 * 1024)],
    ids=["not-an-image", "truncated", "huge"],
)
def test_a_bad_photo_refuses_the_report(session: Session, grid: Grid, data: bytes) -> None:
    with pytest.raises(reports.ReportRefused) as refused:
        _report(session, grid, photo=data)
    assert refused.value.field == "photo"


def test_broken_gate_goes_to_the_property_and_tailgating_to_the_lead(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    property_staff = make_persona(
        session, "物业", Role.property_staff, GridScope(ScopeLevel.compound, grid.park.id)
    )
    gate = _report(session, grid, category="broken_gate").report
    tail = _report(session, grid).report
    assert gate.route == ReportRoute.property and tail.route == ReportRoute.building_lead
    assert [r.id for r in reports.open_reports(session=session, actor=lead5.actor)] == [tail.id]
    seen = reports.open_reports(session=session, actor=property_staff.actor)
    assert [r.id for r in seen] == [gate.id]
    with pytest.raises(NotFound):
        reports.get(session=session, actor=lead5.actor, report_id=gate.id)
    links = set(session.scalars(select(Notification.link)))
    assert {f"/gridwork/reports/{gate.id}", f"/gridwork/reports/{tail.id}"} <= links


def test_report_statuses_and_the_resolution_note(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    made = _report(session, grid)
    reports.set_status(
        session=session, actor=lead5.actor, report_id=made.report.id, status="acknowledged"
    )
    with pytest.raises(reports.ReportRefused):
        reports.set_status(
            session=session, actor=lead5.actor, report_id=made.report.id, status="resolved"
        )
    reports.set_status(
        session=session, actor=lead5.actor, report_id=made.report.id, status="resolved",
        note="已提醒门岗",
    )  # fmt: skip
    assert reports.public_status(session=session, token=made.token).status == ReportStatus.resolved


def test_a_building_of_another_compound_is_refused(session: Session, grid: Grid) -> None:
    with pytest.raises(reports.ReportRefused) as refused:
        _report(session, grid, compound_id=grid.other.id, building_id=grid.b5.id)
    assert refused.value.field == "building"


def test_the_group_chat_gets_no_text_a_resident_typed(session: Session, grid: Grid) -> None:
    made = _report(session, grid, place="2单元 1302门口", details="张三家来了客人")
    message = session.scalar(
        select(Notification).where(Notification.link == f"/gridwork/reports/{made.report.id}")
    )
    assert message is not None
    assert "1302" not in message.body and "张三" not in message.body
    assert "华润中央公园" in message.body
    assert message.detail is not None and "张三" in message.detail
