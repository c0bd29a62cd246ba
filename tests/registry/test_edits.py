"""Editing the registry on the web: a worker's change applies, a lead's is a proposal a
worker confirms; everything checked as the import checks, kept as history, audited; an
edit from an older version is refused."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import AuditEvent
from fengchao.registry.models import (
    ChangeProposal,
    Household,
    Person,
    ProposalState,
    RecordChange,
    ResidenceStatus,
)
from tests.conftest import Grid, Live, Persona


def _form(person: Person, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "version": person.version,
        "name": person.name,
        "gender": person.gender.value if person.gender else "",
        "relation": person.relation.value,
        "phone": person.phone or "",
        "residence_status": person.residence_status.value,
        "health_status": person.health_status.value,
        "care_tags": list(person.care_tags),
        "note": person.note or "",
        "id_number": "",
    }
    data.update(changes)
    return data


def test_worker_edit_applies_with_history_and_audit(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    person = grid.resident5
    url = f"/registry/people/{person.id}"
    response = browser.post(
        f"{url}/edit",
        data=_form(person, phone="139 0000 0005", health_status="home_isolation",
                   care_tags=["elderly_alone"]),
    )  # fmt: skip
    assert response.status_code == 303 and response.headers["location"] == f"{url}?done=saved"
    session.refresh(person)
    assert person.phone == "13900000005" and person.health_status.value == "home_isolation"
    assert person.care_tags == ["elderly_alone"] and person.version == 2
    change = session.scalars(select(RecordChange).where(RecordChange.person_id == person.id)).one()
    assert change.changes["phone"] == ["13800000001", "13900000005"]
    assert change.username == worker.user.username and change.via.value == "edit"
    page = browser.get(f"{url}?done=saved").text
    assert "已保存" in page and "变更记录" in page and "13900000005" in page
    assert "居家隔离" in page
    audited = session.scalars(select(AuditEvent).where(AuditEvent.action == "change")).one()
    assert audited.object_id == str(person.id) and "13900000005" not in str(audited.detail)


def test_bad_values_are_refused_as_the_import_refuses_them(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    person = grid.resident5
    response = browser.post(
        f"/registry/people/{person.id}/edit",
        data=_form(person, phone="12345", name="", id_number="110105194912310021"),
    )
    assert response.status_code == 422
    text = response.text
    assert "手机号应为11位，这里是5位" in text and "姓名不能为空" in text
    assert "校验位" in text  # the ID number's check character
    session.refresh(person)
    assert person.phone == "13800000001" and person.version == 1


def test_an_edit_from_an_older_version_is_refused_not_merged(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona, admin: Persona
) -> None:
    person = grid.resident5
    stale = _form(person, phone="13900000001")
    first = login_as(admin).post(
        f"/registry/people/{person.id}/edit", data=_form(person, phone="13700000007")
    )
    assert first.status_code == 303
    second = login_as(worker).post(f"/registry/people/{person.id}/edit", data=stale)
    assert second.status_code == 409 and "已被" in second.text and "修改" in second.text
    session.refresh(person)
    assert person.phone == "13700000007"


def test_lead_proposes_and_a_worker_confirms(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, lead5: Persona, worker: Persona
) -> None:
    person = grid.resident5
    lead = login_as(lead5)
    edit_page = lead.get(f"/registry/people/{person.id}/edit").text
    assert "提交申请" in edit_page and 'name="id_number"' not in edit_page
    proposed = lead.post(
        f"/registry/people/{person.id}/edit", data=_form(person, phone="13600000006")
    )
    assert proposed.headers["location"].endswith("done=proposed")
    session.refresh(person)
    assert person.phone == "13800000001"  # not yet
    assert "待确认" in lead.get("/registry/proposals").text
    proposal = session.scalars(select(ChangeProposal)).one()
    assert proposal.changes == {"phone": ["13800000001", "13600000006"]}

    queue = login_as(worker).get("/registry/proposals").text
    assert "13600000006" in queue and "林国平" in queue
    done = login_as(worker).post(
        f"/registry/proposals/{proposal.id}/decision", data={"approve": "true"}
    )
    assert done.status_code == 303
    session.refresh(person)
    session.refresh(proposal)
    assert person.phone == "13600000006" and proposal.state == ProposalState.applied
    change = session.scalars(select(RecordChange).where(RecordChange.person_id == person.id)).one()
    assert change.via.value == "proposal" and change.proposal_id == proposal.id
    mine = login_as(lead5).get("/registry/proposals").text
    assert "已生效" in mine


def test_a_rejection_needs_a_reason_the_lead_then_sees(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, lead5: Persona, worker: Persona
) -> None:
    person = grid.resident5
    login_as(lead5).post(f"/registry/people/{person.id}/move-out", data={"version": 1})
    proposal = session.scalars(select(ChangeProposal)).one()
    browser = login_as(worker)
    no_reason = browser.post(
        f"/registry/proposals/{proposal.id}/decision", data={"approve": "false"}
    )
    assert no_reason.status_code == 422 and "请写明不通过的原因" in no_reason.text
    browser.post(
        f"/registry/proposals/{proposal.id}/decision",
        data={"approve": "false", "note": "电话核实仍在住"},
    )
    session.refresh(person)
    assert person.residence_status == ResidenceStatus.living
    assert "电话核实仍在住" in login_as(lead5).get("/registry/proposals").text
    again = login_as(worker).post(
        f"/registry/proposals/{proposal.id}/decision", data={"approve": "true"}
    )
    assert again.status_code == 409


def test_a_proposal_overtaken_by_another_change_is_applied_only_knowingly(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, lead5: Persona, worker: Persona
) -> None:
    person = grid.resident5
    login_as(lead5).post(
        f"/registry/people/{person.id}/edit", data=_form(person, phone="13600000006")
    )
    proposal = session.scalars(select(ChangeProposal)).one()
    browser = login_as(worker)
    browser.post(f"/registry/people/{person.id}/edit", data=_form(person, phone="13500000005"))
    queue = browser.get("/registry/proposals").text
    assert "已有变动" in queue and "仍然确认" in queue
    plain = browser.post(f"/registry/proposals/{proposal.id}/decision", data={"approve": "true"})
    assert plain.status_code == 409
    forced = browser.post(
        f"/registry/proposals/{proposal.id}/decision", data={"approve": "true", "force": "true"}
    )
    assert forced.status_code == 303
    session.refresh(person)
    assert person.phone == "13600000006"


def test_people_are_added_and_flats_marked_vacant(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, lead5: Persona, worker: Persona
) -> None:
    empty = session.scalars(
        select(Household).where(Household.building_id == grid.b5.id, Household.id != grid.h5_101.id)
    ).first()
    assert empty is not None
    page = login_as(worker).get(f"/registry/households/{empty.id}").text
    assert "此户还没有登记任何人" in page and "添加成员" in page
    added = login_as(worker).post(
        f"/registry/households/{empty.id}/people/new",
        data={"name": "许国平", "phone": "13812345678", "relation": "owner",
              "residence_status": "living", "health_status": "normal",
              "id_number": "11010519491231002X"},
    )  # fmt: skip
    assert added.status_code == 422 and "已登记在本社区另一人名下" in added.text
    added = login_as(worker).post(
        f"/registry/households/{empty.id}/people/new",
        data={"name": "许国平", "phone": "13812345678", "relation": "owner"},
    )
    assert added.status_code == 303
    created = session.scalars(select(Person).where(Person.name == "许国平")).one()
    assert created.household_id == empty.id and created.phone == "13812345678"

    lead = login_as(lead5)
    lead.post(f"/registry/households/{empty.id}/vacant", data={"vacant": "true", "version": 1})
    session.refresh(empty)
    assert empty.vacant is False  # a proposal only
    proposal = session.scalars(select(ChangeProposal)).one()
    login_as(worker).post(f"/registry/proposals/{proposal.id}/decision", data={"approve": "true"})
    session.refresh(empty)
    assert empty.vacant is True


def test_a_lead_changes_nothing_outside_the_building_and_a_guard_nothing_at_all(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, lead5: Persona, guard: Persona
) -> None:
    other = grid.resident6
    lead = login_as(lead5)
    assert lead.get(f"/registry/people/{other.id}/edit").status_code == 404
    refused = lead.post(f"/registry/people/{other.id}/edit", data=_form(other, phone="13600000006"))
    assert refused.status_code == 404
    assert lead.post(f"/registry/people/{other.id}/move-out").status_code == 404
    guard_try = login_as(guard).post(
        f"/registry/people/{grid.resident5.id}/edit", data=_form(grid.resident5, phone="1")
    )
    assert guard_try.status_code == 403
    assert session.scalars(select(ChangeProposal)).all() == []


def test_worker_sets_an_id_number_kept_encrypted_and_masked_in_history(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    person = Person(community_id=grid.community.id, household_id=grid.h5_101.id, name="林小平")
    session.add(person)
    session.flush()
    browser = login_as(worker)
    response = browser.post(
        f"/registry/people/{person.id}/edit", data=_form(person, id_number="350181198505051250")
    )
    assert response.status_code == 303
    session.refresh(person)
    assert person.id_mask == "350***********1250" and person.birth_date is not None
    change = session.scalars(select(RecordChange).where(RecordChange.person_id == person.id)).one()
    assert "350181198505051250" not in str(change.changes)


def test_editing_through_the_app_as_production_runs_it(live: Live) -> None:
    client = live.client("worker")
    person_id = live.grid.resident6.id
    form = client.get(f"/registry/people/{person_id}/edit")
    assert form.status_code == 200
    version = form.text.split('name="version" value="')[1].split('"')[0]
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    saved = client.post(
        f"/registry/people/{person_id}/edit",
        data={"csrf_token": csrf, "version": version, "name": "陈美玲", "relation": "owner",
              "phone": "13800000022", "residence_status": "living", "health_status": "normal"},
    )  # fmt: skip
    assert saved.status_code == 303
    page = client.get(f"/registry/people/{person_id}").text
    assert "13800000022" in page and "变更记录" in page
    again = client.post(
        f"/registry/people/{person_id}/edit",
        data={"csrf_token": csrf, "version": version, "name": "陈美玲", "relation": "owner",
              "phone": "13800000033", "residence_status": "living", "health_status": "normal"},
    )  # fmt: skip
    assert again.status_code == 409
