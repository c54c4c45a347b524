"""The signer's forms: signing, declining, and checking a receipt."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.template.defaultfilters import filesizeformat
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from acknowledgements.evidence.statements import CURRENT_ATTESTATION, CURRENT_ESIGN_CONSENT
from acknowledgements.models import (
    AUTHORITATIVE_LANGUAGE,
)
from acknowledgements.signing.names import name_refusal, signature_name, typed_name_matches


class SignForm(forms.Form):
    agree = forms.BooleanField(
        label=CURRENT_ATTESTATION.text,  # in the page's language: see __init__
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
    # The language of the text the person read, recorded with the signature. The page always
    # sends it; a client that does not has read the authoritative English text.
    language = forms.ChoiceField(
        choices=settings.LANGUAGES, required=False, widget=forms.HiddenInput
    )
    # The language the attestation and consent were shown in (the page's), sent back with the
    # signature so the ledger records the exact statements shown even if the person's
    # language changed in between.
    statement_language = forms.ChoiceField(
        choices=settings.LANGUAGES, required=False, widget=forms.HiddenInput
    )

    def __init__(self, *args, person, needs_consent: bool | None, **kwargs):
        """`needs_consent` None (a submission): the consent box is read if sent, and the service
        decides whether it was needed (see `show_consent`)."""
        super().__init__(*args, **kwargs)
        self.person = person
        self.fields["typed_name"].widget.attrs.update(
            {"autocomplete": "name", "spellcheck": "false"}
        )
        shown = self._statement_language()
        self.fields["statement_language"].initial = shown
        self.fields["agree"].label = CURRENT_ATTESTATION.text_in(shown)
        self.fields["consent"].label = CURRENT_ESIGN_CONSENT.text_in(shown)
        if needs_consent is not None:
            self.show_consent(needs_consent)

    def show_consent(self, needed: bool) -> None:
        """Show the consent box only to someone who has not accepted it yet, and then require
        it: a submission checked without it gets the error next to the box with the others."""
        if not needed:
            del self.fields["consent"]
            return
        field = self.fields["consent"]
        field.required = True
        checked = getattr(self, "cleaned_data", None)
        if checked is not None and not checked.get("consent") and "consent" not in self.errors:
            self.add_error("consent", field.error_messages["required"])

    def _statement_language(self) -> str:
        asked = self.data.get("statement_language") if self.is_bound else None
        if asked not in dict(settings.LANGUAGES):
            asked = translation.get_language() or AUTHORITATIVE_LANGUAGE
        return asked.split("-")[0]

    def clean_language(self) -> str:
        return self.cleaned_data["language"] or AUTHORITATIVE_LANGUAGE

    def clean_statement_language(self) -> str:
        return self._statement_language()

    def clean_typed_name(self) -> str:
        typed = self.cleaned_data["typed_name"]
        if refusal := name_refusal(typed):
            raise forms.ValidationError(refusal)
        typed = signature_name(typed)
        if not typed_name_matches(typed, self.person):
            raise forms.ValidationError(
                _("This does not match the name on your account (%(name)s)."),
                params={"name": self.person.full_name},
            )
        return typed


class DeclineForm(forms.Form):
    language = forms.ChoiceField(
        choices=settings.LANGUAGES, required=False, widget=forms.HiddenInput
    )

    def clean_language(self) -> str:
        return self.cleaned_data["language"] or AUTHORITATIVE_LANGUAGE

    reason = forms.CharField(
        label=_("Reason (optional)"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"max_length": _("The reason is too long (2,000 characters at most).")},
    )


class VerifyReceiptForm(forms.Form):
    receipt = forms.FileField(
        label=_("Receipt PDF"),
        help_text=_("The receipt file you downloaded or received by email."),
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,.pdf"}),
    )

    @classmethod
    def of_declared_size(cls, size: int) -> VerifyReceiptForm:
        """The form judging an upload by the size its request declares, its body left unread."""
        unread = InMemoryUploadedFile(None, "receipt", "receipt.pdf", None, size, None)
        return cls(data={}, files={"receipt": unread})

    def clean_receipt(self):
        upload = self.cleaned_data["receipt"]
        if upload.size > settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("This file is larger than any receipt (%(limit)s at most)."),
                params={"limit": filesizeformat(settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES)},
            )
        return upload
