"""Backup and restore: every row comes back on SQLite, on PostgreSQL and from one to the
other; another schema revision, a wrong key, a damaged or cut file and a database that
already holds rows are refused, with nothing written."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import os
import secrets
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao import backup as backups
from fengchao.access.face_models import (
    ConsentMethod,
    FaceConsent,
    FaceGalleryChange,
    FaceTemplate,
    FaceThumbnail,
    TemplateKind,
)
from fengchao.access.models import (
    AccessEvent,
    AlertSetting,
    Device,
    Gate,
    GateKind,
    PassRule,
    PersonPin,
    QuotaUse,
    ResidentCode,
)
from fengchao.auth import service as auth_service
from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import AuditEvent, Role, ScopeLevel
from fengchao.auth.service import Actor, GridScope
from fengchao.cli import app
from fengchao.db import Base, get_engine, get_sessionmaker, make_engine
from fengchao.duty import models as duty
from fengchao.gridwork.models import SweepTarget
from fengchao.migrate import upgrade
from fengchao.models import load_all_models
from fengchao.notify import service as notify_service
from fengchao.notify.models import (
    Channel,
    ChannelKind,
    DeliveryAttempt,
    ScheduledJob,
    WorkerLease,
)
from fengchao.registry.models import (
    Building,
    BuildingLead,
    CareTag,
    ChangeProposal,
    ChangeVia,
    Community,
    Compound,
    Gender,
    HealthStatus,
    Household,
    ImportUpload,
    PartyOrg,
    PartyOrgKind,
    Person,
    RecordChange,
    Relation,
    ResidenceStatus,
    Street,
    Unit,
    Vehicle,
)
from fengchao.registry.service import register_person_id
from fengchao.settings import get_settings
from fengchao.testing import throwaway_database
from fengchao.tracing.models import (
    CaseResult,
    CaseSource,
    ContactDecision,
    ContactStatus,
    TracingCase,
)

TARGET = os.environ.get("FENGCHAO_TEST_DATABASE", "sqlite")
# The suite's database to itself; on the PostgreSQL pass also across the two dialects.
PAIRS = [(TARGET, TARGET)]
if TARGET != "sqlite":
    PAIRS += [("sqlite", TARGET), (TARGET, "sqlite")]
ID_NUMBER = "11010519491231002X"


def data_key() -> bytes:
    return get_settings().security.data_key_bytes()


def add_sampling_rows(s: Session, community_id: int, person_id: int, other_id: int) -> None:
    """A site, a round with its plan, an exemption, a tube with a lab result, a swab and a
    retest (the sampling slice's tables)."""
    from fengchao.sampling import models as sm

    site = sm.SamplingSite(community_id=community_id, name="采样点", opens="07:30")
    s.add(site)
    s.flush()
    found = sm.SamplingRound(
        community_id=community_id, site_id=site.id, name="全员核酸", day=dt.date(2022, 11, 11),
        due_at=dt.datetime(2022, 11, 11, 6, tzinfo=dt.UTC), scope=sm.RoundScope.people,
        scope_ids=[person_id, other_id], slot_plan={"slots": [], "unplaced": []},
    )  # fmt: skip
    s.add(found)
    s.flush()
    lab = sm.LabImport(community_id=community_id, round_id=found.id, filename="结果.csv",
                       digest="0" * 64, rows=1, applied=1, positives=1)  # fmt: skip
    s.add(lab)
    s.add(
        sm.SamplingExemption(
            community_id=community_id,
            round_id=found.id,
            person_id=other_id,
            kind=sm.ExemptionKind.infant,
            note="婴儿",
        )
    )
    s.flush()
    tube = sm.Tube(community_id=community_id, round_id=found.id, barcode="T0001", swabs=1,
                   status=sm.TubeStatus.closed, result=sm.LabResult.positive,
                   lab_import_id=lab.id)  # fmt: skip
    s.add(tube)
    s.flush()
    s.add(sm.Swab(community_id=community_id, round_id=found.id, tube_id=tube.id,
                  person_id=person_id, key="k" * 32, station="1"))  # fmt: skip
    s.add(sm.Retest(community_id=community_id, round_id=found.id, tube_id=tube.id,
                    person_id=person_id))  # fmt: skip
    s.flush()


def build_community(engine: Engine, audit_events: int = 300) -> None:
    """A small community touching every table and every kind of column."""
    with Session(engine) as s:
        street = Street(name="宏路街道")
        s.add(street)
        s.flush()
        community = Community(street_id=street.id, name="宏侨社区")
        s.add(community)
        s.flush()
        park = Compound(community_id=community.id, name="华润中央公园")
        s.add(park)
        s.flush()
        b5 = Building(community_id=community.id, compound_id=park.id, name="5", sort_key=5)
        s.add(b5)
        s.flush()
        unit = Unit(community_id=community.id, building_id=b5.id, name="2")
        s.add(unit)
        s.flush()
        home, empty = (
            Household(
                community_id=community.id,
                compound_id=park.id,
                building_id=b5.id,
                unit_id=unit.id,
                room=room,
                vacant=vacant,
            )
            for room, vacant in (("1302", False), ("1303", True))
        )
        s.add_all([home, empty])
        s.flush()
        # A building group whose parent (the compound branch) gets a larger id: a restore
        # that inserted rows in id order alone would break the foreign key.
        group = PartyOrg(
            community_id=community.id,
            kind=PartyOrgKind.building_group,
            name="5号楼党小组",
            building_id=b5.id,
        )
        s.add(group)
        s.flush()
        branch = PartyOrg(
            community_id=community.id,
            kind=PartyOrgKind.compound_branch,
            name="华润中央公园党支部",
            compound_id=park.id,
        )
        s.add(branch)
        s.flush()
        group.parent_id = branch.id
        lin = Person(
            community_id=community.id,
            household_id=home.id,
            name="林国平",
            gender=Gender.male,
            birth_date=dt.date(1949, 12, 31),
            phone="13800000001",
            relation=Relation.owner,
            residence_status=ResidenceStatus.away,
            health_status=HealthStatus.home_isolation,
            care_tags=[CareTag.elderly_alone.value, CareTag.chronic_illness.value],
            party_member=True,
            party_org_id=group.id,
            face_enrolled_at=dt.datetime(2022, 11, 11, 8, 30, 15, 123456, tzinfo=dt.UTC),
            note='第一行\n第二行 "引号" \\ 🐝',
        )
        register_person_id(lin, ID_NUMBER)
        child = Person(community_id=community.id, household_id=home.id, name="林小平")
        s.add_all([lin, child])
        s.flush()
        s.add(BuildingLead(building_id=b5.id, community_id=community.id, person_id=lin.id))
        s.add(ResidentCode(person_id=lin.id, community_id=community.id, version=2))
        # Duty: a volunteer on the night shift of the east gate, checked in, one repair.
        volunteer = duty.Volunteer(
            community_id=community.id,
            name="林国平",
            person_id=lin.id,
            building_id=b5.id,
            identity=duty.Identity.party_member,
            skills=["lead"],
            weekly=["0-night"],
        )
        post = duty.Post(community_id=community.id, name="东门卡口")
        s.add_all([volunteer, post])
        s.flush()
        template = duty.ShiftTemplate(
            post_id=post.id, name="值大夜", starts=dt.time(0), ends=dt.time(8), skills=[]
        )
        s.add_all(
            [
                template,
                duty.Certificate(
                    volunteer_id=volunteer.id, skill="medical", expires_on=dt.date(2027, 6, 30)
                ),
                duty.AvailabilityException(volunteer_id=volunteer.id, day=dt.date(2026, 12, 8)),
            ]
        )
        s.flush()
        shift = duty.Shift(
            community_id=community.id,
            post_id=post.id,
            template_id=template.id,
            name="值大夜",
            starts_at=dt.datetime(2026, 12, 6, 16, tzinfo=dt.UTC),
            ends_at=dt.datetime(2026, 12, 7, 0, tzinfo=dt.UTC),
            lead_id=volunteer.id,
            hole={"code": "no_skill", "missing": 1, "skill": "medical"},
        )
        s.add(shift)
        s.flush()
        assignment = duty.Assignment(shift_id=shift.id, volunteer_id=volunteer.id)
        s.add(assignment)
        s.flush()
        s.add_all([
            duty.CheckIn(assignment_id=assignment.id, volunteer_id=volunteer.id, post_id=post.id,
                         checked_in_at=dt.datetime(2026, 12, 6, 15, 55, tzinfo=dt.UTC)),
            duty.RepairProposal(community_id=community.id, assignment_id=assignment.id,
                                diff={"added": [], "removed": []}),
        ])  # fmt: skip
        add_sampling_rows(s, community.id, lin.id, child.id)
        gate = Gate(community_id=community.id, compound_id=park.id, name="东门",
                    kind=GateKind.pedestrian, soft_temperature=True)  # fmt: skip
        s.add(gate)
        s.flush()
        s.add(Device(community_id=community.id, gate_id=gate.id, name="东门人脸终端",
                     key_hash="ab" * 32, key_prefix="fcd_abcdef",
                     last_seen_at=dt.datetime(2022, 11, 11, 8, 0, tzinfo=dt.UTC)))  # fmt: skip
        s.add(PassRule(community_id=community.id, name="快递 8–20 点", effect="allow",
                       roles=["courier"], gate_id=gate.id, direction="in", weekdays=[0, 1],
                       start_time="08:00", end_time="20:00", levels=["normal"]))  # fmt: skip
        place = f"compound:{park.id}"
        s.add(AlertSetting(community_id=community.id, compound_id=park.id, place=place,
                           level="closed", set_by="admin"))  # fmt: skip
        s.add(PersonPin(person_id=lin.id, community_id=community.id, pin_hash="$argon2id$x",
                        failures=2))  # fmt: skip
        s.add(QuotaUse(household_id=home.id, period=369_000, community_id=community.id, used=1))
        moment = dt.datetime(2022, 11, 11, 8, 30, 15, 123456, tzinfo=dt.UTC)
        s.add(AccessEvent(
            community_id=community.id, compound_id=park.id, gate_id=gate.id, device_id=None,
            direction="out", method="face", decision="allow",
            reasons=["resident", "fever_soft"], person_id=lin.id, household_id=home.id,
            building_id=b5.id, masked=True, distance=0.4213, temperature=37.5,
            retest_temperature=36.9, alert_level="closed", device_time=moment,
            occurred_at=moment, server_time=moment, late=True, operator_name="guard",
            idem_scope="device:1", idem_key="k-1", body_hash="cd" * 32, detail={"rule_id": 1},
        ))  # fmt: skip
        s.add_all(  # faces on file: binary columns (every byte value) round-trip
            [
                FaceTemplate(
                    person_id=lin.id,
                    community_id=community.id,
                    descriptor=bytes(range(256)) * 2,
                    kind=TemplateKind.photo,
                    gallery_kind=0,
                    model="dlib_resnet_v1",
                ),
                FaceThumbnail(person_id=lin.id, community_id=community.id, sealed=b"FCv1\x00\xff"),
                FaceConsent(
                    person_id=lin.id,
                    community_id=community.id,
                    consented_by="林国平",
                    method=ConsentMethod.signed_form,
                    recorded_by="物业前台",
                ),
                FaceGalleryChange(community_id=community.id, person_id=lin.id),
            ]
        )
        s.add_all(
            [
                Vehicle(
                    community_id=community.id,
                    household_id=home.id,
                    plate="闽A12345",
                    owner_person_id=lin.id,
                ),
                Vehicle(
                    community_id=community.id,
                    household_id=home.id,
                    plate="闽AD12345",
                    note="新能源",
                ),
            ]
        )
        admin = auth_service.create_user(
            session=s,
            username="admin",
            password="correct-horse-battery",
            role=Role.admin,
            scope=GridScope(ScopeLevel.street, street.id),
        )
        auth_service.create_user(
            session=s,
            username="lead5",
            password="correct-horse-battery",
            role=Role.building_lead,
            scope=GridScope(ScopeLevel.building, b5.id),
            display_name="5号楼楼栋长",
        )
        auth_service.start_session(session=s, user=admin)
        auth_service.attempt_login(
            session=s, username="admin", password="wrong-password-1", address="10.1.2.3"
        )
        channel = Channel(
            community_id=community.id,
            node_level=ScopeLevel.building,
            node_id=b5.id,
            name="5号楼居民群",
            kind=ChannelKind.dingtalk,
            url_enc=get_cipher().encrypt("https://oapi.dingtalk.com/robot/send?access_token=t"),
            url_hint="https://oapi.dingtalk.com/…en=t",
            secret_enc=get_cipher().encrypt("SECabc"),
            rate_per_minute=20,
        )
        s.add(channel)
        s.flush()
        sent = notify_service.send(
            session=s,
            community_id=community.id,
            kind="fever",
            title="东门测温异常",
            body="请楼栋长跟进",
            detail="林国平 5-2-1302",
            to=[f"building_lead@building:{b5.id}", f"group@building:{b5.id}"],
            key="gate:1:fever",
        )
        s.add(DeliveryAttempt(channel_id=channel.id, delivery_id=None, duration_ms=12.5, ok=True))
        case = TracingCase(
            community_id=community.id,
            person_id=lin.id,
            onset_at=dt.datetime(2022, 11, 9, 8, 0, tzinfo=dt.UTC),
            confirmed_at=dt.datetime(2022, 11, 11, 9, 0, tzinfo=dt.UTC),
            source=CaseSource.lab_import,
            created_by=admin.id,
        )
        s.add(case)
        s.flush()
        s.add(
            CaseResult(
                case_id=case.id,
                community_id=community.id,
                at=case.confirmed_at,
                source=CaseSource.lab_import,
                note="十混一阳性后单采",
            )
        )
        s.add(
            ContactDecision(
                case_id=case.id,
                community_id=community.id,
                subject_kind="person",
                subject_id=child.id,
                tier="close",
                status=ContactStatus.confirmed,
                decided_by=admin.id,
                isolated_at=dt.datetime(2022, 11, 11, 10, 0, tzinfo=dt.UTC),
            )
        )
        s.add(
            ScheduledJob(
                name="notify.purge",
                every_seconds=3600.0,
                next_run_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            )
        )
        s.add(
            WorkerLease(
                name="worker",
                owner="host:1:abc",
                expires_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                detail={"pid": 1},
            )
        )
        assert sent.inboxes == 1 and sent.deliveries == 1
        s.add(
            ImportUpload(
                token=secrets.token_hex(16),
                community_id=community.id,
                user_id=admin.id,
                kind="residents",
                filename="居民.xlsx",
                content=bytes(range(256)) * 4,
                options={"create_missing": True, "skip_invalid": False},
            )
        )
        actor = auth_service.actor_for(admin)
        proposal = ChangeProposal(
            community_id=community.id, building_id=b5.id, household_id=home.id,
            person_id=child.id, action="person.update", changes={"phone": [None, "13900000009"]},
            proposed_by=admin.id, proposed_by_name="5号楼楼栋长",
        )  # fmt: skip
        s.add(proposal)
        s.flush()
        s.add(
            RecordChange(
                community_id=community.id, household_id=home.id, person_id=child.id,
                action="person.update", changes={"phone": [None, "13900000009"]},
                via=ChangeVia.proposal, proposal_id=proposal.id, user_id=admin.id,
                username="admin",
            )
        )  # fmt: skip
        for n in range(audit_events):  # varied details, so the stream spans many chunks
            auth_service.audit(
                session=s,
                actor=actor,
                action="read",
                object_type="person",
                object_id=lin.id,
                community_id=community.id,
                n=n,
                nonce=secrets.token_hex(12),
                nested={"list": [1, 2.5, None, True], "文本": "林"},
            )
        _grid_work(s, actor, community.id, park.id, b5.id, home.id)
        build_visitors(s, community.id, park.id, b5.id, home.id, admin.id)
        s.commit()


def _grid_work(
    s: Session, actor: Actor, community_id: int, park_id: int, b5_id: int, home_id: int
) -> None:
    """A sweep with a visit that found a need (a help request and its history), a report
    with a sealed photo, and a public-form counter."""

    from PIL import Image

    from fengchao.gridwork import reports, sweeps, throttle

    sweep = sweeps.create(
        session=s, actor=actor, title="扫楼", level=ScopeLevel.building, node_id=b5_id,
        deadline=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    )  # fmt: skip
    target = s.scalar(select(SweepTarget.id).where(SweepTarget.household_id == home_id))
    assert target is not None
    sweeps.record_visit(
        session=s, actor=actor, sweep_id=sweep.id, target_id=target,
        form=sweeps.VisitForm(outcome="visited", needs_food=True, key="backup-visit-1"),
    )  # fmt: skip
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(photo, format="PNG")
    reports.submit(
        session=s, community_id=community_id, compound_id=park_id, building_id=b5_id,
        category="tailgating", photo=photo.getvalue(),
    )  # fmt: skip
    throttle.count(session=s, host="10.1.2.3", phone="13900000009", now=dt.datetime.now(dt.UTC))


def build_visitors(
    s: Session, community_id: int, compound_id: int, building_id: int, household_id: int,
    user_id: int,
) -> None:  # fmt: skip
    """The visitors slice's rows: a gate's poster, a pass (ID number encrypted, the health
    declaration as JSON), a watchlist entry and a rate counter."""
    from fengchao.access.models import Gate, GateKind
    from fengchao.visitors.models import (
        PassKind,
        PassStatus,
        VisitorPass,
        VisitorPoster,
        VisitorRate,
        VisitorWatch,
    )  # fmt: skip

    gate = Gate(community_id=community_id, compound_id=compound_id, name="访客东门",
                kind=GateKind.both)  # fmt: skip
    s.add(gate)
    s.flush()
    s.add(VisitorPoster(gate_id=gate.id, community_id=community_id, token="AbCdEfGh12345678",
                        version=2))  # fmt: skip
    s.add(
        VisitorPass(
            community_id=community_id, compound_id=compound_id, kind=PassKind.visitor,
            status=PassStatus.active, name="王小明", phone="13912345678",
            id_number_enc=get_cipher().encrypt(ID_NUMBER),
            id_number_hash=get_cipher().lookup_hash(ID_NUMBER), id_mask="350***********1234",
            host_household_id=household_id, host_building_id=building_id,
            host_place="5-2-1302", purpose="探望 <b>父母</b>", stay_hours=3, party_size=2,
            plate="闽A54321", symptoms=["cough"], travel="厦门", health_code="green",
            gate_ids=[gate.id], poster_gate_id=gate.id, poster_version=2,
            valid_from=dt.datetime(2026, 11, 30, 1, 0, 0, 123456, tzinfo=dt.UTC),
            valid_until=dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC),
            entries_allowed=1, entries_used=1, inside=True,
            last_in_at=dt.datetime(2026, 11, 30, 1, 5, tzinfo=dt.UTC),
            link_hash="a" * 64, form_key="b" * 64, created_by_id=user_id,
            decided_by_id=user_id, decided_at=dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC),
            note="", extra={"来源": "poster"},
        )
    )  # fmt: skip
    s.add(VisitorWatch(community_id=community_id, id_number_hash="d" * 64,
                       id_mask="350***********1234", phone="13500000000", reason="冒用通行证",
                       expires_at=dt.datetime(2026, 12, 30, tzinfo=dt.UTC),
                       created_by_id=user_id))  # fmt: skip
    s.add(VisitorRate(key="addr:" + "c" * 40, window_start=dt.datetime(2026, 11, 30, 1, 0,
                      tzinfo=dt.UTC), count=3))  # fmt: skip


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order, as the application reads it."""
    load_all_models()
    with engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def backed_up(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {name: r for name, r in rows.items() if name not in backups.NOT_BACKED_UP}


def assert_empty(engine: Engine) -> None:
    assert {name: len(rows) for name, rows in snapshot(engine).items() if rows} == {}


def make_backup(engine: Engine, **options: Any) -> bytes:
    out = io.BytesIO()
    backups.write_backup(engine, out, data_key=data_key(), **options)
    return out.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def source(folder: Path) -> Iterator[Engine]:
    with throwaway_database(TARGET, folder) as engine:
        build_community(engine)
        yield engine


@pytest.fixture
def target(folder: Path) -> Iterator[Engine]:
    with throwaway_database(TARGET, folder) as engine:
        yield engine


@pytest.mark.parametrize(
    ("source_db", "target_db"), PAIRS, ids=lambda t: "sqlite" if t == "sqlite" else "postgresql"
)
def test_restore_into_empty_database_finds_every_row(
    source_db: str, target_db: str, folder: Path
) -> None:
    with (
        throwaway_database(source_db, folder) as source,
        throwaway_database(target_db, folder) as target,
    ):
        build_community(source)
        before = snapshot(source)
        assert all(before.values()), "every table must hold rows for the comparison to count"
        content = make_backup(source)
        header = backups.restore_backup(target, io.BytesIO(content), data_key=data_key())
        after = snapshot(target)
        assert backed_up(after) == backed_up(before)
        assert after["login_session"] == []  # a restore signs everyone out
        assert after["login_throttle"] == []  # nor does it keep typed names and addresses
        assert header.tables == {name: len(rows) for name, rows in backed_up(before).items()}
        assert header.dialect == ("sqlite" if source_db == "sqlite" else "postgresql")
        with Session(target) as s:
            lin = s.scalars(select(Person).where(Person.name == "林国平")).one()
            assert lin.id_number_enc is not None
            assert get_cipher().decrypt(lin.id_number_enc) == ID_NUMBER
            assert lin.id_number_hash == get_cipher().lookup_hash(ID_NUMBER)
            # New rows get fresh ids after the restored ones (PostgreSQL's sequences moved on).
            street = Street(name="新街道")
            s.add(street)
            s.flush()
            assert street.id > max(row[0] for row in before["street"])
            s.add(AuditEvent(username="x", action="read", object_type="person", detail={}))
            s.commit()


def test_restore_migrates_a_bare_database_first(source: Engine, folder: Path) -> None:
    bare = make_engine(f"sqlite:///{folder / 'bare.db'}")
    try:
        assert inspect(bare).get_table_names() == []
        backups.restore_backup(bare, io.BytesIO(make_backup(source)), data_key=data_key())
        assert backed_up(snapshot(bare)) == backed_up(snapshot(source))
    finally:
        bare.dispose()


def test_stream_of_many_chunks_restores(source: Engine, target: Engine) -> None:
    content = make_backup(source, chunk_bytes=1024)
    assert len(content) > 8 * 1024
    backups.restore_backup(target, io.BytesIO(content), data_key=data_key())
    assert backed_up(snapshot(target)) == backed_up(snapshot(source))


def test_backup_reads_one_snapshot_while_others_write(source: Engine, target: Engine) -> None:
    streets = len(snapshot(source)["street"])
    wrote: list[int] = []

    def write_meanwhile(_table: str, _done: int, _total: int) -> None:
        if not wrote:  # the server goes on writing while the backup reads
            with Session(source) as s:
                s.add(Street(name="备份期间新建的街道"))
                s.commit()
                wrote.append(1)

    out = io.BytesIO()
    header = backups.write_backup(source, out, data_key=data_key(), progress=write_meanwhile)
    assert wrote and len(snapshot(source)["street"]) == streets + 1
    assert header.tables["street"] == streets
    backups.restore_backup(target, io.BytesIO(out.getvalue()), data_key=data_key())
    assert len(snapshot(target)["street"]) == streets


def test_backup_of_another_schema_revision_is_refused(
    source: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = backups.head_revision()
    other = "1f2e3d4c5b6a"
    # A database of another version of Fengchao, backed up by that version.
    with source.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": other})
    with monkeypatch.context() as patch:
        patch.setattr(backups, "head_revision", lambda: other)
        content = make_backup(source)
    assert backups.read_header(io.BytesIO(content)).schema_revision == other
    bare = make_engine(f"sqlite:///{folder / 'bare.db'}")
    try:
        with pytest.raises(backups.SchemaMismatch) as refused:
            backups.restore_backup(bare, io.BytesIO(content), data_key=data_key())
        assert other in str(refused.value) and head in str(refused.value)
        assert inspect(bare).get_table_names() == []  # not even migrated
    finally:
        bare.dispose()
    with pytest.raises(backups.SchemaMismatch):
        backups.verify_backup(io.BytesIO(content), data_key=data_key())


def test_backup_of_a_database_not_at_this_version_is_refused(source: Engine) -> None:
    with source.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'abcdef123456'"))
    with pytest.raises(backups.SchemaMismatch, match="abcdef123456"):
        make_backup(source)


def test_database_with_rows_is_refused_and_replace_swaps_atomically(
    source: Engine, target: Engine
) -> None:
    content = make_backup(source)
    before = snapshot(source)
    with pytest.raises(backups.TargetNotEmpty) as refused:
        backups.restore_backup(source, io.BytesIO(content), data_key=data_key())
    assert refused.value.tables["person"] == 2
    assert "person" in str(refused.value) and "--replace" in str(refused.value)
    assert snapshot(source) == before

    with Session(target) as s:  # something else in the target, to be replaced
        s.add(Street(name="别的街道"))
        s.commit()
    damaged = bytearray(content)
    damaged[-40] ^= 0x01
    with pytest.raises(backups.Damaged):
        backups.restore_backup(
            target, io.BytesIO(bytes(damaged)), data_key=data_key(), replace=True
        )
    assert [row[1] for row in snapshot(target)["street"]] == ["别的街道"]  # as it was
    backups.restore_backup(target, io.BytesIO(content), data_key=data_key(), replace=True)
    assert backed_up(snapshot(target)) == backed_up(before)


def test_refused_target_is_not_even_migrated(source: Engine, folder: Path) -> None:
    # Rows in a database that was never migrated (or is at an older revision): the refusal
    # comes before any migration touches it.
    other = make_engine(f"sqlite:///{folder / 'other.db'}")
    try:
        with other.begin() as connection:
            connection.execute(text("CREATE TABLE street (id INTEGER PRIMARY KEY, name TEXT)"))
            connection.execute(text("INSERT INTO street VALUES (1, '别的街道')"))
        with pytest.raises(backups.TargetNotEmpty, match="street"):
            backups.restore_backup(other, io.BytesIO(make_backup(source)), data_key=data_key())
        assert inspect(other).get_table_names() == ["street"]
    finally:
        other.dispose()


def test_wrong_data_key_is_refused(source: Engine, target: Engine) -> None:
    content = make_backup(source)
    with pytest.raises(backups.WrongKey, match="FENGCHAO_SECURITY__DATA_KEY"):
        backups.restore_backup(target, io.BytesIO(content), data_key=os.urandom(32))
    assert_empty(target)


def _chunk_offsets(content: bytes) -> list[int]:
    """Where each sealed chunk starts in a backup file."""
    (size,) = struct.unpack(">I", content[16:20])
    at = 20 + size + 32
    offsets = []
    while at < len(content):
        offsets.append(at)
        (length,) = struct.unpack(">I", content[at : at + 4])
        at += 4 + length
    return offsets


def test_tampered_byte_is_refused_with_nothing_written(source: Engine, target: Engine) -> None:
    content = make_backup(source, chunk_bytes=1024)
    offsets = _chunk_offsets(content)
    assert len(offsets) > 4
    inserted: list[int] = []
    # A byte of the last chunk: by then most tables were inserted, and must be rolled back.
    damaged = bytearray(content)
    damaged[offsets[-2] + 100] ^= 0x20
    with pytest.raises(backups.Damaged, match=f"第 {len(offsets) - 1} 段") as refused:
        backups.restore_backup(
            target,
            io.BytesIO(bytes(damaged)),
            data_key=data_key(),
            progress=lambda _t, done, _total: inserted.append(done),
        )
    assert max(inserted) > 0, "the damage must come after rows went in"
    assert "字节" in str(refused.value)
    assert_empty(target)

    # The header is bound to every chunk: a revision rewritten with a fresh checksum fails.
    (size,) = struct.unpack(">I", content[16:20])
    header = content[20 : 20 + size]
    revision = backups.head_revision().encode()
    forged = header.replace(revision, b"0" * len(revision))
    refiled = content[:20] + forged + hashlib.sha256(forged).digest() + content[20 + size + 32 :]
    with pytest.raises(backups.BackupError):
        backups.restore_backup(target, io.BytesIO(refiled), data_key=data_key())
    damaged_header = bytearray(content)
    damaged_header[30] ^= 0x01
    with pytest.raises(backups.Damaged, match="文件头"):
        backups.restore_backup(target, io.BytesIO(bytes(damaged_header)), data_key=data_key())
    assert_empty(target)


def test_truncated_or_extended_file_is_refused(source: Engine, target: Engine) -> None:
    content = make_backup(source, chunk_bytes=1024)
    offsets = _chunk_offsets(content)
    cuts = {
        "inside the magic": 10,
        "inside the header": 40,
        "after the header": offsets[0],
        "inside a chunk": offsets[2] + 50,
        "at a chunk boundary": offsets[3],
        "without the last chunk": offsets[-1],
        "one byte short": len(content) - 1,
    }
    for where, cut in cuts.items():
        with pytest.raises((backups.Damaged, backups.NotABackup)) as refused:
            backups.restore_backup(target, io.BytesIO(content[:cut]), data_key=data_key())
        if cut > offsets[0]:
            assert "不完整" in str(refused.value), where
    with pytest.raises(backups.Damaged):
        backups.restore_backup(target, io.BytesIO(content + b"\0" * 8), data_key=data_key())
    assert_empty(target)


def test_other_files_are_not_backups(target: Engine) -> None:
    with pytest.raises(backups.NotABackup):
        backups.restore_backup(target, io.BytesIO(b"PK\x03\x04" + os.urandom(200)), data_key=b"")
    assert_empty(target)


def test_backup_file_is_private_complete_and_not_overwritten(source: Engine, folder: Path) -> None:
    path = folder / "community.fcb"
    header = backups.backup_to_file(source, path, data_key=data_key())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    with pytest.raises(FileExistsError):
        backups.backup_to_file(source, path, data_key=data_key())
    assert path.read_bytes() == first
    backups.backup_to_file(source, path, data_key=data_key(), overwrite=True)
    assert path.read_bytes() != first  # a fresh salt each time
    assert backups.verify_backup(path.open("rb"), data_key=data_key()).tables == header.tables
    # A refused backup leaves neither a file nor a partial one.
    bare = make_engine(f"sqlite:///{folder / 'bare.db'}")
    try:
        with pytest.raises(backups.SchemaMismatch):
            backups.backup_to_file(bare, folder / "none.fcb", data_key=data_key())
    finally:
        bare.dispose()
    assert sorted(p.name for p in folder.iterdir() if "fcb" in p.name) == ["community.fcb"]


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings, engine and cipher built anew from the environment this test sets."""

    def clear() -> None:
        if get_engine.cache_info().currsize:
            get_engine().dispose()
        for cached in (get_settings, get_engine, get_sessionmaker, get_cipher):
            cached.cache_clear()

    clear()
    yield monkeypatch
    clear()


def test_backup_and_restore_commands(fresh_settings: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def use(database: Path) -> Engine:
        if get_engine.cache_info().currsize:
            get_engine().dispose()
        get_engine.cache_clear()
        get_settings.cache_clear()
        fresh_settings.setenv("FENGCHAO_DATABASE_URL", f"sqlite:///{database}")
        return get_engine()

    fresh_settings.setenv("FENGCHAO_SECURITY__DATA_KEY", base64.b64encode(os.urandom(32)).decode())
    get_cipher.cache_clear()
    source = use(tmp_path / "source.db")
    upgrade(source)
    build_community(source, audit_events=5)
    before = snapshot(source)
    runner = CliRunner()
    file = tmp_path / "community.fcb"

    done = runner.invoke(app, ["backup", str(file)])
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    again = runner.invoke(app, ["backup", str(file)])
    assert again.exit_code == 1 and "--force" in again.output
    assert runner.invoke(app, ["backup", str(file), "--force"]).exit_code == 0

    target_file = tmp_path / "target.db"
    target = use(target_file)
    checked = runner.invoke(app, ["restore", str(file), "--dry-run"])
    assert checked.exit_code == 0, checked.output
    assert inspect(target).get_table_names() == []
    restored = runner.invoke(app, ["restore", str(file)])
    assert restored.exit_code == 0, restored.output
    assert backed_up(snapshot(target)) == backed_up(before)

    refused = runner.invoke(app, ["restore", str(file)])
    assert refused.exit_code == 1
    assert "person" in refused.output.replace("\n", "")
    assert "nothing was written" in refused.output
    assert runner.invoke(app, ["restore", str(file), "--replace"]).exit_code == 0
    assert backed_up(snapshot(target)) == backed_up(before)

    fresh_settings.setenv("FENGCHAO_SECURITY__DATA_KEY", base64.b64encode(os.urandom(32)).decode())
    get_settings.cache_clear()
    wrong = runner.invoke(app, ["restore", str(file), "--dry-run"])
    assert wrong.exit_code == 1
    assert "FENGCHAO_SECURITY__DATA_KEY" in wrong.output.replace("\n", "")
    missing = runner.invoke(app, ["restore", str(tmp_path / "nowhere.fcb")])
    assert missing.exit_code == 2
