"""Health endpoints for load balancers and orchestrators; they answer without signing in.

Probes come with GET or HEAD, over plain HTTP from inside the network: settings.py exempts
these paths from the HTTPS redirect (SECURE_REDIRECT_EXEMPT), or a probe would only see a 301.
"""

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from acknowledgements.evidence import protection
from acknowledgements.receipts import authority as receipt_authority


@require_safe
@never_cache
def healthz(request):
    """The process is alive (nothing else is checked)."""
    return JsonResponse({"status": "ok"})


def _problems() -> list[str]:
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            problems.append("migrations not applied")
        problems += [f"evidence protection weakened: {p}" for p in protection.weakened()]
    except DatabaseError:
        problems.append("database unreachable")
    try:
        receipt_authority.load_sealing_identity()
    except (ImproperlyConfigured, OSError, ValueError):
        problems.append("sealing key not loadable")
    return problems


@require_safe
@never_cache
def readyz(request):
    """Ready for traffic: the database answers, migrations are applied, the evidence's
    triggers fire always, receipts can be sealed."""
    problems = _problems()
    return JsonResponse(
        {"status": "unavailable" if problems else "ready", "problems": problems},
        status=503 if problems else 200,
    )


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
