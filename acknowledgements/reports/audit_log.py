"""The audit log read by people: each entry's details as labelled fields, and its CSV export.

A detail is shown for what it is: a person by name and email, a change as before → after, a
recorded time as a time (the page shows it in the viewer's zone), a list as a list. A key
without a label of its own is still shown, its name put into words. The CSV keeps, beside a
one-line summary in those words, the details exactly as recorded (JSON).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from acknowledgements.evidence import ledger
from acknowledgements.evidence.payload import shown
from acknowledgements.models import LedgerEntry
from acknowledgements.reports.exports import BLOCK_ROWS, csv_blocks, damage_warning
from acknowledgements.reports.history import ENVELOPE, SUPERSEDED_ACTION

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

LABELS: dict[str, StrOrPromise] = {
    "after": _("After"),
    "as_of": _("As of"),
    "audience": _("Audience"),
    "audiences": _("Audiences"),
    "before": _("Before"),
    "by_revision_id": _("Superseding revision id"),
    "by_version": _("Superseded by version"),
    "change": _("Kind of change"),
    "change_summary": _("Summary of the change"),
    "changed": _("Changed"),
    "changes": _("Changes"),
    "concern_id": _("Concern number"),
    "count": _("Emails"),
    "date_joined": _("Joined"),
    "draft_id": _("Draft id"),
    "due_days": _("Days to sign"),
    "effective_at": _("Effective"),
    "email": _("Email"),
    "employee_number": _("Employee number"),
    "external_id": _("External id"),
    "file": _("File"),
    "filters": _("Filters"),
    "from": _("From"),
    "full_name": _("Full name"),
    "had_left_at": _("Had left"),
    "is_active": _("Active"),
    "joined_at": _("Joined"),
    "key": _("Key"),
    "language": _("Language"),
    "left_at": _("Left"),
    "line": _("Line"),
    "manager": _("Manager"),
    "name": _("Name"),
    "outcome": _("Outcome"),
    "person": _("Person"),
    "policy": _("Policy"),
    "previous_reason": _("Previous reason"),
    "reason": _("Reason"),
    "receipt_number": _("Receipt number"),
    "role": _("Role"),
    "rows": _("Rows"),
    "rule": _("Rule"),
    "scope": _("Scope"),
    "search": _("Search"),
    "signed_from": _("Signed from"),
    "signed_to": _("Signed until"),
    "status": _("Status"),
    "superseded_version": _("Superseded version"),
    "text_sha256": _("Text SHA-256"),
    "to": _("To"),
    "token": _("Token"),
    "version": _("Version"),
    "what": _("What"),
}
_PERSON_KEYS = {"id", "email", "name"}
_AUDIENCE_KEYS = {"id", "slug", "name"}
# A moment as the ledger records one (ledger.utc_iso), or with an offset.
_MOMENT = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")


def label(key: str) -> str:
    """A detail's key in words: its own label, or the key with its underscores as spaces."""
    known = LABELS.get(key)
    return str(known) if known is not None else key.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Value:
    """One recorded value, typed for display: text, a person, a moment or nothing."""

    text: str
    kind: str = "text"  # "text", "person", "time" or "empty"
    name: str = ""
    email: str = ""
    moment: dt.datetime | None = None


@dataclass(frozen=True)
class Detail:
    """A labelled detail: a value, a change (before → after) or a group of details."""

    label: str
    value: Value | None = None
    change: tuple[Value, Value] | None = None
    details: list[Detail] = field(default_factory=list)

    @property
    def text(self) -> str:
        if self.details:
            return f"{self.label}: ({'; '.join(d.text for d in self.details)})"
        if self.change:
            return f"{self.label}: {self.change[0].text} → {self.change[1].text}"
        assert self.value is not None
        return f"{self.label}: {self.value.text}"


def _snapshot(recorded: dict[str, Any], keys: set[str], required: set[str]) -> bool:
    """Whether an object is a snapshot with these keys (a person, an audience), not a group."""
    return required <= set(recorded) <= keys and not any(
        isinstance(v, dict | list) for v in recorded.values()
    )


def _is_person(recorded: Any) -> bool:
    return isinstance(recorded, dict) and _snapshot(recorded, _PERSON_KEYS, {"email"})


def _is_audience(recorded: Any) -> bool:
    return isinstance(recorded, dict) and _snapshot(recorded, _AUDIENCE_KEYS, {"slug", "name"})


def value(recorded: Any) -> Value:
    """A recorded scalar, person, audience or list as a Value (its text as recorded)."""
    if recorded is None:
        return Value(shown(recorded), "empty")
    if recorded in ("", [], {}):
        return Value("", "empty")
    if _is_person(recorded):
        name, email = str(recorded.get("name") or ""), str(recorded["email"])
        return Value(f"{name} <{email}>" if name else email, "person", name=name, email=email)
    if _is_audience(recorded):
        return Value(f"{recorded['name']} ({recorded['slug']})")
    if isinstance(recorded, list) and not any(isinstance(v, dict | list) for v in recorded):
        return Value(", ".join(value(v).text for v in recorded))
    if isinstance(recorded, str) and _MOMENT.match(recorded):
        return Value(recorded, "time", moment=dt.datetime.fromisoformat(recorded))
    return Value(shown(recorded))


def details(recorded: dict[str, Any]) -> list[Detail]:
    """A payload's details as labelled fields: a change first, then by key."""
    found = []
    keys = sorted(recorded)
    for before, after in (("before", "after"), ("from", "to")):
        if before in recorded and after in recorded:  # one change, recorded at this level
            keys = [key for key in keys if key not in (before, after)]
            change = (value(recorded[before]), value(recorded[after]))
            found.append(Detail(str(_("Change")), change=change))
    found.extend(_detail(label(key), recorded[key]) for key in keys)
    return found


def _detail(name: str, recorded: Any) -> Detail:
    if isinstance(recorded, dict) and set(recorded) == {"before", "after"}:
        return Detail(name, change=(value(recorded["before"]), value(recorded["after"])))
    if (
        isinstance(recorded, dict)
        and recorded
        and not (_is_person(recorded) or _is_audience(recorded))
    ):
        return Detail(name, details=details(recorded))
    if isinstance(recorded, list) and any(isinstance(v, dict | list) for v in recorded):
        items = [
            _detail(str(_("Item %(number)s") % {"number": number}), item)
            for number, item in enumerate(recorded, 1)
        ]
        return Detail(name, details=items)
    return Detail(name, value=value(recorded))


# --- Entries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRow:
    """An audit entry as the log shows and exports it."""

    entry: LedgerEntry
    action: str
    actor: dict[str, Any] | None  # as recorded at the time (id, email, name)
    via: str
    recorded: dict[str, Any]  # the details exactly as recorded
    details: list[Detail]

    @property
    def action_label(self) -> str:
        return self.action.replace("_", " ").capitalize()

    @property
    def summary(self) -> str:
        return "; ".join(detail.text for detail in self.details)

    @property
    def subject(self) -> str:
        """Whom or what the entry concerns: the person (as recorded), else the revision."""
        person = self.recorded.get("person")
        if isinstance(person, dict) and value(person).kind == "person":
            return value(person).text
        if (concerned := self.entry.person) is not None:
            return value({"email": concerned.email, "name": concerned.full_name}).text
        if (revision := self.entry.revision) is not None:
            return f"{revision.policy.name} {revision.version}"
        return ""


def audit_row(entry: LedgerEntry) -> AuditRow:
    payload = json.loads(bytes(entry.payload))
    if entry.kind == LedgerEntry.Kind.SUPERSEDED:
        recorded = {k: v for k, v in payload.items() if k not in ENVELOPE}
        actor = (
            {"id": entry.actor.pk, "email": entry.actor.email, "name": entry.actor.full_name}
            if entry.actor is not None
            else None
        )
        return AuditRow(entry, SUPERSEDED_ACTION, actor, "", recorded, details(recorded))
    recorded = payload.get("details") or {}
    return AuditRow(
        entry,
        str(payload.get("action") or ""),
        payload.get("actor"),
        str(payload.get("via") or ""),
        recorded,
        details(recorded),
    )


def audit_rows(entries: Iterable[LedgerEntry]) -> list[AuditRow]:
    return [audit_row(entry) for entry in entries]


# --- The CSV ---------------------------------------------------------------------------------

AUDIT_LOG_COLUMNS = [
    "Sequence",
    "Recorded at (UTC)",
    "Action",
    "Actor",
    "Via",
    "Subject",
    "Summary",
    "Details (JSON)",
]


def audit_log_records(entries: QuerySet[LedgerEntry]) -> Iterator[tuple]:
    """One tuple per entry in AUDIT_LOG_COLUMNS order, its summary in English."""
    ledger.link_pending()  # each row carries its chain position
    for entry in entries.select_related("person").iterator(chunk_size=BLOCK_ROWS):
        row = audit_row(entry)
        with translation.override("en"):  # not across a yield: it holds for the whole thread
            summary = row.summary
        yield (
            entry.sequence,
            entry.recorded_at,
            row.action,
            value(row.actor).text if row.actor else "",
            row.via,
            row.subject,
            summary,
            json.dumps(row.recorded, ensure_ascii=False, sort_keys=True),
        )


def audit_log_csv(entries: QuerySet[LedgerEntry]) -> Iterator[str]:
    return csv_blocks(AUDIT_LOG_COLUMNS, audit_log_records(entries), warning=damage_warning())
