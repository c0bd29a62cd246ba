"""The contact list in the columns a health authority's case-and-contact system imports
(Go.Data's contact import), as XLSX or CSV (UTF-8 with BOM, or GBK)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from fengchao.registry.service import ContactCard
from fengchao.tabular import Sheet, csv_bytes, xlsx_bytes
from fengchao.tracing.contacts import Contact, Reason
from fengchao.visitors.service import VisitorCard

HEADER = (
    "First Name",
    "Last Name",
    "Gender",
    "Date of Birth",
    "Age",
    "Phone Number",
    "Address",
    "Relationship",
    "Exposure Type",
    "Date of Last Contact",
    "Certainty Level",
    "Contact Of Case",
)

EXPOSURE = {
    "household": "Household",
    "co_passage": "Co-passage at gate (time-space companion)",
    "visitor": "Visit",
    "sampling_queue": "Sampling queue",
    "tube": "Pooled sample (tube mate)",
    "building": "Same building",
    "chain": "Contact of a close contact",
}
RELATIONSHIP = {
    "household": "Family",
    "visitor": "Visitor / host",
    "chain": "Secondary",
}
GENDER = {"male": "Male", "female": "Female"}


def split_name(name: str) -> tuple[str, str]:
    """(first name, last name): a Chinese name's first character is the family name."""
    name = name.strip()
    if " " in name:  # a name written the western way
        first, _, last = name.rpartition(" ")
        return first, last
    return name[1:], name[:1]


def _last_contact(reasons: Sequence[Reason], fallback: dt.date) -> str:
    moments = [
        str(r.evidence.get("contact_at") or r.evidence.get("at") or "")[:10] for r in reasons
    ]
    moments = [m for m in moments if m]
    return max(moments) if moments else fallback.isoformat()


def rows(
    contacts: Sequence[Contact],
    cards: dict[int, ContactCard],
    case_name: str,
    today: dt.date,
    visitor_cards: dict[int, VisitorCard] | None = None,
) -> list[list[object]]:
    """One row per contact in the reader's scope: residents from their registry card,
    visitors from their pass (name, phone, the household they visited)."""
    out: list[list[object]] = []
    for contact in contacts:
        kind, number = contact.subject
        card = cards.get(number) if kind == "person" else None
        seen = (visitor_cards or {}).get(number) if kind == "visitor" else None
        if card is None and seen is None:
            continue  # outside the reader's scope, or a visitor's pass already purged
        first, last = split_name(card.name if card else seen.name if seen else "")
        main = contact.reasons[0]
        if card is not None:
            gender = GENDER.get(card.gender or "", "")
            age: object = today.year - card.birth_year if card.birth_year else ""
            phone, address = card.phone or "", f"{card.compound} {card.address}"
        else:
            assert seen is not None
            gender, age, phone = "", "", seen.phone
            address = f"Visitor to {seen.host_place}" if seen.host_place else "Visitor"
        out.append(
            [
                first,
                last,
                gender,
                "",
                age,
                phone,
                address,
                RELATIONSHIP.get(main.kind, "Other"),
                "; ".join(EXPOSURE[r.kind] for r in contact.reasons),
                _last_contact(contact.reasons, today),
                "High" if contact.tier == "close" else "Medium",
                case_name,
            ]
        )
    return out


def xlsx(table: list[list[object]]) -> bytes:
    return xlsx_bytes([Sheet("Contacts", HEADER, table, text_columns=("F",))])


def csv(table: list[list[object]], encoding: str) -> bytes:
    data = csv_bytes(HEADER, table)
    if encoding == "gbk":
        return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8").encode("gbk", errors="replace")
    return data


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
