"""Figure 4: a material revision announced to everyone in scope, sent by one worker over SMTP.

    python -m bench.fanout --size full --json out.json

A local SMTP sink (bench/smtp_sink.py, asyncio, a separate process) receives the mail; the
portal's own settings send to it (EMAIL_HOST=127.0.0.1, EMAIL_PORT, EMAIL_USE_TLS=0: Django's
SMTP backend, one connection per batch). Each run publishes a new material revision of the
Acceptable Use Policy (policy_actions.create_draft + policy_actions.publish_revision; the announce task it
queues is left in the queue) and then does, in this one process, what the tasks do:
notification_actions.queue_announcements (tasks.announce_revision), then notifications.send_batch until
nothing is left (tasks.send_notifications). The first two batches (50 and 500 notifications)
run under CaptureQueriesContext: the statement count must not grow with the batch. At the
sink, every person in scope must appear exactly once per run. A run stops at the target (300
s): what is still queued then is counted (the target is missed) and removed, never resent.

Baseline: the portal's SMTP backend sending one real announcement's bytes again and again to
the same sink, 500 per connection (no database, no templates, no MIME building): the
transport's own limit, sink included.
"""

from __future__ import annotations

import os
import subprocess
import time

from bench.common import (
    ADMIN_EMAIL,
    OUT,
    Figure,
    free_port,
    main_args,
    median,
    python,
    size,
    wait_for_port,
    write_json,
)

TARGET_SECONDS = 300
PER_S_TARGET = 100_000 / TARGET_SECONDS
POLICY_SLUG = "acceptable-use-policy"


def sink_lines(path) -> list[str]:
    with open(path) as lines:
        return lines.read().splitlines()


def bare_smtp(count: int, template_message) -> float:
    """The transport's own limit: one real announcement's bytes sent again and again."""
    import email.policy

    from django.core.mail import mailers

    from acknowledgements.notifications.mail import PreparedEmail

    serialised = template_message.message(policy=email.policy.SMTP).as_bytes()
    sent, started = 0, time.perf_counter()
    while sent < count:
        with mailers.default as mailer:
            for _ in range(min(500, count - sent)):
                address = f"bare{sent}@bench.example.com"
                mailer.send_messages([PreparedEmail(serialised=serialised, to=[address])])
                sent += 1
    return count / (time.perf_counter() - started)


def rendered_message(policy, emails: set[str]):
    """One real announcement email, rendered by send_batch into a locmem mailer."""
    from django.core import mail
    from django.test.utils import override_settings

    from acknowledgements.models import Notification, User
    from acknowledgements.notifications import sending as notifications
    from acknowledgements.standings import coverage

    person = User.objects.filter(email=min(emails)).get()
    Notification.objects.create(
        person=person,
        revision=coverage.timeline_for(policy).current,
        kind=Notification.Kind.REMINDER,
        days_before_due=999,  # unlike any real reminder: never in the way of the runs
    )
    locmem = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    with override_settings(MAILERS=locmem):
        mail.outbox = []
        if notifications.send_batch(size=1) != 1 or len(mail.outbox) != 1:
            raise SystemExit("could not render the baseline's sample email")
        return mail.outbox[0]


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    chosen = size(args.size)
    port = free_port()
    recipients_file = OUT / "smtp-recipients.txt"
    recipients_file.unlink(missing_ok=True)
    recipients_file.touch()
    sink_log = (OUT / "smtp-sink.log").open("w")
    sink = subprocess.Popen(
        [python(), "-m", "bench.smtp_sink", str(port), str(recipients_file)],
        stdout=sink_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process=sink)
        os.environ.update(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(port), EMAIL_USE_TLS="0")
        result = measure(chosen, recipients_file)
    finally:
        sink.terminate()
        sink.wait(timeout=30)
        sink_log.close()
    write_json(args.json, result)


def measure(chosen, recipients_file) -> dict:
    from bench.common import django_setup

    django_setup()
    from django.db import connection
    from django.db.models import Count
    from django.test.utils import CaptureQueriesContext

    from acknowledgements.models import Audience, Notification, Policy, PolicyRevision, User
    from acknowledgements.notifications import actions as notification_actions
    from acknowledgements.notifications import sending as notifications
    from acknowledgements.policies import actions as policy_actions

    admin = User.objects.get(email=ADMIN_EMAIL)
    policy = Policy.objects.get(slug=POLICY_SLUG)
    audiences = list(Audience.objects.all())
    expected = set(
        User.objects.filter(is_active=True, audiences__in=audiences).values_list("email", flat=True)
    )
    message = rendered_message(policy, expected)
    offset = len(sink_lines(recipients_file))
    bare_rate = bare_smtp(chosen.bare_smtp_messages, message)
    if len(sink_lines(recipients_file)) - offset != chosen.bare_smtp_messages:
        raise SystemExit("the sink did not receive every bare message")

    latest = max(int(v.split(".")[0]) for v in policy.revisions.values_list("version", flat=True))
    runs = []
    for number in range(chosen.fanout_runs):
        draft = policy_actions.create_draft(
            actor=admin,
            policy=policy,
            version=f"{latest + 1 + number}.0",
            body=f"# Acceptable Use Policy\n\nFan-out benchmark revision {number}.\n",
            change=PolicyRevision.Change.MATERIAL,
            change_summary="A material revision published by the fan-out benchmark.",
            audiences=audiences,
        )
        revision = policy_actions.publish_revision(actor=admin, revision=draft)
        offset = len(sink_lines(recipients_file))
        started = time.perf_counter()
        queued = notification_actions.queue_announcements(revision=revision)
        queue_s = time.perf_counter() - started
        counts = {}
        for batch in (50, 500):
            with CaptureQueriesContext(connection) as captured:
                taken = notifications.send_batch(size=batch)
            counts[batch] = {"taken": taken, "queries": len(captured.captured_queries)}
        deadline = started + TARGET_SECONDS
        while time.perf_counter() < deadline and notifications.send_batch():
            pass
        total_s = time.perf_counter() - started
        # Past the target, the rest stays queued: counted, then removed so runs stay independent.
        left = Notification.objects.filter(revision=revision, status=Notification.Status.QUEUED)
        unsent = set(left.values_list("person__email", flat=True))
        received = sink_lines(recipients_file)[offset:]
        addresses = [a for line in received for a in line.split(",") if a]
        statuses = dict(
            Notification.objects.filter(revision=revision)
            .values_list("status")
            .annotate(n=Count("pk"))
        )
        left.delete()
        runs.append(
            {
                "version": revision.version,
                "queued": queued,
                "queue_s": queue_s,
                "total_s": total_s,
                "messages": len(received),
                "unique": len(set(addresses)),
                "duplicates": len(addresses) - len(set(addresses)),
                "missing": len(expected - set(addresses) - unsent),
                "unsent_at_deadline": len(unsent),
                "unexpected": len(set(addresses) - expected),
                "statuses": statuses,
                "queries_per_batch": counts,
                "rate": len(received) / total_s,
            }
        )
    total = median(r["total_s"] for r in runs)
    rate = median(r["rate"] for r in runs)
    # Scaled to 100,000 people so the smoke run's figure reads the same way.
    projected = 100_000 / rate
    complete = all(
        r["duplicates"] == 0 and r["missing"] == 0 and r["unexpected"] == 0
        and r["messages"] + r["unsent_at_deadline"] == len(expected)
        and r["statuses"].get(Notification.Status.SENT) == r["messages"]
        for r in runs
    )  # fmt: skip
    unsent = max(r["unsent_at_deadline"] for r in runs)
    query_counts = {b: runs[0]["queries_per_batch"][b]["queries"] for b in (50, 500)}
    constant = query_counts[50] == query_counts[500]
    figures = [
        Figure(
            number="4a",
            name=f"Fan-out: announce a material revision to {len(expected):,} people, one worker",
            value=rate,
            unit="emails/s",
            baseline_name="same SMTP backend + sink, one serialised message resent, no DB",
            baseline=bare_rate,
            ratio=rate / bare_rate,
            target=f"> {PER_S_TARGET:.0f}/s (100,000 in <= {TARGET_SECONDS} s)",
            met=rate > PER_S_TARGET and unsent == 0,
            note=(
                f"median of {chosen.fanout_runs}: {total:.0f} s (queueing "
                f"{median(r['queue_s'] for r in runs):.1f} s), i.e. {projected:.0f} s for 100,000"
                + (
                    f"; stopped at the {TARGET_SECONDS} s target with {unsent:,} not yet sent"
                    if unsent
                    else ""
                )
                + "; SMTP to a local asyncio sink"
            ),
            samples=[r["rate"] for r in runs],
        ),
        Figure(
            number="4b",
            name="Fan-out: SQL statements per send_batch, 50 vs 500 notifications",
            value=query_counts[500],
            unit="queries",
            baseline_name="batch of 50",
            baseline=query_counts[50],
            ratio=query_counts[500] / query_counts[50],
            target="constant (1.0x)",
            met=constant,
        ),
        Figure(
            number="4c",
            name="Fan-out: duplicates + misses counted at the sink",
            value=sum(r["duplicates"] + r["missing"] + r["unexpected"] for r in runs),
            unit="emails",
            target="0",
            met=complete,
            note=(
                f"per run: {', '.join(str(r['messages']) for r in runs)} messages received for "
                f"{len(expected):,} people, each sent notification exactly once, none lost"
                + (f" ({unsent:,} still queued at the deadline)" if unsent else "")
            ),
        ),
    ]
    return {"figures": [f.as_dict() for f in figures], "runs": runs, "bare_rate": bare_rate}


if __name__ == "__main__":
    main()
