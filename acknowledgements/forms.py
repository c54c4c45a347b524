import datetime as dt
from pathlib import PurePath

from django import forms
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.template.defaultfilters import filesizeformat
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from .models import AUTHORITATIVE_LANGUAGE, Audience, ConcernReport, Policy, PolicyRevision, User
from .reports.figures import DEFAULT_SORT, SORTS, STATUS_LABELS
from .services import ActionRefused, check_version_label, typed_name_matches
from .statements import CURRENT_ATTESTATION, CURRENT_ESIGN_CONSENT


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
        if not typed_name_matches(typed, self.person):
            raise forms.ValidationError(
                _("This does not match the name on your account (%(name)s)."),
                params={"name": self.person.full_name},
            )
        return typed


class PreferencesForm(forms.Form):
    language = forms.ChoiceField(
        label=_("Language"),
        choices=settings.LANGUAGES,
        help_text=_("Used for the portal's pages and the emails it sends you."),
    )


class TranslationForm(forms.Form):
    body = forms.CharField(
        label=_("Translated text (Markdown)"),
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "true"}),
        help_text=_(
            "Translate the whole text, keeping its headings and lists. The English text stays "
            "authoritative; readers can switch to it at any time."
        ),
    )


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

    def clean_receipt(self):
        upload = self.cleaned_data["receipt"]
        if upload.size > settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("This file is larger than any receipt (%(limit)s at most)."),
                params={"limit": filesizeformat(settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES)},
            )
        return upload


# --- Policy administration ---------------------------------------------------------------------


def _audience_field(**kwargs) -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=Audience.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one audience.")},
        **kwargs,
    )


def policy_administrators():
    return (
        ModelBackend()
        .with_perm("acknowledgements.publish_policyrevision")
        .order_by("full_name", "email")
    )


class PolicyForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    slug = forms.SlugField(
        label=_("Short name for its address"),
        max_length=100,
        help_text=_("Lower-case letters, numbers and hyphens, such as acceptable-use-policy."),
    )
    owner = forms.ModelChoiceField(
        label=_("Owner"),
        queryset=User.objects.none(),
        help_text=_("The policy administrator who answers for this policy."),
    )
    audiences = _audience_field(label=_("Applies to"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = policy_administrators()
        self.fields["slug"].widget.attrs.update({"data-slug-from": "id_name"})

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if Policy.objects.filter(slug=slug).exists():
            raise forms.ValidationError(_("Another policy already uses this short name."))
        return slug


class PolicyAudiencesForm(forms.Form):
    audiences = _audience_field(
        label=_("Applies to"),
        help_text=_("New drafts start with these audiences; published revisions keep theirs."),
    )


# Someone who opens the form at 10:00 and saves at 10:40 still means "now"; publishing moves a
# past time to the moment of publication anyway.
EFFECTIVE_GRACE = dt.timedelta(hours=1)
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class DraftForm(forms.Form):
    CHANGE_CHOICES = [
        (
            PolicyRevision.Change.MATERIAL,
            _(
                "Material: the rules changed. Everyone in the audiences is emailed and must "
                "read and sign this version again."
            ),
        ),
        (
            PolicyRevision.Change.MINOR,
            _(
                "Minor: wording, spelling or layout only. Earlier signatures still count and "
                "nobody has to sign again."
            ),
        ),
    ]

    version = forms.CharField(
        label=_("Version"),
        max_length=20,
        help_text=_("Numbers separated by dots, higher than the latest published version."),
    )
    body = forms.CharField(
        label=_("Policy text (Markdown)"),
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "true"}),
        help_text=_("# for headings, - for list items, **bold**, a blank line between paragraphs."),
    )
    change_summary = forms.CharField(
        label=_("What changed"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"max_length": _("The reason is too long (2,000 characters at most).")},
        help_text=_("One or two sentences; they go into the email and on the signing page."),
    )
    change = forms.ChoiceField(
        label=_("Kind of change"), choices=CHANGE_CHOICES, widget=forms.RadioSelect
    )
    effective_at = forms.DateTimeField(
        label=_("Takes effect on"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
    )
    due_days = forms.IntegerField(
        label=_("Days to sign"),
        min_value=1,
        max_value=365,
        help_text=_("How long people have to sign, counted from the day it takes effect."),
    )
    audiences = _audience_field(label=_("Applies to"))
    announce = forms.BooleanField(
        label=_("Email everyone about this minor change"),
        required=False,
        help_text=_("Material changes are always emailed; a minor one only when you tick this."),
    )

    def __init__(self, *args, policy: Policy, draft: PolicyRevision | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy = policy
        self.draft = draft
        self.fields["effective_at"].help_text = _(
            "Your time zone: %(zone)s. Leave it at the current time for it to take effect as "
            "soon as it is published."
        ) % {"zone": timezone.get_current_timezone_name()}

    @classmethod
    def initial_for(cls, *, policy: Policy, draft: PolicyRevision | None = None) -> dict:
        """The form's starting values: the draft's, or the current text and policy audiences."""
        now = timezone.now().replace(second=0, microsecond=0)
        if draft is not None:
            return {
                "version": draft.version,
                "body": draft.body,
                "change_summary": draft.change_summary,
                "change": draft.change,
                "effective_at": max(draft.effective_at, now),
                "due_days": draft.due_days,
                "audiences": list(draft.audiences.all()),
                "announce": draft.announce and not draft.is_material,
            }
        latest = policy.revisions.published().newest_first().first()
        return {
            "body": latest.body if latest else "",
            "change": PolicyRevision.Change.MATERIAL,
            "effective_at": now,
            "due_days": latest.due_days if latest else 14,
            "audiences": list(policy.audiences.all()),
        }

    def clean_version(self) -> str:
        version = self.cleaned_data["version"].strip()
        try:
            check_version_label(policy=self.policy, version=version, draft=self.draft)
        except ActionRefused as refused:
            raise forms.ValidationError(str(refused)) from None
        return version

    def clean_effective_at(self) -> dt.datetime:
        effective_at = self.cleaned_data["effective_at"]
        if effective_at < timezone.now() - EFFECTIVE_GRACE:
            raise forms.ValidationError(
                _(
                    "A revision cannot take effect before it is published: choose the current "
                    "time or a later one."
                )
            )
        return effective_at

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("change") == PolicyRevision.Change.MATERIAL:
            cleaned["announce"] = True
        return cleaned

    def draft_values(self) -> dict:
        """The cleaned values as the draft services take them (audiences apart)."""
        values = dict(self.cleaned_data)
        values.pop("audiences")
        return values


class PeopleSearchForm(forms.Form):
    q = forms.CharField(label=_("Name or email"), required=False, max_length=200)
    audience = forms.ModelChoiceField(
        label=_("Audience"),
        queryset=Audience.objects.all(),
        required=False,
        to_field_name="slug",
        empty_label=_("All audiences"),
    )


class GateExemptionForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for the exemption"),
        max_length=200,
        help_text=_('Service and break-glass accounts only, such as "Monitoring service account".'),
        error_messages={"required": _("Give the reason for the exemption.")},
    )


# --- Concerns ------------------------------------------------------------------------------------


class ConcernFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("All statuses")), *ConcernReport.Status.choices],
    )


class ConcernStatusForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=ConcernReport.Status.choices)


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


# --- Reports: "as of" and filters (read-only pages, submitted with GET) ------------------------
# Imported here, with the forms that use them, because this section is appended to the module.


class MomentField(forms.DateTimeField):
    """A moment typed in the viewer's time zone, or an ISO 8601 time with an offset (links)."""

    widget = forms.DateTimeInput(
        attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"
    )

    def prepare_value(self, value):
        # A link carries the moment with its offset; the field shows it in the viewer's zone.
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and timezone.is_aware(parsed):
                value = parsed
        return super().prepare_value(value)


class AsOfForm(forms.Form):
    """Look at the reports as they stood at a past moment (empty: now)."""

    as_of = MomentField(
        label=_("As of"),
        required=False,
        error_messages={
            "invalid": _("Enter a date and time such as 2026-03-31 17:00."),
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["as_of"].help_text = _(
            "A date and time in your time zone (%(zone)s); leave it empty for now."
        ) % {"zone": timezone.get_current_timezone_name()}

    def clean_as_of(self) -> dt.datetime | None:
        moment = self.cleaned_data["as_of"]
        if moment and moment > timezone.now():
            raise forms.ValidationError(
                _(
                    "That moment is in the future. Reports show what has been recorded: choose "
                    "a past moment, or leave it empty for now."
                )
            )
        return moment

    @property
    def moment(self) -> dt.datetime | None:
        """The valid moment asked for, or None for now (also when the input was refused)."""
        if not self.is_bound:
            return None
        self.is_valid()  # validates once; refused fields are left out of cleaned_data
        return self.cleaned_data.get("as_of")


class PeopleFilterForm(AsOfForm):
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("Any status")), *STATUS_LABELS.items()],
    )
    audience = forms.ModelChoiceField(
        label=_("Audience"),
        queryset=Audience.objects.all(),
        to_field_name="slug",
        required=False,
        empty_label=_("Any audience"),
    )
    signed_from = forms.DateField(
        label=_("Signed from"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    signed_to = forms.DateField(
        label=_("Signed until (inclusive)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    q = forms.CharField(label=_("Name or email contains"), required=False, max_length=200)
    sort = forms.ChoiceField(
        label=_("Sort by"),
        required=False,
        choices=[(key, label) for key, (label, _ordering) in SORTS.items()],
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("signed_from"), cleaned.get("signed_to")
        if start and end and start > end:
            self.add_error("signed_to", _("The end date comes before the start date."))
        return cleaned

    def clean_sort(self) -> str:
        return self.cleaned_data["sort"] or DEFAULT_SORT


class AuditLogFilterForm(forms.Form):
    action = forms.ChoiceField(label=_("Action"), required=False)
    actor = forms.CharField(
        label=_("Actor's name or email contains"), required=False, max_length=200
    )
    since = forms.DateField(
        label=_("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    until = forms.DateField(
        label=_("Until (inclusive)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args, actions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [
            ("", _("Any action")),
            *((action, action.replace("_", " ").capitalize()) for action in actions),
        ]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("since"), cleaned.get("until")
        if start and end and start > end:
            self.add_error("until", _("The end date comes before the start date."))
        return cleaned


class PersonAudiencesForm(forms.Form):
    audiences = forms.ModelMultipleChoiceField(
        label=_("Belongs to"),
        queryset=Audience.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("The policies of these audiences apply to the person. None: no policy does."),
    )
