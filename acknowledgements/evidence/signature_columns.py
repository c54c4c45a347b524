"""What a signature's ledger payload shows, as columns of its Acknowledgement row.

The signatures CSV shows, for each signature, the email, name and authentication method its
payload records and the IP address and user agent it commits to. Written into the row by the same
INSERT that creates it, they let PostgreSQL copy stored values instead of parsing a million
payloads; the Python writer still reads every payload (exports.signature_records), so that the
two can be compared byte for byte.

The payload never changes (the ledger is append-only), and neither do these columns (nor can
they: acknowledgements are append-only too). What changes later is read when exporting: the raw
IP address and user agent kept in ClientDetails, which retention deletes, and the ledger's
"redacted" events, which record that it did.
"""

from __future__ import annotations

from typing import Any

from acknowledgements.evidence.client_evidence import CLIENT_FIELDS, client_facts
from acknowledgements.evidence.payload import lookup, shown

# (column, path in the payload) of the values shown as the payload records them.
SHOWN_COLUMNS = (
    ("email_at_signing", ("person", "email")),
    ("name_at_signing", ("person", "name")),
    ("authentication_method", ("authentication", "method")),
)


def client_columns(name: str) -> tuple[str, str]:
    """(commitment column, shown column) of a client value ("ip" or "user_agent")."""
    return f"{name}_sha256", f"{name}_shown"


COLUMNS = (
    *(column for column, _path in SHOWN_COLUMNS),
    *(column for name in CLIENT_FIELDS for column in client_columns(name)),
)


def columns_of(payload: Any) -> dict[str, str | None]:
    """The Acknowledgement columns of a signature whose decoded ledger payload is `payload`.

    Each client value is either a commitment (`<name>_sha256`), opened when exporting with the
    ClientDetails kept beside the entry, or, when the payload holds none, what the payload shows
    (`<name>_shown`: a value recorded before commitments existed, or "not recorded"); never both.
    """
    columns: dict[str, str | None] = {
        column: shown(lookup(payload, *path)) for column, path in SHOWN_COLUMNS
    }
    # Without the kept details a committed value reads as "removed", with the commitment that is
    # all the payload holds of it; the other states are the payload's own.
    for name, fact in client_facts(payload, None).items():
        committed, shown_column = client_columns(name)
        if fact.state == "removed":
            sha256 = fact.sha256
            columns[committed] = sha256 if isinstance(sha256, str) else shown(sha256)
            columns[shown_column] = None
        else:
            columns[committed] = None
            columns[shown_column] = shown(fact.value)
    return columns
