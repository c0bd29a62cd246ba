"""Lab results (检测结果): a CSV or XLSX of tube barcodes and results, checked first and
applied in one transaction; a positive tube flags its members (home isolation, the retest
list, their building leads told); individual retests close the loop.

Importing the same file again, or a file whose results are already stored, changes
nothing and tells no one twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from dataclasses import dataclass, field

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, audit, require
from fengchao.db import begin_write, utcnow
from fengchao.notify import service as notify
from fengchao.registry import edits
from fengchao.registry.models import Building, Compound, HealthStatus, Household, Person, Unit
from fengchao.registry.sheets import SheetError, SheetLimits, read_table
from fengchao.sampling.models import (
    LabImport,
    LabResult,
    Retest,
    RetestStatus,
    SamplingRound,
    Swab,
    Tube,
    TubeStatus,
)
from fengchao.sampling.service import SamplingRefused, get_round, local_zone
from fengchao.settings import get_settings
from fengchao.tracing import flows as tracing_flows
from fengchao.web.i18n import _

ALIASES: dict[str, tuple[str, ...]] = {
    "barcode": (
        "试管条码",
        "条码",
        "试管编号",
        "试管号",
        "管号",
        "样本编号",
        "条形码",
        "barcode",
        "Barcode",
        "tube",
        "Tube",
    ),
    "result": ("检测结果", "结果", "核酸结果", "result", "Result"),
    "time": ("检测时间", "报告时间", "时间", "time", "Time"),
}
RESULT_WORDS = {
    LabResult.negative: ("阴性", "negative", "neg", "-", "n"),
    LabResult.positive: ("阳性", "positive", "pos", "+", "p"),
    LabResult.invalid: ("无效", "invalid", "复检", "待复检", "inv"),
}


def result_label(result: LabResult | None) -> str:
    match result:
        case LabResult.negative:
            return _("阴性")
        case LabResult.positive:
            return _("阳性")
        case LabResult.invalid:
            return _("无效")
    return _("待出结果")


@dataclass(frozen=True)
class RowProblem:
    row: int
    message: str


@dataclass
class LabReport:
    """What an import found (``errors``: nothing was applied) or did."""

    rows: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    applied: int = 0
    unchanged: int = 0
    positives: list[str] = field(default_factory=list)
    flagged: int = 0
    repeated: bool = False
    import_id: int | None = None


def parse_result(value: object) -> LabResult | None:
    text = str(value or "").strip().lower()
    for result, words in RESULT_WORDS.items():
        if text in words:
            return result
    return None


def _parse_time(value: object, zone: dt.tzinfo) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value).strip().replace("/", "-")
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC)


def _limits() -> SheetLimits:
    settings = get_settings().imports
    return SheetLimits(
        max_bytes=settings.max_bytes,
        max_rows=settings.max_rows,
        max_uncompressed_bytes=settings.max_uncompressed_bytes,
        max_compression_ratio=settings.max_compression_ratio,
        max_cell_chars=settings.max_cell_chars,
    )


def _cell(values: list[object], index: int | None) -> object:
    if index is None or index >= len(values):
        return None
    return values[index]


@dataclass(frozen=True)
class _Row:
    row: int
    tube: Tube
    result: LabResult
    at: dt.datetime | None


def import_results(
    *, session: Session, actor: Actor, round_id: int, content: bytes, filename: str
) -> LabReport:
    """Check a lab file against the round, then apply it in one transaction (see the
    module's docstring). Errors are listed by row and nothing is applied while any remain."""
    require(actor, Permission.sampling_manage)
    begin_write(session)
    found = get_round(session, actor, round_id)
    report = LabReport()
    digest = hashlib.sha256(content).hexdigest()
    try:
        table = read_table(content, filename, aliases=ALIASES, key="barcode", limits=_limits())
    except SheetError as exc:
        report.errors.append(RowProblem(exc.row, exc.message))
        return report
    report.rows = len(table.rows)
    if "result" not in table.columns:
        report.errors.append(RowProblem(table.header_row, _("找不到“检测结果”列")))
        return report
    zone = local_zone(session, found.community_id)
    barcodes = {
        str(_cell(values, table.columns["barcode"]) or "").strip().upper()
        for _n, values in table.rows
    }
    tubes = {
        t.barcode: t
        for t in session.scalars(
            select(Tube).where(Tube.community_id == found.community_id, Tube.barcode.in_(barcodes))
        )
    }
    round_names = dict(
        session.execute(
            select(SamplingRound.id, SamplingRound.name).where(
                SamplingRound.community_id == found.community_id
            )
        ).all()
    )
    seen: dict[str, int] = {}
    good: list[_Row] = []
    for number, values in table.rows:
        barcode = str(_cell(values, table.columns["barcode"]) or "").strip().upper()
        raw_result = _cell(values, table.columns["result"])
        if not barcode:
            report.errors.append(RowProblem(number, _("试管条码为空")))
            continue
        if barcode in seen:
            report.errors.append(
                RowProblem(
                    number, _("试管 {b} 重复（第 {r} 行已有）").format(b=barcode, r=seen[barcode])
                )
            )
            continue
        seen[barcode] = number
        tube = tubes.get(barcode)
        if tube is None:
            report.errors.append(
                RowProblem(number, _("未知试管 {b}：本社区没有登记").format(b=barcode))
            )
            continue
        if tube.round_id != found.id:
            name = round_names.get(tube.round_id, str(tube.round_id))
            report.errors.append(
                RowProblem(
                    number, _("试管 {b} 属于另一轮采样（{name}）").format(b=barcode, name=name)
                )
            )
            continue
        result = parse_result(raw_result)
        if result is None:
            report.errors.append(
                RowProblem(
                    number,
                    _("检测结果“{v}”无法识别：应为 阴性、阳性 或 无效").format(v=raw_result or ""),
                )
            )
            continue
        try:
            at = _parse_time(_cell(values, table.columns.get("time")), zone)
        except ValueError:
            report.errors.append(RowProblem(number, _("检测时间格式不对")))
            continue
        if tube.result is not None and tube.result != result:
            report.errors.append(
                RowProblem(
                    number,
                    _("试管 {b} 已有结果“{old}”，与本文件的“{new}”不同，请与检测机构核对").format(
                        b=barcode, old=result_label(tube.result), new=result_label(result)
                    ),
                )
            )
            continue
        good.append(_Row(number, tube, result, at))
    if report.errors:
        return report
    report.repeated = (
        session.scalar(
            select(LabImport.id).where(LabImport.round_id == found.id, LabImport.digest == digest)
        )
        is not None
    )
    lab = LabImport(
        community_id=found.community_id,
        round_id=found.id,
        filename=filename[:128],
        digest=digest,
        rows=report.rows,
        user_id=actor.user_id or None,
    )
    session.add(lab)
    session.flush()
    report.import_id = lab.id
    now = utcnow()
    for row in good:
        if row.tube.result == row.result:
            report.unchanged += 1
            continue
        row.tube.result = row.result
        row.tube.result_at = row.at or now
        row.tube.lab_import_id = lab.id
        if row.tube.status != TubeStatus.closed:
            row.tube.status = TubeStatus.closed
            row.tube.closed_at = now
        report.applied += 1
        if row.result == LabResult.positive:
            report.positives.append(row.tube.barcode)
            report.flagged += _flag_members(session, actor, found, row.tube)
    lab.applied = report.applied
    lab.positives = len(report.positives)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="lab_import",
        object_type="sampling_round",
        object_id=found.id,
        community_id=found.community_id,
        rows=report.rows,
        applied=report.applied,
        positives=len(report.positives),
    )
    return report


def _flag_members(session: Session, actor: Actor, found: SamplingRound, tube: Tube) -> int:
    """Each member of a positive tube: on the retest list, home isolation (unless already
    isolated or positive); their building leads told, once per tube and building."""
    members = session.execute(
        select(Person, Household.building_id, Unit.name, Household.room)
        .join(Swab, Swab.person_id == Person.id)
        .join(Household, Household.id == Person.household_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(Swab.tube_id == tube.id)
        .order_by(Swab.id)
    ).all()
    by_building: dict[int, list[str]] = {}
    flagged = 0
    for person, building_id, unit, room in members:
        exists = session.scalar(
            select(Retest.id).where(Retest.tube_id == tube.id, Retest.person_id == person.id)
        )
        if exists is None:
            session.add(
                Retest(
                    community_id=found.community_id,
                    round_id=found.id,
                    tube_id=tube.id,
                    person_id=person.id,
                )
            )
            flagged += 1
        if person.health_status in (HealthStatus.normal, HealthStatus.recovered):
            _set_health(session, actor, person.id, HealthStatus.home_isolation)
        by_building.setdefault(building_id, []).append(f"{unit}-{room} {person.name}")
    for building_id, names in by_building.items():
        notify.send(
            session=session,
            community_id=found.community_id,
            kind="sampling_positive",
            title=_("混管阳性：试管 {b}，请通知单采复核并居家隔离").format(b=tube.barcode),
            body=_("{round}：本楼有 {n} 人在阳性混管中").format(round=found.name, n=len(names)),
            detail="\n".join(names),
            urgency="urgent",
            to=[notify.Recipient.at(Role.building_lead, ScopeLevel.building, building_id)],
            link=f"/sampling/rounds/{found.id}/retests",
            key=f"sampling-positive-{tube.id}-{building_id}",
            source="sampling",
        )
    session.flush()
    return flagged


def _set_health(session: Session, actor: Actor, person_id: int, status: HealthStatus) -> None:
    with contextlib.suppress(edits.NothingChanged):
        edits.edit_person(
            session=session,
            actor=actor,
            person_id=person_id,
            version=None,
            submitted={"health_status": status.value},
        )


@dataclass(frozen=True)
class RetestRow:
    id: int
    person_id: int
    name: str
    place: str
    barcode: str
    status: RetestStatus
    health: HealthStatus


def retests(
    *, session: Session, actor: Actor, round_id: int, retest_id: int | None = None
) -> list[RetestRow]:
    """The round's retests within the actor's scope (only ``retest_id`` when given)."""
    require(actor, Permission.sampling_coverage)
    found = get_round(session, actor, round_id)
    from fengchao.registry.scope import household_in_scope

    rows = session.execute(
        select(
            Retest,
            Person.name,
            Person.health_status,
            Compound.name,
            Building.name,
            Unit.name,
            Household.room,
            Tube.barcode,
        )
        .join(Person, Person.id == Retest.person_id)
        .join(Household, Household.id == Person.household_id)
        .join(Building, Building.id == Household.building_id)
        .join(Compound, Compound.id == Building.compound_id)
        .join(Unit, Unit.id == Household.unit_id)
        .join(Tube, Tube.id == Retest.tube_id)
        .where(
            Retest.round_id == found.id,
            household_in_scope(actor.scope),
            true() if retest_id is None else Retest.id == retest_id,
        )
        .order_by(Retest.status, Household.building_id, Household.id)
    ).all()
    # The whole address: a worker's list spans every compound, where "1-101" is many flats.
    return [
        RetestRow(r.id, r.person_id, name,
                  _("{c} {b}号楼").format(c=compound, b=building) + f" {unit}-{room}",
                  barcode, r.status, health)
        for r, name, health, compound, building, unit, room, barcode in rows
    ]  # fmt: skip


def resolve_retest(*, session: Session, actor: Actor, retest_id: int, result: LabResult) -> Retest:
    """A worker records an individual result: negative lifts the isolation flag, positive
    makes the person a confirmed case (健康状态 阳性), which tracing starts from."""
    require(actor, Permission.sampling_manage)
    begin_write(session)
    retest = session.get(Retest, retest_id)
    if retest is None:
        raise NotFound(f"retest {retest_id}")
    get_round(session, actor, retest.round_id)
    if result == LabResult.invalid:
        raise SamplingRefused(_("单采结果无效时请重新采样，之后再记录"), field="result")
    retest.status = RetestStatus.negative if result == LabResult.negative else RetestStatus.positive
    retest.resolved_at = utcnow()
    retest.resolved_by = actor.user_id or None
    person = session.get(Person, retest.person_id)
    assert person is not None
    if result == LabResult.positive:
        _set_health(session, actor, person.id, HealthStatus.positive)
        # The confirmed case opens for contact tracing at once (a second result joins the
        # open case), dated from the pooled swab that found it.
        swabbed = session.scalar(
            select(func.min(Swab.taken_at)).where(
                Swab.tube_id == retest.tube_id, Swab.person_id == person.id
            )
        )
        tube = session.get(Tube, retest.tube_id)
        tracing_flows.case_from_result(
            session=session,
            actor=actor,
            person_id=person.id,
            sampled_at=swabbed,
            confirmed_at=retest.resolved_at,
            note=_("单采阳性（{round}，混管 {tube}）").format(
                round=get_round(session, actor, retest.round_id).name,
                tube=tube.barcode if tube is not None else "",
            ),
        )
    elif person.health_status == HealthStatus.home_isolation:
        pending = session.scalar(
            select(Retest.id).where(
                Retest.person_id == person.id,
                Retest.status == RetestStatus.pending,
                Retest.id != retest.id,
            )
        )
        if pending is None:
            _set_health(session, actor, person.id, HealthStatus.normal)
    audit(
        session=session,
        actor=actor,
        action="retest_result",
        object_type="person",
        object_id=person.id,
        community_id=retest.community_id,
        result=result.value,
    )
    return retest
