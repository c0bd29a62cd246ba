"""The guard's console at a gate (卡口值守台): what the page sends (a camera frame, a code
read by the browser or a scanner, a person picked by room, a plate typed with the province
picker) turned into a passage for :func:`fengchao.access.flows.decide`, the card the page
shows, the guard's overrule (always with a reason, recorded) and the gate's last events.

The decision itself is the flow's: this module only reads what a frame holds (a resident
code by OpenCV's QR detector, a plate with its per-character confidences) and words the
answer for a screen read from two metres."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import flows
from fengchao.access import service as access
from fengchao.access.models import AccessEvent, GateKind
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, audit, require
from fengchao.db import begin_write
from fengchao.registry import search
from fengchao.registry.models import LABELS, Person
from fengchao.web.i18n import _

KEY_SHAPE = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
MAX_FRAME_BYTES = 1024 * 1024 - 64 * 1024  # under the general body limit, with the form


class ConsoleRefusal(Refusal):
    """Input the console cannot use, naming the field."""

    status = 422


# --- the gate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleGate:
    """The gate a console is bound to, as the page needs it."""

    id: int
    name: str
    kind: str
    community_id: int
    compound_id: int
    compound_name: str
    directions: tuple[str, ...]
    level: str
    level_text: str


def console_gate(*, session: Session, actor: Actor, gate_id: int) -> ConsoleGate:
    """The gate, for an account that operates gates and has it in scope: ``Forbidden``
    for a role that does not run gates (a building lead), ``NotFound`` for a gate outside
    the account's scope (a guard of another compound) or an inactive one."""
    require(actor, Permission.gate_operate)
    gate = access.get_gate(session=session, actor=actor, gate_id=gate_id)
    if not gate.active:
        raise NotFound(f"gate {gate_id}")
    from fengchao.registry.models import Compound

    compound_name = session.scalar(select(Compound.name).where(Compound.id == gate.compound_id))
    level = access.level_at(
        session=session, community_id=gate.community_id, compound_id=gate.compound_id
    )
    directions = tuple(d for d, ok in (("in", gate.allows_in), ("out", gate.allows_out)) if ok)
    return ConsoleGate(
        id=gate.id,
        name=gate.name,
        kind=str(gate.kind),
        community_id=gate.community_id,
        compound_id=gate.compound_id,
        compound_name=compound_name or "",
        directions=directions,
        level=level.value,
        level_text=level_text(level.value),
    )


def level_text(level: str) -> str:
    """The alert level's name in the request's language."""
    return {
        "normal": _("常态防控"),
        "heightened": _("加强防控"),
        "closed": _("封闭管理"),
        "lockdown": _("静默管理"),
    }.get(level, level)


def gates_to_operate(*, session: Session, actor: Actor) -> list[dict[str, Any]]:
    """The active gates an operator may run, with their compound's name."""
    require(actor, Permission.gate_operate)
    from fengchao.registry.models import Compound

    gates = [g for g in access.list_gates(session=session, actor=actor) if g.active]
    ids = {g.compound_id for g in gates}
    names = dict(
        session.execute(select(Compound.id, Compound.name).where(Compound.id.in_(ids))).all()
    )
    return [
        {"id": g.id, "name": g.name, "kind": str(g.kind), "compound": names.get(g.compound_id, "")}
        for g in gates
    ]


# --- what the guard types ---------------------------------------------------------------


def parse_temperature(text: str | None) -> str | None:
    """A temperature as typed at a gate: "37,5" (a decimal comma), "3 7.5" (a stray space
    from a numeric keypad or a thermometer that types), full-width digits; "375" is read
    as 37.5 (the keypad's dot missed). The flow checks the range; None when empty."""
    if text is None:
        return None
    cleaned = unicodedata.normalize("NFKC", text).strip()
    if not cleaned:
        return None
    cleaned = re.sub(r"\s+", "", cleaned).replace(",", ".").replace("，", ".").replace("。", ".")
    cleaned = cleaned.removesuffix("°C").removesuffix("℃").removesuffix("C").removesuffix("°")
    if re.fullmatch(r"\d{3}", cleaned) and cleaned[0] in "34":
        cleaned = f"{cleaned[:2]}.{cleaned[2]}"
    if not re.fullmatch(r"\d{2}(\.\d{1,2})?", cleaned):
        raise ConsoleRefusal(_("体温要写成数字，例如 36.5"), field="temperature")
    return cleaned


def parse_device_time(text: str | None, field: str) -> dt.datetime | None:
    if text is None or not text.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConsoleRefusal(_("设备时间要带时区（ISO 8601）"), field=field) from None
    if moment.tzinfo is None:
        raise ConsoleRefusal(_("设备时间要带时区（ISO 8601）"), field=field)
    return moment


def check_key(key: str | None) -> str:
    """The idempotency key the page made for this passage (a double Enter sends the same
    key twice, and the flow answers the first answer without writing again)."""
    if not key or not KEY_SHAPE.match(key):
        raise ConsoleRefusal(_("缺少有效的请求编号，请刷新页面"), field="key")
    return key


# --- what a frame holds -----------------------------------------------------------------


def decode_frame(frame: bytes) -> Any:
    """The RGB pixels of a camera frame (or an uploaded photo); refused, naming the field,
    when it is too big or not a picture."""
    from fengchao.vision.images import ImageError, decode_image

    if len(frame) > MAX_FRAME_BYTES:
        raise ConsoleRefusal(_("画面太大，请降低分辨率"), field="frame")
    try:
        return decode_image(frame)
    except ImageError as exc:
        raise ConsoleRefusal(_(exc.message), field="frame") from None


_qr_local = threading.local()


def read_codes(pixels: Any) -> list[str]:
    """The QR texts in an RGB frame (OpenCV's detectors; one pair per thread).

    OpenCV's Aruco-based QR detector reads first: it is the cheaper of the two on a frame
    without a code (a face), and the classic detector cannot find some codes at all
    (about 1 text in 100 of ours, drawn sharp and square). The classic detector is the
    fallback for a blurred code, which it reads better."""
    import cv2

    detectors = getattr(_qr_local, "detectors", None)
    if detectors is None:
        detectors = (cv2.QRCodeDetectorAruco(), cv2.QRCodeDetector())
        _qr_local.detectors = detectors
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    for detector in detectors:
        try:
            text, _points, _straight = detector.detectAndDecode(gray)
        except cv2.error:
            continue
        if text:
            return [text]
    return []


@dataclass(frozen=True)
class PlateReading:
    """The best plate read in a frame with each character's confidence (0..1)."""

    text: str
    chars: tuple[tuple[str, float], ...]
    confidence: float


def read_plate(pixels: Any) -> PlateReading | None:
    reads = [r for r in flows.read_plates(pixels) if r.text]
    if not reads:
        return None
    best = reads[0]
    chars = tuple(
        (c, round(float(p), 3)) for c, p in zip(best.text, best.char_confidences, strict=False)
    )
    return PlateReading(best.text, chars, round(float(best.confidence), 3))


# A still photo held up to the camera gives the same picture frame after frame: the second
# is not a second frame of a live person (a masked face needs two agreeing frames). This
# refuses a frozen picture only; a photo moved by hand or a video on a phone still moves,
# and telling those from a face needs a liveness model this project does not have.
_last_pictures: dict[tuple[int, int], tuple[float, Any]] = {}
_last_lock = threading.Lock()
STILL_SECONDS = 10.0
STILL_DIFFERENCE = 0.6  # mean grey-level change on a 32×24 thumbnail


def _same_picture(user_id: int, gate_id: int, pixels: Any) -> bool:
    import cv2
    import numpy as np

    small = cv2.resize(
        cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), (32, 24), interpolation=cv2.INTER_AREA
    )
    small = small.astype(np.float32)
    now = time.monotonic()
    with _last_lock:
        last = _last_pictures.get((user_id, gate_id))
        _last_pictures[(user_id, gate_id)] = (now, small)
        if len(_last_pictures) > 1000:
            _last_pictures.clear()
    if last is None or now - last[0] > STILL_SECONDS:
        return False
    return float(np.abs(small - last[1]).mean()) < STILL_DIFFERENCE


# --- the passage --------------------------------------------------------------------------


@dataclass
class ConsoleAnswer:
    """The decision with what the console adds: the code read from a frame, the plate's
    per-character confidences, or ``idle`` (a frame that held nothing to decide on)."""

    decision: flows.Decision | None
    read_code: bool = False
    plate: PlateReading | None = None
    idle: str | None = None


def pass_frame(
    *,
    session: Session,
    actor: Actor,
    gate: ConsoleGate,
    frame: bytes,
    mode: str,
    base: dict[str, Any],
) -> ConsoleAnswer:
    """A camera frame (or an uploaded photo): a resident code in it is decided as a code;
    otherwise a plate in vehicle mode, a face in person mode."""
    pixels = decode_frame(frame)
    if _same_picture(actor.user_id, gate.id, pixels):
        return ConsoleAnswer(None, idle="still")
    codes = read_codes(pixels)
    sender = flows.Sender.console(actor)
    if codes:
        request = flows.PassageRequest(method="code", value=codes[0][:200], **base)
        return ConsoleAnswer(flows.decide(session=session, request=request, sender=sender), True)
    if mode == "vehicle":
        if gate.kind == GateKind.pedestrian:
            raise ConsoleRefusal(_("人行出入口不识别车牌"), field="mode")
        plate = read_plate(pixels)
        if plate is None:
            return ConsoleAnswer(None, idle="no_plate")
        request = flows.PassageRequest(method="plate", value=plate.text, **base)
        decision = flows.decide(session=session, request=request, sender=sender)
        return ConsoleAnswer(decision, plate=plate)
    if not flows.has_method("face"):
        # No face recognition on this server: nothing to record for every movement.
        return ConsoleAnswer(None, idle="face_unavailable")
    # Frames come on every movement: one without a face is no passage and is not recorded
    # (an unknown face is, as a refusal).
    request = flows.PassageRequest(method="face", frame=frame, skip_empty=True, **base)
    decision = flows.decide(session=session, request=request, sender=sender)
    if decision.event_id is None and not decision.replayed:
        return ConsoleAnswer(None, idle=decision.reasons[0] if decision.reasons else "nothing")
    return ConsoleAnswer(decision)


def pass_value(
    *, session: Session, actor: Actor, gate: ConsoleGate, method: str, value: str,
    base: dict[str, Any],
) -> ConsoleAnswer:  # fmt: skip
    """A code (camera in the browser, a scanner that types), a picked person, a plate
    typed by the guard, or an unregistered courier, contractor or visitor whose role the
    guard declares (``role``: the rules for that role decide)."""
    if method not in ("code", "person", "plate", "role"):
        raise ConsoleRefusal(_("通行方式只能是 code、person、plate 或 role"), field="method")
    value = value.strip()
    if not value:
        raise ConsoleRefusal(_("内容不能为空"), field="value")
    if method == "role":
        if value not in DECLARED_ROLES:
            raise ConsoleRefusal(_("只能按快递外卖、施工维修或访客放行未登记人员"), field="value")
        request = flows.PassageRequest(method="person", role=value, **base)
    else:
        request = flows.PassageRequest(method=method, value=value[:200], **base)
    decision = flows.decide(session=session, request=request, sender=flows.Sender.console(actor))
    return ConsoleAnswer(decision, read_code=method == "code")


DECLARED_ROLES = ("courier", "contractor", "visitor")


def declared_roles() -> list[tuple[str, str]]:
    """The roles a guard may declare for someone not in the registry, in the page's order."""
    return [("courier", _("快递外卖")), ("contractor", _("施工维修")), ("visitor", _("访客"))]


def person_by_room(
    *, session: Session, actor: Actor, gate: ConsoleGate, room: str, name: str
) -> int:
    """The person a guard recorded by hand while the server was away: the room as typed
    and the name; refused when it names nobody or more than one."""
    matches = [
        p
        for card in people_at(session=session, actor=actor, gate=gate, query=room)
        for p in card["people"]
        if p["name"] == name.strip()
    ]
    if len(matches) != 1:
        raise ConsoleRefusal(
            _("{room} 没有名叫 {name} 的住户，请重新查找").format(room=room, name=name),
            field="name",
        )
    person_id: int = matches[0]["id"]
    return person_id


def people_at(
    *, session: Session, actor: Actor, gate: ConsoleGate, query: str
) -> list[dict[str, Any]]:
    """Flats of the gate's compound matching a room ("5-2-1302") or people matching a
    name, with their residents as the console lists them to pick (no phone, no ID)."""
    cards = search.room_check(session=session, actor=actor, query=query, limit=12)
    found = []
    for card in cards:
        household = card.household
        if household.compound_id != gate.compound_id:
            continue
        place = f"{household.building.name}-{household.unit.name}-{household.room}"
        found.append(
            {
                "household_id": household.id,
                "place": place,
                "people": [
                    {
                        "id": p.id,
                        "name": p.name,
                        "relation": _(LABELS.get(p.relation, str(p.relation))),
                        "health": str(p.health_status),
                        "health_text": _(LABELS.get(p.health_status, str(p.health_status))),
                    }
                    for p in card.people
                ],
            }
        )
    return found


# --- the card -----------------------------------------------------------------------------


def card(session: Session, answer: ConsoleAnswer, gate: ConsoleGate) -> dict[str, Any]:
    """The JSON the page turns into the big card."""
    if answer.decision is None:
        return {"idle": answer.idle or "nothing", "plate": _plate_json(answer.plate)}
    d = answer.decision
    person = None
    if d.person is not None:
        p = d.person
        person = {
            "id": p.id,
            "name": p.name,
            "place": p.place,
            "relation": p.relation,
            "relation_text": _(LABELS.get(p.relation, p.relation)),
            "health": p.health_status,
            "health_text": _(LABELS.get(p.health_status, p.health_status)),
            "last_sampled": p.last_sampled.isoformat() if p.last_sampled else None,
            "thumbnail": p.thumbnail_url or _thumbnail(session, gate, p.id),
        }
    vehicle = None
    if d.vehicle is not None:
        vehicle = {"id": d.vehicle.id, "plate": d.vehicle.plate, "place": d.vehicle.place}
    level = d.alert_level
    return {
        "decision": d.decision,
        "message": _decision_words(d),
        "reasons": [{"code": r, "text": reason_text(r)} for r in d.reasons],
        "person": person,
        "vehicle": vehicle,
        "plate_read": d.plate_read,
        "match_how": d.match_how,
        "check": d.match_how == "tolerant",
        "plate": _plate_json(answer.plate),
        "masked": d.masked,
        "late": d.late,
        "replayed": d.replayed,
        "event_id": d.event_id,
        "method": d.method,
        "read_code": answer.read_code,
        "level": level,
        "level_text": level_text(level),
        "fever": "fever" in d.reasons or "fever_soft" in d.reasons,
        "ms": d.timings.get("total_ms"),
    }


def _plate_json(plate: PlateReading | None) -> dict[str, Any] | None:
    if plate is None:
        return None
    return {
        "text": plate.text,
        "confidence": plate.confidence,
        "chars": [{"c": c, "p": p} for c, p in plate.chars],
    }


def _thumbnail(session: Session, gate: ConsoleGate, person_id: int) -> str | None:
    enrolled = session.scalar(select(Person.face_enrolled_at).where(Person.id == person_id))
    if enrolled is None:
        return None
    return f"/gates/{gate.id}/console/people/{person_id}/face.jpg"


THUMBNAIL_MINUTES = 10


def card_thumbnail(*, session: Session, actor: Actor, gate: ConsoleGate, person_id: int) -> bytes:
    """The face thumbnail of a person on the card: only of someone decided at this gate in
    the last minutes (a guard cannot browse the faces on file), audited as a view."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=THUMBNAIL_MINUTES)
    seen = session.scalar(
        select(AccessEvent.id)
        .where(
            AccessEvent.gate_id == gate.id,
            AccessEvent.person_id == person_id,
            AccessEvent.server_time >= since,
        )
        .limit(1)
    )
    if seen is None:
        raise NotFound(f"thumbnail of person {person_id}")
    try:
        from fengchao.access import faces
    except ImportError:  # pragma: no cover - the faces slice is part of the access slice
        raise NotFound(f"thumbnail of person {person_id}") from None
    found = faces.thumbnail_bytes(session, community_id=gate.community_id, person_id=person_id)
    if found is None:
        raise NotFound(f"thumbnail of person {person_id}")
    audit(
        session=session, actor=actor, action="face_thumbnail_view", object_type="person",
        object_id=person_id, community_id=gate.community_id, gate=gate.id,
    )  # fmt: skip
    return found


def override_texts() -> dict[str, str]:
    """The overrule's reasons, in the request's language."""
    return {
        "overruled": _("值守人员改判"),
        "override_verified": _("人工核验身份无误"),
        "override_medical": _("紧急就医"),
        "override_supply": _("保供、救援等工作人员"),
        "override_approved": _("社区干部同意"),
        "override_doubt": _("身份存疑，不予通行"),
        "override_other": _("其他原因（已写明）"),
    }


# Digit keys on the console, in the order the page lists them.
OVERRIDE_REASONS: tuple[tuple[str, str], ...] = (
    ("1", "override_verified"),
    ("2", "override_medical"),
    ("3", "override_supply"),
    ("4", "override_approved"),
    ("5", "override_doubt"),
    ("6", "override_other"),
)


def reason_text(code: str) -> str:
    if code.startswith("override") and code in (texts := override_texts()):
        return texts[code]
    return flows.reason_text(code)


def _decision_words(d: flows.Decision) -> str:
    if d.decision == "allow" and not [r for r in d.reasons if r.startswith("override")]:
        return _("请通行")
    if d.decision == "pending":
        return _("请稍停")
    main = [r for r in d.reasons if r not in ("late", "several_faces", "clock_off", "overruled")]
    return "；".join(reason_text(r) for r in main[:2]) or _("不能通行")


# --- the guard's overrule -----------------------------------------------------------------


def overrule(
    *,
    session: Session,
    actor: Actor,
    gate: ConsoleGate,
    event_id: int,
    reason: str,
    note: str,
    key: str,
) -> flows.Decision:
    """The guard reverses a decision of this gate, always with a reason: a new event of the
    access record (the first stays as it was), decision flipped, reasons ``overruled`` and
    the reason's code, the note and the overruled event in its detail; audited as
    "gate_overrule". The household quota is not taken (the guard answers for it)."""
    require(actor, Permission.gate_operate)
    codes = dict(OVERRIDE_REASONS)
    code = codes.get(reason, reason)
    if code not in override_texts() or code == "overruled":
        raise ConsoleRefusal(_("请选择改判的原因"), field="reason")
    note = note.strip()[:200]
    if code == "override_other" and not note:
        raise ConsoleRefusal(_("选择“其他原因”时要写明原因"), field="note")
    key = check_key(key)
    scope = f"user:{actor.user_id}"
    begin_write(session)
    done = session.scalar(
        select(AccessEvent).where(AccessEvent.idem_scope == scope, AccessEvent.idem_key == key)
    )
    if done is not None:
        return flows.decision_of_event(session, done, replayed=True)
    first = session.scalar(
        select(AccessEvent).where(AccessEvent.id == event_id, AccessEvent.gate_id == gate.id)
    )
    if first is None:
        raise NotFound(f"event {event_id}")
    if first.decision == "pending":
        raise ConsoleRefusal(_("请等识别结果出来再改判"), field="event")
    flipped = "deny" if first.decision == "allow" else "allow"
    fits = code == "override_other" or (code == "override_doubt") == (flipped == "deny")
    if not fits:
        raise ConsoleRefusal(_("这个原因不适合这次改判"), field="reason")
    now = dt.datetime.now(dt.UTC)
    event = AccessEvent(
        community_id=first.community_id,
        compound_id=first.compound_id,
        gate_id=first.gate_id,
        device_id=None,
        direction=first.direction,
        method=first.method,
        decision=flipped,
        reasons=["overruled", code],
        person_id=first.person_id,
        household_id=first.household_id,
        building_id=first.building_id,
        vehicle_id=first.vehicle_id,
        plate_read=first.plate_read,
        match_how=first.match_how,
        masked=first.masked,
        distance=first.distance,
        temperature=first.temperature,
        retest_temperature=first.retest_temperature,
        alert_level=first.alert_level,
        device_time=None,
        occurred_at=now,
        server_time=now,
        late=False,
        clock_off=False,
        operator_id=actor.user_id,
        operator_name=actor.username,
        idem_scope=scope,
        idem_key=key,
        body_hash=None,
        detail={"overrules": first.id, "note": note, "was": first.decision},
    )
    session.add(event)
    session.flush()
    audit(
        session=session, actor=actor, action="gate_overrule", object_type="access_event",
        object_id=event.id, community_id=first.community_id, overrules=first.id,
        decision=flipped, reason=code,
    )  # fmt: skip
    return flows.decision_of_event(session, event)


# --- the gate's last events ----------------------------------------------------------------


@dataclass(frozen=True)
class EventLine:
    id: int
    at: dt.datetime
    decision: str
    method: str
    direction: str
    who: str
    why: str
    late: bool
    temperature: float | None


NOTES = ("late", "several_faces", "clock_off")


def main_reason(decision: str, reasons: list[str]) -> str:
    """The reason worth a line: the overrule's, the mask's for a pending frame, else the
    first that is not a note."""
    if "overruled" in reasons:
        return reasons[-1]
    if decision == "pending":
        return "masked_needs_second_frame"
    shown = [r for r in reasons if r not in NOTES]
    return shown[0] if shown else ""


def recent_events(*, session: Session, gate: ConsoleGate, limit: int = 12) -> list[EventLine]:
    """The gate's last events, newest first (the console's side list)."""
    from fengchao.registry.models import Vehicle

    rows = session.execute(
        select(AccessEvent, Person.name, Vehicle.plate)
        .outerjoin(Person, Person.id == AccessEvent.person_id)
        .outerjoin(Vehicle, Vehicle.id == AccessEvent.vehicle_id)
        .where(AccessEvent.gate_id == gate.id)
        .order_by(AccessEvent.id.desc())
        .limit(limit * 3)
    ).all()
    from fengchao.visitors.service import holder_names  # a visitor has no person row

    passes = {(e.detail or {}).get("pass_id") for e, name, _p in rows if not name}
    visitors = holder_names(session, {p for p in passes if isinstance(p, int)})
    lines = []
    for event, person_name, plate in rows:
        if event.decision == "deny" and event.reasons[:1] == ["no_face"]:
            continue  # a movement in front of the camera without a face: noise to the guard
        name = person_name or visitors.get((event.detail or {}).get("pass_id", 0))
        lines.append(
            EventLine(
                id=event.id,
                at=event.occurred_at,
                decision=event.decision,
                method=event.method,
                direction=event.direction,
                who=" ".join(x for x in (plate or event.plate_read, name) if x) or _("未识别"),
                why=reason_text(main_reason(event.decision, list(event.reasons))),
                late=event.late,
                temperature=event.temperature,
            )
        )
    return lines[:limit]
