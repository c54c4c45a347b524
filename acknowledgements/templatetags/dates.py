"""Dates as a reader of the active language writes them: one rule for pages, emails and receipts.

Django's format characters cannot say everything French needs: "M" capitalises the
abbreviated month ("4 Déc 2026" where French writes "4 déc. 2026") and nothing writes the
first of the month "1er". `written_date` takes the formats Django's `date` filter takes and
adjusts them to the active language; in English it is Django's `date` exactly.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import dateformat, translation
from django.utils.formats import get_format

register = template.Library()


def written_date(value: dt.date, format_string: str = "DATE_FORMAT") -> str:
    """`value` (a date or a datetime, already in the reader's zone) in Django's `format_string`,
    as the active language writes it: 1 December 2026, 1er décembre 2026; 4 Dec 2026,
    4 déc. 2026."""
    format_string = get_format(format_string)  # a named format (DATE_FORMAT...) or itself
    if (translation.get_language() or "").split("-")[0] == "fr":
        format_string = _in_french(format_string, first_of_month=value.day == 1)
    return dateformat.format(value, format_string)


def _in_french(format_string: str, *, first_of_month: bool) -> str:
    adjusted = []
    escaped = False
    for character in format_string:
        if escaped:
            adjusted.append(f"\\{character}")
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == "M":  # month names are lower case, abbreviations end with a period
            adjusted.append("N")
        elif character == "j" and first_of_month:
            adjusted.append(r"j\e\r")
        else:
            adjusted.append(character)
    return "".join(adjusted)


@register.filter(name="written_date", expects_localtime=True, is_safe=False)
def written_date_filter(value: dt.date | str | None, format_string: str = "DATE_FORMAT") -> str:
    """Django's `date` filter, written as the active language writes dates (written_date)."""
    if not isinstance(value, dt.date):
        return ""
    return written_date(value, format_string)
