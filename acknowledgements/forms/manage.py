"""The policy administrators' forms: policies, drafts, translations, people and concerns."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth.backends import ModelBackend
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import (
    Audience,
    ConcernReport,
    Policy,
    PolicyRevision,
    User,
)
from acknowledgements.policies.versions import check_version_label


class TranslationForm(forms.Form):
    title = forms.CharField(
        label=_("Policy name in this language"),
        max_length=200,
        help_text=_("Shown above the translated text, in emails and on receipts."),
    )
    body = forms.CharField(
        label=_("Translated text (Markdown)"),
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "true"}),
        help_text=_(
            "Translate the whole text, keeping its headings and lists. The English text stays "
            "authoritative; readers can switch to it at any time."
        ),
    )


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


class RenewalPeriodForm(forms.Form):
    months = forms.IntegerField(
        label=_("Re-acknowledge every (months)"),
        min_value=0,
        max_value=120,
        help_text=_(
            "0: a signature counts as long as its version is in effect. Otherwise each "
            "signature counts this many months, then the person signs again within the "
            "version's days to sign; 12 is yearly."
        ),
    )


# Someone who opens the form at 10:00 and saves at 10:40 still means "now"; publishing moves a
# past time to the moment of publication anyway.
EFFECTIVE_GRACE = dt.timedelta(hours=1)


DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
FIRST_VERSION = "1.0"


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
        """The form's starting values: the draft's, or the current text and policy audiences
        (and version 1.0 for a policy that has never been published)."""
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
            "version": "" if latest else FIRST_VERSION,
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


class ConcernFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("All statuses")), *ConcernReport.Status.choices],
    )


class ConcernStatusForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=ConcernReport.Status.choices)
