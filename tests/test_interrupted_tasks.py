"""Tasks a stopped worker left running (killed, out of memory, its machine lost) are recorded as
failed and queued again by `recover_work`, once, and only after they have run too long to be
running still."""

import io

import pytest
import time_machine
from django.core.management import call_command
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from acknowledgements import jobs
from acknowledgements.models import Receipt
from acknowledgements.receipts import actions as receipt_actions

DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


@pytest.fixture
def database_tasks(settings, db):
    settings.TASKS = DATABASE_TASKS  # as in production: tasks are rows, run by db_worker


def left_running(task, *args) -> DBTaskResult:
    """A task a worker claimed, then died running (it never recorded how it ended)."""
    row = DBTaskResult.objects.get(id=task.enqueue(*args).id)
    row.claim("a-worker-that-was-killed")
    return row


def test_a_task_left_running_is_failed_and_queued_again_with_its_arguments(
    database_tasks, signer, revision, sign
):
    acknowledgement = sign(signer, revision)
    DBTaskResult.objects.all().delete()  # the signature's own receipt task: not this test's
    killed = left_running(receipt_actions.issue_receipt_task, acknowledgement.receipt_number)

    assert jobs.requeue_interrupted_tasks() == 0  # a task may still be running: wait
    later = timezone.now() + jobs.INTERRUPTED_AFTER
    with time_machine.travel(later, tick=False):
        assert jobs.requeue_interrupted_tasks() == 1
        assert jobs.requeue_interrupted_tasks() == 0  # once

    killed.refresh_from_db()
    assert killed.status == TaskResultStatus.FAILED
    assert killed.exception_class_path == "acknowledgements.jobs.TaskInterrupted"
    assert "Its worker stopped while running it (still running 30 minutes" in killed.traceback
    (again,) = DBTaskResult.objects.ready()
    assert again.task_path == killed.task_path
    assert again.args_kwargs == killed.args_kwargs
    assert (again.queue_name, again.priority) == (killed.queue_name, killed.priority)

    # Run as a worker runs it: the receipt is issued.
    again.task.call(*again.args_kwargs["args"])
    assert Receipt.objects.get().acknowledgement == acknowledgement


def test_finished_and_waiting_tasks_are_left_alone(database_tasks, signer, revision, sign):
    acknowledgement = sign(signer, revision)
    DBTaskResult.objects.all().delete()
    waiting = receipt_actions.issue_receipt_task.enqueue(acknowledgement.receipt_number)
    done = DBTaskResult.objects.get(
        id=receipt_actions.issue_receipt_task.enqueue(acknowledgement.receipt_number).id
    )
    done.claim("a-worker")
    done.set_successful(None)

    with time_machine.travel(timezone.now() + 2 * jobs.INTERRUPTED_AFTER, tick=False):
        assert jobs.requeue_interrupted_tasks() == 0

    assert DBTaskResult.objects.get(id=waiting.id).status == TaskResultStatus.READY
    assert DBTaskResult.objects.get(id=done.id).status == TaskResultStatus.SUCCESSFUL
    assert DBTaskResult.objects.count() == 2


def test_a_task_an_upgrade_removed_is_failed_and_not_queued_again(database_tasks):
    row = left_running(receipt_actions.issue_receipt_task, "VK-0000-0000-0000")
    DBTaskResult.objects.filter(id=row.id).update(task_path="acknowledgements.gone.task")

    with time_machine.travel(timezone.now() + jobs.INTERRUPTED_AFTER, tick=False):
        assert jobs.requeue_interrupted_tasks() == 1

    assert DBTaskResult.objects.get(id=row.id).status == TaskResultStatus.FAILED
    assert not DBTaskResult.objects.ready().exists()


def test_recover_work_says_how_many_tasks_it_queued_again(database_tasks):
    left_running(receipt_actions.issue_receipt_task, "VK-0000-0000-0000")

    out = io.StringIO()
    with time_machine.travel(timezone.now() + jobs.INTERRUPTED_AFTER, tick=False):
        call_command("recover_work", stdout=out)

    assert out.getvalue().startswith("Tasks interrupted, queued again: 1;")
