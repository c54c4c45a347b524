"""Figure 1p: PostgreSQL's own time for each statement of a signing POST and of a bare POST.

Each POST is made in-process (Django's test client, the portal's middleware and view) inside a
transaction that is rolled back, with its statements captured; each captured statement is then
run again, in order, under `EXPLAIN (ANALYZE)` in another transaction rolled back in turn. The
time of a statement is its planning, execution and triggers as PostgreSQL reports them: what
the server spends on it, without the round trip, the protocol or the commit. Nothing is left
behind, so the same people can be used again; the figure is the median over `repeats` POSTs.

The view's own transaction becomes a savepoint inside the outer one: BEGIN, COMMIT and the
savepoint statements are left out of the list (the commit is priced by 1o's totals, not here),
as is a PREPARE, which a connection runs once, not once per request.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import median

SKIPPED = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PREPARE")


class _Undo(Exception):
    """Raised to roll a measuring transaction back."""


def _label(number: int, sql: str) -> str:
    """`3 INSERT INTO "acknowledgements_acknowledgement"`: its place, verb and table."""
    words = sql.split()
    if words[0] in ("INSERT", "DELETE"):
        target = words[2]
    elif words[0] == "UPDATE":
        target = words[1]
    elif words[0] == "EXECUTE":
        target = words[1].split("(")[0]
    elif "FROM" in words:
        target = words[words.index("FROM") + 1]
    else:  # a function: pg_advisory_xact_lock(...), currval(...)
        target = words[1].split("(")[0]
    name = target.strip('"')
    return f"{number} {words[0]} {name}"


def _captured(post: Callable[[], None]) -> list[str]:
    """The statements one POST runs, each on its own (a batch's statements split)."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    try:
        with transaction.atomic(), CaptureQueriesContext(connection) as captured:
            post()
            raise _Undo
    except _Undo:
        pass
    statements = []
    for query in captured.captured_queries:
        # A write batch sends its statements as one string, each ending a line with ";".
        for sql in query["sql"].split(";\n"):
            sql = sql.strip()
            if sql and not sql.startswith(SKIPPED):
                statements.append(sql)
    return statements


def _server_ms(statements: list[str]) -> list[float]:
    """Each statement's planning + execution + trigger time, run in order and rolled back."""
    from django.db import connection, transaction

    times = []
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
                (plan,) = cursor.fetchone()[0]
                triggers = sum(trigger["Time"] for trigger in plan.get("Triggers", []))
                times.append(plan["Planning Time"] + plan["Execution Time"] + triggers)
            raise _Undo
    except _Undo:
        pass
    return times


def statement_times(post: Callable[[], None], repeats: int) -> dict:
    """{"statements": [(label, median ms)], "total_ms": median of the POSTs' sums}."""
    per_label: dict[str, list[float]] = {}
    totals = []
    for _ in range(repeats):
        statements = _captured(post)
        times = _server_ms(statements)
        totals.append(sum(times))
        for number, (sql, ms) in enumerate(zip(statements, times, strict=True), start=1):
            per_label.setdefault(_label(number, sql), []).append(ms)
    return {
        "statements": [(label, median(values)) for label, values in per_label.items()],
        "total_ms": median(totals),
    }
