"""The administrators' form for the tokens other systems call the portal with."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from acknowledgements.models import ApiToken


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_(
            "Which system holds the token, e.g. “Entra ID”: the audit log names its changes "
            "by it. A name is never used twice."
        ),
    )
    scope = forms.ChoiceField(
        label=_("What the token may do"),
        choices=ApiToken.Scope.choices,
        initial=ApiToken.Scope.SCIM,
        # Left out, it is a SCIM token, as every token was before the read API.
        required=False,
        widget=forms.RadioSelect,
        help_text=_(
            "SCIM provisioning: the directory adds, changes and retires people. Read API: "
            "another system reads policies, statuses and signatures at /api/v1/. A token "
            "opens its own door and no other."
        ),
    )

    def clean_scope(self) -> str:
        return self.cleaned_data["scope"] or ApiToken.Scope.SCIM
