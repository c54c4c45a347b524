"""What changed between two policy texts, for people asked to sign again and for administrators.

Lines are compared with difflib's SequenceMatcher; within a changed line, words are compared
again so the exact wording change stands out. Everything is escaped here: the result is
trusted HTML fragments.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

CONTEXT_LINES = 2
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True)
class Row:
    kind: str  # "same", "changed", "added", "removed" or "gap"
    old: SafeString
    new: SafeString
    old_number: int | None = None
    new_number: int | None = None


def _marked_words(old: str, new: str) -> tuple[SafeString, SafeString]:
    old_words, new_words = _WORDS.findall(old), _WORDS.findall(new)
    old_html: list[str] = []
    new_html: list[str] = []
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        removed = escape("".join(old_words[i1:i2]))
        added = escape("".join(new_words[j1:j2]))
        if tag == "equal":
            old_html.append(removed)
            new_html.append(added)
            continue
        if removed:
            old_html.append(f"<del>{removed}</del>")
        if added:
            new_html.append(f"<ins>{added}</ins>")
    return mark_safe("".join(old_html)), mark_safe("".join(new_html))  # noqa: S308 - escaped above


def _whole_line(tag: str, line: str) -> SafeString:
    """A removed or added line, marked; a blank line stays blank rather than an empty mark."""
    if not line.strip():
        return mark_safe("")
    return mark_safe(f"<{tag}>{escape(line)}</{tag}>")  # noqa: S308 - escaped


def side_by_side(old: str, new: str) -> list[Row]:
    """Rows of a two-column diff; runs of unchanged lines are folded to a little context."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    rows: list[Row] = []
    for group in matcher.get_grouped_opcodes(CONTEXT_LINES):
        if rows:
            rows.append(Row("gap", mark_safe(""), mark_safe("")))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [
                    Row("same", escape(old_lines[i]), escape(new_lines[j]), i + 1, j + 1)
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                ]
                continue
            pairs = max(i2 - i1, j2 - j1)
            for offset in range(pairs):
                i, j = i1 + offset, j1 + offset
                old_line = old_lines[i] if i < i2 else None
                new_line = new_lines[j] if j < j2 else None
                if old_line is not None and new_line is not None:
                    marked_old, marked_new = _marked_words(old_line, new_line)
                    rows.append(Row("changed", marked_old, marked_new, i + 1, j + 1))
                elif old_line is not None:
                    rows.append(Row("removed", _whole_line("del", old_line), mark_safe(""), i + 1))
                else:
                    # offset < max(i2 - i1, j2 - j1), so a row without an old line has a new one.
                    assert new_line is not None
                    rows.append(
                        Row("added", mark_safe(""), _whole_line("ins", new_line), None, j + 1)
                    )
    return rows
