"""The reports' filters: the "as of" moment, people, and the audit log (read-only pages, submitted with GET)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from acknowledgements.models import (
    Audience,
)
from acknowledgements.reports.figures import STATUS_LABELS
from acknowledgements.reports.lists import DEFAULT_SORT, SORTS

# The dates a report accepts. Python's datetimes end at the years 1 and 9999: a moment at either
# end, moved into another time zone (up to 14 hours), or a day after the last date, leaves that
# range and fails far from the form. Every report's date falls well inside these.
EARLIEST_DATE = dt.date(1970, 1, 1)
LATEST_DATE = dt.date(9998, 12, 31)
OUT_OF_RANGE = _("Enter a date between %(earliest)s and %(latest)s.")


def check_in_range(day: dt.date) -> None:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise forms.ValidationError(
            OUT_OF_RANGE,
            code="out_of_range",
            params={"earliest": EARLIEST_DATE.isoformat(), "latest": LATEST_DATE.isoformat()},
        )


class ReportDateField(forms.DateField):
    """A day between EARLIEST_DATE and LATEST_DATE, picked in a date input."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "widget",
            forms.DateInput(
                attrs={
                    "type": "date",
                    "min": EARLIEST_DATE.isoformat(),
                    "max": LATEST_DATE.isoformat(),
                },
                format="%Y-%m-%d",
            ),
        )
        super().__init__(**kwargs)

    def validate(self, value) -> None:
        super().validate(value)
        if value is not None:
            check_in_range(value)


class MomentField(forms.DateTimeField):
    """A moment typed in the viewer's time zone, or an ISO 8601 time with an offset (links)."""

    widget = forms.DateTimeInput(
        attrs={"type": "datetime-local", "step": "1", "min": f"{EARLIEST_DATE}T00:00:00"},
        format="%Y-%m-%dT%H:%M:%S",
    )

    def validate(self, value) -> None:
        super().validate(value)
        if value is not None:
            check_in_range(value.date())

    def prepare_value(self, value):
        # A link carries the moment with its offset; the field shows it in the viewer's zone.
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            # Out of range, it is shown as it came (moved to another zone, it might not exist).
            if (
                parsed is not None
                and timezone.is_aware(parsed)
                and EARLIEST_DATE <= parsed.date() <= LATEST_DATE
            ):
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
    signed_from = ReportDateField(label=_("Signed from"), required=False)
    signed_to = ReportDateField(label=_("Signed until (inclusive)"), required=False)
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
    since = ReportDateField(label=_("From"), required=False)
    until = ReportDateField(label=_("Until (inclusive)"), required=False)

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
