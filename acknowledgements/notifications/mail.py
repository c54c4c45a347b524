"""Emails that differ only by address and name, serialised once per group instead of each time.

A fan-out sends one announcement to 100,000 people. Django builds every message's MIME
structure with the email package's header parsers, about 6 ms a message on a slow core, more
than all the rest of a fan-out's work. Yet the emails of one group (same kind, revision,
language and due date) differ only in the address, the name in the greeting and the
Message-ID. So a group's message is serialised once with stand-ins for those three (its Date
is when that happened, in the same batch), and each person's bytes are the group's bytes with
their values put in: `PreparedEmail` carries them and `SMTPBackend` sends them as they are.
Any other backend (the console, the test outbox) builds the message from the email's fields as
usual; a test checks that both give the same email.

The bodies are sent 8bit, as Django itself sends a non-ASCII body with short lines, so a name
goes in as its UTF-8 bytes with nothing to re-encode. A group with a line that could pass
SMTP's 998-byte limit once a name is in, a name with a line break or other control character,
and an address that is not plain ASCII take Django's usual path instead.
"""

from __future__ import annotations

import email.policy
import secrets
import smtplib
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends import smtp
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME
from django.utils.html import escape

# Rendered into a group's text and HTML where the person's name goes: letters, digits and
# hyphens, which neither escaping nor line folding touches.
NAME_STAND_IN = f"person-name-{secrets.token_hex(8)}"
_HTML_NAME_STAND_IN = f"person-html-name-{secrets.token_hex(8)}"
_ADDRESS_STAND_IN = f"person-{secrets.token_hex(8)}@stand-in.invalid"
_MESSAGE_ID_STAND_IN = f"<message-{secrets.token_hex(8)}@stand-in.invalid>"

SMTP_LINE_LIMIT = 998  # bytes, without CRLF (RFC 5321 section 4.5.3.1.6)
LONGEST_ADDRESS = 254  # RFC 5321's path limit, less the angle brackets


class PreparedEmail(EmailMultiAlternatives):
    """An email that also carries its serialised MIME message, ready for the SMTP server.

    Made whole by GroupMessage.email and sent as it is: changing its fields afterwards would
    not change the bytes SMTPBackend sends.
    """

    def __init__(self, *, serialised: bytes, **fields):
        super().__init__(**fields)
        self.serialised = serialised


class SMTPBackend(smtp.EmailBackend):
    """Django's SMTP backend, which sends a PreparedEmail's bytes without rebuilding them."""

    def _send(self, email_message) -> bool:
        if not isinstance(email_message, PreparedEmail):
            # Django's backend defines _send, but the stubs leave its private methods out.
            return super()._send(email_message)  # type: ignore[misc]
        # The same checks as Django's path: an address that is not a single plain address
        # (a line break, a second address) raises ValueError before anything is sent.
        sender = self.prep_address(email_message.from_email)
        recipients = [self.prep_address(address) for address in email_message.recipients()]
        # send_messages opens the connection, and returns before calling _send if it cannot.
        assert self.connection is not None
        try:
            self.connection.sendmail(sender, recipients, email_message.serialised)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True


class GroupMessage:
    """One group's subject, text and HTML, rendered with NAME_STAND_IN for the person's name."""

    def __init__(self, *, subject: str, text: str, html: str):
        self.subject, self.text, self.html = subject, text, html
        self._serialised, self._room_for_name = self._serialise()

    def email(self, to: str, *, name: str = "", message_id: str = "") -> EmailMultiAlternatives:
        """The email to `to`, with `name` put in for NAME_STAND_IN (escaped in the HTML), and
        `message_id` as its Message-ID (a new one if empty)."""
        message_id = message_id or make_msgid(domain=DNS_NAME)
        fields: dict[str, Any] = {
            "subject": self.subject.replace(NAME_STAND_IN, name),
            "body": self.text.replace(NAME_STAND_IN, name),
            "to": [to],
            "alternatives": [(self.html.replace(NAME_STAND_IN, escape(name)), "text/html")],
            "headers": {"Message-ID": message_id},
        }
        escaped_name = escape(name).encode()  # never shorter than the name itself
        if (
            self._serialised is None
            or len(escaped_name) > self._room_for_name
            or not name.isprintable()  # a line break would change the body's lines
            or not _plain_ascii_address(to)
        ):
            return EmailMultiAlternatives(**fields)
        serialised = (
            self._serialised.replace(_ADDRESS_STAND_IN.encode(), to.encode())
            .replace(_MESSAGE_ID_STAND_IN.encode(), message_id.encode())
            .replace(NAME_STAND_IN.encode(), name.encode())
            .replace(_HTML_NAME_STAND_IN.encode(), escaped_name)
        )
        return PreparedEmail(serialised=serialised, **fields)

    def _serialise(self) -> tuple[bytes | None, int]:
        """The group's message with stand-ins, 8bit, and the most bytes a name can take there.

        None if it cannot be filled in safely: a line is already too long for SMTP, or the
        subject holds the name (a header would encode the stand-in).
        """
        if NAME_STAND_IN in self.subject:
            return None, 0
        html = self.html.replace(NAME_STAND_IN, _HTML_NAME_STAND_IN)
        template = EmailMultiAlternatives(
            subject=self.subject,
            body=self.text,
            to=[_ADDRESS_STAND_IN],
            headers={"Message-ID": _MESSAGE_ID_STAND_IN},
            alternatives=[(html, "text/html")],
        )
        message = template.message(policy=email.policy.SMTP)
        for part in message.iter_parts():
            part.set_content(
                part.get_content(),
                subtype=part.get_content_subtype(),
                charset="utf-8",
                cte="8bit",
            )
        serialised = message.as_bytes()
        room = SMTP_LINE_LIMIT
        for line in serialised.split(b"\r\n"):
            names = line.count(NAME_STAND_IN.encode()) + line.count(_HTML_NAME_STAND_IN.encode())
            # Counted as if each stand-in were gone and every address the longest there is.
            rest = (
                len(line)
                - line.count(NAME_STAND_IN.encode()) * len(NAME_STAND_IN)
                - line.count(_HTML_NAME_STAND_IN.encode()) * len(_HTML_NAME_STAND_IN)
                + line.count(_ADDRESS_STAND_IN.encode())
                * (LONGEST_ADDRESS - len(_ADDRESS_STAND_IN))
            )
            if rest > SMTP_LINE_LIMIT:
                return None, 0
            if names:
                room = min(room, (SMTP_LINE_LIMIT - rest) // names)
        return serialised, room


def _plain_ascii_address(address: str) -> bool:
    """An address that goes into the To header exactly as written (Django's path otherwise)."""
    return (
        address.isascii()
        and address.isprintable()
        and len(address) <= LONGEST_ADDRESS
        and not any(c in address for c in ' "<>(),;:\\[]')
    )
