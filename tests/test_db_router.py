from django.test import RequestFactory

from acknowledgements.db_router import ReportingReadsMiddleware, ReportingReplicaRouter
from acknowledgements.models import LedgerEntry

router = ReportingReplicaRouter()


def reads_during(path: str, settings) -> str | None:
    seen = {}

    def view(request):
        seen["db"] = router.db_for_read(LedgerEntry)
        return None

    ReportingReadsMiddleware(view)(RequestFactory().get(path))
    return seen["db"]


def test_report_reads_go_to_the_replica_when_there_is_one(settings, monkeypatch):
    # Only the router looks at the alias here; no connection is opened to it.
    monkeypatch.setitem(settings.DATABASES, "replica", dict(settings.DATABASES["default"]))
    assert reads_during("/reports/", settings) == "replica"
    assert reads_during("/reports/policies/x/export/acknowledgements.csv", settings) == "replica"
    assert reads_during("/policies/x/", settings) is None
    assert router.db_for_write(LedgerEntry) == "default"


def test_without_a_replica_everything_reads_the_primary(settings):
    assert "replica" not in settings.DATABASES
    assert reads_during("/reports/", settings) is None


def test_migrations_run_on_the_primary_only():
    assert router.allow_migrate("default", "acknowledgements")
    assert not router.allow_migrate("replica", "acknowledgements")
