"""The resident code: sealed, bound to its community, voided by rotation, printable."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao.access import codes
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import SYSTEM_ACTOR, Forbidden, GridScope, NotFound
from fengchao.registry.models import Community, ResidenceStatus
from tests.conftest import Grid, Live, Persona, make_persona


def _refusal(session: Session, text: str, **kw: int) -> str:
    with pytest.raises(codes.CodeRefused) as caught:
        codes.resolve_code(session, text, **kw)
    return caught.value.code


def test_code_names_its_person_and_hides_everything(session: Session, grid: Grid) -> None:
    text = codes.personal_code(session, grid.resident5.id)
    assert codes.looks_like_code(text)
    assert text.startswith("FC1-") and len(text) == 36
    # Nothing readable: the text is base32 (no separators, nothing in clear), and the id does
    # not appear in it (checked where it can be told from chance: an id of the digits 2-7
    # alone may turn up in any base32 text).
    payload = text.removeprefix("FC1-")
    assert set(payload) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    if set(str(grid.resident5.id)) - set("234567"):
        assert str(grid.resident5.id) not in payload
    resolved = codes.resolve_code(session, text, community_id=grid.community.id)
    assert (resolved.person_id, resolved.community_id, resolved.version) == (
        grid.resident5.id,
        grid.community.id,
        1,
    )
    # The same person gets the same code every time (the printed card and the phone agree).
    assert codes.personal_code(session, grid.resident5.id) == text
    assert codes.personal_code(session, grid.resident6.id) != text


def test_scanner_input_in_lower_case_or_with_enter_is_read(session: Session, grid: Grid) -> None:
    text = codes.personal_code(session, grid.resident5.id)
    assert codes.resolve_code(session, text.lower() + "\r\n").person_id == grid.resident5.id


@pytest.mark.parametrize(
    "text",
    ["", "   ", "350181198505051234", "FC1-", "FC1-" + "A" * 31, "FC1-" + "1" * 32, "x" * 10_000],
)
def test_what_is_not_a_code_is_refused_as_malformed(
    session: Session, grid: Grid, text: str
) -> None:
    assert _refusal(session, text) == "malformed"


def test_an_altered_code_is_refused_as_forged(session: Session, grid: Grid) -> None:
    text = codes.personal_code(session, grid.resident5.id)
    for position in (4, 15, 35):
        swapped = "B" if text[position] != "B" else "C"
        altered = text[:position] + swapped + text[position + 1 :]
        assert _refusal(session, altered) == "forged"


def test_a_code_of_another_community_is_refused(session: Session, grid: Grid) -> None:
    elsewhere = Community(street_id=grid.street.id, name="另一社区")
    session.add(elsewhere)
    session.flush()
    text = codes.personal_code(session, grid.resident5.id)
    assert _refusal(session, text, community_id=elsewhere.id) == "other_community"


def test_a_code_sealed_for_a_person_who_is_not_there_is_refused(
    session: Session, grid: Grid
) -> None:
    assert _refusal(session, codes.seal(987_654, grid.community.id, 1)) == "unknown_person"
    # A real person's id sealed with the wrong community is not them either.
    wrong = codes.seal(grid.resident5.id, grid.community.id + 1000, 1)
    assert _refusal(session, wrong) == "unknown_person"


def test_rotation_voids_every_earlier_code(session: Session, grid: Grid, worker: Persona) -> None:
    old = codes.personal_code(session, grid.resident5.id)
    new = codes.rotate_code(session, worker.actor, grid.resident5.id)
    assert new != old and new == codes.personal_code(session, grid.resident5.id)
    assert _refusal(session, old) == "rotated"
    assert codes.resolve_code(session, new).version == 2
    newer = codes.rotate_code(session, worker.actor, grid.resident5.id)
    assert _refusal(session, new) == "rotated"
    assert codes.resolve_code(session, newer).version == 3


def test_rotation_needs_the_role_and_the_scope(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    with pytest.raises(Forbidden):
        codes.rotate_code(session, lead5.actor, grid.resident5.id)
    other_staff = make_persona(
        session, "物业-新村", Role.property_staff, GridScope(ScopeLevel.compound, grid.other.id)
    )
    with pytest.raises(NotFound):
        codes.rotate_code(session, other_staff.actor, grid.resident5.id)


def test_refusals_are_in_the_users_language(session: Session, grid: Grid) -> None:
    with pytest.raises(codes.CodeRefused) as caught:
        codes.resolve_code(session, "hello")
    assert caught.value.field == "code" and "通行码" in caught.value.message


# --- pages, as production runs them -------------------------------------------------------


def test_worker_prints_a_households_codes_and_rotates_one(live: Live) -> None:
    client = live.client("worker")
    household = live.grid.h5_101.id
    page = client.get(f"/registry/households/{household}/codes")
    assert page.status_code == 200
    assert "林国平" in page.text and 'class="segno"' in page.text
    assert (
        f"/registry/households/{household}/codes"
        in client.get(f"/registry/households/{household}").text
    )
    with Session(live.engine) as session:
        before = codes.personal_code(session, live.grid.resident5.id)
    rotated = client.post(
        f"/registry/households/{household}/codes/rotate",
        data={"person_id": live.grid.resident5.id},
        headers={"X-CSRF-Token": _csrf(client)},
    )
    assert rotated.status_code == 303, rotated.text
    with Session(live.engine) as session:
        assert _refusal(session, before) == "rotated"
    assert "已换发新码" in client.get(rotated.headers["location"]).text


def _csrf(client: object) -> str:
    page = client.get("/registry")  # type: ignore[attr-defined]
    marker = 'name="csrf_token" value="'
    start = page.text.index(marker) + len(marker)
    return str(page.text[start : page.text.index('"', start)])


def test_a_person_of_another_household_cannot_be_rotated_through_this_one(live: Live) -> None:
    client = live.client("worker")
    response = client.post(
        f"/registry/households/{live.grid.h5_101.id}/codes/rotate",
        data={"person_id": live.grid.resident6.id},
        headers={"X-CSRF-Token": _csrf(client)},
    )
    assert response.status_code == 404


@pytest.mark.parametrize("persona", ["lead5", "guard"])
def test_roles_that_do_not_issue_codes_are_refused_with_a_page(live: Live, persona: str) -> None:
    client = live.client(persona, raise_errors=False)
    response = client.get(f"/registry/households/{live.grid.h5_101.id}/codes")
    assert response.status_code == 403
    assert "code-qr" not in response.text
    assert "林国平" not in response.text


def test_moved_out_people_get_no_card(session: Session, grid: Grid, login_as) -> None:  # type: ignore[no-untyped-def]
    grid.resident5.residence_status = ResidenceStatus.moved_out
    session.flush()
    staff = make_persona(
        session, "物业", Role.property_staff, GridScope(ScopeLevel.compound, grid.park.id)
    )
    page = login_as(staff).get(f"/registry/households/{grid.h5_101.id}/codes")
    assert page.status_code == 200
    assert "林国平" not in page.text and "没有在住人员" in page.text


def test_cli_shows_the_code_as_json(session: Session, grid: Grid, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from fengchao import cli

    expected = codes.personal_code(session, grid.resident5.id)
    session.commit()
    monkeypatch.setattr("fengchao.access.codes_cli.session_scope", _scope_over(session))
    result = CliRunner().invoke(cli.app, ["codes", "show", str(grid.resident5.id), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"person_id": grid.resident5.id, "code": expected}
    missing = CliRunner().invoke(cli.app, ["codes", "show", "999999", "--json"])
    assert missing.exit_code == 2
    assert SYSTEM_ACTOR.can(codes.Permission.codes_issue)


def _scope_over(session: Session):  # type: ignore[no-untyped-def]
    from contextlib import contextmanager

    @contextmanager
    def scope(**_: object):  # type: ignore[no-untyped-def]
        yield session

    return scope


def test_the_printed_qr_reads_back_as_the_code(session: Session, grid: Grid) -> None:
    import io

    import cv2
    import numpy as np
    import segno

    text = codes.personal_code(session, grid.resident5.id)
    assert 'class="segno"' in codes.qr_svg(text)
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=6)
    image = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert cv2.QRCodeDetector().detectAndDecode(image)[0] == text


def test_cli_rotates_a_code_for_the_whole_database(
    session: Session, grid: Grid, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fengchao import cli

    before = codes.personal_code(session, grid.resident5.id)
    monkeypatch.setattr("fengchao.access.codes_cli.session_scope", _scope_over(session))
    result = CliRunner().invoke(cli.app, ["codes", "rotate", str(grid.resident5.id), "--json"])
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.stdout)
    assert rotated["code"] != before
    assert codes.resolve_code(session, rotated["code"]).version == 2
    assert _refusal(session, before) == "rotated"
    missing = CliRunner().invoke(cli.app, ["codes", "rotate", "999999"])
    assert missing.exit_code == 2


def test_the_version_column_and_the_checks_agree_with_resolve_code(
    session: Session, grid: Grid, worker: Persona
) -> None:
    from sqlalchemy import select

    from fengchao.registry.models import Person

    def version(person_id: int) -> int:
        query = select(codes.current_version_column(Person.id)).where(Person.id == person_id)
        return int(session.scalar(query))  # type: ignore[arg-type]

    old = codes.personal_code(session, grid.resident5.id)
    assert version(grid.resident5.id) == codes.current_version(session, grid.resident5.id) == 1
    new = codes.rotate_code(session, worker.actor, grid.resident5.id)
    assert version(grid.resident5.id) == 2
    resolved = codes.unseal_for(new, community_id=grid.community.id)
    codes.check_registered(resolved, registered_community=grid.community.id, version=2)
    with pytest.raises(codes.CodeRefused) as rotated:
        codes.check_registered(codes.unseal(old), registered_community=grid.community.id, version=2)
    assert rotated.value.code == "rotated"
    with pytest.raises(codes.CodeRefused) as gone:
        codes.check_registered(resolved, registered_community=None, version=0)
    assert gone.value.code == "unknown_person"
    with pytest.raises(codes.CodeRefused) as foreign:
        codes.unseal_for(new, community_id=grid.community.id + 1000)
    assert foreign.value.code == "other_community"
