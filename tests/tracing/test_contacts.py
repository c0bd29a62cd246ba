"""Contact finding over plain records: reasons, tiers, windows, chains, dismissals."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fengchao.tracing.contacts import (
    Dismissal,
    Passage,
    RecordLists,
    Rules,
    Subject,
    Swab,
    Visit,
    Window,
    find_contacts,
    lookback_window,
)

T0 = dt.datetime(2026, 12, 7, 18, 0, tzinfo=dt.UTC)
WINDOW = Window(T0 - dt.timedelta(days=4), T0 + dt.timedelta(days=1))


def P(n: int) -> Subject:
    return ("person", n)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def community() -> RecordLists:
    """Case 1 lives in household 10 (building 5) with 2; 3 lives next door (household 11,
    building 5); 4 lives in building 6."""
    return RecordLists(
        households={P(1): 10, P(2): 10, P(3): 11, P(4): 20, P(5): 21, P(6): 22},
        buildings={10: 5, 11: 5, 20: 6, 21: 6, 22: 6},
    )


def by_subject(contacts: list) -> dict:  # type: ignore[type-arg]
    return {c.subject: c for c in contacts}


def test_household_members_are_close_and_the_building_secondary() -> None:
    found = by_subject(find_contacts(P(1), community(), WINDOW, Rules(depth=1)))
    assert found[P(2)].tier == "close" and found[P(2)].reasons[0].kind == "household"
    assert found[P(3)].tier == "secondary" and found[P(3)].reasons[0].kind == "building"
    assert P(1) not in found and P(4) not in found


def test_people_through_the_same_gate_within_minutes_are_companions() -> None:
    records = community()
    records.passages = [
        Passage(P(1), gate_id=7, direction="in", at=at(0), event_id=1),
        Passage(P(4), gate_id=7, direction="out", at=at(4.5), event_id=2),
        Passage(P(5), gate_id=7, direction="in", at=at(6), event_id=3),  # too late
        Passage(P(6), gate_id=8, direction="in", at=at(1), event_id=4),  # another gate
    ]
    found = by_subject(find_contacts(P(1), records, WINDOW, Rules(depth=1)))
    reason = found[P(4)].reasons[0]
    assert reason.kind == "co_passage" and found[P(4)].tier == "close"
    assert reason.evidence["gate_id"] == 7 and reason.evidence["minutes_apart"] == 4.5
    assert P(5) not in found and P(6) not in found
    same_way = find_contacts(
        P(1), records, WINDOW, Rules(depth=1, co_passage_same_direction_only=True)
    )
    assert P(4) not in by_subject(same_way)
    wider = by_subject(find_contacts(P(1), records, WINDOW, Rules(depth=1, co_passage_minutes=10)))
    assert P(5) in wider


def test_passages_outside_the_lookback_window_do_not_count() -> None:
    records = community()
    records.passages = [
        Passage(P(1), 7, "in", WINDOW.start - dt.timedelta(hours=1), 1),
        Passage(P(4), 7, "in", WINDOW.start - dt.timedelta(hours=1), 2),
    ]
    assert P(4) not in by_subject(find_contacts(P(1), records, WINDOW, Rules(depth=1)))


def test_queue_neighbours_and_tube_mates_from_the_sampling_site() -> None:
    records = community()
    order = [P(4), P(5), P(1), P(6), P(3)]
    records.swabs = [
        Swab(
            s,
            site_id=1,
            tube_id=100 if i < 3 else 101,
            tube_barcode=f"T{100 + (i >= 3)}",
            at=at(i),
            swab_id=i,
        )
        for i, s in enumerate(order)
    ]
    found = by_subject(find_contacts(P(1), records, WINDOW, Rules(depth=1, queue_neighbours=1)))
    kinds = {s: sorted(r.kind for r in c.reasons) for s, c in found.items()}
    assert kinds[P(5)] == ["sampling_queue", "tube"]  # one contact, two reasons
    assert kinds[P(4)] == ["tube"]
    assert "sampling_queue" in kinds[P(6)] and "tube" not in kinds[P(6)]
    assert found[P(5)].reasons[1].evidence["tube"] == "T100"


def test_visitors_received_and_households_visited() -> None:
    records = community()
    visitor: Subject = ("visitor", 900)
    records.visits = [
        Visit(visitor, host_household_id=10, start=at(0), end=at(60), pass_id=1),
        Visit(P(1), host_household_id=20, start=at(120), end=at(180), pass_id=2),
    ]
    found = by_subject(find_contacts(P(1), records, WINDOW, Rules(depth=1)))
    assert found[visitor].tier == "close" and found[visitor].reasons[0].kind == "visitor"
    assert found[P(4)].reasons[0].evidence["household_id"] == 20
    # A visitor as the case: the household they visited is close.
    as_case = by_subject(find_contacts(visitor, records, WINDOW, Rules(depth=1)))
    assert {P(1), P(2)} <= set(as_case)


def test_contacts_of_close_contacts_are_secondary_through_a_chain() -> None:
    records = community()
    records.passages = [
        Passage(P(2), 7, "in", at(0), 1),  # the case's household member …
        Passage(P(4), 7, "in", at(2), 2),  # … passed the gate with 4
    ]
    one = by_subject(find_contacts(P(1), records, WINDOW, Rules(depth=1)))
    assert P(4) not in one
    # By default a co-passage of a close contact does not chain (at a busy gate it would
    # reach most of the community); a tracer can ask for it.
    assert P(4) not in by_subject(find_contacts(P(1), records, WINDOW, Rules(depth=2)))
    wide = Rules(depth=2, chain_kinds=frozenset({"household", "co_passage"}))
    two = by_subject(find_contacts(P(1), records, WINDOW, wide))
    assert two[P(4)].tier == "secondary"
    chain = two[P(4)].reasons[0]
    assert chain.kind == "chain" and chain.evidence["via"] == ["person", 2]
    assert chain.evidence["kinds"] == ["co_passage"]


def test_household_members_of_a_close_contact_are_secondary() -> None:
    records = community()
    records.passages = [Passage(P(1), 7, "in", at(0), 1), Passage(P(5), 7, "in", at(1), 2)]
    records.households[P(6)] = 21  # lives with 5, who passed the gate with the case
    found = by_subject(find_contacts(P(1), records, WINDOW))
    assert found[P(5)].tier == "close"
    assert found[P(6)].tier == "secondary" and found[P(6)].reasons[0].kind == "chain"
    assert found[P(6)].reasons[0].evidence["via"] == ["person", 5]


def test_a_contact_dismissed_in_another_case_is_shown_again_with_that_dismissal() -> None:
    earlier = Dismissal(case_id=3, reason="当时不在家", at=T0 - dt.timedelta(days=1))
    found = by_subject(
        find_contacts(P(1), community(), WINDOW, Rules(depth=1), dismissals={P(2): [earlier]})
    )
    assert found[P(2)].earlier_dismissals == [earlier]


def test_a_case_with_no_records_has_no_contacts() -> None:
    assert find_contacts(P(99), community(), WINDOW) == []


def test_unusable_rules_are_named() -> None:
    with pytest.raises(ValueError, match="depth"):
        find_contacts(P(1), community(), WINDOW, Rules(depth=9))


def test_the_lookback_starts_days_before_the_earlier_of_onset_and_sampling() -> None:
    window = lookback_window(onset=at(0), sampled=at(-600), confirmed=at(1440))
    assert window.start == at(-600) - dt.timedelta(days=4) and window.end == at(1440)
    assert lookback_window(onset=None, sampled=None, confirmed=T0).start == T0 - dt.timedelta(
        days=4
    )


people = st.integers(min_value=1, max_value=12)


@settings(max_examples=60, deadline=None)
@given(
    homes=st.dictionaries(people, st.integers(min_value=1, max_value=5), min_size=1),
    passes=st.lists(st.tuples(people, st.integers(1, 2), st.integers(0, 120)), max_size=30),
    case=people,
    depth=st.integers(1, 3),
)
def test_every_contact_once_with_its_strongest_tier_and_never_the_case(
    homes: dict[int, int], passes: list[tuple[int, int, int]], case: int, depth: int
) -> None:
    records = RecordLists(
        households={P(p): h for p, h in homes.items()},
        buildings={h: 1 + h % 2 for h in homes.values()},
        passages=[
            Passage(P(p), gate, "in", at(minute), i) for i, (p, gate, minute) in enumerate(passes)
        ],
    )
    contacts = find_contacts(P(case), records, WINDOW, Rules(depth=depth))
    subjects = [c.subject for c in contacts]
    assert len(subjects) == len(set(subjects)) and P(case) not in subjects
    for contact in contacts:
        strongest = "close" if any(r.tier == "close" for r in contact.reasons) else "secondary"
        assert contact.tier == strongest
        for reason in contact.reasons:
            if reason.kind == "co_passage":
                assert float(reason.evidence["minutes_apart"]) <= 5  # type: ignore[arg-type]
    # Everyone of the case's household is a close contact.
    if P(case) in records.households:
        home = records.households[P(case)]
        for member, their_home in records.households.items():
            if their_home == home and member != P(case):
                assert member in subjects
