"""The daily report as a workbook: one sheet per section (figures with the day before and
the change, then each chart's numbers), written through ``fengchao.tabular`` so that no
cell can become a formula."""

from __future__ import annotations

from pathlib import Path

from fengchao.dashboard.report import Chart, ReportData, Section
from fengchao.tabular import Sheet, xlsx_bytes
from fengchao.web.i18n import _

# Characters Excel refuses in a sheet's name.
_SHEET_NAME_BAD = str.maketrans({c: "_" for c in "[]:*?/\\"})


def _chart_rows(chart: Chart) -> list[list[object]]:
    unit = f"（{chart.unit}）" if chart.unit else ""
    rows: list[list[object]] = [[], [chart.title + unit]]
    if chart.kind == "heatmap":
        rows.append(["", *chart.columns])
        rows += [[label, *values] for label, values in zip(chart.rows, chart.matrix, strict=False)]
    else:
        rows.append(["", *(s.name for s in chart.series)])
        for i, category in enumerate(chart.categories):
            rows.append(
                [category, *(s.values[i] if i < len(s.values) else None for s in chart.series)]
            )
    return rows


def section_sheet(data: ReportData, section: Section, used: set[str]) -> Sheet:
    name = section.title.translate(_SHEET_NAME_BAD)[:31] or section.key
    while name in used:  # two sections of one title still get a sheet each
        name = (name[:28] + f"_{len(used)}")[:31]
    used.add(name)
    rows: list[list[object]] = [
        [
            _("日期"),
            data.day.isoformat(),
            _("生成时间"),
            data.generated_at.strftime("%Y-%m-%d %H:%M"),
        ],
        [],
        [_("指标"), _("当日"), _("前一日"), _("变化"), _("单位"), _("明细")],
    ]
    rows += [
        [f.label, f.today, f.yesterday, f.change, f.unit, f.link or ""] for f in section.figures
    ]
    if section.note:
        rows += [[], [section.note]]
    for chart in section.charts:
        rows += _chart_rows(chart)
    return Sheet(
        title=name,
        header=[f"{data.node} {section.title}"],
        rows=rows,
        widths={"A": 28, "B": 12, "C": 12, "D": 18, "E": 8, "F": 36},
    )


def xlsx_report(data: ReportData) -> bytes:
    used: set[str] = set()
    return xlsx_bytes([section_sheet(data, s, used) for s in data.sections])


def write_xlsx(data: ReportData, path: Path) -> Path:
    """Write the workbook to ``path`` (a sheet per section) and return the path."""
    path.write_bytes(xlsx_report(data))
    return path
