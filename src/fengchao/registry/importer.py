"""Row-by-row validation of resident and vehicle sheets, before any database work.

Pure: takes a :class:`~fengchao.registry.sheets.Table` and returns a record for every data
row and every problem of every row (not only the first: a user fixes a row once). The
service resolves addresses and duplicates against the database afterwards, for rows with
problems too, so that a wrong phone does not hide a duplicate ID on the same row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fengchao.registry.models import Gender, HealthStatus, Relation, ResidenceStatus
from fengchao.registry.sheets import FormulaWithoutValue, Table
from fengchao.registry.validation import (
    BUILDING_SUFFIXES,
    ROOM_SUFFIXES,
    UNIT_SUFFIXES,
    Address,
    FieldError,
    IdNumber,
    clean_cell_text,
    clip,
    grid_part,
    parse_address,
    parse_care_tags,
    parse_date,
    parse_gender,
    parse_health,
    parse_id_number,
    parse_mobile,
    parse_relation,
    parse_residence,
)
from fengchao.vision.plate_rules import check_plate
from fengchao.web.i18n import _

ADDRESS_ALIASES: dict[str, tuple[str, ...]] = {
    "compound": ("小区", "小区名称", "小区名", "所属小区"),
    "building": ("楼栋", "楼号", "栋", "幢", "楼栋号", "楼", "栋号"),
    "unit": ("单元", "单元号"),
    "room": ("房号", "房间号", "门牌号", "室", "户号", "房间"),
    "address": ("地址", "住址", "现住址", "家庭住址", "楼栋单元房号", "居住地址"),
}

RESIDENT_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "名字", "居民姓名"),
    "gender": ("性别",),
    "id_number": ("身份证号", "身份证号码", "证件号码", "证件号", "身份证", "公民身份号码"),
    "phone": ("手机", "手机号", "手机号码", "联系电话", "电话", "联系方式", "电话号码"),
    **ADDRESS_ALIASES,
    "relation": ("关系", "与户主关系", "户内关系", "家庭关系"),
    "residence_status": ("居住状态", "是否在住", "在住状态", "居住情况"),
    "health_status": ("健康状态", "健康状况"),
    "care_tags": ("关怀标签", "重点人群", "特殊人群", "关爱对象", "人员类别"),
    "birth_date": ("出生日期", "生日", "出生年月"),
    "note": ("备注",),
}

VEHICLE_ALIASES: dict[str, tuple[str, ...]] = {
    "plate": ("车牌号", "车牌", "车牌号码", "号牌号码"),
    **ADDRESS_ALIASES,
    "owner_name": ("车主", "车主姓名", "姓名"),
    "note": ("备注",),
}

FIELD_LABELS = {
    "name": "姓名",
    "gender": "性别",
    "id_number": "身份证号",
    "phone": "手机",
    "compound": "小区",
    "building": "楼栋",
    "unit": "单元",
    "room": "房号",
    "address": "地址",
    "relation": "与户主关系",
    "residence_status": "居住状态",
    "health_status": "健康状态",
    "care_tags": "关怀标签",
    "birth_date": "出生日期",
    "note": "备注",
    "plate": "车牌号",
    "owner_name": "车主",
    "file": "文件",
}


# The templates' example row says this in its 备注; left in, it is a problem, not a person.
EXAMPLE_NOTE = "示例行，导入前请删除"


def field_label(name: str) -> str:
    return _(FIELD_LABELS.get(name, name))


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in one row; ``row`` is the row number Excel shows (header is its own),
    ``name`` the person's name (a vehicle's plate) as the sheet writes it."""

    row: int
    field: str
    message: str
    name: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message, "name": self.name}


@dataclass(slots=True)
class ResidentRecord:
    """One data row as read. ``valid`` is False when the row has problems of its own (they
    are among the errors): it is still checked against the grid and for duplicates, never
    written. ``given`` names the fields the sheet gives a value for; a person already
    registered keeps the others (an absent column or an empty cell erases nothing)."""

    row: int
    name: str
    address: Address | None
    id_number: IdNumber | None
    gender: Gender | None
    birth_date: dt.date | None
    phone: str | None
    relation: Relation
    residence_status: ResidenceStatus
    health_status: HealthStatus
    care_tags: list[str] = field(default_factory=list)
    note: str | None = None
    given: frozenset[str] = frozenset()
    valid: bool = True


@dataclass(slots=True)
class VehicleRecord:
    """One data row of a vehicle sheet; ``valid`` and ``given`` as for residents."""

    row: int
    plate: str
    address: Address | None
    owner_name: str | None
    note: str | None
    given: frozenset[str] = frozenset()
    valid: bool = True


def missing_columns(table: Table, required: tuple[str, ...]) -> list[RowError]:
    """Required columns absent from the header; an address column may stand in for
    building + unit + room."""
    columns = table.columns
    errors = [
        RowError(table.header_row, name, _("缺少必填列“{col}”").format(col=field_label(name)))
        for name in required
        if name not in columns
    ]
    has_parts = all(k in columns for k in ("building", "unit", "room"))
    if not has_parts and "address" not in columns and "room" not in columns:
        errors.append(
            RowError(
                table.header_row,
                "address",
                _("缺少地址列：需要“楼栋”“单元”“房号”三列，或一列“地址”（如 5-2-1302）"),
            )
        )
    return errors


class _Row:
    """Cell access for one row that collects every problem instead of raising."""

    def __init__(self, number: int, values: list[object], columns: dict[str, int]) -> None:
        self.number = number
        self.values = values
        self.columns = columns
        self.problems: list[tuple[str, str]] = []
        self.given: set[str] = set()

    def has(self, name: str) -> bool:
        """Whether the cell holds something (a formula without a value counts: it is wrong,
        not empty)."""
        index = self.columns.get(name)
        if index is None or index >= len(self.values):
            return False
        value = self.values[index]
        return value is not None and not (isinstance(value, str) and not value.strip())

    def note(self) -> str | None:
        note = self.text("note")[:200] or None
        if note == clean_cell_text(EXAMPLE_NOTE):  # as read: full-width commas made half
            self.error("note", _("这是模板里的示例行，导入前请删除这一行"))
        return note

    def errors(self, label: str) -> list[RowError]:
        """The row's problems, each naming the row by ``label`` (the name as written)."""
        return [RowError(self.number, f, m, label) for f, m in self.problems]

    def raw(self, name: str) -> object:
        index = self.columns.get(name)
        if index is None or index >= len(self.values):
            return None
        value = self.values[index]
        if isinstance(value, FormulaWithoutValue):
            self.error(
                name,
                _(
                    "单元格是公式（{f}）但没有计算结果：请在 Excel 中打开后保存，或“粘贴为数值”"
                ).format(f=clip(value.formula)),
            )
            return None
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def text(self, name: str) -> str:
        value = self.raw(name)
        return "" if value is None else clean_cell_text(value)

    def error(self, name: str, message: str) -> None:
        self.problems.append((name, message))

    def address(self) -> Address | None:
        building = grid_part(self.raw("building"), BUILDING_SUFFIXES)
        unit = grid_part(self.raw("unit"), UNIT_SUFFIXES)
        room = grid_part(self.raw("room"), ROOM_SUFFIXES)
        compound = self.text("compound")
        if building and unit and room:
            return Address(compound, building, unit, room)
        combined = self.raw("address") or (self.raw("room") if not (building or unit) else None)
        if combined is not None:
            try:
                parsed = parse_address(combined)
            except FieldError as exc:
                self.error("address" if "address" in self.columns else "room", exc.message)
                return None
            return Address(compound or parsed.compound, parsed.building, parsed.unit, parsed.room)
        missing = [n for n, v in (("building", building), ("unit", unit), ("room", room)) if not v]
        if len(missing) == 3:
            self.error("address", _("没有填写地址（楼栋、单元、房号）"))
        for name in missing if len(missing) < 3 else ():
            self.error(name, _("{col}为空").format(col=field_label(name)))
        return None


def validate_resident_rows(table: Table) -> tuple[list[ResidentRecord], list[RowError]]:
    """A record for every data row (``valid`` False when it has problems) and every
    problem of every row; no records when a required column is missing."""
    records: list[ResidentRecord] = []
    errors = missing_columns(table, ("name",))
    if errors:
        return records, errors
    for number, values in table.rows:
        row = _Row(number, values, table.columns)
        name = row.text("name")
        if not name:
            row.error("name", _("姓名为空"))
        elif len(name) > 64:
            row.error("name", _("姓名太长（超过64个字）"))
        address = row.address()

        id_number: IdNumber | None = None
        raw_id = row.raw("id_number")
        if raw_id is not None:
            row.given.add("id_number")
            try:
                id_number = parse_id_number(raw_id)
            except FieldError as exc:
                row.error("id_number", exc.message)
            else:
                row.given.update(("gender", "birth_date"))

        gender: Gender | None = id_number.gender if id_number else None
        if row.raw("gender") is not None:
            row.given.add("gender")
            try:
                stated = parse_gender(row.raw("gender"))
            except FieldError as exc:
                row.error("gender", exc.message)
            else:
                if id_number and stated != id_number.gender:
                    row.error(
                        "gender",
                        _("性别填的是“{g}”，但身份证号显示为“{id_g}”，请核对").format(
                            g=_("男") if stated == Gender.male else _("女"),
                            id_g=_("男") if id_number.gender == Gender.male else _("女"),
                        ),
                    )
                gender = stated

        birth_date = id_number.birth_date if id_number else None
        if row.raw("birth_date") is not None:
            row.given.add("birth_date")
            try:
                stated_birth = parse_date(row.raw("birth_date"))
            except FieldError as exc:
                row.error("birth_date", exc.message)
            else:
                if id_number and stated_birth != id_number.birth_date:
                    row.error(
                        "birth_date",
                        _("出生日期 {d} 与身份证号中的 {id_d} 不一致").format(
                            d=stated_birth.isoformat(), id_d=id_number.birth_date.isoformat()
                        ),
                    )
                birth_date = stated_birth

        phone: str | None = None
        if row.raw("phone") is not None:
            row.given.add("phone")
            try:
                phone = parse_mobile(row.raw("phone"))
            except FieldError as exc:
                row.error("phone", exc.message)

        parsed: dict[str, Any] = {}
        for name_, parser, default in (
            ("residence_status", parse_residence, ResidenceStatus.living),
            ("health_status", parse_health, HealthStatus.normal),
            ("care_tags", parse_care_tags, []),
        ):
            value = row.raw(name_)
            if value is not None:
                row.given.add(name_)
            try:
                parsed[name_] = default if value is None else parser(value)
            except FieldError as exc:
                row.error(name_, exc.message)
                parsed[name_] = default
        relation = row.raw("relation")
        note = row.note()
        row.given.update(n for n, v in (("relation", relation), ("note", note)) if v is not None)

        errors.extend(row.errors(name))
        records.append(
            ResidentRecord(
                row=number,
                name=name,
                address=address,
                id_number=id_number,
                gender=gender,
                birth_date=birth_date,
                phone=phone,
                relation=parse_relation(relation or ""),
                residence_status=parsed["residence_status"],
                health_status=parsed["health_status"],
                care_tags=sorted(parsed["care_tags"]),
                note=note,
                given=frozenset(row.given | {"name"}),
                valid=not row.problems and address is not None,
            )
        )
    return records, errors


def validate_vehicle_rows(table: Table) -> tuple[list[VehicleRecord], list[RowError]]:
    """As :func:`validate_resident_rows`, for vehicles (a row is named by its plate)."""
    records: list[VehicleRecord] = []
    errors = missing_columns(table, ("plate",))
    if errors:
        return records, errors
    for number, values in table.rows:
        row = _Row(number, values, table.columns)
        plate_text = row.text("plate")
        plate = ""
        if not plate_text:
            row.error("plate", _("车牌号为空"))
        else:
            check = check_plate(plate_text)
            if not check.valid:
                row.error(
                    "plate",
                    _("车牌号“{p}”无效：{reason}").format(p=clip(check.text), reason=check.reason),
                )
            plate = check.text
        address = row.address()
        owner = row.text("owner_name") or None
        note = row.note()
        given = {n for n, v in (("owner_name", owner), ("note", note)) if v is not None}
        errors.extend(row.errors(plate_text))
        records.append(
            VehicleRecord(
                number,
                plate,
                address,
                owner,
                note,
                given=frozenset(given),
                valid=not row.problems and address is not None,
            )
        )
    return records, errors
