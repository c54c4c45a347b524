"""The typed name a signer must match: folded so that case, accents and spacing do not count.

The comparison folds, but the name is kept as typed (in NFC): it is the signature printed on
the receipt. So what the comparison would fold away but a reader would still see is refused
first: line breaks and control characters, marks that strike through, overlay or enclose
letters, marks that belong to no letter, and letters styled as full-width, bold, circled...
"""

from __future__ import annotations

import unicodedata

from django.utils.translation import gettext as _

from acknowledgements.models import (
    User,
)

# Unicode's bidirectional controls: they reorder what is shown without being seen themselves.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Compatibility decompositions of letters that are the same letters drawn differently.
STYLED_FORMS = frozenset(
    ["<font>", "<wide>", "<narrow>", "<circle>", "<super>", "<sub>", "<small>", "<square>"]
)
# Zero-width (non-)joiners shape the letters around them (Indic and Arabic scripts).
JOINERS = frozenset("\u200c\u200d")
OVERLAY = 1  # the canonical combining class of marks drawn through a letter (U+0334-U+0338...)


def _shown(character: str) -> str:
    """A character named so that a person can see which one it is."""
    return f"U+{ord(character):04X} {unicodedata.name(character, '')}".rstrip()


def signature_name(typed: str) -> str:
    """The typed name as it is stored: in NFC."""
    return unicodedata.normalize("NFC", typed)


def name_refusal(typed: str) -> str | None:
    """Why the typed name cannot be a signature, naming the character refused; None if it can."""
    name = signature_name(typed)
    attached = False  # whether the character before is a letter or a mark on one
    for character in name:
        category = unicodedata.category(character)
        if category in ("Cc", "Zl", "Zp") or character in BIDI_CONTROLS:
            return _(
                "Type your name on one line, without line breaks or control characters "
                "(found %(character)s)."
            ) % {"character": _shown(character)}
        if character in JOINERS:
            continue
        if category.startswith("M"):
            if category == "Me" or unicodedata.combining(character) == OVERLAY:
                return _(
                    "Marks drawn through, over or around letters cannot be part of a name "
                    "(found %(character)s)."
                ) % {"character": _shown(character)}
            if not attached:
                return _(
                    "A mark such as an accent must belong to a letter (found %(character)s "
                    "on its own)."
                ) % {"character": _shown(character)}
            continue
        if unicodedata.decomposition(character).split(" ")[0] in STYLED_FORMS:
            return _(
                "Type your name in ordinary letters, not full-width, bold, circled or other "
                "styled ones (found %(character)s)."
            ) % {"character": _shown(character)}
        attached = category.startswith("L")
    return None


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
