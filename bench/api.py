"""Figure 10: the read API pages through every person of a policy, 100,000 at full size.

    python -m bench.api --size full --json out.json

In-process with Django's test client and a read token (DEBUG off, the production middleware),
as another system would page: `GET /api/v1/policies/acceptable-use-policy/people?limit=500`,
then each `next` until there is none. Every page runs under CaptureQueriesContext: the number
of SQL statements must be the same on the first page and the last (a cursor on the person's
id, never an OFFSET), the database cache's statements counted apart. The slowest statement
of a page in the middle is then run alone in psql (median of 3): the floor under a page. The token's rate limit is lifted for the bench only
(another system would pace itself: 120 requests a minute by default).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid

from bench.common import Figure, django_setup, main_args, median, size, write_json
from bench.reports import POLICY_SLUG, psql_time_ms

PAGE = 500  # the API's largest page


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    size(args.size)
    django_setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    from acknowledgements.api import tokens
    from acknowledgements.models import ApiToken

    _token, secret = tokens.create_api_token(
        actor=None, name=f"bench-{uuid.uuid4().hex[:8]}", scope=ApiToken.Scope.READ
    )
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {secret}")
    path = f"/api/v1/policies/{POLICY_SLUG}/people?limit={PAGE}"
    times, statements, cache_statements, heaviest = [], [], [], []
    people = 0
    started = time.perf_counter()
    with override_settings(PORTAL_API_REQUESTS_PER_MINUTE=1_000_000):
        while path:
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                response = client.get(path)
                times.append(1000 * (time.perf_counter() - began))
            if response.status_code != 200:
                raise SystemExit(f"{path} answered {response.status_code}: {response.content!r}")
            page = response.json()
            people += len(page["items"])
            queries = [q for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
            # The database cache's statements (the token's rate, the hour's read record) are
            # its own business, and vary (the first page starts both): counted apart.
            cached = [q for q in queries if settings.CACHE_TABLE in q["sql"]]
            statements.append(len(queries) - len(cached))
            cache_statements.append(len(cached))
            heaviest.append(max(queries, key=lambda q: float(q["time"]))["sql"])
            path = page["next"] and page["next"].removeprefix("http://127.0.0.1")
    total = time.perf_counter() - started
    middle = len(times) // 2
    later = statements[1:] or statements
    alone = psql_time_ms(os.environ["DATABASE_URL"], heaviest[middle])
    page_ms = median(times)
    figures = [
        Figure(
            number="10a",
            name=f"Read API: one page of {PAGE} people with their status (median over every page)",
            value=page_ms,
            unit="ms",
            baseline_name="the middle page's slowest statement alone in psql",
            baseline=alone,
            ratio=page_ms / alone if alone else None,
            target="reported",
            note=f"{len(times)} pages; slowest page {max(times):.0f} ms, first {times[0]:.0f} ms, "
            f"last {times[-1]:.0f} ms; p95 {statistics.quantiles(times, n=20)[-1]:.0f} ms"
            if len(times) > 1
            else f"{len(times)} page",
            samples=times,
        ),
        Figure(
            number="10b",
            name="Read API: SQL statements per page, second to last",
            value=max(later),
            unit="queries",
            target="constant",
            met=min(later) == max(later),
            note=f"min {min(later)}, max {max(later)} over {len(later)} pages; the first page "
            f"{statements[0]} (it also records the token's hourly read in the audit log); the "
            "token, the policy, revisions and periods, the page, audiences; besides, the "
            "token's rate and the hour's read record in the database cache took "
            f"{min(cache_statements[1:] or cache_statements)}-"
            f"{max(cache_statements[1:] or cache_statements)} on those pages, "
            f"{cache_statements[0]} on the first (none with Redis)",
        ),
        Figure(
            number="10c",
            name="Read API: paging through everyone in the policy's scope",
            value=people / total if total else None,
            unit="people/s",
            target="reported",
            note=f"{people} people in {total:.1f} s",
        ),
    ]
    write_json(
        args.json,
        {
            "figures": [f.as_dict() for f in figures],
            "pages": {"times_ms": times, "statements": statements, "heaviest": heaviest[middle]},
        },
    )


if __name__ == "__main__":
    main()
