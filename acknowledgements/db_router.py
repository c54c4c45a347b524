"""Send the reports' reads to a PostgreSQL read replica when one is configured.

`DATABASE_REPLICA_URL` adds a "replica" database. The ReportingReadsMiddleware marks each
request under /reports/ (dashboards, lists, exports, streamed while the response is sent);
their reads then go to the replica, everything else to the primary. A replica lags the
primary by a moment: reports say "as of" a time, and writes never go there.
"""

from contextvars import ContextVar

from django.conf import settings

REPLICA = "replica"
REPORT_PATHS = ("/reports/",)

_reporting: ContextVar[bool] = ContextVar("reporting", default=False)


class ReportingReadsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Set for the whole request and not reset afterwards: a streamed export is read after
        # this middleware has returned. The next request in this thread sets it again.
        _reporting.set(request.path.startswith(REPORT_PATHS))
        return self.get_response(request)


class ReportingReplicaRouter:
    def db_for_read(self, model, **hints):
        if _reporting.get() and REPLICA in settings.DATABASES:
            return REPLICA
        return None

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
