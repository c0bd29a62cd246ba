"""The pass policy on its own: precedence, defaults, health, temperature, quota, contradictions."""

from __future__ import annotations

import datetime as dt

import pytest

from fengchao.access.policy import (
    AlertLevel,
    Direction,
    Effect,
    Passage,
    PassRole,
    Policy,
    QuotaRule,
    Rule,
    TimeWindow,
    check_rule,
    contradictions,
    evaluate,
)

MONDAY_NOON = dt.datetime(2026, 11, 30, 12, 0)  # a Monday
MONDAY_NIGHT = dt.datetime(2026, 11, 30, 22, 30)
GATE = 1


def passage(role: PassRole = PassRole.owner, **kw: object) -> Passage:
    values: dict[str, object] = {
        "role": role,
        "gate_id": GATE,
        "direction": Direction.out,
        "at": MONDAY_NOON,
    }
    values.update(kw)
    return Passage(**values)  # type: ignore[arg-type]


def window(a: str, b: str) -> TimeWindow:
    return TimeWindow(dt.time.fromisoformat(a), dt.time.fromisoformat(b))


@pytest.mark.parametrize(
    ("role", "level", "direction", "allowed", "reason"),
    [
        (PassRole.owner, AlertLevel.normal, Direction.out, True, "resident"),
        (PassRole.tenant, AlertLevel.heightened, Direction.out, True, "resident"),
        (PassRole.family, AlertLevel.closed, Direction.out, True, "resident"),
        (PassRole.family, AlertLevel.lockdown, Direction.out, False, "lockdown"),
        (PassRole.family, AlertLevel.lockdown, Direction.in_, True, "resident"),
        (PassRole.property_staff, AlertLevel.lockdown, Direction.out, True, "staff"),
        (PassRole.community_worker, AlertLevel.closed, Direction.in_, True, "staff"),
        (PassRole.courier, AlertLevel.normal, Direction.in_, False, "no_rule"),
        (PassRole.contractor, AlertLevel.normal, Direction.in_, False, "no_rule"),
        (PassRole.visitor, AlertLevel.normal, Direction.in_, False, "no_rule"),
    ],
)
def test_defaults_by_role_and_level(
    role: PassRole, level: AlertLevel, direction: Direction, allowed: bool, reason: str
) -> None:
    verdict = evaluate(passage(role, level=level, direction=direction), Policy())
    assert verdict.allowed is allowed
    assert verdict.reasons[0] == reason
    assert verdict.default_used


def test_courier_only_at_drop_off_gate_during_the_day() -> None:
    rule = Rule(1, Effect.allow, roles=frozenset({PassRole.courier}), gate_id=GATE,
                window=window("08:00", "20:00"))  # fmt: skip
    policy = Policy(rules=(rule,))
    assert evaluate(passage(PassRole.courier), policy).allowed
    assert not evaluate(passage(PassRole.courier, at=MONDAY_NIGHT), policy).allowed
    assert not evaluate(passage(PassRole.courier, gate_id=2), policy).allowed


def test_most_specific_rule_wins() -> None:
    broad_deny = Rule(1, Effect.deny, roles=frozenset({PassRole.owner}))
    narrow_allow = Rule(2, Effect.allow, roles=frozenset({PassRole.owner}), gate_id=GATE)
    verdict = evaluate(passage(), Policy(rules=(broad_deny, narrow_allow)))
    assert verdict.allowed and verdict.rule == narrow_allow
    assert not evaluate(passage(gate_id=2), Policy(rules=(broad_deny, narrow_allow))).allowed


def test_deny_beats_allow_when_equally_specific() -> None:
    allow = Rule(1, Effect.allow, gate_id=GATE)
    deny = Rule(2, Effect.deny, direction=Direction.out)
    verdict = evaluate(passage(), Policy(rules=(allow, deny)))
    assert not verdict.allowed and verdict.rule == deny
    assert verdict.reasons == ("rule_deny",)
    assert set(verdict.matched) == {allow, deny}


def test_weekdays_and_levels_narrow_a_rule() -> None:
    weekend = Rule(1, Effect.deny, weekdays=frozenset({5, 6}))
    assert evaluate(passage(), Policy(rules=(weekend,))).allowed  # Monday
    sunday = MONDAY_NOON - dt.timedelta(days=1)
    assert not evaluate(passage(at=sunday), Policy(rules=(weekend,))).allowed
    closed_only = Rule(2, Effect.deny, levels=frozenset({AlertLevel.closed}))
    assert evaluate(passage(), Policy(rules=(closed_only,))).allowed
    assert not evaluate(passage(level=AlertLevel.closed), Policy(rules=(closed_only,))).allowed


def test_window_past_midnight() -> None:
    night = window("22:00", "06:00")
    assert night.contains(dt.time(23, 0)) and night.contains(dt.time(5, 59))
    assert not night.contains(dt.time(6, 0)) and not night.contains(dt.time(12, 0))
    assert night.overlaps(window("05:00", "07:00"))
    assert not night.overlaps(window("06:00", "22:00"))


@pytest.mark.parametrize("status", ["home_isolation", "central_isolation", "positive"])
def test_isolated_and_positive_people_may_not_go_out(status: str) -> None:
    allow_all = Rule(1, Effect.allow, roles=frozenset({PassRole.owner}), gate_id=GATE)
    verdict = evaluate(passage(health=status), Policy(rules=(allow_all,)))
    assert not verdict.allowed and "health_no_exit" in verdict.reasons
    assert evaluate(passage(health=status, direction=Direction.in_), Policy()).allowed


def test_fever_refuses_and_soft_mode_allows_with_alert() -> None:
    hard = evaluate(passage(temperature=37.3), Policy())
    assert not hard.allowed and hard.fever and hard.reasons == ("fever",)
    soft = evaluate(passage(temperature=38.0, soft_temperature=True), Policy())
    assert soft.allowed and soft.fever and "fever_soft" in soft.reasons
    assert not evaluate(passage(temperature=37.2), Policy()).fever


def test_quota_taken_only_by_residents_going_out_under_closed_management() -> None:
    closed = AlertLevel.closed
    assert evaluate(passage(level=closed), Policy()).takes_quota
    assert not evaluate(passage(level=closed, direction=Direction.in_), Policy()).takes_quota
    assert not evaluate(passage(PassRole.property_staff, level=closed), Policy()).takes_quota
    assert not evaluate(passage(), Policy()).takes_quota
    exempt = Rule(1, Effect.allow, roles=frozenset({PassRole.owner}), quota_exempt=True)
    assert not evaluate(passage(level=closed), Policy(rules=(exempt,))).takes_quota


def test_quota_periods_are_blocks_of_days() -> None:
    quota = QuotaRule(days=2)
    day = dt.date(2026, 11, 30)
    periods = {quota.period(day + dt.timedelta(days=n)) for n in range(4)}
    assert len(periods) == 2
    assert quota.period_start(day) <= day < quota.period_start(day) + dt.timedelta(days=2)


def test_contradictory_rules_are_named() -> None:
    allow = Rule(
        1, Effect.allow, roles=frozenset({PassRole.courier}), window=window("08:00", "20:00")
    )
    deny = Rule(
        2, Effect.deny, roles=frozenset({PassRole.courier}), window=window("19:00", "21:00")
    )
    apart = Rule(
        3, Effect.deny, roles=frozenset({PassRole.courier}), window=window("20:00", "22:00")
    )
    twin = Rule(
        4, Effect.allow, roles=frozenset({PassRole.courier}), window=window("08:00", "20:00")
    )
    narrower = Rule(5, Effect.deny, roles=frozenset({PassRole.courier}), gate_id=GATE,
                    window=window("08:00", "20:00"))  # fmt: skip
    found = {
        (c.kind, c.first, c.second) for c in contradictions([allow, deny, apart, twin, narrower])
    }
    assert ("opposite", 1, 2) in found
    assert ("duplicate", 1, 4) in found
    assert ("opposite", 2, 4) in found
    assert not any(3 in (a, b) and 1 in (a, b) for _k, a, b in found)  # 20:00 is not inside 08–20
    assert not any(5 in (a, b) for _k, a, b in found)  # more specific: precedence decides


def test_a_rule_with_an_empty_window_is_refused() -> None:
    assert check_rule(Rule(1, Effect.allow, window=window("08:00", "08:00"))) == "empty_window"
    assert check_rule(Rule(1, Effect.allow, weekdays=frozenset({7}))) == "bad_weekday"
    assert check_rule(Rule(1, Effect.allow)) is None
