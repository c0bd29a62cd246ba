"""The workbooks the registry writes: the completeness report, the import template and
the import error report — all through :mod:`fengchao.tabular`, which neutralises cells a
spreadsheet would run as formulas (names and error messages are user-supplied text)."""

from __future__ import annotations

from fengchao.registry import completeness
from fengchao.registry.importer import field_label
from fengchao.registry.imports import ImportReport
from fengchao.registry.service import GAP_LABELS, CompletenessReport
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


def resident_template_xlsx() -> bytes:
    """The import template with Chinese headers; the ID and phone columns are text, so
    Excel cannot turn an ID number into a float and lose its last digits."""
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
    example = [
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
    notes = [
        "必填：姓名、身份证号（可空，但会计入“无身份证号”）、楼栋、单元、房号。",
        "身份证号和手机号列已设为文本格式；不要改成数字，否则18位号码的末几位会丢失。",
        "与户主关系：户主、配偶、子女、父母、租户、其他……",
        "居住状态：在住、外出、迁出；健康状态：正常、居家隔离、集中隔离、阳性、康复。",
        "关怀标签：独居老人、残疾、孕妇、慢性病，多个用顿号分隔。",
    ]
    text_columns = ("C", "D", "F", "G", "H")
    return xlsx_bytes(
        [
            Sheet(
                "居民信息",
                headers,
                [example],
                header_fill="FFF2CC",
                text_columns=text_columns,
                widths={c: 22 if c == "C" else 14 for c in text_columns},
            ),
            Sheet("填写说明", (), [[line] for line in notes]),
        ]
    )


def error_report_xlsx(report: ImportReport) -> bytes:
    """The problems of a dry run, one per row; messages echo the sheet's own text."""
    rows = ([e.row or "", field_label(e.field), e.message] for e in report.errors)
    return xlsx_bytes([Sheet(_("错误"), [_("行号"), _("字段"), _("问题")], rows)])
