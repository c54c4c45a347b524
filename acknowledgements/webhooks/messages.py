"""Webhook messages as the Standard Webhooks specification describes them.

The body is JSON, `{"type": ..., "timestamp": ..., "data": {...}}`, written once when the event
is recorded and sent as stored. Each attempt is signed with the endpoint's secret by the
`standardwebhooks` library (HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>`): the
timestamp is that of the attempt, as receivers refuse messages signed long ago.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not one)
SECRET_BYTES = 32


def new_secret() -> str:
    """A signing secret: 256 random bits, base64, with the `whsec_` prefix the libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_event_id() -> str:
    """The `webhook-id` of an event: the same on every attempt, for receivers to deduplicate."""
    return f"msg_{secrets.token_urlsafe(18)}"


def body(*, event_type: str, occurred_at: str, data: dict) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": occurred_at, "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )


def headers(*, secret: str, event_id: str, body: str, moment: dt.datetime) -> dict[str, str]:
    """The headers of one attempt, signed at `moment`."""
    moment = moment.astimezone(dt.UTC)
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, moment, body),
    }
