"""Figure 5: the auditor's dashboard, the overdue list and the "as of" view on the large data set.

    python -m bench.reports --size full --json out.json

Each page is requested in-process with Django's test client as the bench auditor (DEBUG off,
the production middleware, collected static files): warmed once, then timed `dashboard_reps`
times (median). One more request runs under CaptureQueriesContext to count every SQL statement
of the request (sessions, authentication, the signing gate and the view) and to find the
slowest one. Its session is noted as written just before: the once-a-minute rewrite of a
signed-in session (middleware.ActiveSessionMiddleware, 2 statements) falls on whichever request
comes a minute after the last, so counted as it came, a page's count depended on the bench's
timing (11 instead of 9 for 5f in one run). The slowest statement alone is then run in psql
(\\timing, median of 3, rows discarded): the floor under the page.

Pages: /reports/ (every policy, now); /reports/policies/acceptable-use-policy/people/?status=
overdue (first page of 50); /reports/?as_of=<45 days ago> (the dashboard as it stood then).
They are marked pending when their URL names are not in the URLconf yet. Then the same pages
(5d-5f) with the Acceptable Use Policy re-acknowledged every 12 months, after storing every
signature's lapse (5g, terms per second); the period is taken away afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import tempfile
import time
from contextlib import contextmanager
from urllib.parse import urlencode

from bench.common import (
    AUDITOR_EMAIL,
    OUT,
    Figure,
    django_setup,
    main_args,
    median,
    psql_args,
    size,
    write_json,
)
from bench.sessions import session_written_now

TIME_TARGET_MS = 300
QUERY_TARGET = 10
POLICY_SLUG = "acceptable-use-policy"


def psql_time_ms(url: str, sql: str, runs: int = 3) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", dir=OUT, delete=False) as file:
        file.write(sql.rstrip().rstrip(";") + ";\n")
    try:
        command = [*psql_args(url), "-o", "/dev/null", "-c", "\\timing on"]
        for _ in range(runs):
            command += ["-f", file.name]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(file.name)
    return median(float(t) for t in re.findall(r"Time: ([\d.]+) ms", output))


def pages() -> list[tuple[str, str, str | None]]:
    """(number, name, path or None when the view is not merged yet)."""
    from django.urls import NoReverseMatch, reverse

    def url(name: str, *args, **query) -> str | None:
        try:
            path = reverse(f"acknowledgements:{name}", args=args)
        except NoReverseMatch:
            return None
        return f"{path}?{urlencode(query)}" if query else path

    as_of = (dt.datetime.now(dt.UTC) - dt.timedelta(days=45)).replace(microsecond=0)
    overdue = url("reports_people", POLICY_SLUG, status="overdue")
    return [
        ("5a", "Dashboard (all policies, now)", url("reports_dashboard")),
        ("5b", "Overdue list, first page (Acceptable Use Policy)", overdue),
        ("5c", "Dashboard as of 45 days ago", url("reports_dashboard", as_of=as_of.isoformat())),
    ]


def measure(client, url: str, reps: int, number: str, name: str, path: str, details: dict):
    """A page's time (median of `reps`) against its heaviest statement alone in psql, and its
    count of statements: two figures."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"{path} answered {response.status_code}")
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        response = client.get(path)
        times.append(1000 * (time.perf_counter() - started))
        assert response.status_code == 200
    session_written_now(client)
    with CaptureQueriesContext(connection) as captured:
        client.get(path)
    queries = [q for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
    heaviest = max(queries, key=lambda q: float(q["time"]))
    alone = psql_time_ms(url, heaviest["sql"])
    explain = subprocess.run(
        [*psql_args(url), "-c", f"EXPLAIN (ANALYZE, BUFFERS) {heaviest['sql']}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (OUT / f"explain-{number}.txt").write_text(f"{heaviest['sql']}\n\n{explain}")
    page_ms = median(times)
    details[number] = {
        "path": path,
        "times_ms": times,
        "queries": [{"time_s": float(q["time"]), "sql": q["sql"][:300]} for q in queries],
        "heaviest_sql": heaviest["sql"],
        "heaviest_in_page_ms": 1000 * float(heaviest["time"]),
        "heaviest_alone_ms": alone,
    }
    return [
        Figure(
            number=number,
            name=name,
            value=page_ms,
            unit="ms",
            baseline_name="its heaviest query alone in psql",
            baseline=alone,
            ratio=page_ms / alone if alone else None,
            target=f"< {TIME_TARGET_MS} ms",
            met=page_ms < TIME_TARGET_MS,
            note=f"median of {reps}; {path}",
            samples=times,
        ),
        Figure(
            number=f"{number}-q",
            name=f"{name}: SQL statements per request",
            value=len(queries),
            unit="queries",
            target=f"<= {QUERY_TARGET}",
            met=len(queries) <= QUERY_TARGET,
            note="every statement of the request: session, user, permissions, signing gate, view "
            "(not the session's once-a-minute rewrite, 2 more at most once a minute per person)",
        ),
    ]


@contextmanager
def yearly_renewal():
    """The Acceptable Use Policy re-acknowledged every 12 months, in force since before the data
    set's signatures (so that the runs of a year ago and more have lapsed), with every
    signature's term kept; taken away afterwards, leaving the data set as it was. Yields the
    seconds taken to compute and store the terms, and how many there are."""
    from django.db import connection
    from django.utils import timezone

    from acknowledgements.models import Policy, RenewalPeriod, SignatureTerm
    from acknowledgements.standings import renewal

    policy = Policy.objects.get(slug=POLICY_SLUG)
    period = RenewalPeriod.objects.create(
        policy=policy, months=12, starts_at=timezone.now() - dt.timedelta(days=2000)
    )
    try:
        started = time.perf_counter()
        terms = renewal.fill_terms(policy_id=policy.pk)
        seconds = time.perf_counter() - started
        # What autovacuum does shortly after such a bulk write (fill_terms analyzes already):
        # the visibility map lets the census read the terms' index alone.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM acknowledgements_signatureterm")
        yield seconds, terms
    finally:
        SignatureTerm.objects.filter(period=period).delete()
        period.delete()


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    chosen = size(args.size)
    django_setup()
    from django.test import Client

    from acknowledgements.models import User

    url = os.environ["DATABASE_URL"]
    auditor = User.objects.get(email=AUDITOR_EMAIL)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(auditor)
    figures, details = [], {}
    for number, name, path in pages():
        if path is None:
            for suffix in ("", "-q"):
                unit = "queries" if suffix else "ms"
                figures.append(
                    Figure(
                        number + suffix,
                        name,
                        None,
                        unit,
                        target="pending",
                        note="pending: view not merged",
                    )
                )
            continue
        figures += measure(client, url, chosen.dashboard_reps, number, name, path, details)
    # The same pages with the policy re-acknowledged yearly: the census then also reads who
    # let every signature of the run lapse.
    renewed = {"5a": "5d", "5b": "5e", "5c": "5f"}
    with yearly_renewal() as (seconds, terms):
        figures.append(
            Figure(
                number="5g",
                name="Yearly renewal set: each signature's lapse computed and stored",
                value=terms / seconds if seconds else None,
                unit="terms/s",
                target="report",
                note=f"{terms} signatures in {seconds:.1f} s (renewal.fill_terms, a task)",
            )
        )
        for number, name, path in pages():
            if path is not None:
                label = f"{name}, renewed yearly"
                figures += measure(
                    client, url, chosen.dashboard_reps, renewed[number], label, path, details
                )
    write_json(args.json, {"figures": [f.as_dict() for f in figures], "pages": details})


if __name__ == "__main__":
    main()
