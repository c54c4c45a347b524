"""The hash chain's serialisation, measured two ways (reported with figure 1).

    python -m bench.chain --size full --json out.json

1. PostgreSQL's own limit, with pgbench (C, prepared statements, -j 2): transactions per second
   of a plain INSERT of a ledger-shaped row, against the ledger's append pattern -- BEGIN;
   pg_advisory_xact_lock; read the head (ORDER BY sequence DESC LIMIT 1); INSERT the next row;
   COMMIT -- at 1, 5 (the gunicorn workers) and 32 clients. Both tables are copies of the
   ledger table (same columns and indexes, no foreign keys); payloads are 1,800 bytes.
2. The application's own critical section: signing_actions.record_acknowledgement run in-process,
   one signature after another with no contention. The signing transaction takes no chain
   lock; the link task that its commit enqueues (here: ledger.link_pending called right
   after, in the same process) takes it to link the new entries. Timed from the moment the
   lock is granted to the end of the linking transaction's COMMIT (the first statement after
   it is the next batch's lock). Under load one link covers every entry committed meanwhile,
   so 1 / that time is a floor, not a ceiling, on the signatures per second it lets through.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time

from bench.common import (
    OUT,
    Figure,
    django_setup,
    have,
    main_args,
    median,
    percentile,
    size,
    write_json,
)

CHAIN_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"  # ledger._link_batch's statement
TABLES = {"plain": "bench_chain_plain", "locked": "bench_chain_locked"}
PAYLOAD = "convert_to(repeat('x', 1800), 'UTF8')"
RANDOM_HASH = "md5(random()::text) || md5(random()::text)"


def scripts(lock_id: int) -> dict[str, str]:
    columns = "(sequence, kind, recorded_at, payload, payload_sha256, previous_hash, row_hash, person_id, revision_id)"
    return {
        "plain": (
            f"INSERT INTO {TABLES['plain']} {columns} VALUES (nextval('bench_chain_plain_seq'), "
            f"'signed', now(), {PAYLOAD}, {RANDOM_HASH}, {RANDOM_HASH}, {RANDOM_HASH}, 1, 1);\n"
        ),
        "locked": (
            "BEGIN;\n"
            f"SELECT pg_advisory_xact_lock({lock_id});\n"
            f"SELECT sequence + 1 AS next_sequence, row_hash AS head FROM {TABLES['locked']} "
            "ORDER BY sequence DESC LIMIT 1 \\gset\n"
            f"INSERT INTO {TABLES['locked']} {columns} VALUES (:next_sequence, 'signed', now(), "
            f"{PAYLOAD}, {RANDOM_HASH}, :head, {RANDOM_HASH}, 1, 1);\n"
            "COMMIT;\n"
        ),
    }


def prepare_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in TABLES.values():
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(
                f"CREATE TABLE {table} (LIKE acknowledgements_ledgerentry INCLUDING ALL)"
            )
        cursor.execute("DROP SEQUENCE IF EXISTS bench_chain_plain_seq")
        cursor.execute("CREATE SEQUENCE bench_chain_plain_seq")
        cursor.execute(
            f"INSERT INTO {TABLES['locked']} (sequence, kind, recorded_at, payload, payload_sha256, "
            f"previous_hash, row_hash) VALUES (0, 'genesis', now(), ''::bytea, '', '', repeat('0', 64))"
        )


def pgbench(url: str, script: str, clients: int, seconds: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", dir=OUT, delete=False) as file:
        file.write(script)
    try:
        output = subprocess.run(
            ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
             "-T", str(seconds), "-f", file.name, url],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(file.name)
    tps = float(re.search(r"tps = ([\d.]+)", output).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", output).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", output)
    return {"tps": tps, "latency_ms": latency, "failed": int(failed.group(1)) if failed else 0}


def critical_section(count: int) -> dict:
    """Hold time of the chain lock in the link after record_acknowledgement, no contention."""
    from django.db import connection
    from django.utils import timezone

    from acknowledgements.evidence import ledger
    from acknowledgements.evidence.client_evidence import ClientEvidence
    from acknowledgements.models import Acknowledgement, LedgerEntry, Policy, User
    from acknowledgements.signing import actions as signing_actions
    from acknowledgements.standings import coverage

    policy = Policy.objects.get(slug="information-security-policy")
    revision = coverage.timeline_for(policy).current
    people = list(
        User.objects.filter(
            audiences__in=revision.audiences.all(),
            pk__in=LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CONSENTED).values("person_id"),
        )
        .exclude(pk__in=Acknowledgement.objects.filter(revision=revision).values("person_id"))
        .distinct()
        .order_by("-pk")[: count + 5]
    )
    statements: list[tuple[str, float, float]] = []

    def record(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((sql, start, time.perf_counter()))

    holds, totals, under_lock = [], [], []
    with connection.execute_wrapper(record):
        for number, person in enumerate(people):
            statements.clear()
            client = ClientEvidence(
                ip="127.0.0.1",
                user_agent="aup-portal-bench",
                request_id=f"bench-{number}",
                session_key_sha256="0" * 64,
                auth_method="password",
                authenticated_at=timezone.now(),
                mfa=False,
                browser_time_zone="Europe/Paris",
                locale="en",
            )
            started = time.perf_counter()
            signing_actions.record_acknowledgement(
                person=person,
                policy_slug=revision.policy.slug,
                version=revision.version,
                typed_name=person.full_name,
                checkbox_ticked=True,
                consent_accepted=True,
                client=client,
            )
            ledger.link_pending()  # what the link task does in the worker
            total = time.perf_counter() - started
            locks = [i for i, s in enumerate(statements) if s[0] == CHAIN_LOCK_SQL]
            locked, after = locks[0], locks[1]  # the batch that links, then the empty one
            if number < 5:
                continue  # warm-up
            holds.append(statements[after][1] - statements[locked][2])
            totals.append(total)
            under_lock.append(after - locked - 1)
    holds.sort()
    return {
        "signatures": len(holds),
        "hold_ms_median": 1000 * median(holds),
        "hold_ms_p95": 1000 * percentile(holds, 0.95),
        "service_ms_median": 1000 * median(totals),
        "statements_under_lock": median(under_lock),
        "ceiling_per_s": 1 / median(holds),
    }


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    chosen = size(args.size)
    django_setup()
    from acknowledgements.evidence import ledger

    url = os.environ["DATABASE_URL"]
    figures: list[Figure] = []
    results: dict = {"pgbench": {}}
    if have("pgbench"):
        prepare_tables()
        texts = scripts(ledger.CHAIN_LOCK_ID)
        for clients in chosen.pgbench_clients:
            measured = {}
            for kind in ("plain", "locked"):
                runs = [
                    pgbench(url, texts[kind], clients, chosen.pgbench_seconds)
                    for _ in range(chosen.pgbench_runs)
                ]
                measured[kind] = {
                    "tps": median(r["tps"] for r in runs),
                    "latency_ms": median(r["latency_ms"] for r in runs),
                    "failed": sum(r["failed"] for r in runs),
                    "samples": [r["tps"] for r in runs],
                }
            results["pgbench"][clients] = measured
            figures.append(
                Figure(
                    number=f"1e-{clients}",
                    name=f"pgbench: lock + head read + INSERT, {clients} client(s)",
                    value=measured["locked"]["tps"],
                    unit="tx/s",
                    baseline_name="plain INSERT of the same row",
                    baseline=measured["plain"]["tps"],
                    ratio=measured["locked"]["tps"] / measured["plain"]["tps"],
                    target="reported",
                    note=(
                        f"latency {measured['locked']['latency_ms']:.2f} vs "
                        f"{measured['plain']['latency_ms']:.2f} ms; median of "
                        f"{chosen.pgbench_runs} x {chosen.pgbench_seconds} s"
                    ),
                    samples=measured["locked"]["samples"],
                )
            )
    else:
        figures.append(Figure("1e", "pgbench: lock + head read + INSERT", None, "tx/s",
                              note="pgbench not installed"))  # fmt: skip
    section = critical_section(chosen.critical_section_signatures)
    results["critical_section"] = section
    figures.append(
        Figure(
            number="1f",
            name="Chain lock hold time: linking one signature's entries (link task)",
            value=section["hold_ms_median"],
            unit="ms",
            baseline_name="record_acknowledgement + link_pending",
            baseline=section["service_ms_median"],
            ratio=section["hold_ms_median"] / section["service_ms_median"],
            target="reported",
            note=(
                f"{section['statements_under_lock']:.0f} SQL statements + COMMIT under the lock; "
                f"p95 {section['hold_ms_p95']:.1f} ms; one link at a time would allow "
                f"{section['ceiling_per_s']:.0f}/s, and under load each link covers several "
                f"signatures ({section['signatures']} signatures, no contention)"
            ),
        )
    )
    write_json(args.json, {"figures": [f.as_dict() for f in figures], **results})


if __name__ == "__main__":
    main()
