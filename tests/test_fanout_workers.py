"""A fan-out whose workers are killed (SIGKILL) at random moments, counted at a real SMTP server
(aiosmtpd): everyone gets the announcement exactly once, except the few whose delivery is
uncertain, which are listed for the administrator and retried with the same Message-ID."""

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django_tasks_db.models import DBTaskResult

from acknowledgements.models import Notification
from tests.test_deployment import ROOT, _environment, _free_port

PEOPLE = 150
KILLS = 4


class Counting:
    """An SMTP server's handler that counts each recipient's messages and their Message-IDs,
    a little slowly, so that a kill often lands while a message is with the server."""

    def __init__(self):
        self.received: dict[str, list[str]] = defaultdict(list)

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.01)
        message_id = message_from_bytes(envelope.content)["Message-ID"]
        for recipient in envelope.rcpt_tos:
            self.received[recipient].append(message_id)
        return "250 OK"


@pytest.fixture
def smtp_server():
    handler = Counting()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, handler
    controller.stop()


def worker(environment, log: Path) -> subprocess.Popen:
    """A worker as the compose file starts one; its output is appended to `log`."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "manage.py", "db_worker", "--queue-name", "*", "--interval", "0.1",
             "--no-startup-delay", "--no-reload"],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


SETUP = f"""
from acknowledgements.models import Audience, User
from acknowledgements.policies import actions
employees = Audience.objects.get(slug="employees")
for n in range({PEOPLE}):
    User.objects.create_user(
        email=f"p{{n}}@example.com", password=None, full_name=f"Person {{n}}"
    ).audiences.add(employees)
policy = actions.create_policy(
    actor=None, name="Fan-out", slug="fan-out", owner=None, audiences=[employees]
)
draft = actions.create_draft(
    actor=None, policy=policy, version="1.0", body="# Fan-out\\n\\nRead me.\\n", change="material"
)
actions.publish_revision(actor=None, revision=draft)
"""
RETRY = """
from acknowledgements.models import PolicyRevision
from acknowledgements.notifications.actions import retry_failed_notifications
retry_failed_notifications(actor=None, revision=PolicyRevision.objects.get(policy__slug="fan-out"))
"""


def manage(environment, *arguments) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=environment,
        check=True,
        capture_output=True,
    )


def wait_until_sent(environment, deadline: float, log: Path) -> None:
    """Run a worker until no announcement is queued or being sent."""
    running = worker(environment, log)
    try:
        while time.monotonic() < deadline:
            waiting = Notification.objects.filter(
                status__in=[Notification.Status.QUEUED, Notification.Status.SENDING]
            )
            if not waiting.exists() and Notification.objects.exists():
                return
            time.sleep(0.5)
        left = list(waiting.values("pk", "status", "attempts", "next_attempt_at", "last_error"))
        tasks = list(DBTaskResult.objects.values("task_path", "status", "run_after"))
        pytest.fail(
            f"the fan-out did not finish; waiting: {left}\ntasks: {tasks}\n"
            f"workers' output (last 20,000 characters):\n{log.read_text()[-20_000:]}"
        )
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=30)


@pytest.mark.postgres
def test_killed_workers_send_everyone_the_announcement_once_or_list_the_doubt(
    evidence_db, smtp_server, tmp_path
):
    log = tmp_path / "workers.log"
    controller, server = smtp_server
    # As in production: tasks in the database, run by workers; email over SMTP.
    environment = _environment(
        PORTAL_TASK_BACKEND="database",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(controller.port),
        EMAIL_USE_TLS="0",
        PORTAL_EMAIL_BATCH_SIZE="10",
        PORTAL_EMAIL_CONNECTIONS="2",
        PORTAL_EMAIL_LEASE_SECONDS="3",
    )
    manage(environment, "shell", "-c", SETUP)  # publishing queues the announcement's task
    deadline = time.monotonic() + 300

    chance = random.Random(2026)
    for _ in range(KILLS):
        running = worker(environment, log)
        time.sleep(chance.uniform(1.5, 3.0))
        running.send_signal(signal.SIGKILL)
        running.wait()
        # As the compose file starts a worker: recover_work first, then db_worker.
        manage(environment, "recover_work")
    wait_until_sent(environment, deadline, log)

    rows = {n.person.email: n for n in Notification.objects.select_related("person")}
    uncertain = {email for email, n in rows.items() if n.status == Notification.Status.FAILED}
    counts = Counter({email: len(ids) for email, ids in server.received.items()})
    assert set(rows) == {f"p{n}@example.com" for n in range(PEOPLE)}
    assert all(n.status == Notification.Status.SENT for e, n in rows.items() if e not in uncertain)
    # Everyone recorded as sent was counted at the server exactly once; only the uncertain
    # (at most one per connection and kill) may differ, and they are listed, not resent.
    assert {e for e in rows if counts[e] != 1} <= uncertain
    assert len(uncertain) <= KILLS * 2
    assert all("may or may not have been delivered" in rows[e].last_error for e in uncertain)

    # The administrator's retry sends each uncertain one with the Message-ID of its first
    # attempt: a second copy, if there is one, is recognisably the same message.
    before = {e: len(server.received[e]) for e in uncertain}
    manage(environment, "shell", "-c", RETRY)
    wait_until_sent(environment, deadline, log)
    for email in uncertain:
        assert set(server.received[email]) == {rows[email].message_id}
        assert len(server.received[email]) == before[email] + 1
    assert Counter(n.status for n in Notification.objects.all()) == {
        Notification.Status.SENT: PEOPLE
    }
