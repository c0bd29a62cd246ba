"""The rules of grid work as pure functions: how long each urgency may wait, where a
request goes when its deadline passes, when two submissions are the same request, and how a
report is routed. No database, no web."""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata

from fengchao.auth.models import ScopeLevel
from fengchao.gridwork.models import (
    LABELS,
    HelpCategory,
    HelpUrgency,
    ReportCategory,
    ReportRoute,
)
from fengchao.web.i18n import _

# How long a request may wait for someone to accept it at each level of the grid.
ACCEPT_WITHIN: dict[HelpUrgency, dt.timedelta] = {
    HelpUrgency.urgent: dt.timedelta(minutes=30),
    HelpUrgency.normal: dt.timedelta(hours=2),
    HelpUrgency.low: dt.timedelta(hours=12),
}
# Building lead → compound branch → community; the community is the last stop.
NEXT_LEVEL: dict[ScopeLevel, ScopeLevel] = {
    ScopeLevel.building: ScopeLevel.compound,
    ScopeLevel.compound: ScopeLevel.community,
}
# The same household asking for the same kind of help within this window is one request
# (a double tap, a relative asking too).
DUPLICATE_WINDOW = dt.timedelta(minutes=10)
# Problems with gates and doors are the property's; problems with people the lead's.
PROPERTY_CATEGORIES = frozenset({ReportCategory.broken_gate})


def deadline_for(urgency: HelpUrgency, since: dt.datetime) -> dt.datetime:
    """When a request raised (or escalated) at ``since`` must have been accepted."""
    return since + ACCEPT_WITHIN[urgency]


def next_level(level: ScopeLevel) -> ScopeLevel | None:
    """Where an unaccepted request goes next; None once it is at the community."""
    return NEXT_LEVEL.get(level)


def dedupe_key(household_id: int, category: HelpCategory) -> str:
    """The key two submissions share when they are the same request."""
    return hashlib.sha256(f"{household_id}:{category.value}".encode()).hexdigest()[:40]


def clean_text(text: str, limit: int) -> str:
    """Free text as stored: NFC, control characters removed, whitespace runs collapsed
    (line breaks kept), at most ``limit`` characters."""
    text = unicodedata.normalize("NFC", text)
    kept = "".join(ch for ch in text if ch in "\n" or unicodedata.category(ch)[0] != "C")
    lines = [" ".join(line.split()) for line in kept.splitlines()]
    return "\n".join(line for line in lines if line)[:limit]


def report_route(category: ReportCategory, has_building: bool) -> ReportRoute:
    """A broken gate, or a problem not in a building, goes to the property; the rest to
    the building's lead."""
    if category in PROPERTY_CATEGORIES or not has_building:
        return ReportRoute.property
    return ReportRoute.building_lead


def age_text(created: dt.datetime, now: dt.datetime) -> str:
    """An age as the overview shows it: 5m, 3h 20m, 2d 4h."""
    minutes = max(0, int((now - created).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def label(value: object) -> str:
    """How a stored value of grid work reads on screen, in the user's language."""
    text = str(value)
    return _(LABELS.get(text, text))
