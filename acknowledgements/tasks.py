"""Background work. Tasks take ids, look the rows up again, and call services or modules.

Services import this module to queue tasks with their transaction (`enqueue_with_transaction`),
so the functions here import the services they call when they run.
"""

from functools import partial

from django.db import transaction
from django.tasks import task
from django_tasks_db import DatabaseBackend

# A task sends at most this many batches, then enqueues a successor for the rest: each run
# stays short, and several workers share a large fan-out.
BATCHES_PER_RUN = 20


def enqueue_with_transaction(queued, *args) -> None:
    """Queue a task to run only if the current transaction commits.

    The database backend stores the task as a row of that transaction: it exists exactly when
    the work it follows does (none is lost if the process stops between commit and enqueue),
    and needs no commit of its own. Other backends (immediate: run in the web process) are
    called once the transaction has committed.
    """
    if isinstance(queued.get_backend(), DatabaseBackend):
        queued.enqueue(*args)
    else:
        transaction.on_commit(partial(queued.enqueue, *args))


@task()
def issue_receipt(acknowledgement_id: int) -> None:
    from .services import issue_receipt as issue

    issue(acknowledgement_id=acknowledgement_id)


@task()
def link_ledger() -> None:
    from .ledger import link_pending

    link_pending()


@task()
def email_receipt(receipt_id: int) -> None:
    from .notifications import send_receipt

    send_receipt(receipt_id=receipt_id)


@task()
def announce_revision(revision_id: int) -> None:
    from .models import PolicyRevision
    from .services import queue_announcements

    queue_announcements(revision=PolicyRevision.objects.get(pk=revision_id))
    send_notifications.enqueue()


@task()
def send_notifications() -> None:
    from .notifications import send_batch

    for _ in range(BATCHES_PER_RUN):
        if not send_batch():
            return
    send_notifications.enqueue()


@task()
def email_concern(report_id: int) -> None:
    from .notifications import send_concern

    send_concern(report_id=report_id)


@task()
def build_export(job_id: int) -> None:
    from .services import build_export as build

    build(job_id=job_id)
