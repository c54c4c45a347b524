"""The development outbox (notifications/outbox.py): the emails a laptop's portal kept, to read.

Every address here is a 404 unless DEBUG is on and the default mailer is the outbox, whatever
the method and whoever asks, so a deployment shows nothing of it. On a laptop, anyone signed in
may read it: the demo's people are all the same developer.

A message's HTML is served on its own, framed by its page, with a Content-Security-Policy that
sandboxes it (no script, no form, an origin of its own) and lets it keep its inline styles:
an email is content from outside the portal's templates, however it was made.
"""

from __future__ import annotations

import re
from functools import wraps
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils.http import content_disposition_header
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET

from acknowledgements.notifications import outbox

PAGE_SIZE = 50
# The links of an email open in a new tab, out of the sandbox, as they would from a mail reader.
SANDBOX = ["allow-popups", "allow-popups-to-escape-sandbox"]
EMAIL_CSP = {
    "sandbox": SANDBOX,
    "default-src": ["'none'"],
    "style-src": ["'unsafe-inline'"],
    "img-src": ["data:"],
    "frame-ancestors": ["'self'"],
    "base-uri": ["'none'"],
    "form-action": ["'none'"],
}
_OPEN_LINKS_IN_NEW_TAB = '<base target="_blank">'
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


def development_only(view):
    """A 404 unless DEBUG is on and emails go to the outbox; the view is given its directory."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        directory = outbox.configured_directory()
        if not settings.DEBUG or directory is None:
            raise Http404
        return view(request, directory, *args, **kwargs)

    return wrapped


def _message(directory: Path, name: str) -> outbox.OutboxMessage:
    message = outbox.read_message(directory, name)
    if message is None:
        raise Http404
    return message


@development_only
@require_GET
@login_required
def dev_outbox(request, directory: Path):
    """The emails kept, newest first: to, subject and when; those with `q` in To or Subject."""
    query = request.GET.get("q", "").strip()
    names = outbox.search(directory, query) if query else outbox.message_names(directory)
    page = Paginator(names, PAGE_SIZE).get_page(request.GET.get("page"))
    emails = [outbox.read_message(directory, name, headers_only=True) for name in page]
    return render(
        request,
        "dev/outbox.html",
        {
            "page": page,
            "emails": [message for message in emails if message is not None],
            "directory": directory,
            "query": query,
            "page_url": f"{request.path}?{urlencode({'q': query})}" if query else request.path,
        },
    )


@development_only
@require_GET
@login_required
def dev_outbox_message(request, directory: Path, message: str):
    """One email: its headers, its HTML in a sandboxed frame, its text and attachments."""
    return render(request, "dev/outbox_message.html", {"message": _message(directory, message)})


@development_only
@require_GET
@login_required
@xframe_options_sameorigin
@csp_override(EMAIL_CSP)
def dev_outbox_html(request, directory: Path, message: str):
    """An email's HTML part, for the frame of its page (sandboxed by the response's CSP)."""
    html = _message(directory, message).html
    if html is None:
        raise Http404
    return HttpResponse(_links_in_new_tabs(html), content_type="text/html; charset=utf-8")


def _links_in_new_tabs(html: str) -> str:
    """The HTML with a <base target> first in its head (before any doctype it would break)."""
    head = _HEAD.search(html)
    if head is None:
        return _OPEN_LINKS_IN_NEW_TAB + html
    return html[: head.end()] + _OPEN_LINKS_IN_NEW_TAB + html[head.end() :]


@development_only
@require_GET
@login_required
def dev_outbox_text(request, directory: Path, message: str):
    """An email's plain-text part, downloaded."""
    text = _message(directory, message).text
    if text is None:
        raise Http404
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, f"{message}.txt")
    return response


@development_only
@require_GET
@login_required
def dev_outbox_attachment(request, directory: Path, message: str, number: int):
    """One attachment of an email, downloaded as it was attached."""
    attachment = _message(directory, message).attachment(number)
    if attachment is None:
        raise Http404
    response = HttpResponse(attachment.content, content_type=attachment.content_type)
    response["Content-Disposition"] = content_disposition_header(True, attachment.filename)
    return response


urlpatterns = [
    path("dev/outbox/", dev_outbox, name="dev_outbox"),
    path("dev/outbox/<str:message>/", dev_outbox_message, name="dev_outbox_message"),
    path("dev/outbox/<str:message>/html/", dev_outbox_html, name="dev_outbox_html"),
    path("dev/outbox/<str:message>/text/", dev_outbox_text, name="dev_outbox_text"),
    path(
        "dev/outbox/<str:message>/attachments/<int:number>/",
        dev_outbox_attachment,
        name="dev_outbox_attachment",
    ),
]
