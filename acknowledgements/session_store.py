"""Sessions in the database, a signed-in session's minute-by-minute write in one statement.

A signed-in person's session is written again at most once a minute, to keep it alive while they
use the portal (middleware.ActiveSessionMiddleware). Someone who reads the policy before signing
it has not made a request for over a minute, so their signing POST is one of those writes, and
Django's database store made it a model save in its own transaction: the UPDATE, then a COMMIT,
each a round trip, with the model's save machinery around them (bench/RESULTS.md, figure 1o).
Here rewriting an existing session is a single UPDATE, which commits on its own (or joins the
request's transaction); creating one is Django's own code, unchanged.
"""

from __future__ import annotations

from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import connections, router


class SessionStore(DatabaseSessionStore):
    def save(self, must_create: bool = False) -> None:
        if must_create or self.session_key is None:
            super().save(must_create=must_create)
            return
        model = self.model
        connection = connections[router.db_for_write(model)]
        quote = connection.ops.quote_name
        data, expires, key = (
            model._meta.get_field(name) for name in ("session_data", "expire_date", "session_key")
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(model._meta.db_table)} SET {quote(data.column)} = %s,"  # noqa: S608 - quoted names only
                f" {quote(expires.column)} = %s WHERE {quote(key.column)} = %s",
                [
                    self.encode(self._get_session()),
                    expires.get_db_prep_save(self.get_expiry_date(), connection),
                    self.session_key,
                ],
            )
            updated = cursor.rowcount
        if not updated:
            # Deleted meanwhile (signed out in another tab, expired and cleared): as Django's
            # store, SessionMiddleware then answers that the session was interrupted.
            raise UpdateError
