"""Checkpoints sent out of the portal's reach: to witnesses by email, and timestamped.

Once a day (the scheduler runs `manage.py witness_checkpoint` hourly; a day must pass between
two sendings) the latest checkpoint goes to every address in PORTAL_CHECKPOINT_WITNESSES, with
the verifier key. Whoever keeps those emails can later prove, with `verify_ledger --checkpoint`
or the audit package's verifier, that the ledger was or was not rewritten since.

With PORTAL_TSA_URL set, each run also gets the latest checkpoint an RFC 3161 timestamp token,
with or without witnesses (at most one request an hour, and none while the ledger does not
grow). The token proves that the checkpoint existed at that time (`openssl ts -verify`); it is
stored with the checkpoint, published at /ledger/checkpoints/<size>.tsr and attached to the
witnesses' email as checkpoint.tsr.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone
from pyhanko.sign.timestamps import HTTPTimeStamper

from acknowledgements.evidence import transparency
from acknowledgements.models import LedgerCheckpoint

logger = logging.getLogger(__name__)

WITNESS_INTERVAL = dt.timedelta(days=1)


@dataclass(frozen=True)
class Witnessing:
    checkpoint: LedgerCheckpoint | None
    sent_to: list[str]
    timestamped: bool
    reason: str  # why nothing was sent, or ""


def witness(*, moment: dt.datetime | None = None, force: bool = False) -> Witnessing:
    """Checkpoint the ledger, timestamp that checkpoint and send it to the witnesses, unless a
    checkpoint was sent less than a day ago (`force` sends anyway); the timestamp does not wait
    for witnesses or for the day to pass."""
    moment = moment or timezone.now()
    latest = transparency.checkpoint()
    if latest is None:
        return Witnessing(None, [], False, "the ledger is empty")
    token = timestamp_checkpoint(latest)
    witnesses = list(settings.PORTAL_CHECKPOINT_WITNESSES)
    if not witnesses:
        return Witnessing(latest, [], bool(token), "PORTAL_CHECKPOINT_WITNESSES is empty")
    last_sent = (
        LedgerCheckpoint.objects.filter(witnessed_at__isnull=False)
        .order_by("-witnessed_at")
        .values_list("witnessed_at", flat=True)
        .first()
    )
    if not force and last_sent is not None and moment - last_sent < WITNESS_INTERVAL:
        return Witnessing(
            latest, [], bool(token), f"a checkpoint was sent at {last_sent:%Y-%m-%d %H:%M}"
        )
    _email(latest, witnesses, token)
    LedgerCheckpoint.objects.filter(pk=latest.pk, witnessed_at__isnull=True).update(
        witnessed_at=moment
    )
    return Witnessing(latest, witnesses, bool(token), "")


def timestamp_checkpoint(checkpoint: LedgerCheckpoint) -> bytes | None:
    """The checkpoint's RFC 3161 token: the stored one, else a new one from PORTAL_TSA_URL,
    stored once (a token is never replaced); None without an authority or when it fails."""
    if checkpoint.timestamp_token:
        return bytes(checkpoint.timestamp_token)
    token = _timestamp(checkpoint.note)
    if token is None:
        return None
    LedgerCheckpoint.objects.filter(pk=checkpoint.pk, timestamp_token__isnull=True).update(
        timestamp_token=token
    )
    # Another run may have stored its token first: the stored one is the one published.
    stored = LedgerCheckpoint.objects.values_list("timestamp_token", flat=True).get(
        pk=checkpoint.pk
    )
    return bytes(stored) if stored is not None else token


def _timestamp(note: str) -> bytes | None:
    """An RFC 3161 token over the checkpoint's SHA-256 from PORTAL_TSA_URL, or None."""
    if not settings.PORTAL_TSA_URL:
        return None
    stamper = HTTPTimeStamper(settings.PORTAL_TSA_URL, timeout=10)
    try:
        token = asyncio.run(
            stamper.async_timestamp(hashlib.sha256(note.encode()).digest(), "sha256")
        )
    except Exception:
        # A failing authority must not stop the witnesses from getting the checkpoint; the
        # next run asks again.
        logger.warning(
            "The timestamp authority %s failed; the checkpoint goes without a timestamp.",
            settings.PORTAL_TSA_URL,
            exc_info=True,
        )
        return None
    return token.dump()


def _email(checkpoint: LedgerCheckpoint, witnesses: list[str], token: bytes | None) -> None:
    key = transparency.log_key()
    body = (
        f"The evidence ledger of the {settings.PORTAL_COMPANY_NAME} policy portal holds "
        f"{checkpoint.tree_size} entries. Its signed checkpoint is attached (checkpoint.txt) "
        f"and below. Keep this email: with it anyone can later prove that the ledger was, or "
        f"was not, rewritten since (python manage.py verify_ledger --checkpoint checkpoint.txt, "
        f"or the verifier in an audit package).\n\n"
        f"{checkpoint.note}\n"
        f"Verifier key (also at {settings.PORTAL_BASE_URL}/ledger/key):\n{key.verifier}\n"
    )
    if token:
        body += (
            "\ncheckpoint.tsr is an RFC 3161 timestamp of checkpoint.txt: openssl ts -verify "
            "-data checkpoint.txt -in checkpoint.tsr -token_in -CAfile <the authority's "
            "certificate> checks it.\n"
        )
    message = EmailMessage(
        subject=f"Ledger checkpoint: {checkpoint.tree_size} entries",
        body=body,
        to=witnesses,
    )
    message.attach("checkpoint.txt", checkpoint.note, "text/plain")
    message.attach("ledger-key.txt", key.verifier + "\n", "text/plain")
    if token:
        message.attach("checkpoint.tsr", token, "application/octet-stream")
    message.send()
