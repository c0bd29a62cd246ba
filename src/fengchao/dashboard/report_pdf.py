"""The daily report as a PDF: figures in tables and charts drawn on the server, with
ReportLab. Chinese text uses ReportLab's built-in CID font STSong-Light (宋体): the PDF
names the font and every PDF reader brings it, so no font file is shipped or embedded, and
the text stays text (searchable, extractable)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from fengchao.dashboard.report import Chart, Figure, Number, ReportData, Section
from fengchao.web.i18n import _

FONT = "STSong-Light"
PALETTE = (colors.HexColor("#1f6feb"), colors.HexColor("#f0883e"), colors.HexColor("#3fb950"))
WIDTH = A4[0] - 36 * mm - 12  # the frame's width less its padding


@cache
def _font() -> str:
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _styles() -> dict[str, ParagraphStyle]:
    font = _font()
    return {
        "title": ParagraphStyle("title", fontName=font, fontSize=18, leading=24, spaceAfter=4),
        "meta": ParagraphStyle(
            "meta", fontName=font, fontSize=9, leading=12, textColor=colors.HexColor("#57606a")
        ),
        "h2": ParagraphStyle(
            "h2",
            fontName=font,
            fontSize=14,
            leading=20,
            spaceBefore=10,
            spaceAfter=4,
            textColor=colors.HexColor("#0b3d91"),
        ),
        "cell": ParagraphStyle("cell", fontName=font, fontSize=9.5, leading=12),
        "note": ParagraphStyle(
            "note", fontName=font, fontSize=8.5, leading=11, textColor=colors.HexColor("#57606a")
        ),
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def number(value: Number | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
    return f"{text}{unit if unit == '%' else ''}"


def change(figure: Figure) -> str:
    delta = figure.change
    if delta is None:
        return "—"
    if delta == 0:
        return "0"
    sign = "+" if delta > 0 else "-"  # STSong-Light has no U+2212
    return sign + number(abs(delta), figure.unit)


def _figures_table(figures: Sequence[Figure], styles: dict[str, ParagraphStyle]) -> Table:
    head: list[object] = [_("指标"), _("当日"), _("前一日"), _("变化"), _("单位")]
    rows: list[list[object]] = [head]
    for f in figures:
        rows.append(
            [
                Paragraph(_escape(f.label), styles["cell"]),
                number(f.today, f.unit),
                number(f.yesterday, f.unit),
                change(f),
                "" if f.unit == "%" else f.unit,
            ]
        )
    table = Table(
        rows,
        colWidths=[WIDTH * 0.42, WIDTH * 0.16, WIDTH * 0.16, WIDTH * 0.14, WIDTH * 0.12],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), _font(), 9.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eaeef2")),
                ("ALIGN", (1, 0), (3, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d7de")),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _legend(drawing: Drawing, names: Sequence[str], x: float, y: float) -> None:
    legend = Legend()
    legend.fontName = _font()
    legend.fontSize = 8
    legend.x, legend.y = x, y
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.boxAnchor = "ne"
    legend.deltax = 60
    legend.colorNamePairs = [(PALETTE[i % len(PALETTE)], n) for i, n in enumerate(names)]
    legend.dx = legend.dy = 8
    legend.dxTextSpace = 4
    legend.variColumn = 1
    drawing.add(legend)


def _title(drawing: Drawing, chart: Chart) -> None:
    unit = f"（{chart.unit}）" if chart.unit else ""
    drawing.add(String(0, drawing.height - 12, chart.title + unit, fontName=_font(), fontSize=10))


def _axis_chart(chart: Chart) -> Drawing:
    height = 62 * mm
    drawing = Drawing(WIDTH, height)
    _title(drawing, chart)
    plot = VerticalBarChart() if chart.kind == "bar" else HorizontalLineChart()
    plot.x, plot.y = 32, 22
    plot.width, plot.height = WIDTH - 44, height - 52
    data = [tuple(float(v) for v in s.values) for s in chart.series] or [(0.0,)]
    plot.data = data
    plot.categoryAxis.categoryNames = list(chart.categories) or [""]
    plot.categoryAxis.labels.fontName = _font()
    plot.categoryAxis.labels.fontSize = 7
    if len(chart.categories) > 12:
        plot.categoryAxis.labels.angle = 0
        plot.categoryAxis.labels.fontSize = 6
    plot.valueAxis.labels.fontName = _font()
    plot.valueAxis.labels.fontSize = 7
    plot.valueAxis.valueMin = 0
    peak = max((v for row in data for v in row), default=0.0)
    if peak <= 0:
        plot.valueAxis.valueMax = 1
    for i in range(len(data)):
        color = PALETTE[i % len(PALETTE)]
        if isinstance(plot, VerticalBarChart):
            plot.bars[i].fillColor = color
            plot.bars[i].strokeColor = None
        else:
            plot.lines[i].strokeColor = color
            plot.lines[i].strokeWidth = 1.5
    if isinstance(plot, VerticalBarChart):
        plot.groupSpacing = 4
        plot.barSpacing = 1
    drawing.add(plot)
    _legend(drawing, [s.name for s in chart.series], WIDTH, height - 2)
    return drawing


def _heat_color(value: float) -> colors.Color:
    """Red (0 %) through amber to green (100 %): who is behind shows red."""
    t = max(0.0, min(1.0, value / 100.0))
    if t < 0.5:
        a, b, u = colors.HexColor("#d73a49"), colors.HexColor("#f2cc60"), t / 0.5
    else:
        a, b, u = colors.HexColor("#f2cc60"), colors.HexColor("#2da44e"), (t - 0.5) / 0.5
    return colors.Color(
        a.red + (b.red - a.red) * u,
        a.green + (b.green - a.green) * u,
        a.blue + (b.blue - a.blue) * u,
    )


def _heatmap(chart: Chart) -> Drawing:
    label_width = 72.0
    columns = max(1, len(chart.columns))
    cell_w = min(28.0, (WIDTH - label_width) / columns)
    cell_h = 16.0
    height = 30 + cell_h * (len(chart.rows) + 1)
    drawing = Drawing(WIDTH, height)
    _title(drawing, chart)
    top = height - 20 - cell_h
    for j, label in enumerate(chart.columns):
        x = label_width + j * cell_w + cell_w / 2
        drawing.add(String(x, top + 4, label, fontName=_font(), fontSize=7, textAnchor="middle"))
    for i, (label, values) in enumerate(zip(chart.rows, chart.matrix, strict=False)):
        y = top - (i + 1) * cell_h
        drawing.add(String(0, y + 5, label[:9], fontName=_font(), fontSize=8))
        for j, value in enumerate(values):
            x = label_width + j * cell_w
            if value is None:
                continue
            drawing.add(
                Rect(
                    x + 0.5,
                    y + 0.5,
                    cell_w - 1,
                    cell_h - 1,
                    strokeColor=None,
                    fillColor=_heat_color(float(value)),
                )
            )
            drawing.add(
                String(
                    x + cell_w / 2,
                    y + 5,
                    f"{value:.0f}",
                    fontName=_font(),
                    fontSize=6.5,
                    textAnchor="middle",
                )
            )
    return drawing


def chart_drawing(chart: Chart) -> Drawing:
    return _heatmap(chart) if chart.kind == "heatmap" else _axis_chart(chart)


def _section(section: Section, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    head: list[Flowable] = [Paragraph(_escape(section.title), styles["h2"])]
    if section.figures:
        head.append(_figures_table(section.figures, styles))
    parts: list[Flowable] = [KeepTogether(head)]
    if section.note:
        parts += [Spacer(1, 3), Paragraph(_escape(section.note), styles["note"])]
    for chart in section.charts:
        parts += [Spacer(1, 6), chart_drawing(chart)]
    return parts


def pdf_report(data: ReportData) -> bytes:
    styles = _styles()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=data.title,
        author="Fengchao",
    )
    story: list[Flowable] = [
        Paragraph(_escape(data.title), styles["title"]),
        Paragraph(
            _escape(
                _("生成时间：{at}　变化：当日与前一日之差；“—”表示没有前一日的数字").format(
                    at=data.generated_at.strftime("%Y-%m-%d %H:%M")
                )
            ),
            styles["meta"],
        ),
    ]
    for section in data.sections:
        story += _section(section, styles)

    def footer(canvas: object, document: object) -> None:
        canvas.saveState()  # type: ignore[attr-defined]
        canvas.setFont(_font(), 8)  # type: ignore[attr-defined]
        canvas.drawRightString(  # type: ignore[attr-defined]
            A4[0] - 18 * mm,
            9 * mm,
            _("{title}　第 {page} 页").format(title=data.title, page=document.page),  # type: ignore[attr-defined]
        )
        canvas.restoreState()  # type: ignore[attr-defined]

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def write_pdf(data: ReportData, path: Path) -> Path:
    """Write the PDF to ``path`` and return the path."""
    path.write_bytes(pdf_report(data))
    return path
