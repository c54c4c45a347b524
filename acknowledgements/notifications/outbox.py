"""The development outbox: with DEBUG on and no SMTP server, emails are kept as files to read.

`make run` sends hundreds of emails while it loads the demo data. Printed whole, they bury the
log; kept here, each is one line on the console and a page at /dev/outbox/ (views/outbox.py)
with its HTML, text and attachments. Each message is one `.eml` file named after the moment it
was sent (UTC, sortable) and a random suffix, written whole under a temporary name and then
renamed, so that the page never reads half a message and parallel senders never collide. The
oldest files go once there are more than MESSAGES_KEPT.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import os
import re
import secrets
import sys
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import BinaryIO, TextIO

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage as DjangoEmailMessage

BACKEND = "acknowledgements.notifications.outbox.OutboxBackend"
MESSAGES_KEPT = 2_000
SUFFIX = ".eml"
HEADER_BLOCK = 8_192
# A message's name: when it was sent (UTC, to the microsecond) and a random suffix.
NAME = re.compile(r"\A\d{8}T\d{12}Z-[0-9a-f]{8}\Z")
_STAMP = "%Y%m%dT%H%M%S%fZ"
_print_lock = threading.Lock()


class OutboxBackend(BaseEmailBackend):
    """Keeps each email as a file in `directory` and prints one line for it (to, subject)."""

    def __init__(
        self, *, directory: str | os.PathLike[str], stream: TextIO | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.directory = Path(directory)
        self.stream = stream

    def send_messages(self, email_messages) -> int:
        if not email_messages:
            return 0
        self.directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            _write(self.directory, message.message().as_bytes())
            self._announce(message)
        _prune(self.directory)
        return len(email_messages)

    def _announce(self, message: DjangoEmailMessage) -> None:
        recipients = ", ".join(message.to or message.recipients())
        stream = self.stream or sys.stdout  # read when sending: tests capture stdout
        with _print_lock:
            stream.write(f"Email to {recipients}: {message.subject}\n")
            stream.flush()


def _write(directory: Path, data: bytes) -> None:
    name = f"{dt.datetime.now(dt.UTC):{_STAMP}}-{secrets.token_hex(4)}"
    partial = directory / f".{name}.partial"
    partial.write_bytes(data)
    partial.replace(directory / f"{name}{SUFFIX}")


def _prune(directory: Path) -> None:
    names = message_names(directory)
    for name in names[MESSAGES_KEPT:]:
        (directory / f"{name}{SUFFIX}").unlink(missing_ok=True)


# --- Reading the outbox --------------------------------------------------------------------------


def configured_directory() -> Path | None:
    """The outbox's directory when the default mailer is the outbox, else None."""
    config = getattr(settings, "MAILERS", {}).get("default", {})
    if config.get("BACKEND") != BACKEND:
        return None
    return Path(config.get("OPTIONS", {})["directory"])


def message_names(directory: Path) -> list[str]:
    """The messages kept, newest first."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    names = (entry.removesuffix(SUFFIX) for entry in entries if entry.endswith(SUFFIX))
    return sorted((name for name in names if NAME.match(name)), reverse=True)


@dataclass(frozen=True)
class Attachment:
    number: int  # from 1, in the order of the message
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class OutboxMessage:
    name: str
    sent_at: dt.datetime
    parsed: EmailMessage

    @property
    def to(self) -> str:
        return str(self.parsed.get("To", ""))

    @property
    def sender(self) -> str:
        return str(self.parsed.get("From", ""))

    @property
    def subject(self) -> str:
        return str(self.parsed.get("Subject", ""))

    @property
    def text(self) -> str | None:
        return _body(self.parsed, "plain")

    @property
    def html(self) -> str | None:
        return _body(self.parsed, "html")

    @property
    def attachments(self) -> list[Attachment]:
        found = []
        for number, part in enumerate(self.parsed.iter_attachments(), 1):
            content = part.get_payload(decode=True)
            if not isinstance(content, bytes):  # an attached message: its bytes as they are
                content = part.as_bytes()
            filename = part.get_filename() or f"attachment-{number}"
            found.append(Attachment(number, filename, part.get_content_type(), content))
        return found

    def attachment(self, number: int) -> Attachment | None:
        return next((a for a in self.attachments if a.number == number), None)


def read_message(directory: Path, name: str, *, headers_only: bool = False) -> OutboxMessage | None:
    """A kept message by its name, or None (a name that is not one, or a message pruned since)."""
    if not NAME.match(name):
        return None
    try:
        with (directory / f"{name}{SUFFIX}").open("rb") as file:
            data = _headers(file) if headers_only else file.read()
    except FileNotFoundError:
        return None
    parser = email.parser.BytesParser(policy=email.policy.default)
    parsed = parser.parsebytes(data, headersonly=headers_only)
    assert isinstance(parsed, EmailMessage)  # the default policy's message class
    sent_at = dt.datetime.strptime(name.split("-", 1)[0], _STAMP).replace(tzinfo=dt.UTC)
    return OutboxMessage(name, sent_at, parsed)


def search(directory: Path, text: str) -> list[str]:
    """The messages whose To or Subject header contains `text` (any case), newest first."""
    wanted = text.casefold()
    found = []
    for name in message_names(directory):
        message = read_message(directory, name, headers_only=True)
        if message and (wanted in message.to.casefold() or wanted in message.subject.casefold()):
            found.append(name)
    return found


def _headers(file: BinaryIO) -> bytes:
    """A message's header block, without reading the body (an attached PDF) after it."""
    data = b""
    while b"\n\n" not in data and b"\r\n\r\n" not in data:
        block = file.read(HEADER_BLOCK)
        if not block:
            break
        data += block
    return data


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    return str(part.get_content())
