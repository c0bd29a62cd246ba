"""ECharts options built from the dashboard's figures (plain dicts, serialised into a
``data-chart`` attribute; ``web/static/js/dashboard.js`` only draws them). A data item may
carry ``url``: a click on it opens the list behind it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fengchao.dashboard import figures as f
from fengchao.web.i18n import _

RED, ORANGE, GREEN, BLUE, GREY = "#c62828", "#ef6c00", "#2e7d32", "#1565c0", "#90a4ae"
GRID = {"left": 8, "right": 12, "top": 36, "bottom": 8, "containLabel": True}


def traffic(
    day: f.DayTraffic, before: f.DayTraffic | None, upto_hour: int | None = None
) -> dict[str, Any]:
    """In and out per hour today (up to ``upto_hour``: the hours to come are not zeros),
    with the day before dashed behind."""

    def until(values: list[int]) -> list[int | None]:
        return [v if upto_hour is None or h <= upto_hour else None for h, v in enumerate(values)]

    series: list[dict[str, Any]] = [
        {"name": _("今日进"), "type": "line", "data": until(day.in_by_hour), "color": BLUE,
         "showSymbol": False},
        {"name": _("今日出"), "type": "line", "data": until(day.out_by_hour), "color": ORANGE,
         "showSymbol": False},
    ]  # fmt: skip
    if before is not None:
        dashed = {"type": "dashed", "width": 1}
        series += [
            {"name": _("昨日进"), "type": "line", "data": before.in_by_hour, "color": BLUE,
             "lineStyle": dashed, "showSymbol": False},
            {"name": _("昨日出"), "type": "line", "data": before.out_by_hour, "color": ORANGE,
             "lineStyle": dashed, "showSymbol": False},
        ]  # fmt: skip
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "itemWidth": 14, "textStyle": {"fontSize": 11}},
        "grid": GRID,
        "xAxis": {"type": "category", "data": [f"{h:02d}" for h in range(f.HOURS)]},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": series,
    }


def kind_labels() -> dict[str, str]:
    """Method kinds in the reader's language."""
    return {"face": _("刷脸"), "plate": _("车牌"), "code": _("通行码"), "visitor": _("访客"),
            "other": _("其他")}  # fmt: skip


def kinds(day: f.DayTraffic, before: f.DayTraffic | None, links: dict[str, str]) -> dict[str, Any]:
    """Passages by method today against the day before."""
    labels = kind_labels()
    names = [labels[k] for k in f.KINDS]
    today = [{"value": day.by_kind[k], "url": links.get(k)} for k in f.KINDS]
    series: list[dict[str, Any]] = [
        {"name": _("今日"), "type": "bar", "data": today, "color": BLUE}
    ]
    if before is not None:
        series.append({"name": _("昨日"), "type": "bar", "color": GREY,
                       "data": [before.by_kind[k] for k in f.KINDS]})  # fmt: skip
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "textStyle": {"fontSize": 11}},
        "grid": GRID,
        "xAxis": {"type": "category", "data": names},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": series,
    }


def swabs(figure: f.SamplingFigure) -> dict[str, Any]:
    """Swabs per hour at the site against the site's hourly capacity."""
    hours = [h for h, _n in figure.per_hour]
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "textStyle": {"fontSize": 11}},
        "grid": GRID,
        "xAxis": {"type": "category", "data": hours},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [
            {"name": _("每小时采样"), "type": "bar", "color": GREEN,
             "data": [n for _h, n in figure.per_hour]},
            {"name": _("目标"), "type": "line", "color": RED, "showSymbol": False,
             "lineStyle": {"type": "dashed"},
             "data": [figure.target_per_hour] * len(hours)},
        ],
    }  # fmt: skip


def coverage_heat(figure: f.SamplingFigure) -> dict[str, Any]:
    """Coverage by building: one row per compound, its buildings along it; a click opens
    the building's unsampled list."""
    compounds: list[str] = []
    columns: dict[str, int] = {}
    data = []
    for cell in figure.buildings:
        if cell.compound not in compounds:
            compounds.append(cell.compound)
            columns[cell.compound] = 0
        x = columns[cell.compound]
        columns[cell.compound] += 1
        url = f"/sampling/rounds/{figure.round_id}/coverage?" + urlencode(
            {"building": cell.building_id}
        )
        data.append({"value": [x, compounds.index(cell.compound), cell.percent],
                     "name": cell.name, "url": url})  # fmt: skip
    width = max(columns.values(), default=1)
    return {
        "tooltip": {"position": "top"},
        "grid": {"left": 8, "right": 8, "top": 8, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "category", "data": [str(i + 1) for i in range(width)],
                  "show": False},
        "yAxis": {"type": "category", "data": compounds, "inverse": True},
        "visualMap": {"min": 0, "max": 100, "calculable": False, "orient": "horizontal",
                      "left": "center", "bottom": 0, "itemHeight": 120,
                      "inRange": {"color": [RED, "#ffb300", GREEN]}},
        "series": [{"type": "heatmap", "data": data,
                    "label": {"show": True, "fontSize": 10, "formatter": "{b}"},
                    "itemStyle": {"borderColor": "#fff", "borderWidth": 1}}],
        "rows": len(compounds),
    }  # fmt: skip


def age_labels() -> dict[str, str]:
    """Ages of open requests in the reader's language."""
    return {"lt1h": _("不到1小时"), "1to4h": _("1–4小时"), "4to24h": _("4–24小时"),
            "ge24h": _("超过1天")}  # fmt: skip


def help_ages(figure: f.HelpFigure) -> dict[str, Any]:
    labels = age_labels()
    names = [labels[k] for _limit, k in f.AGE_BUCKETS]
    colours = [GREEN, BLUE, ORANGE, RED]
    return {
        "tooltip": {"trigger": "axis"},
        "grid": GRID,
        "xAxis": {"type": "category", "data": names},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"type": "bar", "name": _("未办结"),
                    "data": [{"value": figure.by_age[k], "itemStyle": {"color": c},
                              "url": "/gridwork"}
                             for (_l, k), c in zip(f.AGE_BUCKETS, colours, strict=True)]}],
    }  # fmt: skip


def street(boards: list[f.Dashboard]) -> dict[str, Any]:
    """Each community's main percentages side by side."""
    names = [b.today.node.label for b in boards]

    def pick(get: Any) -> list[float | None]:
        out = []
        for board in boards:
            try:
                out.append(get(board.today))
            except AttributeError:  # a section the community has no figure for
                out.append(None)
        return out

    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "textStyle": {"fontSize": 11}},
        "grid": GRID,
        "xAxis": {"type": "category", "data": names},
        "yAxis": {"type": "value", "max": 100},
        "series": [
            {"name": _("户登记率"), "type": "bar", "color": BLUE,
             "data": pick(lambda d: d.registration.household_pct)},
            {"name": _("采样进度"), "type": "bar", "color": GREEN,
             "data": pick(lambda d: d.sampling.percent)},
            {"name": _("排班覆盖"), "type": "bar", "color": ORANGE,
             "data": pick(lambda d: d.roster.percent if d.roster.required else None)},
        ],
    }  # fmt: skip
