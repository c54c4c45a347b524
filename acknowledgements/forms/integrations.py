"""The administrators' form for the tokens other systems call the portal with."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_(
            "Which system holds the token, e.g. “Entra ID”: the audit log names its changes "
            "by it. A name is never used twice."
        ),
    )
