from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .services import typed_name_matches
from .statements import CURRENT_ATTESTATION, CURRENT_ESIGN_CONSENT


class SignForm(forms.Form):
    agree = forms.BooleanField(
        label=CURRENT_ATTESTATION.text,
        required=True,
        error_messages={"required": _("Tick the box to confirm that you agree.")},
    )
    typed_name = forms.CharField(
        label=_("Full name"),
        max_length=200,
        help_text=_("Type your full name as it appears on your account; it is your signature."),
        error_messages={"required": _("Type your full name to sign.")},
    )
    consent = forms.BooleanField(
        label=CURRENT_ESIGN_CONSENT.text,
        required=False,
        error_messages={"required": _("Accept electronic signing to sign.")},
    )
    browser_time_zone = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args, person, needs_consent: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.person = person
        self.fields["typed_name"].widget.attrs.update(
            {"autocomplete": "name", "spellcheck": "false"}
        )
        if needs_consent:
            self.fields["consent"].required = True
        else:
            del self.fields["consent"]

    def clean_typed_name(self) -> str:
        typed = self.cleaned_data["typed_name"]
        if not typed_name_matches(typed, self.person):
            raise forms.ValidationError(
                _("This does not match the name on your account (%(name)s)."),
                params={"name": self.person.full_name},
            )
        return typed


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (optional)"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class VerifyReceiptForm(forms.Form):
    receipt = forms.FileField(
        label=_("Receipt PDF"),
        help_text=_("The receipt file you downloaded or received by email."),
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,.pdf"}),
    )

    def clean_receipt(self):
        upload = self.cleaned_data["receipt"]
        if upload.size > settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("This file is larger than any receipt (%(limit)s MB at most)."),
                params={"limit": settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES // (1024 * 1024)},
            )
        return upload
