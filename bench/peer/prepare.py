"""Make the peer's database ready for the load, in the peer's virtualenv (see server.prepare).

    DJANGO_SETTINGS_MODULE=bench.peer.settings python -m bench.peer.prepare --people N --json out

Migrates, makes the cache table, publishes one set of terms (active since yesterday), makes
N + 1 people and signs them in as bench/sessions.py signs the portal's people in (sessions
written in bulk, no password hashed), then accepts the terms once in-process as the last of
them, keeping its SQL statements and checking that the acceptance was recorded. Writes the
terms' id, the other N people's credentials and those statements.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
from dataclasses import asdict

TERMS_TEXT = (
    "<p>You use the company's computers, networks and accounts for its business, keep your "
    "credentials to yourself, report what looks wrong, and install nothing it has not "
    "approved.</p>"
)


def accept_in_process(terms_id: int, credentials) -> list[str]:
    """POST the accept form through Django's test client; the SQL statements it ran."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from termsandconditions.models import UserTermsAndConditions

    from bench.peer.server import ACCEPT_PATH, RETURN_TO, accept_body
    from bench.sessions import CSRF_COOKIE, SESSION_COOKIE

    client = Client(HTTP_HOST="127.0.0.1", enforce_csrf_checks=True)
    client.cookies[SESSION_COOKIE] = credentials.session_key
    client.cookies[CSRF_COOKIE] = credentials.csrf_secret
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            ACCEPT_PATH,
            accept_body(terms_id, credentials.csrf_token),
            content_type="application/x-www-form-urlencoded",
        )
    location = response.get("Location", "")
    recorded = UserTermsAndConditions.objects.filter(
        user_id=credentials.user_id, terms_id=terms_id
    ).exists()
    if response.status_code != 302 or location != RETURN_TO or not recorded:
        raise SystemExit(
            f"the peer's in-process accept answered {response.status_code} {location!r}; "
            f"recorded: {recorded}"
        )
    return [query["sql"][:120] for query in captured.captured_queries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, required=True)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.utils import timezone
    from termsandconditions.models import TermsAndConditions

    from bench import sessions
    from bench.peer.server import TERMS_SLUG

    call_command("migrate", interactive=False, verbosity=0)
    call_command("createcachetable", verbosity=0)
    terms = TermsAndConditions.objects.create(
        slug=TERMS_SLUG,
        name="Acceptable Use Policy",
        version_number=1,
        text=TERMS_TEXT,
        date_active=timezone.now() - dt.timedelta(days=1),
    )
    # One unusable password for all: nobody signs in with it, and nothing is hashed.
    password = make_password(None)
    people = User.objects.bulk_create(
        [
            User(username=f"peer-{n:06d}", email=f"peer-{n:06d}@example.com", password=password)
            for n in range(args.people + 1)
        ],
        batch_size=5_000,
    )
    credentials = sessions.sign_in(people, sessions.auth_session_data)
    statements = accept_in_process(terms.pk, credentials.pop())
    with open(args.json, "w") as out:
        json.dump(
            {
                "terms_id": terms.pk,
                "statements_per_accept": len(statements),
                "statements": statements,
                "django": django.get_version(),
                "termsandconditions": importlib.metadata.version("django-termsandconditions"),
                "credentials": [asdict(c) for c in credentials],
            },
            out,
        )


if __name__ == "__main__":
    main()
