"""The administrators' forms about people: finding, adding, editing, retiring them, their
audiences and their exemption from the signing gate."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from acknowledgements.models import Audience, User


def _past_day(day: dt.date | None, refusal) -> dt.datetime | None:
    """The start of a day in the portal's zone; a day still to come is refused."""
    if day is None:
        return None
    moment = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    if moment > timezone.now():
        raise forms.ValidationError(refusal)
    return moment


class PersonForm(forms.Form):
    """A person an administrator adds, or the details they edit (audiences: adding only)."""

    email = forms.EmailField(label=_("Email address"), max_length=254)
    full_name = forms.CharField(label=_("Full name"), max_length=200)
    audiences = forms.ModelMultipleChoiceField(
        label=_("Belongs to"),
        queryset=Audience.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("The policies of these audiences apply to the person."),
    )
    joined_at = forms.DateField(
        label=_("Joined on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Empty: today."),
    )
    manager = forms.ModelChoiceField(
        label=_("Manager"),
        queryset=User.objects.filter(is_active=True),
        required=False,
        empty_label=_("No manager"),
        to_field_name="email",
        widget=forms.TextInput(attrs={"list": "people-emails", "autocomplete": "off"}),
        help_text=_("The manager's email address."),
        error_messages={"invalid_choice": _("Nobody active has this email address.")},
    )
    employee_number = forms.CharField(label=_("Employee number"), max_length=64, required=False)
    external_id = forms.CharField(
        label=_("External id"),
        max_length=255,
        required=False,
        help_text=_("The id the HR system or the directory knows the person by."),
    )
    language = forms.ChoiceField(label=_("Language of their emails"), choices=[])

    def __init__(self, *args, editing: User | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = settings.LANGUAGES
        if editing is not None:
            # Audiences, joining date and language have their own controls once a person exists.
            for name in ("audiences", "joined_at", "language"):
                del self.fields[name]
            self.fields["manager"].queryset = User.objects.filter(is_active=True).exclude(
                pk=editing.pk
            )

    def clean_full_name(self) -> str:
        return " ".join(self.cleaned_data["full_name"].split())

    def clean_joined_at(self) -> dt.datetime | None:
        return _past_day(
            self.cleaned_data.get("joined_at"), _("The joining date is in the future.")
        )


class DeactivateForm(forms.Form):
    left_at = forms.DateField(
        label=_("Left on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Empty: today."),
    )

    def clean_left_at(self) -> dt.datetime | None:
        return _past_day(self.cleaned_data.get("left_at"), _("The leaving date is in the future."))


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


class PersonAudiencesForm(forms.Form):
    audiences = forms.ModelMultipleChoiceField(
        label=_("Belongs to"),
        queryset=Audience.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("The policies of these audiences apply to the person. None: no policy does."),
    )


class PeopleImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "UTF-8, with the columns of the people download: email, full_name, audiences, "
            "joined_at, manager_email, external_id, employee_number, active, left_at "
            "(email and full_name required)."
        ),
        error_messages={
            "required": _("Choose the CSV file to import."),
            "empty": _("The file is empty."),
        },
    )
    invite = forms.BooleanField(
        label=_("Email everyone the file adds their invitation"), required=False
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.PORTAL_MAX_IMPORT_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)d MB.")
                % {"mb": settings.PORTAL_MAX_IMPORT_BYTES // (1024 * 1024)}
            )
        return upload
