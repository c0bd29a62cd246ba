"""Bad input at the registration desk, refused with the field at fault and a message in
the user's language: barcodes, station numbers, wrong JSON types, reused keys."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session

from fengchao.sampling import registration as reg
from tests.conftest import Persona
from tests.sampling.conftest import Site


@pytest.mark.parametrize("text", ["hello world", "T000 0001", "T0001/2", "T0001#", "条码0001"])
def test_a_barcode_with_spaces_or_other_characters_is_refused(
    session: Session, site: Site, sampler: Persona, text: str
) -> None:
    with pytest.raises(reg.SwabRefused) as refused:
        reg.open_tube(session=session, actor=sampler.actor, round_id=site.round.id, barcode=text)
    assert refused.value.field == "tube"
    expected = "空格" if " " in text else "只能有字母、数字和连字符"
    assert expected in refused.value.message, refused.value.message


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("T0000001\r\n", "T0000001"), (" t0000002\t", "T0000002"), ("ＴＭ-０００３", "TM-0003")],
)
def test_what_scanners_send_is_kept(
    session: Session, site: Site, sampler: Persona, sent: str, kept: str
) -> None:
    # A scanner's Enter, a lower-case scanner, full-width text from a Chinese input method.
    state = reg.open_tube(
        session=session, actor=sampler.actor, round_id=site.round.id, barcode=sent
    )
    assert state.barcode == kept


def test_the_api_refuses_a_barcode_with_a_space_naming_the_field(  # type: ignore[no-untyped-def]
    login_as, site: Site, sampler: Persona
) -> None:
    browser = login_as(sampler)
    base = f"/api/sampling/rounds/{site.round.id}"
    opened = browser.post(f"{base}/tubes", json={"barcode": "hello world"})
    assert opened.status_code == 409
    assert opened.json()["errors"][0]["field"] == "tube"
    assert "空格" in opened.json()["detail"]
    body = {"barcode": "hello world", "key": uuid.uuid4().hex, "code": site.numbers[0]}
    swab = browser.post(f"{base}/swabs", json=body)
    assert swab.status_code == 409 and swab.json()["errors"][0]["field"] == "tube"


@pytest.mark.parametrize("station", ["99", "0", "5", "A"])
def test_a_station_outside_the_sites_stations_is_refused(
    session: Session, site: Site, sampler: Persona, station: str
) -> None:
    assert site.site.stations == 4
    with pytest.raises(reg.SwabRefused) as opening:
        reg.open_tube(session=session, actor=sampler.actor, round_id=site.round.id,
                      barcode="S0001", station=station)  # fmt: skip
    assert opening.value.field == "station" and "1 到 4" in opening.value.message
    with pytest.raises(reg.SwabRefused) as swabbing:
        reg.register_swab(session=session, actor=sampler.actor, round_id=site.round.id,
                          barcode="S0001", key=uuid.uuid4().hex, code=site.numbers[0],
                          station=station)  # fmt: skip
    assert swabbing.value.field == "station"


def test_the_api_refuses_station_99_at_a_four_station_site(  # type: ignore[no-untyped-def]
    login_as, site: Site, sampler: Persona
) -> None:
    browser = login_as(sampler)
    base = f"/api/sampling/rounds/{site.round.id}"
    body = {"barcode": "S0002", "key": uuid.uuid4().hex, "code": site.numbers[0], "station": "99"}
    refused = browser.post(f"{base}/swabs", json=body)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "station"
    fine = browser.post(f"{base}/swabs", json={**body, "station": "4"})
    assert fine.status_code == 200, fine.text


@pytest.mark.parametrize(
    ("field", "value"),
    [("station", 5), ("station", [1]), ("barcode", {"a": 1}), ("retest_reason", 3.5)],
)
def test_a_wrong_type_is_named_in_the_users_language(  # type: ignore[no-untyped-def]
    login_as, site: Site, sampler: Persona, field: str, value: object
) -> None:
    browser = login_as(sampler)
    body = {"barcode": "W0001", "key": uuid.uuid4().hex, "code": site.numbers[0], field: value}
    refused = browser.post(f"/api/sampling/rounds/{site.round.id}/swabs", json=body)
    assert refused.status_code == 422
    error = refused.json()["errors"][0]
    assert error["field"] == field and error["message"] == "应为文字", error
    browser.client.cookies.set("fc_lang", "en")
    english = browser.post(f"/api/sampling/rounds/{site.round.id}/swabs", json=body)
    assert english.json()["errors"][0]["message"] == "Should be text"


def test_a_key_sent_again_for_another_person_is_refused(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, sampler: Persona
) -> None:
    browser = login_as(sampler)
    url = f"/api/sampling/rounds/{site.round.id}/swabs"
    body = {"barcode": "K0001", "key": uuid.uuid4().hex, "code": site.numbers[0]}
    assert browser.post(url, json=body).status_code == 200
    replay = browser.post(url, json=body)
    assert replay.status_code == 200 and replay.json()["repeated"] is True
    other = browser.post(url, json={**body, "code": site.numbers[1]})
    assert other.status_code == 409, other.text
    assert other.json()["errors"][0]["field"] == "key"
    by_pick = browser.post(url, json={**body, "code": None, "person_id": site.people[1].id})
    assert by_pick.status_code == 409 and by_pick.json()["errors"][0]["field"] == "key"
    same_by_pick = browser.post(url, json={**body, "code": None, "person_id": site.people[0].id})
    assert same_by_pick.status_code == 200 and same_by_pick.json()["repeated"] is True
    with pytest.raises(reg.SwabRefused) as refused:
        reg.register_swab(session=session, actor=sampler.actor, round_id=site.round.id,
                          barcode="K0001", key=body["key"], code=site.numbers[2])  # fmt: skip
    assert refused.value.field == "key"
