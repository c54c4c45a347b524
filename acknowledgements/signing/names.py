"""The typed name a signer must match: folded so that case, accents and spacing do not count."""

from __future__ import annotations

import unicodedata

from acknowledgements.models import (
    User,
)


def comparable_name(name: str) -> str:
    """A name folded for comparison: case, accents and runs of spaces do not count."""
    # Upper-casing first folds letters that casefold() alone keeps apart (the Turkish dotless
    # i and I).
    decomposed = unicodedata.normalize("NFKD", name.upper().casefold())
    without_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(without_marks.split())


def typed_name_matches(typed: str, person: User) -> bool:
    return bool(comparable_name(typed)) and comparable_name(typed) == comparable_name(
        person.full_name
    )
