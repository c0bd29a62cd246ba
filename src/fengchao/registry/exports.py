"""The workbooks the registry writes: the completeness report, the import template and
the import error report."""

from __future__ import annotations

import io

from fengchao.registry import completeness
from fengchao.registry.importer import (
    field_label,
)
from fengchao.registry.imports import ImportReport
from fengchao.registry.service import GAP_LABELS, CompletenessReport
from fengchao.web.i18n import _


def completeness_xlsx(result: CompletenessReport) -> bytes:
    """The report as a workbook: one summary sheet, one sheet listing every item to fix."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = _("汇总")
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
    sheet.append(header + [_(GAP_LABELS[g]) for g in gaps])
    for cell in sheet[1]:
        cell.font = Font(bold=True)

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
    for b in ordered:
        fig = result.report.by_building.get(b.id, completeness.Figures())
        sheet.append(figures_row(b.compound.name, b.name, fig))
    sheet.append(figures_row(_("合计"), "", result.report.total))
    detail = book.create_sheet(_("待补录明细"))
    detail.append([_("小区"), _("楼栋"), _("房号"), _("姓名"), _("问题")])
    for item in result.report.items:
        b = result.buildings[item.building_id]
        detail.append(
            [b.compound.name, b.name, item.address, item.name or "", _(GAP_LABELS[item.gap])]
        )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def resident_template_xlsx() -> bytes:
    """The import template with Chinese headers; the ID and phone columns are text, so
    Excel cannot turn an ID number into a float and lose its last digits."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    book = Workbook()
    sheet = book.active
    sheet.title = "居民信息"
    headers = [
        "姓名",
        "性别",
        "身份证号",
        "手机",
        "小区",
        "楼栋",
        "单元",
        "房号",
        "与户主关系",
        "居住状态",
        "健康状态",
        "关怀标签",
        "备注",
    ]
    sheet.append(headers)
    sheet.append(
        [
            "张三",
            "男",
            "350102198001011234",
            "13800000000",
            "华润中央公园",
            "5",
            "2",
            "1302",
            "户主",
            "在住",
            "正常",
            "",
            "示例行，导入前请删除",
        ]
    )
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="FFF2CC")
    for column in ("C", "D", "F", "G", "H"):
        for row in range(1, 5001):
            sheet[f"{column}{row}"].number_format = "@"
        sheet.column_dimensions[column].width = 22 if column == "C" else 14
    notes = book.create_sheet("填写说明")
    for line in (
        "必填：姓名、身份证号（可空，但会计入“无身份证号”）、楼栋、单元、房号。",
        "身份证号和手机号列已设为文本格式；不要改成数字，否则18位号码的末几位会丢失。",
        "与户主关系：户主、配偶、子女、父母、租户、其他……",
        "居住状态：在住、外出、迁出；健康状态：正常、居家隔离、集中隔离、阳性、康复。",
        "关怀标签：独居老人、残疾、孕妇、慢性病，多个用顿号分隔。",
    ):
        notes.append([line])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def error_report_xlsx(report: ImportReport) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = _("错误")
    sheet.append([_("行号"), _("字段"), _("问题")])
    for error in report.errors:
        sheet.append([error.row or "", field_label(error.field), error.message])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
