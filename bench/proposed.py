"""A bench-only prototype of the recommended change to the chain lock (never in the product).

Today services.record_acknowledgement takes the ledger's global advisory lock first, then runs
its existence, consent and first-view queries, then ledger.append takes it again and reads the
head, inserts the row, and the acknowledgement is inserted: 7 statements and the COMMIT while
every other signature in the company waits. The recommendation: serialise a person's own
submissions with a per-person advisory lock (what the existence check needs), and take the
global chain lock only in ledger.append, for the head read, the two INSERTs and the COMMIT.

`install()` does exactly that by wrapping the two functions, so the same application code
runs with only the lock placement changed: the first lock_chain() inside record_acknowledgement
becomes pg_advisory_xact_lock(PERSON_LOCK_CLASS, person id); later ones (ledger.append's) take
the chain lock as before. Other callers (record_view, record_decline, receipts) are unchanged.
The bench applies it when BENCH_PROPOSED_LOCK=1 (bench/apps.py), and chain.py measures it.
"""

from __future__ import annotations

import contextvars
import functools

PERSON_LOCK_CLASS = 7_482_019  # first key of the two-key advisory lock: "a person's signing"

_person: contextvars.ContextVar[list | None] = contextvars.ContextVar("bench_person", default=None)
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from django.db import connection

    from acknowledgements import ledger, services

    chain_lock = ledger.lock_chain
    record = services.record_acknowledgement

    def lock_chain() -> None:
        pending = _person.get()
        if pending:  # the first lock inside record_acknowledgement: this person only
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", [PERSON_LOCK_CLASS, pending.pop()]
                )
            return
        chain_lock()

    @functools.wraps(record)
    def record_acknowledgement(*, person, **kwargs):
        token = _person.set([person.pk])
        try:
            return record(person=person, **kwargs)
        finally:
            _person.reset(token)

    ledger.lock_chain = lock_chain
    services.record_acknowledgement = record_acknowledgement
    _installed = True
