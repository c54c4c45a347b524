"""Queueing background work with the transaction it follows.

Each task is defined beside the function it runs, in its domain's package; this module only
knows how to queue one, so domain code can import it without importing any other domain.
"""

from functools import partial

from django.db import transaction
from django.tasks import Task
from django_tasks_db import DatabaseBackend


def enqueue_with_transaction(queued: Task, *args) -> None:
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
