"""Collect every translatable text (Python and templates) into the English catalog.

Message ids are the Chinese texts; existing English translations are kept, new ids are
added empty, and ids no longer used are dropped. Run:
    .venv/bin/python scripts/update_translations.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import jinja2.ext
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1] / "src" / "fengchao"
PO = ROOT / "web" / "translations" / "en" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_": None, "gettext": None}


def main() -> int:
    old = read_po(PO.open("rb"), locale="en") if PO.exists() else Catalog(locale="en")
    catalog = Catalog(locale="en", project="fengchao", fuzzy=False)
    for path in sorted(ROOT.rglob("*")):
        if path.suffix == ".py":
            method = "python"
        elif path.suffix == ".html":
            method = jinja2.ext.babel_extract  # type: ignore[assignment]
        else:
            continue
        for line, message, _comments, _ctx in extract_from_file(
            method, str(path), keywords=KEYWORDS
        ):
            if not isinstance(message, str) or not message:
                continue
            previous = old.get(message)
            location = (str(path.relative_to(ROOT)), line)
            if message in catalog:
                catalog[message].locations.append(location)
            else:
                catalog.add(message, previous.string if previous else "", [location])
    # Texts translated at run time from tables of labels rather than literals. Importing the
    # app first lets every slice describe its audit actions and records.
    import fengchao.app  # noqa: F401
    from fengchao.access import flows, gate_views, records
    from fengchao.access.service import LEVEL_LABELS
    from fengchao.auth.audit_log import ACTION_LABELS as AUDIT_ACTIONS
    from fengchao.auth.audit_log import DETAIL_LABELS, OBJECT_LABELS
    from fengchao.auth.models import ROLE_LABELS
    from fengchao.gridwork.models import EVENT_LABELS as GRIDWORK_EVENTS
    from fengchao.gridwork.models import LABELS as GRIDWORK_LABELS
    from fengchao.notify.channels import NOTIFIERS, notifier_for
    from fengchao.notify.render import URGENCY_LABELS
    from fengchao.registry.edits import ACTION_LABELS
    from fengchao.registry.id_numbers import SUGGESTED_REASONS
    from fengchao.registry.importer import FIELD_LABELS
    from fengchao.registry.models import LABELS
    from fengchao.registry.proposals import STATE_LABELS
    from fengchao.registry.service import GAP_LABELS
    from fengchao.registry.views import ROOM_LABELS
    from fengchao.tracing.views import REASON_LABELS, TIER_LABELS, TIME_LABELS

    access_tables = (
        flows.REASON_TEXT, LEVEL_LABELS, gate_views.ROLE_LABELS, gate_views.KIND_LABELS,
        gate_views.METHOD_LABELS, gate_views.DECISION_LABELS,
        dict(enumerate(gate_views.WEEKDAYS)), dict(enumerate(records.HEADER)),
    )  # fmt: skip
    notifier_labels = {kind: notifier_for(kind).label for kind in NOTIFIERS}
    tables = (
        *access_tables,
        LABELS, FIELD_LABELS, GAP_LABELS, ROLE_LABELS, ACTION_LABELS, STATE_LABELS,
        AUDIT_ACTIONS, OBJECT_LABELS, DETAIL_LABELS, ROOM_LABELS, URGENCY_LABELS,
        notifier_labels, GRIDWORK_LABELS, GRIDWORK_EVENTS, REASON_LABELS, TIER_LABELS, TIME_LABELS,
    )  # fmt: skip
    for texts in (*(table.values() for table in tables), SUGGESTED_REASONS):
        for text in texts:
            if text not in catalog:
                previous = old.get(text)
                catalog.add(text, previous.string if previous else "")
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as fh:
        write_po(fh, catalog, width=100, omit_header=False, sort_output=True)
    missing = [m.id for m in catalog if m.id and not m.string]
    print(f"{len(catalog)} messages, {len(missing)} without English")
    for message in missing:
        print("  ", message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
