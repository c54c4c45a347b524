"""Importing people from a CSV file (an HR export): reading it and planning every row; applying
the plan is import_apply.py.

The file has the columns of the people download (`directory.DIRECTORY_COLUMNS`); `email` and
`full_name` are required, a missing optional column leaves that field as it is. A row is keyed
by its external id when it has one, else by its email address. Planning reads the database a
batch of rows at a time (a constant number of queries per batch) and writes nothing; applying
re-plans against the database as it is then, and writes each batch in one transaction with
bulk statements and one `people_imported` ledger row listing every change of the batch, with
its values before and after. Importing the same file twice changes nothing the second time.

Why a row or a file is refused is a `Reason`: English text where it is printed (the command),
and in every language the portal speaks where it is stored for the page (import_jobs.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import batched
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Field
from django.utils import timezone, translation
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from acknowledgements.models import Audience, User
from acknowledgements.people.directory import AUDIENCE_SEPARATOR, DIRECTORY_COLUMNS

BATCH = 1_000
REQUIRED_COLUMNS = ("email", "full_name")
YES, NO = {"yes", "y", "true", "1", "active"}, {"no", "n", "false", "0", "inactive"}
# The fields an import sets, as the audit record names them.
IMPORTED_FIELDS = (
    "email",
    "full_name",
    "audiences",
    "joined_at",
    "manager",
    "external_id",
    "employee_number",
    "active",
    "left_at",
)


class Outcome(StrEnum):
    CREATE = "create"
    CHANGE = "change"
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


def in_each_language(text: Callable[[], str]) -> dict[str, str]:
    """`text()` in each language the portal speaks, by language code: what a page shows in its
    reader's language, kept by a task that does not know who will read it."""
    texts = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            texts[code] = text()
    return texts


class Reason(str):
    """Why a row or a file is refused, as English text, keeping its message and values so that
    it can be shown in another language."""

    message: str | Promise
    params: dict[str, Any]

    def __new__(cls, message: str | Promise, **params: Any) -> Reason:
        with translation.override(None):  # the message as written: English
            reason = super().__new__(cls, message % params)
        reason.message, reason.params = message, params
        return reason

    def translated(self) -> str:
        """The reason in the active language."""
        return str(self.message % self.params)


# The person's fields that an import changes, where the record names them otherwise.
_MODEL_FIELDS = {"joined_at": "date_joined", "active": "is_active"}


def field_label(name: str) -> str:
    """A field an import changes (IMPORTED_FIELDS), named as the person's record names it."""
    if name == "audiences":
        return str(Audience._meta.verbose_name_plural)
    model_field = cast(Field, User._meta.get_field(_MODEL_FIELDS.get(name, name)))
    return str(model_field.verbose_name)


class ImportRefused(Exception):
    """The file as a whole cannot be read (not CSV, missing columns): nothing is planned."""

    def __init__(self, reason: Reason):
        super().__init__(reason)
        self.reason = reason


@dataclass
class PlannedRow:
    line: int  # in the file, the header being line 1
    key: str  # external id, else email
    outcome: Outcome
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field: (before, after)
    reasons: list[Reason] = field(default_factory=list)  # why a row is refused
    values: dict[str, Any] = field(default_factory=dict)  # what the row sets, parsed
    person_id: int | None = None  # the person it changes (None: a new one)


@dataclass
class Plan:
    rows: list[PlannedRow]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        return {outcome.value: self.count(outcome) for outcome in Outcome}


# --- Reading the file ------------------------------------------------------------------------------


def read_rows(data: bytes) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The file's columns and its rows (line number, values) as text; refused if unreadable."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused(
            Reason(_("The file is not UTF-8 text. Save it as CSV, UTF-8."))
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ImportRefused(
            Reason(
                _("The file has no column %(columns)s (its first line)."),
                columns=", ".join(missing),
            )
        )
    unknown = [name for name in columns if name not in DIRECTORY_COLUMNS]
    if unknown:
        raise ImportRefused(
            Reason(
                _("Unknown column %(unknown)s; the columns are %(columns)s."),
                unknown=", ".join(unknown),
                columns=", ".join(DIRECTORY_COLUMNS),
            )
        )
    reader.fieldnames = columns

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for values in reader:
            if None in values:  # more cells than columns
                values.pop(None)
                values["__extra__"] = "yes"
            yield reader.line_num, {k: (v or "").strip() for k, v in values.items()}

    return columns, rows()


def _moment(text: str) -> dt.datetime | None:
    """A date (start of the day, UTC) or an ISO 8601 time; refused when neither."""
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise ValueError
        moment = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, dt.UTC)


def _parse(values: dict[str, str], audiences: dict[str, Audience]) -> tuple[dict, list[Reason]]:
    """A row's values as the portal stores them, and the reasons it is refused (if any)."""
    parsed: dict[str, Any] = {}
    reasons = []
    if values.get("__extra__"):
        reasons.append(Reason(_("more cells than columns")))
    email = values.get("email", "").lower()
    try:
        validate_email(email)
        parsed["email"] = email
    except ValidationError:
        reasons.append(
            Reason(_("not an email address: %(value)s"), value=repr(values.get("email", "")))
        )
    parsed["full_name"] = " ".join(values.get("full_name", "").split())
    if not parsed["full_name"]:
        reasons.append(Reason(_("no full name")))
    if "audiences" in values:
        names = [n.strip() for n in values["audiences"].split(AUDIENCE_SEPARATOR) if n.strip()]
        unknown = [n for n in names if n.casefold() not in audiences]
        if unknown:
            reasons.append(
                Reason(
                    ngettext_lazy(
                        "unknown audience %(names)s", "unknown audiences %(names)s", "count"
                    ),
                    names=", ".join(unknown),
                    count=len(unknown),
                )
            )
        parsed["audiences"] = sorted(
            {audiences[n.casefold()].slug for n in names if n.casefold() in audiences}
        )
    for column, name in (("joined_at", "joined_at"), ("left_at", "left_at")):
        if values.get(column):
            try:
                parsed[name] = _moment(values[column])
            except ValueError:
                reasons.append(
                    Reason(
                        _("%(column)s is not a date: %(value)s"),
                        column=column,
                        value=repr(values[column]),
                    )
                )
    if "active" in values:
        answer = values["active"].lower()
        if answer and answer not in YES | NO:
            reasons.append(
                Reason(_("active must be yes or no, not %(value)s"), value=repr(values["active"]))
            )
        parsed["active"] = answer not in NO
    for column in ("external_id", "employee_number", "manager_email"):
        if column in values:
            parsed[column] = values[column]
    if "external_id" in parsed:
        parsed["external_id"] = parsed["external_id"] or None
    if "manager_email" in parsed:
        parsed["manager_email"] = parsed["manager_email"].lower()
    return parsed, reasons


# --- Planning ----------------------------------------------------------------------------------------


def _current(person: User, memberships: dict[int, list[str]], managers: dict[int, str]) -> dict:
    """A person's importable fields as stored now."""
    return {
        "email": person.email,
        "full_name": person.full_name,
        "audiences": sorted(memberships.get(person.pk, [])),
        "joined_at": person.date_joined,
        "manager": managers.get(person.manager_id) if person.manager_id else None,
        "external_id": person.external_id,
        "employee_number": person.employee_number,
        "active": person.is_active,
        "left_at": person.left_at,
    }


def _wanted(parsed: dict, now: dt.datetime, before: dict | None) -> dict:
    """What the row asks for, each field the file leaves out kept as it is."""
    wanted = dict(before or {})
    wanted.update(
        {k: parsed[k] for k in ("email", "full_name", "audiences", "external_id") if k in parsed}
    )
    if "employee_number" in parsed:
        wanted["employee_number"] = parsed["employee_number"]
    if "manager_email" in parsed:
        wanted["manager"] = parsed["manager_email"] or None
    if "joined_at" in parsed:
        wanted["joined_at"] = parsed["joined_at"]
    if "active" in parsed:
        wanted["active"] = parsed["active"]
    if before is None:
        wanted.setdefault("audiences", [])
        wanted.setdefault("joined_at", now)
        wanted.setdefault("active", True)
        wanted.setdefault("external_id", None)
        wanted.setdefault("employee_number", "")
        wanted.setdefault("manager", None)
    if wanted.get("active", True):
        wanted["left_at"] = None
    elif "left_at" in parsed:
        wanted["left_at"] = parsed["left_at"]
    elif before is None or before["active"]:
        wanted["left_at"] = now  # leaving now, the file naming no date
    return wanted


Progress = Callable[[int], None] | None


def plan_import(data: bytes, *, now: dt.datetime | None = None, progress: Progress = None) -> Plan:
    """What importing the file would do to each row, reading the database and writing nothing.

    `progress` is told how many rows are planned after each batch."""
    now = now or timezone.now()
    _columns, rows = read_rows(data)
    audiences = {}
    for audience in Audience.objects.all():
        audiences[audience.slug.casefold()] = audiences[audience.name.casefold()] = audience
    seen: dict[str, int] = {}
    file_emails: set[str] = set()
    planned: list[PlannedRow] = []
    for batch in batched(rows, BATCH):
        parsed = [(line, *_parse(values, audiences)) for line, values in batch]
        planned.extend(_plan_batch(parsed, now=now, seen=seen, file_emails=file_emails))
        if progress:
            progress(len(planned))
    _check_managers(planned, file_emails)
    return Plan(planned)


def _plan_batch(parsed, *, now, seen: dict[str, int], file_emails: set[str]) -> list[PlannedRow]:
    """Plan a batch of parsed rows in a constant number of queries."""
    external_ids = {p["external_id"] for _l, p, _r in parsed if p.get("external_id")}
    emails = {p["email"] for _l, p, _r in parsed if p.get("email")}
    found = User.objects.filter(external_id__in=external_ids) | User.objects.filter(
        email__in=emails
    )
    people = list(found.distinct())
    by_external = {p.external_id: p for p in people if p.external_id}
    by_email = {p.email: p for p in people}
    memberships: dict[int, list[str]] = {}
    for person_id, slug in User.audiences.through.objects.filter(
        user_id__in=[p.pk for p in people]
    ).values_list("user_id", "audience__slug"):
        memberships.setdefault(person_id, []).append(slug)
    managers = dict(
        User.objects.filter(pk__in={p.manager_id for p in people if p.manager_id}).values_list(
            "pk", "email"
        )
    )
    result = []
    for line, values, reasons in parsed:
        key = values.get("external_id") or values.get("email") or f"line {line}"
        reasons = list(reasons)
        if key in seen:
            reasons.append(Reason(_("the same person as line %(line)s"), line=seen[key]))
        else:
            seen[key] = line
        if values.get("email"):
            file_emails.add(values["email"])
        person = by_external.get(values.get("external_id")) if values.get("external_id") else None
        person = person or by_email.get(values.get("email", ""))
        if (
            person
            and values.get("external_id")
            and person.external_id
            not in (
                None,
                values["external_id"],
            )
        ):
            reasons.append(
                Reason(
                    _("%(email)s already has the external id %(current)s, not %(wanted)s"),
                    email=person.email,
                    current=person.external_id,
                    wanted=values["external_id"],
                )
            )
        if values.get("email") and person and person.email != values["email"]:
            other = by_email.get(values["email"])
            if other is not None and other.pk != person.pk:
                reasons.append(
                    Reason(_("%(email)s belongs to someone else"), email=values["email"])
                )
        if reasons:
            shown = {"email": values["email"]} if values.get("email") else {}
            result.append(PlannedRow(line, key, Outcome.REFUSED, reasons=reasons, values=shown))
            continue
        if person is None:
            wanted = _wanted(values, now, None)
            outcome = Outcome.CREATE if wanted["active"] else Outcome.REFUSED
            planned = PlannedRow(line, key, outcome, values=wanted)
            if not wanted["active"]:
                planned.reasons.append(Reason(_("a new person who is not active")))
            result.append(planned)
            continue
        before = _current(person, memberships, managers)
        wanted = _wanted(values, now, before)
        changes = {f: (before[f], wanted[f]) for f in IMPORTED_FIELDS if before[f] != wanted[f]}
        if not changes:
            outcome = Outcome.UNCHANGED
        elif "active" in changes:
            outcome = Outcome.REACTIVATE if wanted["active"] else Outcome.DEACTIVATE
        else:
            outcome = Outcome.CHANGE
        result.append(PlannedRow(line, key, outcome, changes, values=wanted, person_id=person.pk))
    return result


def _check_managers(planned: list[PlannedRow], file_emails: set[str]) -> None:
    """A manager named by email exists already or is added by the same file, and is not the
    person themselves."""
    named = {r.values.get("manager") for r in planned if r.values.get("manager")}
    known = set(User.objects.filter(email__in=named - file_emails).values_list("email", flat=True))
    for row in planned:
        manager = row.values.get("manager")
        if row.outcome == Outcome.REFUSED or not manager:
            continue
        if manager == row.values.get("email"):
            reason = Reason(_("a person cannot be their own manager"))
        elif manager not in known and manager not in file_emails:
            reason = Reason(_("manager %(email)s not found"), email=manager)
        else:
            continue
        row.outcome, row.reasons, row.changes = Outcome.REFUSED, [reason], {}
