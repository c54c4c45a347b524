"""Signed-in sessions for many people at once, written straight into Django's session table.

A real sign-in through /accounts/login/ stores Django's auth keys and django-allauth's
authentication records (how and when the person signed in, which evidence.py reads); the bench
writes the same keys for each person, with a sign-in time of now, so that
evidence.needs_fresh_sign_in is false and the sign view accepts the POST. `check_format` signs
one person in for real and compares the keys, so a change in Django or allauth fails the bench
instead of silently measuring redirects to the re-authentication page.

The signing benchmark's peer (bench/peer/) writes its people's sessions with the same code, in
its own virtualenv: only Django's auth keys (`auth_session_data`), as its `login` writes them.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import PASSWORD

SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
BACKEND = "django.contrib.auth.backends.ModelBackend"


@dataclass(frozen=True)
class Credentials:
    user_id: int
    email: str
    full_name: str
    session_key: str
    csrf_secret: str
    csrf_token: str

    @property
    def cookie(self) -> str:
        return f"{SESSION_COOKIE}={self.session_key}; {CSRF_COOKIE}={self.csrf_secret}"


def auth_session_data(user) -> dict:
    """The keys `django.contrib.auth.login` writes (all a plain Django project keeps)."""
    return {
        "_auth_user_id": str(user.pk),
        "_auth_user_backend": BACKEND,
        "_auth_user_hash": user.get_session_auth_hash(),
    }


def session_data(user) -> dict:
    from acknowledgements.middleware import SESSION_WRITE_INTERVAL, SESSION_WRITTEN
    from acknowledgements.templatetags.team import MANAGES_PEOPLE

    return {
        # What the portal notes on signing in (middleware.note_session): the bench's people
        # manage nobody. Noted a minute ago, as for someone who opened the policy and read it
        # before signing: their next request writes the session again. (Noted at the bench's
        # sign-in, it made a signing run's cost depend on whether it came in the first minute
        # after that: bench/RESULTS.md, 1a.)
        SESSION_WRITTEN: int(time.time()) - SESSION_WRITE_INTERVAL,
        MANAGES_PEOPLE: False,
        "account_authentication_methods": [
            {"method": "password", "at": time.time(), "email": user.email}
        ],
        "account_authentication_methods_user": str(user.pk),
        **auth_session_data(user),
        "_session_expiry": 0,
    }


def sign_in(users, data: Callable[[Any], dict] = session_data) -> list[Credentials]:
    """A session and a CSRF secret and token for each user (bulk insert, no password hashing);
    `data` gives each session's keys (the portal's by default; the peer's are Django's alone)."""
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret
    from django.utils import timezone

    expire = timezone.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    store = SessionStore()
    credentials, rows = [], []
    for user in users:
        key = secrets.token_hex(16)
        rows.append(
            Session(session_key=key, session_data=store.encode(data(user)), expire_date=expire)
        )
        secret = _get_new_csrf_string()
        credentials.append(
            Credentials(
                user.pk,
                user.email,
                # The peer's users (Django's own model) have no full name.
                getattr(user, "full_name", ""),
                key,
                secret,
                _mask_cipher_secret(secret),
            )
        )
    Session.objects.bulk_create(rows, batch_size=2_000)
    return credentials


def check_format(user) -> None:
    """Sign `user` in through the real form and compare the session's keys with ours."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    if response.status_code != 302:
        raise SystemExit(f"the real sign-in of {user.email} failed ({response.status_code})")
    real = SessionStore(session_key=client.cookies[SESSION_COOKIE].value).load()
    ours = session_data(user)
    if set(real) != set(ours) or real["_auth_user_backend"] != ours["_auth_user_backend"]:
        raise SystemExit(
            f"sessions written by the bench ({sorted(ours)}) no longer match a real sign-in "
            f"({sorted(real)}): update bench/sessions.py"
        )


def session_written_now(client) -> None:
    """Note the client's session as written this second, so that its next request does not write
    it again (middleware.ActiveSessionMiddleware): that request's own statements are counted or
    timed alone (the reports' statement counts, the bare POST of figure 1p)."""
    from acknowledgements.middleware import SESSION_WRITTEN

    session = client.session
    session[SESSION_WRITTEN] = int(time.time())
    session.save()
