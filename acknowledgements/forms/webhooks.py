"""The administrators' forms for webhook endpoints."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from acknowledgements.models import WebhookEndpoint


def _events_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=_("Events"),
        choices=[(event.value, f"{event.value}: {event.label}") for event in WebhookEndpoint.Event],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one event.")},
    )


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(
        label=_("URL"),
        max_length=2000,
        assume_scheme="https",
        help_text=_(
            "Where the receiver listens, e.g. https://grc.example.com/hooks/policies. Only "
            "public addresses are accepted, and redirects are not followed."
        ),
    )
    events = _events_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["events"].initial = list(WebhookEndpoint.Event.values)


class WebhookEndpointChangeForm(forms.Form):
    events = _events_field()
    active = forms.BooleanField(
        label=_("Active: send it events"),
        required=False,
    )
