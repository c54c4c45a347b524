"""Queueing background work with the transaction it follows.

Each task is defined beside the function it runs, in its domain's package; this module only
knows how to queue one (and to queue again one a stopped worker left running), so domain code
can import it without importing any other domain.
"""

import datetime as dt
from functools import partial

from django.core.exceptions import SuspiciousOperation
from django.db import connection, transaction
from django.tasks import Task
from django.tasks.signals import task_enqueued
from django.utils import timezone
from django_tasks_db import DatabaseBackend
from django_tasks_db.compat import normalize_json
from django_tasks_db.models import DBTaskResult

from acknowledgements.write_batch import WriteBatch


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


def enqueue_in_batch(batch: WriteBatch, queued: Task, *args) -> None:
    """As `enqueue_with_transaction`, the database backend's row sent with the batch's rows
    instead of in a round trip of its own (the signing request's hot path)."""
    backend = queued.get_backend()
    if not isinstance(backend, DatabaseBackend):
        transaction.on_commit(partial(queued.enqueue, *args))
        return
    backend.validate_task(queued)
    # The row django_tasks_db's DatabaseBackend.enqueue creates (tests/test_write_batch.py
    # compares the two, field by field).
    row: DBTaskResult = DBTaskResult(
        id=backend._get_id(),
        args_kwargs=normalize_json({"args": args, "kwargs": {}}),
        priority=queued.priority,
        task_path=queued.module_path,
        queue_name=queued.queue_name,
        run_after=queued.run_after,  # type: ignore[misc] # None: the model's pre_save sets it
        backend_name=backend.alias,
    )
    batch.insert_new(row)
    # As the backend sends it: before the transaction commits (Django logs the task's id).
    task_enqueued.send(type(backend), task_result=row.task_result)


# A task still running this long after it started was interrupted: its worker stopped without
# recording how it ended (killed, out of memory, its machine lost), and no worker takes a
# running task. The portal's longest (importing 100,000 people: bench/RESULTS.md, 7a) takes
# under two minutes.
INTERRUPTED_AFTER = dt.timedelta(minutes=30)


class TaskInterrupted(Exception):
    """The outcome recorded for a task whose worker stopped while running it."""


def requeue_interrupted_tasks(
    *, moment: dt.datetime | None = None, after: dt.timedelta = INTERRUPTED_AFTER
) -> int:
    """Record as failed each task a stopped worker left running, and queue it again; how many.

    Every task of the portal's may run twice: each finds what was already done (a receipt
    issued, an email's row, a claimed delivery) and does the rest; an email whose sending was
    cut short may go out twice, which beats never. Only the database backend leaves tasks
    behind: the others run them where they are queued.
    """
    moment = moment or timezone.now()
    with transaction.atomic():
        stale = DBTaskResult.objects.running().filter(started_at__lt=moment - after)
        if connection.features.has_select_for_update_skip_locked:
            # Two recoveries at once take different tasks, and queue each again once.
            stale = stale.select_for_update(skip_locked=True)
        interrupted = list(stale)
        for row in interrupted:
            try:
                task = row.task
            except (ImportError, SuspiciousOperation):  # a task an upgrade removed
                row.set_failed(TaskInterrupted("Its worker stopped while running it."))
                continue
            row.set_failed(
                TaskInterrupted(
                    "Its worker stopped while running it (still running "
                    f"{after.total_seconds() / 60:.0f} minutes after it started); it was queued "
                    "again."
                )
            )
            task.enqueue(*row.args_kwargs["args"], **row.args_kwargs["kwargs"])
    return len(interrupted)
