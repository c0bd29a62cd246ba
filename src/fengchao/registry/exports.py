"""The workbooks the registry writes: the completeness report, the import templates and
the import error file — all through :mod:`fengchao.tabular`, which neutralises cells a
spreadsheet would run as formulas (names and error messages are user-supplied text)."""

from __future__ import annotations

import datetime as dt

from fengchao.registry import completeness
from fengchao.registry.import_report import ImportReport
from fengchao.registry.importer import EXAMPLE_NOTE, field_label
from fengchao.registry.service import GAP_LABELS, CompletenessReport
from fengchao.registry.sheets import FormulaWithoutValue, column_letter, normalise_header
from fengchao.tabular import Sheet, xlsx_bytes
from fengchao.web.i18n import _


def completeness_xlsx(result: CompletenessReport) -> bytes:
    """The report as a workbook: one summary sheet, one sheet listing every item to fix."""
    gaps = list(completeness.Gap)
    header = [
        _("小区"),
        _("楼栋"),
        _("户数"),
        _("已登记户"),
        _("人数"),
        _("登记率%"),
        _("手机覆盖%"),
        _("人脸覆盖%"),
        _("身份证覆盖%"),
    ]

    def figures_row(compound: str, building: str, f: completeness.Figures) -> list[object]:
        return [
            compound,
            building,
            f.households,
            f.registered_households,
            f.people,
            f.household_coverage,
            f.phone_coverage,
            f.face_coverage,
            f.id_coverage,
            *[f.gaps[g] for g in gaps],
        ]

    ordered = sorted(result.buildings.values(), key=lambda b: (b.compound_id, b.sort_key, b.name))
    summary = [
        figures_row(
            b.compound.name, b.name, result.report.by_building.get(b.id, completeness.Figures())
        )
        for b in ordered
    ]
    summary.append(figures_row(_("合计"), "", result.report.total))
    details = (
        [
            result.buildings[item.building_id].compound.name,
            result.buildings[item.building_id].name,
            item.address,
            item.name or "",
            _(GAP_LABELS[item.gap]),
        ]
        for item in result.report.items
    )
    detail_header = [_("小区"), _("楼栋"), _("房号"), _("姓名"), _("问题")]
    return xlsx_bytes(
        [
            Sheet(_("汇总"), header + [_(GAP_LABELS[g]) for g in gaps], summary),
            Sheet(_("待补录明细"), detail_header, details),
        ]
    )


def _template(
    title: str, headers: list[str], example: list[str], notes: list[str], text_columns: str
) -> bytes:
    """A template: the headers (recognised by the importer as they are), one example row
    the importer refuses if it is left in, and a sheet of notes. ``text_columns`` are
    formatted as text, so that Excel cannot turn an ID number into a float and lose its
    last digits."""
    return xlsx_bytes(
        [
            Sheet(
                title,
                headers,
                [example],
                header_fill="FFF2CC",
                text_columns=tuple(text_columns),
                widths={c: 22 if c == "C" else 14 for c in text_columns},
            ),
            Sheet("填写说明", (), [[line] for line in notes]),
        ]
    )


# What both templates say about the address and about people already registered.
_ADDRESS_NOTE = (
    "地址：填“楼栋”“单元”“房号”三列（如 5、2、1302），或把这三列换成一列“地址”"
    "（如 5-2-1302 或 5栋2单元1302）。“小区”可以不填，除非本社区几个小区有同一个楼号。"
)
_EXAMPLE_NOTE = f"第 2 行是示例（备注写着“{EXAMPLE_NOTE}”），导入前请删除；留着会被当作有问题的行。"


def resident_template_xlsx() -> bytes:
    """The resident template; its notes say which columns are required and which not, as
    the importer checks them."""
    headers = [
        "姓名", "性别", "身份证号", "手机", "小区", "楼栋", "单元", "房号",
        "与户主关系", "居住状态", "健康状态", "关怀标签", "备注",
    ]  # fmt: skip
    example = [
        "张三", "男", "350102198001011234", "13800000000", "华润中央公园", "5", "2", "1302",
        "户主", "在住", "正常", "", EXAMPLE_NOTE,
    ]  # fmt: skip
    notes = [
        "必填列：姓名和地址（见下）。其余各列都是选填，可以删掉不用的列。",
        _ADDRESS_NOTE,
        "选填列：性别、身份证号、手机、小区、与户主关系、居住状态、健康状态、关怀标签、"
        "出生日期、备注。",
        "身份证号可以不填，但没有身份证号的人会在应录尽录报告中计为“无身份证号”。"
        "填了身份证号时，性别和出生日期按身份证号核对，可以不填。",
        "身份证号和手机号列已设为文本格式；不要改成数字，否则18位号码的末几位会丢失。",
        "已登记的人会被更新（按身份证号找；没有身份证号的按同一户的姓名找），"
        "空着的格子不会清除已登记的信息；导入前的检查会列出每个人哪些项会改变。",
        "与户主关系：户主、配偶、子女、父母、租户、其他……（空着为“其他”）",
        "居住状态：在住、外出、迁出（空着为“在住”）；"
        "健康状态：正常、居家隔离、集中隔离、阳性、康复（空着为“正常”）。",
        "关怀标签：独居老人、残疾、孕妇、慢性病，多个用顿号分隔。",
        _EXAMPLE_NOTE,
    ]
    return _template("居民信息", headers, example, notes, "CDFGH")


def vehicle_template_xlsx() -> bytes:
    """The vehicle template, written like the resident one."""
    headers = ["车牌号", "小区", "楼栋", "单元", "房号", "车主", "备注"]
    example = ["闽A12345", "华润中央公园", "5", "2", "1302", "张三", EXAMPLE_NOTE]
    notes = [
        "必填列：车牌号和地址（见下）。其余各列都是选填，可以删掉不用的列。",
        _ADDRESS_NOTE,
        "选填列：小区、车主、备注。",
        "车牌号：如 闽A12345，新能源车 8 位如 闽AD12345；中间的点和空格可有可无。",
        "车主：填这一户已登记的人的姓名；不在这一户登记人员中的姓名不会被记为车主。",
        "已登记的车按车牌号更新，空着的格子不会清除已登记的信息；"
        "登记在另一户的车牌会被当作有问题的行。",
        _EXAMPLE_NOTE,
    ]
    return _template("车辆信息", headers, example, notes, "ACDE")


def _as_written(value: object) -> object:
    """A cell of the uploaded sheet as the error file gives it back."""
    if isinstance(value, FormulaWithoutValue):
        return value.formula  # neutralised by tabular like any text starting with "="
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def error_report_xlsx(report: ImportReport) -> bytes:
    """The rows with problems as the sheet holds them — its header row, then each such row
    in its own columns — with a column “问题” listing every problem of the row: fixed, it
    is uploaded again as it is. Problems of the file or its header, which belong to no row,
    are listed on a second sheet."""
    problem_header = _("问题")
    header = list(report.header)
    at = next(
        (i for i, v in enumerate(header) if normalise_header(v) in ("问题", problem_header)),
        None,
    )  # an error file uploaded again: its problems column is reused, not repeated
    found: list[tuple[list[object], str]] = []
    others: list[list[object]] = []
    for problem in report.problems():
        text = _("；").join(f"{field_label(e.field)}：{e.message}" for e in problem.problems)
        if problem.row:
            text = _("第 {n} 行：{text}").format(n=problem.row, text=text)
        cells = report.problem_cells.get(problem.row)
        if cells is None:
            others.append([text])
        else:
            found.append(([_as_written(v) for v in cells], text))
    if at is None:
        at = max([len(header), *(len(cells) for cells, _text in found)])
        header += [None] * (at - len(header)) + [problem_header]
    else:
        header[at] = problem_header
    rows = []
    for cells, text in found:
        row = cells + [None] * (at + 1 - len(cells))
        row[at] = text
        rows.append(row)
    text_columns = [
        column_letter(report.columns[f]) for f in ("id_number", "phone") if f in report.columns
    ]
    widths = {column_letter(at): 60.0, **{c: 22.0 for c in text_columns}}
    sheets = [
        Sheet(
            _("需修改的行"),
            header,
            rows,
            header_fill="FFF2CC",
            text_columns=text_columns,
            widths=widths,
        )
    ]
    if others:
        sheets.append(Sheet(_("说明"), [_("整个表格的问题")], others, widths={"A": 100.0}))
    return xlsx_bytes(sheets)
