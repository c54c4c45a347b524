"""Figure 7: importing an HR export of new people (people/import_plan.py and import_apply.py), against COPY of it.

    python -m bench.people_import --size full --json out.json

A CSV of `size.people` new people (each in one or two audiences, most with a manager named
earlier in the file, an external id and an employee number) is planned and applied as
`manage.py import_people` does, then imported a second time, which must change nothing. The
baseline is PostgreSQL's own limit for taking the same rows in: `COPY ... FROM STDIN (FORMAT
csv)` of the same file into a table with the same columns. Queries per batch are counted on two
files, of 2 and 4 batches, which must cost the same per batch.
"""

from __future__ import annotations

import csv
import io
import time

from bench.common import Figure, django_setup, main_args, size, write_json


def hr_file(people: int, audiences: list[str], prefix: str = "import") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["email", "full_name", "audiences", "joined_at", "manager_email", "external_id",
         "employee_number", "active"]
    )  # fmt: skip
    for n in range(people):
        manager = f"{prefix}{n // 25 * 25:07d}@bench.example.com" if n % 25 else ""
        names = audiences[n % len(audiences)]
        if n % 7 == 0:
            names += ";" + audiences[(n + 1) % len(audiences)]
        writer.writerow(
            [f"{prefix}{n:07d}@bench.example.com", f"Imported Person {n}", names, "2026-01-05",
             manager, f"{prefix}-{n}", f"E{n:07d}", "yes"]
        )  # fmt: skip
    return buffer.getvalue().encode()


def copy_baseline(data: bytes) -> float:
    """Seconds PostgreSQL takes to COPY the file into a table with the same columns."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE import_baseline (email text, full_name text, audiences text,"
            " joined_at timestamptz, manager_email text, external_id text,"
            " employee_number text, active text) ON COMMIT DROP"
        )
        started = time.perf_counter()
        cursor.copy_expert(
            "COPY import_baseline FROM STDIN (FORMAT csv, HEADER true)", io.BytesIO(data)
        )
        return time.perf_counter() - started


def queries_per_batch(audiences: list[str], batches: int) -> float:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from acknowledgements.people import import_apply, import_plan

    data = hr_file(batches * import_plan.BATCH, audiences, prefix=f"q{batches}x")
    with CaptureQueriesContext(connection) as captured:
        import_apply.apply_import(data, actor=None, filename="queries.csv")
    return len(captured.captured_queries) / batches


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    chosen = size(args.size)
    django_setup()
    from django.conf import settings

    from acknowledgements.models import Audience
    from acknowledgements.people import import_apply, import_plan

    settings.DEBUG = False  # no query log kept during the timed import
    audiences = list(Audience.objects.order_by("slug").values_list("slug", flat=True))
    data = hr_file(chosen.people, audiences)
    copy_seconds = copy_baseline(data)

    started = time.perf_counter()
    plan = import_apply.apply_import(data, actor=None, filename="hr-export.csv")
    import_seconds = time.perf_counter() - started
    created = plan.count(import_plan.Outcome.CREATE)
    if created != chosen.people:
        raise SystemExit(f"created {created} of {chosen.people}: {plan.counts}")

    started = time.perf_counter()
    again = import_apply.apply_import(data, actor=None, filename="hr-export.csv")
    again_seconds = time.perf_counter() - started
    unchanged = again.count(import_plan.Outcome.UNCHANGED)

    small, large = queries_per_batch(audiences, 2), queries_per_batch(audiences, 4)
    rate, copy_rate = chosen.people / import_seconds, chosen.people / copy_seconds
    figures = [
        Figure(
            number="7a",
            name=f"Importing {chosen.people:,} new people from CSV (plan and apply)",
            value=rate,
            unit="rows/s",
            baseline_name="COPY of the same CSV into a table of the same columns",
            baseline=copy_rate,
            ratio=rate / copy_rate,
            target="a few minutes for 100,000 rows",
            met=import_seconds < 300 if chosen.name == "full" else None,
            note=f"{import_seconds:.1f} s in all; COPY {copy_seconds:.2f} s",
        ),
        Figure(
            number="7b",
            name="Importing the same file again",
            value=again_seconds,
            unit="s",
            target="changes nothing",
            met=unchanged == chosen.people,
            note=f"{unchanged:,} of {chosen.people:,} rows unchanged",
        ),
        Figure(
            number="7c",
            name="SQL statements per 1,000-row batch (files of 2 and 4 batches)",
            value=large,
            unit="queries",
            target="constant in the file's size",
            met=abs(large - small) <= 1,
            note=f"{small:.1f} per batch with 2 batches, {large:.1f} with 4",
        ),
    ]
    write_json(
        args.json,
        {
            "figures": [f.as_dict() for f in figures],
            "rows": chosen.people,
            "import_s": import_seconds,
            "copy_s": copy_seconds,
            "again_s": again_seconds,
            "queries_per_batch": [small, large],
        },
    )


if __name__ == "__main__":
    main()
