"""Webhooks: signed deliveries a real receiver verifies both with the Standard Webhooks reference
library and with a verifier written here from the specification, retries and backoff, endpoints turned off after a day of failures, the refusal of
internal addresses, at-least-once delivery, the pages, and `manage.py webhook`."""

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import CommandError, call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import RequestFactory
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks_db.models import DBTaskResult
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from acknowledgements.api.representation import acknowledgement_fields, revision_fields
from acknowledgements.models import LedgerEntry, WebhookDelivery, WebhookEndpoint
from acknowledgements.policies import actions as policy_actions
from acknowledgements.signing import actions as signing_actions
from acknowledgements.standings import renewal
from acknowledgements.webhooks import actions, addresses, delivery, events, messages
from tests.conftest import client_evidence

ALL_EVENTS = list(WebhookEndpoint.Event.values)


# --- The specification's verification, written independently of the library ------------------

TOLERANCE_SECONDS = 5 * 60  # the specification's recommended tolerance, as the library's


class SignatureRefused(Exception):
    pass


def verify_as_specified(secret: str, headers: dict[str, str], body: bytes) -> dict:
    """Verify a message as the Standard Webhooks specification describes it, sharing no code
    with the library the portal signs with: the key is the base64 after `whsec_`, the signed
    content `{webhook-id}.{webhook-timestamp}.{body}`, the signature HMAC-SHA256 in base64,
    `webhook-signature` a space-separated list of `v1,<signature>` (other versions ignored),
    compared in constant time; a timestamp off by more than the tolerance is refused."""
    if not secret.startswith("whsec_"):
        raise SignatureRefused("the secret lacks its whsec_ prefix")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error as error:
        raise SignatureRefused(f"the secret is not base64: {error}") from error
    named = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = named["webhook-id"]
        timestamp = named["webhook-timestamp"]
        signatures = named["webhook-signature"]
    except KeyError as missing:
        raise SignatureRefused(f"no {missing.args[0]} header") from None
    if not timestamp.isdigit():
        raise SignatureRefused("the timestamp is not a number of seconds")
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureRefused("the timestamp is outside the tolerance")
    content = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return json.loads(body)
    raise SignatureRefused("no v1 signature matches")


def test_the_independent_verifier_refuses_what_the_specification_refuses():
    secret = messages.new_secret()
    body = b'{"data":{"version":"1.0"},"timestamp":"2026-01-01T00:00:00Z","type":"t"}'
    now = timezone.now()
    signed = messages.headers(secret=secret, event_id="msg_1", body=body.decode(), moment=now)
    assert verify_as_specified(secret, signed, body)["data"] == {"version": "1.0"}
    # One of several signatures (a key being rotated, a future version) is enough.
    rotating = {**signed, "webhook-signature": f"v1a,abc v1,AAAA {signed['webhook-signature']}"}
    assert verify_as_specified(secret, rotating, body)["type"] == "t"

    refused = {
        "another secret": (messages.new_secret(), signed, body),
        "a changed body": (secret, signed, body.replace(b"1.0", b"9.9")),
        "a changed id": (secret, {**signed, "webhook-id": "msg_2"}, body),
        "a changed time": (
            secret,
            {**signed, "webhook-timestamp": str(int(signed["webhook-timestamp"]) + 1)},
            body,
        ),
        "another version": (
            secret,
            {**signed, "webhook-signature": signed["webhook-signature"].replace("v1,", "v2,")},
            body,
        ),
        "no signature": (
            secret,
            {k: v for k, v in signed.items() if k != "webhook-signature"},
            body,
        ),
    }
    accepted = []
    for case, (key, headers, content) in refused.items():
        try:
            verify_as_specified(key, headers, content)
        except SignatureRefused:
            continue
        accepted.append(case)
    assert accepted == []
    for off in (TOLERANCE_SECONDS + 5, -TOLERANCE_SECONDS - 5):
        with (
            time_machine.travel(now + dt.timedelta(seconds=off), tick=False),
            pytest.raises(SignatureRefused, match="tolerance"),
        ):
            verify_as_specified(secret, signed, body)


# --- A real receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    # What the reference verifier made of it when it arrived, with the receiver's secret.
    checked: dict | Exception | None = None
    # What verify_as_specified made of it then.
    checked_as_specified: dict | Exception | None = None


@dataclass
class Receiver:
    """An HTTP server in a thread that records what it is sent and answers `status`."""

    status: int = 204
    delay: float = 0.0
    secret: str = ""
    location: str = ""
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/portal?source=test"

    def verified(self, secret: str) -> list[dict]:
        """Each message received, as the reference verifier read it when it arrived (it refuses
        a message whose signature is not `secret`'s, or signed long before it arrived)."""
        assert secret == self.secret
        for message in self.received:
            if isinstance(message.checked, Exception):
                raise message.checked
        return [message.checked for message in self.received]  # type: ignore[misc]

    def verified_as_specified(self, secret: str) -> list[dict]:
        """The same, as the independent verifier read each message when it arrived."""
        assert secret == self.secret
        for message in self.received:
            if isinstance(message.checked_as_specified, Exception):
                raise message.checked_as_specified
        return [message.checked_as_specified for message in self.received]  # type: ignore[misc]


@contextmanager
def running(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            message = Received(self.path, dict(self.headers.items()), body)
            try:
                message.checked = Webhook(receiver.secret).verify(body, message.headers)
            except Exception as refused:
                message.checked = refused
            try:
                message.checked_as_specified = verify_as_specified(
                    receiver.secret, message.headers, body
                )
            except Exception as refused:
                message.checked_as_specified = refused
            receiver.received.append(message)
            if receiver.delay:
                time.sleep(receiver.delay)
            self.send_response(receiver.status)
            if receiver.location:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.server.daemon_threads = True
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = True  # the receiver listens on 127.0.0.1
    with running(Receiver()) as started:
        yield started


@pytest.fixture
def endpoint(db, admin_user, receiver):
    """An endpoint for every event, registered by an administrator: (endpoint, secret)."""
    registered, secret = actions.register_endpoint(
        actor=admin_user, url=receiver.url, events=ALL_EVENTS
    )
    receiver.secret = secret
    return registered, secret


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks):
    """Run what a block queued for after its commit (the immediate task backend's tasks)."""

    @contextmanager
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            yield

    return run


def run_database_tasks() -> list[str]:
    """Run the tasks queued in the database backend, as a worker would, oldest first."""
    ran = []
    while queued := DBTaskResult.objects.order_by("enqueued_at", "pk").first():
        queued.delete()
        import_string(queued.task_path).func(
            *queued.args_kwargs["args"], **queued.args_kwargs["kwargs"]
        )
        ran.append(queued.task_path)
    return ran


# --- Each event, signed and with the API's fields ---------------------------------------------------


def test_each_event_is_delivered_once_signed_with_the_api_fields(
    endpoint, receiver, after_commit, policy, publish, signer, sign, make_person, settings
):
    registered, secret = endpoint
    with after_commit():
        revision = publish(policy, "1.0", due_days=3)
    with after_commit():
        acknowledgement = sign(signer, revision)
    decliner = make_person("Blaise Pascal", email="blaise@example.com")
    late = make_person("Charles Babbage", email="charles@example.com")
    with after_commit():
        decline = signing_actions.record_decline(
            person=decliner, revision=revision, reason="No.", client=client_evidence()
        )
    with time_machine.travel(timezone.now() + dt.timedelta(days=4)), after_commit():
        call_command("send_reminders", stdout=StringIO())
        call_command("send_reminders", stdout=StringIO())  # again: nobody is overdue twice
    # Renewed monthly from now on: the signer's signature lapses a month after it was made.
    with after_commit():
        policy_actions.set_renewal_period(actor=None, policy=policy, months=1)
    lapsed = renewal.months_later(acknowledgement.signed_at, 1, "Europe/Paris")
    with time_machine.travel(lapsed + dt.timedelta(hours=1)), after_commit():
        call_command("send_reminders", stdout=StringIO())
        call_command("send_reminders", stdout=StringIO())  # again: told once per renewal

    messages = receiver.verified(secret)
    assert receiver.verified_as_specified(secret) == messages  # both verifiers agree
    by_type: dict[str, list[dict]] = {}
    for message in messages:
        by_type.setdefault(message["type"], []).append(message)
    assert sorted(by_type) == sorted(ALL_EVENTS)
    assert [len(by_type[event]) for event in ALL_EVENTS] == [1, 1, 1, 3, 1]
    assert receiver.received[0].path == "/hooks/portal?source=test"

    revision.refresh_from_db()
    assert by_type["revision.published"][0]["data"] == revision_fields(revision)
    acknowledgement = (
        type(acknowledgement)
        .objects.select_related("revision__policy", "person", "ledger_entry", "receipt")
        .get(pk=acknowledgement.pk)
    )
    assert by_type["acknowledgement.signed"][0]["data"] == acknowledgement_fields(
        acknowledgement, settings.PORTAL_BASE_URL
    )
    declined = by_type["acknowledgement.declined"][0]["data"]
    assert declined["person"]["email"] == "blaise@example.com"
    assert (declined["policy"], declined["version"]) == ("test-policy", "1.0")
    assert declined["ledger_sequence"] == LedgerEntry.objects.get(pk=decline.pk).sequence
    overdue = {m["data"]["person"]["email"]: m["data"] for m in by_type["person.overdue"]}
    # A decline does not stop the clock; the administrator is an employee who has not signed.
    assert set(overdue) == {"blaise@example.com", "charles@example.com", "grace@example.com"}
    assert overdue[late.email]["status"] == "overdue"
    assert overdue[late.email]["policy"] == "test-policy"
    (renewal_due,) = (m["data"] for m in by_type["person.renewal_due"])
    assert renewal_due["person"]["email"] == signer.email
    assert renewal_due["status"] == "renewal_due"

    # The headers of the specification, one id per event, and every delivery recorded.
    ids = [message.headers["webhook-id"] for message in receiver.received]
    assert len(set(ids)) == len(ids) == 7
    assert all(m.headers["webhook-signature"].startswith("v1,") for m in receiver.received)
    assert all(m.headers["content-type"] == "application/json" for m in receiver.received)
    assert set(registered.deliveries.values_list("status", "attempts", "last_response_code")) == {
        ("delivered", 1, 204)
    }


def test_a_receiver_with_another_secret_refuses_the_message(
    endpoint, receiver, after_commit, revision
):
    with after_commit():
        events.emit(events.REVISION_PUBLISHED, revision.pk)
    [message] = receiver.received
    assert Webhook(endpoint[1]).verify(message.body, message.headers)["data"]["version"] == "1.0"
    with pytest.raises(WebhookVerificationError):
        Webhook(messages.new_secret()).verify(message.body, message.headers)
    tampered = message.body.replace(b'"1.0"', b'"9.9"')
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint[1]).verify(tampered, message.headers)


def test_an_event_of_a_rolled_back_transaction_is_never_sent(
    endpoint, receiver, after_commit, revision, signer, sign
):
    with after_commit(), pytest.raises(RuntimeError), transaction.atomic():
        sign(signer, revision)
        raise RuntimeError("the request fails after signing")
    assert WebhookDelivery.objects.filter(event_type="acknowledgement.signed").count() == 0
    assert [m for m in receiver.received if b"acknowledgement.signed" in m.body] == []


def test_an_endpoint_receives_only_the_events_it_chose(
    db, receiver, after_commit, policy, publish, signer, sign
):
    _registered, secret = actions.register_endpoint(
        actor=None, url=receiver.url, events=["acknowledgement.signed"]
    )
    receiver.secret = secret
    with after_commit():
        revision = publish(policy, "1.0")
        sign(signer, revision)
    assert [m["type"] for m in receiver.verified(secret)] == ["acknowledgement.signed"]


# --- Retries, backoff, a day of failures ---------------------------------------------------------


def test_failures_are_retried_with_backoff_for_a_day_then_the_endpoint_is_turned_off(
    endpoint, receiver, after_commit, revision, signer, sign, mailoutbox
):
    registered, _secret = endpoint
    receiver.status = 500
    start = timezone.now()
    with time_machine.travel(start, tick=False), after_commit():
        sign(signer, revision)
    sent = WebhookDelivery.objects.get(event_type="acknowledgement.signed")
    sent.refresh_from_db()
    assert (sent.status, sent.attempts, sent.last_response_code) == ("pending", 1, 500)

    waits = []
    moment = start
    while sent.status == WebhookDelivery.Status.PENDING:
        waits.append(sent.next_attempt_at - moment)
        moment = sent.next_attempt_at
        with time_machine.travel(moment, tick=False), after_commit():
            delivery.resume_deliveries()
        sent.refresh_from_db()
    assert waits == list(delivery.RETRY_DELAYS)
    assert sum(waits, dt.timedelta()) == dt.timedelta(days=1)
    assert (sent.status, sent.attempts, sent.last_error) == ("failed", 8, "HTTP 500")
    assert len([m for m in receiver.received if b"acknowledgement.signed" in m.body]) == 8
    # Every attempt carried the same id and body, signed anew.
    signed = [m for m in receiver.received if b"acknowledgement.signed" in m.body]
    assert len({m.headers["webhook-id"] for m in signed}) == 1
    assert len({m.body for m in signed}) == 1

    registered.refresh_from_db()
    assert not registered.active
    assert registered.disabled_reason == WebhookEndpoint.DisabledReason.FAILING
    [email] = [sent for sent in mailoutbox if "Webhook" in sent.subject]
    assert email.to == ["grace@example.com"]
    assert registered.url in email.subject
    assert "HTTP 500" in email.body
    assert any(
        b"webhook_endpoint_disabled" in bytes(entry.payload)
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
    )

    # Turned off, it is sent nothing more, and an event meanwhile makes no delivery.
    with after_commit():
        events.emit(events.ACKNOWLEDGEMENT_SIGNED, sent.pk)
    assert WebhookDelivery.objects.count() == 1


def test_a_success_clears_the_failing_clock(
    endpoint, receiver, after_commit, revision, signer, sign
):
    registered, _secret = endpoint
    receiver.status = 503
    with after_commit():
        sign(signer, revision)
    registered.refresh_from_db()
    assert registered.failing_since is not None
    receiver.status = 200
    sent = WebhookDelivery.objects.get()
    with time_machine.travel(sent.next_attempt_at, tick=False), after_commit():
        delivery.resume_deliveries()
    registered.refresh_from_db()
    sent.refresh_from_db()
    assert (sent.status, sent.attempts, registered.failing_since) == ("delivered", 2, None)


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    endpoint, receiver, after_commit, revision, signer, sign, settings
):
    settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.delay = 2
    with after_commit():
        sign(signer, revision)
    sent = WebhookDelivery.objects.get()
    assert sent.status == "pending"
    assert sent.last_response_code is None
    assert "timed out" in sent.last_error.lower()


def test_a_delivery_that_timed_out_is_retried_later_and_delivered(
    endpoint, receiver, after_commit, revision, signer, sign, settings
):
    _registered, secret = endpoint
    settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.delay = 2
    start = timezone.now()
    with time_machine.travel(start, tick=False), after_commit():
        sign(signer, revision)
    sent = WebhookDelivery.objects.get()
    assert (sent.status, sent.attempts, sent.last_response_code) == ("pending", 1, None)
    assert sent.next_attempt_at == start + delivery.RETRY_DELAYS[0]

    receiver.delay = 0  # the receiver answers in time now
    with (
        time_machine.travel(sent.next_attempt_at - dt.timedelta(seconds=1), tick=False),
        after_commit(),
    ):
        delivery.resume_deliveries()  # not due yet: nothing is sent
    assert len(receiver.received) == 1
    with time_machine.travel(sent.next_attempt_at, tick=False), after_commit():
        delivery.resume_deliveries()
    sent.refresh_from_db()
    assert (sent.status, sent.attempts, sent.last_response_code) == ("delivered", 2, 204)
    assert sent.last_error == ""
    # The receiver had the same message twice, signed at each attempt's time.
    first, again = receiver.verified_as_specified(secret)
    assert first == again == receiver.verified(secret)[1]
    assert first["type"] == "acknowledgement.signed"
    ids = {message.headers["webhook-id"] for message in receiver.received}
    assert ids == {sent.event_id}
    timestamps = [int(message.headers["webhook-timestamp"]) for message in receiver.received]
    assert timestamps[1] - timestamps[0] == delivery.RETRY_DELAYS[0].total_seconds()


# --- Never from the request -----------------------------------------------------------------------


def test_a_slow_receiver_does_not_slow_signing(
    endpoint, receiver, logged_in, signer, revision, settings
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS = 5
    receiver.delay = 4  # slower than signing could ever be, within the timeout
    client = logged_in(signer)
    started = time.monotonic()
    response = client.post(
        "/policies/test-policy/v/1.0/sign/",
        {
            "agree": "on",
            "typed_name": "Ada Lovelace",
            "consent": "on",
            "browser_time_zone": "Europe/Paris",
        },
    )
    took = time.monotonic() - started
    assert response.status_code == 302
    assert took < receiver.delay, f"signing took {took:.1f} s"
    assert receiver.received == []
    assert "acknowledgements.webhooks.events.record_events_task" in set(
        DBTaskResult.objects.values_list("task_path", flat=True)
    )

    ran = run_database_tasks()  # the worker
    assert "acknowledgements.webhooks.delivery.deliver_webhook" in ran
    sent = WebhookDelivery.objects.get(event_type="acknowledgement.signed")
    assert (sent.status, sent.last_response_code) == ("delivered", 204)


def test_under_the_immediate_backend_a_delivery_waits_until_the_response_has_gone(
    endpoint, receiver, logged_in, signer, revision, settings, django_capture_on_commit_callbacks
):
    """`make run` runs every task in the web process: a signature's delivery is made once the
    server has sent the signer's response (and closed it), not while answering them."""
    assert settings.TASKS["default"]["BACKEND"].endswith(".ImmediateBackend")
    session = logged_in(signer).cookies[settings.SESSION_COOKIE_NAME].value
    csrf = "portalcsrftokenforthetestrequest"  # 32 letters: the cookie and the form agree
    request = RequestFactory().post(
        "/policies/test-policy/v/1.0/sign/",
        {
            "agree": "on",
            "typed_name": "Ada Lovelace",
            "consent": "on",
            "browser_time_zone": "Europe/Paris",
            "csrfmiddlewaretoken": csrf,
        },
    )
    environ = {
        **request.environ,
        "HTTP_COOKIE": f"{settings.SESSION_COOKIE_NAME}={session}; csrftoken={csrf}",
    }
    statuses = []
    # As the test client does: the test's transaction must not be closed between requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = WSGIHandler()(environ, lambda status, headers: statuses.append(status))
        assert statuses == ["302 Found"]
        sent = WebhookDelivery.objects.get(event_type="acknowledgement.signed")
        assert (sent.status, sent.attempts) == ("pending", 0)
        assert receiver.received == []

        response.close()  # the server has sent the response
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    sent.refresh_from_db()
    assert (sent.status, sent.attempts, sent.last_response_code) == ("delivered", 1, 204)
    [message] = receiver.verified_as_specified(endpoint[1])
    assert message["type"] == "acknowledgement.signed"


# --- Addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://localhost:8000/hook",  # a name that resolves to loopback
    ],
)
def test_internal_addresses_are_refused(url, settings):
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(addresses.AddressRefused, match="public addresses"):
        addresses.check(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "https://"),
        ("file:///etc/passwd", "https://"),
        ("https://user:secret@example.com/hook", "user name or password"),
        ("https:///hook", "must name a host"),
        ("https://example.com:99999/hook", "not a valid URL"),
    ],
)
def test_urls_that_are_not_http_are_refused(url, reason, settings):
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = True
    with pytest.raises(addresses.AddressRefused, match=reason):
        addresses.check(url)


def test_a_public_address_is_accepted_and_connected_to_as_checked(settings):
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False
    target = addresses.check("https://93.184.215.14:8443/hooks?x=1")
    assert (target.addresses, target.port, target.path) == (("93.184.215.14",), 8443, "/hooks?x=1")
    assert target.netloc == "93.184.215.14:8443"


def test_registration_refuses_an_internal_address_with_a_form_error(
    admin_user, logged_in, settings
):
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False
    client = logged_in(admin_user)
    response = client.post(
        "/manage/integrations/webhooks/",
        {"url": "http://169.254.169.254/latest/", "events": ["acknowledgement.signed"]},
    )
    assert response.status_code == 400
    assert "only sent to public addresses" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_a_delivery_is_checked_again_when_it_is_sent(
    endpoint, receiver, after_commit, revision, signer, sign, settings
):
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False  # the address became internal since
    with after_commit():
        sign(signer, revision)
    sent = WebhookDelivery.objects.get()
    assert receiver.received == []
    assert (sent.status, sent.last_response_code) == ("pending", None)
    assert "public addresses" in sent.last_error


def test_a_redirect_is_never_followed(endpoint, receiver, after_commit, revision, signer, sign):
    with running(Receiver()) as elsewhere:
        receiver.status = 302
        receiver.location = elsewhere.url
        with after_commit():
            sign(signer, revision)
        assert elsewhere.received == []
    sent = WebhookDelivery.objects.get()
    assert (sent.status, sent.last_response_code) == ("pending", 302)
    assert "not followed" in sent.last_error


# --- At least once --------------------------------------------------------------------------------


def test_a_delivery_whose_worker_died_is_sent_again_by_recover_work(
    endpoint, receiver, revision, signer, sign, after_commit, settings
):
    _registered, secret = endpoint
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    sign(signer, revision)
    record = DBTaskResult.objects.get(task_path__endswith="record_events_task")
    events.record_events_task.func(*record.args_kwargs["args"])
    sent = WebhookDelivery.objects.get()
    # A worker claims it and is killed before recording anything.
    assert delivery._claim(sent.pk, timezone.now())
    DBTaskResult.objects.all().delete()

    with time_machine.travel(timezone.now() + delivery.LEASE * 2, tick=False):
        call_command("recover_work", stdout=(out := StringIO()))
        assert "webhook deliveries taken back: 1, queued: 1" in out.getvalue()
        run_database_tasks()
    sent.refresh_from_db()
    assert (sent.status, sent.attempts) == ("delivered", 2)
    [message] = receiver.verified(secret)
    assert message["type"] == "acknowledgement.signed"


def test_recording_an_event_twice_makes_one_delivery_per_endpoint(
    endpoint, receiver, revision, signer, sign, settings
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    sign(signer, revision)
    record = DBTaskResult.objects.get(task_path__endswith="record_events_task")
    events.record_events_task.func(*record.args_kwargs["args"])
    events.record_events_task.func(*record.args_kwargs["args"])
    assert WebhookDelivery.objects.count() == 1


# --- The pages ------------------------------------------------------------------------------------


def test_an_administrator_registers_an_endpoint_and_sees_its_secret_once(
    admin_user, logged_in, receiver
):
    client = logged_in(admin_user)
    response = client.post(
        "/manage/integrations/webhooks/",
        {"url": receiver.url, "events": ["acknowledgement.signed", "person.overdue"]},
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    registered = WebhookEndpoint.objects.get()
    assert registered.secret in page
    assert registered.events == ["acknowledgement.signed", "person.overdue"]
    assert registered.created_by == admin_user
    assert registered.secret not in client.get("/manage/integrations/webhooks/").content.decode()
    integrations = client.get("/manage/integrations/").content.decode()
    assert f"/manage/integrations/webhooks/{registered.pk}/" in integrations
    assert registered.secret not in integrations
    assert any(
        b"webhook_endpoint_registered" in bytes(entry.payload)
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
    )


def test_the_log_shows_each_delivery_and_resends_one(
    endpoint, receiver, admin_user, logged_in, after_commit, revision, signer, sign
):
    registered, secret = endpoint
    with after_commit():
        sign(signer, revision)
    client = logged_in(admin_user)
    page = client.get(f"/manage/integrations/webhooks/{registered.pk}/").content.decode()
    sent = WebhookDelivery.objects.get()
    assert sent.event_id in page
    assert "Delivered" in page and "204" in page

    with after_commit():
        response = client.post(f"/manage/integrations/webhooks/deliveries/{sent.pk}/resend/")
    assert response.status_code == 302
    first, again = receiver.verified(secret)
    assert first == again
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
    sent.refresh_from_db()
    assert (sent.status, sent.attempts) == ("delivered", 1)
    assert any(
        b"webhook_delivery_resent" in bytes(entry.payload)
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
    )


def test_an_administrator_turns_an_endpoint_off_and_on_and_removes_it(
    endpoint, receiver, admin_user, logged_in, after_commit, revision, signer, sign
):
    registered, _secret = endpoint
    client = logged_in(admin_user)
    url = f"/manage/integrations/webhooks/{registered.pk}/"
    client.post(url, {"events": ["acknowledgement.signed"]})  # "active" unticked
    registered.refresh_from_db()
    assert (registered.active, registered.events) == (False, ["acknowledgement.signed"])
    assert registered.disabled_reason == WebhookEndpoint.DisabledReason.TURNED_OFF
    with after_commit():
        sign(signer, revision)
    assert receiver.received == []

    with after_commit():
        client.post(url, {"events": ["acknowledgement.signed"], "active": "on"})
    registered.refresh_from_db()
    assert registered.active and registered.disabled_at is None
    assert receiver.received == []  # events while it was off are not kept for it

    response = client.post(f"{url}remove/")
    assert response.status_code == 302
    assert not WebhookEndpoint.objects.exists()


# --- manage.py webhook ----------------------------------------------------------------------------


def test_the_command_registers_an_endpoint_and_prints_its_secret_last(
    db, receiver, after_commit, policy, publish
):
    out = StringIO()
    call_command(
        "webhook",
        "add",
        "--url",
        receiver.url,
        "--events",
        "revision.published,acknowledgement.signed",
        stdout=out,
    )
    secret = out.getvalue().splitlines()[-1]
    assert secret.startswith("whsec_")
    receiver.secret = secret
    registered = WebhookEndpoint.objects.get()
    assert registered.events == ["acknowledgement.signed", "revision.published"]
    with after_commit():
        publish(policy, "1.0")
    [message] = receiver.verified(secret)
    assert message["type"] == "revision.published"

    listed = StringIO()
    call_command("webhook", "list", stdout=listed)
    assert receiver.url in listed.getvalue() and secret not in listed.getvalue()
    call_command("webhook", "disable", "--id", str(registered.pk), stdout=StringIO())
    registered.refresh_from_db()
    assert not registered.active
    removed = StringIO()
    call_command("webhook", "remove", "--id", str(registered.pk), stdout=removed)
    assert removed.getvalue() == f"Removed endpoint {registered.pk} ({receiver.url}).\n"
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("url", "event_list", "message"),
    [
        ("https://93.184.215.14/hook", "person.renamed", "Unknown event"),
        ("http://127.0.0.1/hook", "acknowledgement.signed", "public addresses"),
    ],
)
def test_the_command_refuses_what_registration_refuses(db, url, event_list, message, settings):
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(CommandError, match=message):
        call_command("webhook", "add", "--url", url, "--events", event_list, stdout=StringIO())
    assert not WebhookEndpoint.objects.exists()


def test_a_body_is_json_with_the_type_time_and_data(endpoint, receiver, after_commit, revision):
    _registered, secret = endpoint
    with after_commit():
        events.emit(events.REVISION_PUBLISHED, revision.pk)
    [message] = receiver.verified(secret)
    assert set(message) == {"type", "timestamp", "data"}
    assert message["timestamp"].endswith("Z")
    assert json.loads(receiver.received[0].body) == message


# --- The README's receiver ------------------------------------------------------------------------


def readme_receiver() -> str:
    """The Python code block of the README's "Webhooks" section (under "Integrations")."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    section = re.split(r"\n#{2,3} ", readme.split("\n### Webhooks\n", 1)[1], maxsplit=1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return code


def test_the_readmes_receiver_accepts_a_delivery_and_refuses_a_forgery(
    endpoint, receiver, after_commit, revision, monkeypatch
):
    _registered, secret = endpoint
    with after_commit():
        events.emit(events.REVISION_PUBLISHED, revision.pk)
    [message] = receiver.received
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    readme: dict = {"__name__": "readme_receiver"}
    exec(compile(readme_receiver(), "README.md", "exec"), readme)
    handled = []
    readme["handle"] = lambda event_type, data: handled.append((event_type, data))

    def post(body: bytes, headers: dict[str, str]):
        sent = {name: value for name, value in headers.items() if name.startswith("webhook-")}
        request = RequestFactory().post(
            "/hooks/portal", body, content_type="application/json", headers=sent
        )
        return readme["receive"](request)

    assert post(message.body, message.headers).status_code == 204
    assert handled == [("revision.published", revision_fields(revision))]

    forged = message.body.replace(b'"1.0"', b'"9.9"')
    assert post(forged, message.headers).status_code == 400
    signed_elsewhere = messages.headers(
        secret=messages.new_secret(),
        event_id=message.headers["webhook-id"],
        body=message.body.decode(),
        moment=timezone.now(),
    )
    assert post(message.body, signed_elsewhere).status_code == 400
    assert len(handled) == 1
