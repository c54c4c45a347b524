"""A management page whose form creates something with a secret (a webhook endpoint's signing
secret, an integration's token): the secret is on the page that answers the POST, and never
again. Its template shows it with acknowledgements/manage/includes/secret_once.html."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from acknowledgements.exceptions import ActionRefused


def page_with_secret_once(
    request: HttpRequest,
    *,
    form_class: type[forms.Form],
    create: Callable[[dict[str, Any]], tuple[object, str]],
    refused_field: str,
    template: str,
    context: Mapping[str, object],
) -> HttpResponse:
    """The page with its form; a valid POST calls `create(cleaned_data)`, which returns what it
    created and its secret, or raises ActionRefused (shown on `refused_field`)."""
    form = form_class(request.POST if request.method == "POST" else None)
    created: object = None
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            created, secret = create(form.cleaned_data)
        except ActionRefused as refused:
            form.add_error(refused_field, str(refused))
        else:
            form = form_class()
    response = render(
        request,
        template,
        {**context, "form": form, "created": created, "secret": secret},
        status=400 if form.errors else 200,
    )
    # The page that shows a secret once must not be kept by a browser or a proxy.
    response["Cache-Control"] = "no-store"
    return response
