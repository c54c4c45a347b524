"""Figure 2: streaming every signature through the CSV export view, against COPY of the stored values.

    python -m bench.export --size full --json out.json

gunicorn (`aup_portal.wsgi`, one sync worker so its memory can be read, DEBUG off) serves
/reports/policies/<slug>/export/acknowledgements.csv to the bench auditor, once per policy:
together the three responses carry every signature in the database. The client reads each
response to the end and counts its lines. Baseline: PostgreSQL streaming the same rows' stored
values, the plainest way: for each policy, `COPY (SELECT <the CSV's thirteen columns as the
tables hold them, joined: the acknowledgement's columns, the person's audiences at the moment,
the policy, revision, ledger entry and client details> ... ORDER BY ledger entry) TO STDOUT
(FORMAT csv)` through psql into /dev/null (BASELINE_SQL); the export should reach 0.3 times its
rows per second. Memory: the worker's peak RSS (VmHWM, reset through /proc/<pid>/clear_refs
before each run) minus its RSS before the run.

The worker runs with `--timeout 600`: gunicorn's default of 30 s kills a sync worker whose
request lasts longer, and the note says when an export would have been cut off by it.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import subprocess
import time
from urllib.parse import urlencode

from bench.common import (
    AUDITOR_EMAIL,
    Figure,
    django_setup,
    gunicorn,
    main_args,
    median,
    memory_kib,
    psql_args,
    reset_peak_memory,
    size,
    worker_pids,
    write_json,
)

MEMORY_TARGET_MB = 100
RATE_TARGET = 0.3  # the view's rows/s against the baseline's
GUNICORN_DEFAULT_TIMEOUT_S = 30
# The export's columns as stored, with no formatting, checking or neutralising: what PostgreSQL
# streams when nothing is computed per row beyond the joins (%(policy)s, %(moment)s: parameters).
BASELINE_SQL = """
SELECT a.receipt_number, a.email_at_signing, a.name_at_signing,
    (SELECT string_agg(audience.name, '; ' ORDER BY audience.name COLLATE "C")
     FROM acknowledgements_membership AS membership
     JOIN acknowledgements_audience AS audience ON audience.id = membership.audience_id
     WHERE membership.person_id = a.person_id AND membership.began_at <= %(moment)s
     AND (membership.ended_at IS NULL OR membership.ended_at > %(moment)s)),
    policy.name, revision.version, revision.text_sha256, a.signed_at, details.ip,
    details.user_agent, a.authentication_method, entry.sequence, entry.row_hash
FROM acknowledgements_acknowledgement AS a
JOIN acknowledgements_ledgerentry AS entry ON entry.id = a.ledger_entry_id
JOIN acknowledgements_policyrevision AS revision ON revision.id = a.revision_id
JOIN acknowledgements_policy AS policy ON policy.id = revision.policy_id
LEFT JOIN acknowledgements_clientdetails AS details ON details.ledger_entry_id = a.ledger_entry_id
WHERE revision.policy_id = %(policy)s AND a.signed_at <= %(moment)s
ORDER BY a.ledger_entry_id
"""


def baseline_sql(policy, moment: dt.datetime) -> tuple[str, int]:
    """BASELINE_SQL for a policy (parameters inlined) and the rows the export view streams for it
    as of `moment`."""
    from django.db import connection

    from acknowledgements.reports import lists
    from acknowledgements.standings import coverage

    signatures = lists.signatures(policy, coverage.timeline_for(policy, moment), moment)
    with connection.cursor() as cursor:
        rendered = cursor.cursor.mogrify(
            BASELINE_SQL, {"policy": policy.pk, "moment": moment}
        ).decode()
        cursor.execute(f"SELECT count(*) FROM ({rendered}) AS baseline")
        (baseline_rows,) = cursor.fetchone()
    rows = signatures.count()
    if baseline_rows != rows:
        raise SystemExit(f"the baseline copies {baseline_rows} rows of {policy.slug}, not {rows}")
    return rendered, rows


def download(port: int, path: str, auditor) -> tuple[float, int, int]:
    """(seconds, bytes, lines) of one export read to the end: a POST with the form's CSRF
    token, as the export button sends it (each export is recorded)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    started = time.perf_counter()
    connection.request(
        "POST",
        path,
        body=f"csrfmiddlewaretoken={auditor.csrf_token}",
        headers={
            "Cookie": auditor.cookie,
            "Host": "127.0.0.1",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"POST {path} answered {response.status}: {response.read(500)!r}")
    size_, lines = 0, 0
    while chunk := response.read(1 << 20):
        size_ += len(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, size_, lines


def copy_seconds(url: str, sql: str) -> float:
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run(
            [*psql_args(url), "-c", f"COPY ({sql}) TO STDOUT (FORMAT csv)"], check=True, stdout=sink
        )
    return time.perf_counter() - started


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    chosen = size(args.size)
    django_setup()
    from django.db import connection
    from django.urls import NoReverseMatch, reverse
    from django.utils import timezone

    from acknowledgements.models import Policy, User
    from bench import sessions

    url = os.environ["DATABASE_URL"]
    policies = list(Policy.objects.order_by("slug"))
    try:
        paths = [reverse("acknowledgements:reports_export_csv", args=[p.slug]) for p in policies]
    except NoReverseMatch:
        figure = Figure("2", "CSV export of every signature", None, "rows/s",
                        target="pending", note="pending: export view not merged")  # fmt: skip
        write_json(args.json, {"figures": [figure.as_dict()]})
        return
    # Every export and its baseline as of one moment (a whole second, as the form takes it), so
    # that signatures recorded meanwhile (another benchmark's) change neither.
    moment = timezone.now().replace(microsecond=0)
    as_of = urlencode({"as_of": moment.isoformat()})
    paths = [f"{path}?{as_of}" for path in paths]
    queries = [baseline_sql(p, moment) for p in policies]
    expected_rows = sum(rows for _sql, rows in queries)
    auditor = User.objects.get(email=AUDITOR_EMAIL)
    credentials = sessions.sign_in([auditor])[0]
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    connection.close()

    runs = []
    with gunicorn(url, workers=1, log_name="gunicorn-export", timeout=600) as (port, process):
        download(port, f"{paths[0]}&signed_from={tomorrow}", credentials)  # warm-up: no rows
        (worker,) = worker_pids(process.pid)
        for _run in range(chosen.runs):
            peak_reset = reset_peak_memory(worker)
            before = memory_kib(worker)["VmRSS"]
            seconds, size_, rows = 0.0, 0, 0
            longest = 0.0
            for path in paths:
                elapsed, got, lines = download(port, path, credentials)
                seconds, size_, rows = seconds + elapsed, size_ + got, rows + lines - 1
                longest = max(longest, elapsed)
            after = memory_kib(worker)
            copy_s = sum(copy_seconds(url, sql) for sql, _rows in queries)
            runs.append(
                {
                    "seconds": seconds,
                    "bytes": size_,
                    "rows": rows,
                    "longest_request_s": longest,
                    "copy_seconds": copy_s,
                    "rss_before_kib": before,
                    "rss_after_kib": after["VmRSS"],
                    "peak_kib": after["VmHWM"],
                    "peak_reset": peak_reset,
                    "growth_mb": (after["VmHWM"] - before) / 1024,
                }
            )
    if any(r["rows"] != expected_rows for r in runs):
        raise SystemExit(
            f"the exports carried {[r['rows'] for r in runs]} rows, not {expected_rows}"
        )
    view_rate = expected_rows / median(r["seconds"] for r in runs)
    copy_rate = expected_rows / median(r["copy_seconds"] for r in runs)
    growth = max(r["growth_mb"] for r in runs)
    longest = max(r["longest_request_s"] for r in runs)
    cut = longest > GUNICORN_DEFAULT_TIMEOUT_S
    figures = [
        Figure(
            number="2a",
            name=f"CSV export of all {expected_rows:,} signatures (3 policies) through the view",
            value=view_rate,
            unit="rows/s",
            baseline_name="COPY (SELECT the same columns, stored, joined) TO STDOUT (FORMAT csv) via psql",
            baseline=copy_rate,
            ratio=view_rate / copy_rate,
            target=f">= {RATE_TARGET}x the baseline",
            met=view_rate / copy_rate >= RATE_TARGET,
            note=(
                f"median of {chosen.runs}: view {median(r['seconds'] for r in runs):.1f} s for "
                f"{median(r['bytes'] for r in runs) / 1e6:.0f} MB, COPY "
                f"{median(r['copy_seconds'] for r in runs):.1f} s; longest single request "
                f"{longest:.1f} s"
                + (
                    f" (> gunicorn's default --timeout {GUNICORN_DEFAULT_TIMEOUT_S} s: a "
                    "production worker would be killed mid-export)"
                    if cut
                    else ""
                )
            ),
            samples=[expected_rows / r["seconds"] for r in runs],
        ),
        Figure(
            number="2b",
            name="Export: memory growth of the gunicorn worker",
            value=growth,
            unit="MB",
            target=f"< {MEMORY_TARGET_MB} MB",
            met=growth < MEMORY_TARGET_MB,
            note=(
                "peak RSS during the three exports minus RSS before, worst of "
                f"{chosen.runs} runs (per run: {', '.join(f'{r["growth_mb"]:.1f}' for r in runs)})"
            ),
            samples=[r["growth_mb"] for r in runs],
        ),
    ]
    write_json(
        args.json, {"figures": [f.as_dict() for f in figures], "runs": runs, "rows": expected_rows}
    )


if __name__ == "__main__":
    main()
