"""Database sessions whose once-a-minute rewrite is one UPDATE (acknowledgements/session_store.py)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext

from acknowledgements.middleware import SESSION_WRITE_INTERVAL
from acknowledgements.session_store import SessionStore

pytestmark = pytest.mark.django_db


def stored(key: str) -> Session:
    return Session.objects.get(session_key=key)


def test_the_portal_uses_this_store():
    assert settings.SESSION_ENGINE == "acknowledgements.session_store"


def test_a_new_session_is_created_as_django_creates_it():
    session = SessionStore()
    session["colour"] = "blue"
    session.save()

    assert SessionStore(session_key=session.session_key).load() == {"colour": "blue"}


def test_rewriting_a_session_is_one_update_of_its_data_and_expiry():
    session = SessionStore()
    session["colour"] = "blue"
    session.save()
    first_expiry = stored(session.session_key).expire_date

    with time_machine.travel(dt.timedelta(minutes=5)):
        session["colour"] = "green"
        with CaptureQueriesContext(connection) as queries:
            session.save()

    assert len(queries) == 1
    assert queries[0]["sql"].startswith(f'UPDATE "{Session._meta.db_table}"')
    assert SessionStore(session_key=session.session_key).load() == {"colour": "green"}
    assert stored(session.session_key).expire_date - first_expiry == pytest.approx(
        dt.timedelta(minutes=5), abs=dt.timedelta(seconds=5)
    )
    assert Session.objects.count() == 1


def test_a_session_deleted_meanwhile_is_not_recreated():
    session = SessionStore()
    session["colour"] = "blue"
    session.save()
    Session.objects.all().delete()  # signed out in another tab, or cleared when expired

    session["colour"] = "green"
    with pytest.raises(UpdateError):
        session.save()
    assert not Session.objects.exists()


def test_a_signed_in_request_a_minute_later_rewrites_the_session_once(signer, logged_in, revision):
    client = logged_in(signer)
    key = client.session.session_key
    client.get("/")
    before = stored(key).expire_date

    later = dt.timedelta(seconds=SESSION_WRITE_INTERVAL + 5)
    with time_machine.travel(later), CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200

    writes = [
        q["sql"]
        for q in queries
        if q["sql"].startswith(("UPDATE", "INSERT")) and Session._meta.db_table in q["sql"]
    ]
    assert len(writes) == 1
    assert stored(key).expire_date > before
    assert client.session.session_key == key  # the same session, kept alive
