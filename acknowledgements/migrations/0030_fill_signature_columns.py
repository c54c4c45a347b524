"""Fill the signature columns of 0029 for every acknowledgement already written.

On PostgreSQL, one UPDATE ... FROM reads each payload as jsonb and writes what it shows for the
values jsonb reads as Python does (missing, null, text, yes/no); a value of another JSON type
(a number, an object: never written by the portal), or a payload jsonb cannot hold (a \\u0000
escape), is left to Python, which is the rule itself (evidence/signature_columns.py). On SQLite,
Python writes every row. Acknowledgements refuse UPDATE (0003): the trigger is off for this
migration's transaction only.
"""

import json

from django.db import migrations
from django.db.models import Q

from acknowledgements.evidence.signature_columns import COLUMNS, columns_of

TABLE = "acknowledgements_acknowledgement"
TRIGGER = f"{TABLE}_no_change"
BATCH = 1_000
NOT_RECORDED = "not recorded"


def _shown(value: str) -> str:
    """payload.shown of a jsonb value, NULL where only Python can tell."""
    return (
        f"CASE WHEN {value} IS NULL OR jsonb_typeof({value}) = 'null' THEN '{NOT_RECORDED}'"
        f" WHEN jsonb_typeof({value}) = 'string' THEN {value} #>> '{{}}'"
        f" WHEN jsonb_typeof({value}) = 'boolean'"
        f" THEN CASE WHEN ({value})::boolean THEN 'yes' ELSE 'no' END END"
    )


def _client(name: str) -> tuple[str, str]:
    """(commitment, shown) of a client value: client_evidence.client_facts on jsonb."""
    key = f"{name}_sha256"
    committed = f"e.payload -> 'client' -> '{key}'"
    has_commitment = (
        f"(jsonb_typeof(e.payload -> 'client') = 'object' AND (e.payload -> 'client') ? '{key}')"
    )
    sha256 = (
        f"CASE WHEN {has_commitment} AND jsonb_typeof({committed}) = 'string'"
        f" THEN {committed} #>> '{{}}' END"
    )
    shown = (
        f"CASE WHEN {has_commitment} THEN CASE WHEN jsonb_typeof({committed}) = 'null'"
        f" THEN '{NOT_RECORDED}' END"
        f" ELSE {_shown(f"e.payload #> '{{client,{name}}}'")} END"
    )
    return sha256, shown


def _fill_in_sql(schema_editor) -> None:
    assignments = [
        f"email_at_signing = {_shown("e.payload #> '{person,email}'")}",
        f"name_at_signing = {_shown("e.payload #> '{person,name}'")}",
        f"authentication_method = {_shown("e.payload #> '{authentication,method}'")}",
    ]
    for name in ("ip", "user_agent"):
        sha256, shown = _client(name)
        assignments += [f"{name}_sha256 = {sha256}", f"{name}_shown = {shown}"]
    schema_editor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {TRIGGER}", params=None)
    # OFFSET 0 keeps the subquery whole, so that each payload is parsed once.
    schema_editor.execute(
        f"UPDATE {TABLE} AS a SET {', '.join(assignments)}"  # noqa: S608 - constants only
        " FROM (SELECT entry.id, convert_from(entry.payload, 'UTF8')::jsonb AS payload"
        " FROM acknowledgements_ledgerentry AS entry"
        f" WHERE entry.id IN (SELECT ledger_entry_id FROM {TABLE})"
        " AND position(convert_to('\\u0000', 'UTF8') IN entry.payload) = 0 OFFSET 0) AS e"
        " WHERE e.id = a.ledger_entry_id",
        params=None,
    )


def _fill_in_python(Acknowledgement) -> None:
    unfilled = (
        Q(email_at_signing__isnull=True)
        | Q(name_at_signing__isnull=True)
        | Q(authentication_method__isnull=True)
        | Q(ip_sha256__isnull=True, ip_shown__isnull=True)
        | Q(user_agent_sha256__isnull=True, user_agent_shown__isnull=True)
    )
    last = 0
    while batch := list(
        Acknowledgement.objects.filter(unfilled, pk__gt=last)
        .select_related("ledger_entry")
        .only("pk", "ledger_entry__payload")
        .order_by("pk")[:BATCH]
    ):
        for acknowledgement in batch:
            payload = json.loads(bytes(acknowledgement.ledger_entry.payload))
            for column, value in columns_of(payload).items():
                setattr(acknowledgement, column, value)
        Acknowledgement.objects.bulk_update(batch, COLUMNS)
        last = batch[-1].pk


def fill(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    if postgresql:
        _fill_in_sql(schema_editor)
    _fill_in_python(apps.get_model("acknowledgements", "Acknowledgement"))
    if postgresql:
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE", params=None)
        schema_editor.execute(f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {TRIGGER}", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("acknowledgements", "0029_acknowledgement_signature_columns"),
    ]

    # Undone by 0029's reversal, which drops the columns.
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
