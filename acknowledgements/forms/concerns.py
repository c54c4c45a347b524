"""Reporting a concern, with an optional attachment checked by its content."""

from __future__ import annotations

from pathlib import PurePath

from django import forms
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from acknowledgements.models import (
    ConcernReport,
)

MAX_CONCERN_ATTACHMENT_BYTES = 5 * 1024 * 1024


# Each accepted extension and how its file must begin; plain text must decode as UTF-8.
ATTACHMENT_SIGNATURES = {
    ".pdf": (b"%PDF-",),
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".txt": None,
}


ATTACHMENT_KINDS = {".pdf": "PDF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".txt": "text"}


class ConcernForm(forms.Form):
    category = forms.ChoiceField(
        label=_("What is it about?"),
        choices=ConcernReport.Category.choices,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose what the concern is about.")},
    )
    description = forms.CharField(
        label=_("What happened"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_(
            "What you saw, when and where, and who or what was involved. 5,000 characters at most."
        ),
        error_messages={"required": _("Describe what happened.")},
    )
    attachment = forms.FileField(
        label=_("Attachment (optional)"),
        required=False,
        help_text=_("A PDF, PNG, JPEG or plain text file of 5 MB at most, such as a screenshot."),
        widget=forms.ClearableFileInput(
            attrs={
                "accept": ".pdf,.png,.jpg,.jpeg,.txt,application/pdf,image/png,image/jpeg,text/plain"
            }
        ),
    )
    anonymous = forms.BooleanField(
        label=_("Hide my name from the policy administrators"),
        required=False,
        help_text=_(
            "The compliance officer can still find out who reported it if the law "
            "requires it; the administrators who handle the report cannot."
        ),
    )

    def clean_attachment(self):
        upload = self.cleaned_data.get("attachment")
        if not upload:
            return None
        extension = PurePath(upload.name).suffix.lower()
        if extension not in ATTACHMENT_SIGNATURES:
            raise forms.ValidationError(
                _("Attach a PDF, PNG, JPEG or plain text (.txt) file; %(name)s is none of these."),
                params={"name": upload.name},
            )
        if upload.size > MAX_CONCERN_ATTACHMENT_BYTES:
            raise forms.ValidationError(
                _("The attachment is too large: %(limit)s at most."),
                params={"limit": filesizeformat(MAX_CONCERN_ATTACHMENT_BYTES)},
            )
        upload.seek(0)
        content = upload.read()
        upload.seek(0)
        signatures = ATTACHMENT_SIGNATURES[extension]
        if signatures is None:
            try:
                content.decode("utf-8")
                genuine = True
            except UnicodeDecodeError:
                genuine = False
        else:
            genuine = content.startswith(signatures)
        if not genuine:
            raise forms.ValidationError(
                _("%(name)s is not a real %(kind)s file: its content does not match its name."),
                params={"name": upload.name, "kind": ATTACHMENT_KINDS[extension]},
            )
        return upload
