"""Queueing background work with the transaction it follows.

Each task is defined beside the function it runs, in its domain's package; this module only
knows how to queue one, so domain code can import it without importing any other domain.
"""

from functools import partial

from django.db import transaction
from django.tasks import Task
from django.tasks.signals import task_enqueued
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
