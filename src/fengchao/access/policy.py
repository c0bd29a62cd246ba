"""Who may pass which gate, when (通行规则): a pure module, plain dataclasses in and out.

Precedence, as the rule editor states it:

1. Health and temperature come first and cannot be overridden by a rule: a person whose
   health status is in ``HealthRules.no_exit`` may not go out; a temperature at or above
   the threshold refuses (or, at a gate in soft mode, allows and alerts).
2. Among the rules that match the passage, the **most specific** wins: a rule's
   specificity is the number of conditions it sets (roles, gate, direction, weekdays,
   time window, alert levels). Among equally specific matching rules, **deny beats
   allow**.
3. With no matching rule the built-in defaults of the alert level decide (:func:`default_for`).
4. Under the levels of the household quota (closed management by default), a resident
   going out whose passage is allowed takes one pass from the household's quota; the
   service counts it atomically.

Two rules of opposite effect, equally specific, that can match the same passage
contradict each other (deny wins there, but the editor names them: :func:`contradictions`).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


class AlertLevel(enum.StrEnum):
    """The community's or compound's alert level (防控等级)."""

    normal = "normal"  # 常态
    heightened = "heightened"  # 加强防控
    closed = "closed"  # 封闭管理
    lockdown = "lockdown"  # 静默 / 足不出户


class PassRole(enum.StrEnum):
    """Who someone is at the gate (通行身份)."""

    owner = "owner"
    tenant = "tenant"
    family = "family"
    property_staff = "property_staff"
    community_worker = "community_worker"
    courier = "courier"
    contractor = "contractor"
    visitor = "visitor"


RESIDENT_ROLES = frozenset({PassRole.owner, PassRole.tenant, PassRole.family})
STAFF_ROLES = frozenset({PassRole.property_staff, PassRole.community_worker})


class Direction(enum.StrEnum):
    in_ = "in"
    out = "out"


class Effect(enum.StrEnum):
    allow = "allow"
    deny = "deny"


MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class TimeWindow:
    """From ``start`` to ``end`` local time; an end before the start runs past midnight
    (22:00–06:00). The start is inside the window, the end is not. Start equal to end is
    refused by :func:`check_rule`."""

    start: dt.time
    end: dt.time

    def _minutes(self) -> tuple[int, int]:
        return self.start.hour * 60 + self.start.minute, self.end.hour * 60 + self.end.minute

    def intervals(self) -> list[tuple[int, int]]:
        """Minute intervals within one day, [a, b)."""
        a, b = self._minutes()
        if a < b:
            return [(a, b)]
        return [(a, MINUTES_PER_DAY), (0, b)] if b else [(a, MINUTES_PER_DAY)]

    def contains(self, moment: dt.time) -> bool:
        minute = moment.hour * 60 + moment.minute
        return any(a <= minute < b for a, b in self.intervals())

    def overlaps(self, other: TimeWindow) -> bool:
        return any(a < d and c < b for a, b in self.intervals() for c, d in other.intervals())

    def __str__(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


@dataclass(frozen=True)
class Rule:
    """One pass rule. An empty set (or None) means "any"."""

    id: int
    effect: Effect
    roles: frozenset[PassRole] = frozenset()
    gate_id: int | None = None
    direction: Direction | None = None
    weekdays: frozenset[int] = frozenset()  # 0 = Monday … 6 = Sunday
    window: TimeWindow | None = None
    levels: frozenset[AlertLevel] = frozenset()
    quota_exempt: bool = False  # an allow that does not take a pass from the quota
    name: str = ""

    @property
    def specificity(self) -> int:
        return sum(
            (
                bool(self.roles),
                self.gate_id is not None,
                self.direction is not None,
                bool(self.weekdays),
                self.window is not None,
                bool(self.levels),
            )
        )

    def matches(self, passage: Passage) -> bool:
        if self.roles and passage.role not in self.roles:
            return False
        if self.gate_id is not None and passage.gate_id != self.gate_id:
            return False
        if self.direction is not None and passage.direction != self.direction:
            return False
        if self.weekdays and passage.at.weekday() not in self.weekdays:
            return False
        if self.window is not None and not self.window.contains(passage.at.time()):
            return False
        return not (self.levels and passage.level not in self.levels)

    def can_meet(self, other: Rule) -> bool:
        """Whether some passage matches both rules."""

        def sets(a: frozenset[object], b: frozenset[object]) -> bool:
            return not a or not b or bool(a & b)

        def one(a: object, b: object) -> bool:
            return a is None or b is None or a == b

        return (
            sets(self.roles, other.roles)
            and one(self.gate_id, other.gate_id)
            and one(self.direction, other.direction)
            and sets(self.weekdays, other.weekdays)
            and sets(self.levels, other.levels)
            and (self.window is None or other.window is None or self.window.overlaps(other.window))
        )

    def same_conditions(self, other: Rule) -> bool:
        return (
            self.roles == other.roles
            and self.gate_id == other.gate_id
            and self.direction == other.direction
            and self.weekdays == other.weekdays
            and self.window == other.window
            and self.levels == other.levels
        )


@dataclass(frozen=True)
class HealthRules:
    """Health statuses (``registry.models.HealthStatus`` values) refused going out or in."""

    no_exit: frozenset[str] = frozenset({"home_isolation", "central_isolation", "positive"})
    no_entry: frozenset[str] = frozenset()


@dataclass(frozen=True)
class QuotaRule:
    """Closed management's household quota: ``persons`` passes out every ``days`` days,
    under ``levels``."""

    persons: int = 1
    days: int = 2
    levels: frozenset[AlertLevel] = frozenset({AlertLevel.closed})

    def period(self, day: dt.date) -> int:
        """The quota period a local date falls in (consecutive blocks of ``days`` days)."""
        return day.toordinal() // self.days

    def period_start(self, day: dt.date) -> dt.date:
        return dt.date.fromordinal(self.period(day) * self.days)


@dataclass(frozen=True)
class TemperatureRule:
    threshold: float = 37.3
    lowest_valid: float = 32.0
    highest_valid: float = 43.0

    def valid(self, value: float) -> bool:
        return self.lowest_valid <= value <= self.highest_valid


@dataclass(frozen=True)
class Policy:
    """Everything the decision needs besides the passage."""

    rules: tuple[Rule, ...] = ()
    health: HealthRules = field(default_factory=HealthRules)
    quota: QuotaRule = field(default_factory=QuotaRule)
    temperature: TemperatureRule = field(default_factory=TemperatureRule)


@dataclass(frozen=True)
class Passage:
    """A passage to decide: who (their role and health), where, when (local time), the
    alert level in force at that gate, and the temperature measured (None: not measured)."""

    role: PassRole
    gate_id: int
    direction: Direction
    at: dt.datetime  # local wall-clock time of the community
    level: AlertLevel = AlertLevel.normal
    health: str | None = None
    temperature: float | None = None
    soft_temperature: bool = False  # the gate allows a fever and alerts


@dataclass(frozen=True)
class Verdict:
    """The policy's answer. ``reasons`` are stable codes (the first is the main one);
    ``rule`` is the rule that decided (None: the level's default); ``takes_quota`` says
    the allow stands only if the household still has a pass; ``fever`` that an alert is
    due; ``matched`` lists every matching rule, for the simulator."""

    allowed: bool
    reasons: tuple[str, ...]
    rule: Rule | None = None
    takes_quota: bool = False
    fever: bool = False
    matched: tuple[Rule, ...] = ()
    default_used: bool = False

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"


def default_for(role: PassRole, direction: Direction, level: AlertLevel) -> tuple[bool, str]:
    """The built-in answer when no rule matches: (allowed, reason code).

    Staff pass at every level; couriers, contractors and visitors only by a rule (or, for
    visitors, their pass); residents pass, except out under lockdown (静默: 足不出户).
    """
    if role in STAFF_ROLES:
        return True, "staff"
    if role not in RESIDENT_ROLES:
        return False, "no_rule"
    if level == AlertLevel.lockdown and direction == Direction.out:
        return False, "lockdown"
    return True, "resident"


def decide_rules(
    passage: Passage, rules: Iterable[Rule]
) -> tuple[bool, str, Rule | None, tuple[Rule, ...]]:
    """(allowed, reason, deciding rule, matching rules) by the rules alone."""
    matched = tuple(rule for rule in rules if rule.matches(passage))
    if not matched:
        allowed, reason = default_for(passage.role, passage.direction, passage.level)
        return allowed, reason, None, matched
    top = max(rule.specificity for rule in matched)
    candidates = sorted((r for r in matched if r.specificity == top), key=lambda r: r.id)
    denies = [r for r in candidates if r.effect == Effect.deny]
    if denies:
        return False, "rule_deny", denies[0], matched
    return True, "rule_allow", candidates[0], matched


def evaluate(passage: Passage, policy: Policy) -> Verdict:
    """Decide a passage (see the module's docstring for the order)."""
    refusals: list[str] = []
    notes: list[str] = []
    fever = False
    if passage.temperature is not None and passage.temperature >= policy.temperature.threshold:
        fever = True
        (notes if passage.soft_temperature else refusals).append(
            "fever_soft" if passage.soft_temperature else "fever"
        )
    if passage.health is not None:
        if passage.direction == Direction.out and passage.health in policy.health.no_exit:
            refusals.append("health_no_exit")
        if passage.direction == Direction.in_ and passage.health in policy.health.no_entry:
            refusals.append("health_no_entry")
    allowed, reason, rule, matched = decide_rules(passage, policy.rules)
    if not allowed:
        refusals.append(reason)
    takes_quota = (
        allowed
        and not refusals
        and passage.level in policy.quota.levels
        and passage.direction == Direction.out
        and passage.role in RESIDENT_ROLES
        and not (rule is not None and rule.quota_exempt)
    )
    if refusals:
        return Verdict(False, tuple(refusals + notes), rule, False, fever, matched, rule is None)
    return Verdict(True, (reason, *notes), rule, takes_quota, fever, matched, rule is None)


@dataclass(frozen=True)
class Contradiction:
    """Two rules the editor names: ``opposite`` (equally specific, opposite effects, can
    match the same passage: deny wins there) or ``duplicate`` (the same conditions and
    effect: one of them does nothing)."""

    kind: str
    first: int
    second: int


def contradictions(rules: Sequence[Rule]) -> list[Contradiction]:
    found: list[Contradiction] = []
    ordered = sorted(rules, key=lambda r: r.id)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if a.specificity != b.specificity or not a.can_meet(b):
                continue
            if a.effect != b.effect:
                found.append(Contradiction("opposite", a.id, b.id))
            elif a.same_conditions(b):
                found.append(Contradiction("duplicate", a.id, b.id))
    return found


def check_rule(rule: Rule) -> str | None:
    """A problem of one rule on its own (a stable code), or None."""
    if rule.window is not None and rule.window.start == rule.window.end:
        return "empty_window"
    if any(day not in range(7) for day in rule.weekdays):
        return "bad_weekday"
    return None
