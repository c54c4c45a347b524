"""What changed between two policy texts, for people asked to sign again and for administrators.

Two views of one change. The rendered diff is what people read: both texts go through the
portal's own pipeline (`text.render_html`: Markdown rendered, then sanitised), the top-level
blocks are compared with difflib's SequenceMatcher, lists, quotes and tables are compared item
by item, and within a block that changed the words are compared again, removed words in <del>
and added words in <ins>. The source diff is for the administrators who wrote the Markdown:
lines side by side, with the changed words marked in the same way.

The rendered diff is built only from the sanitised HTML, re-serialised here with every text and
attribute value escaped, and is sanitised once more with the same allowlist plus the marks, so
it is as safe to show as the policy itself. lxml's htmldiff was not used: it adds English
"Link:" text of its own and loses the whitespace of preformatted blocks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from html.parser import HTMLParser
from itertools import groupby
from typing import Literal

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from acknowledgements.policies.text import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    ALLOWED_URL_SCHEMES,
    render_html,
)

CONTEXT_LINES = 2
# Unchanged blocks shown either side of a change in the rendered diff; the rest are folded.
CONTEXT_BLOCKS = 1
# How alike two paragraphs (or list items) must be to be shown as one edited block rather than
# one removed and another added.
SIMILAR_ENOUGH = 0.4
# How many of the new text's blocks are searched for one alike to a replaced block: enough for
# a few inserted paragraphs, and a rewritten policy still compares in a moment.
LOOK_AHEAD = 12
# Words keep their inner dots, apostrophes and hyphens ("1.0", "don't", "e-mail") so a changed
# version number reads as one changed word.
_WORDS = re.compile(r"\s+|\w+(?:[.'\u2019\-]\w+)*|[^\w\s]")

_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_INLINE = {"a", "br", "code", "em", "strong"}
_VOID = {"br", "hr"}
# Elements whose children are compared one by one: a list's items, a table's rows and cells.
_CONTAINERS = {"blockquote", "ol", "table", "tbody", "thead", "tr", "ul"}
# Headings are shown as styled paragraphs: the diff sits inside a page section of its own, and
# its headings must not add duplicates of the policy's own to the page's outline.
_HEADING_CLASS = "rendered-diff__heading"
_MARKED_TAGS = (ALLOWED_TAGS - _HEADINGS) | {"del", "ins", "span"}
_MARKED_ATTRIBUTES = {tag: names - {"id"} for tag, names in ALLOWED_ATTRIBUTES.items()}
_MARKED_CLASSES = {
    "p": {_HEADING_CLASS, *(f"{_HEADING_CLASS}--{tag}" for tag in _HEADINGS)},
    "span": {"visually-hidden"},
}

Mark = Literal["del", "ins"]
Kind = Literal["same", "changed", "added", "removed", "gap"]


@dataclass(frozen=True)
class Row:
    kind: str  # "same", "changed", "added", "removed" or "gap"
    old: SafeString
    new: SafeString
    old_number: int | None = None
    new_number: int | None = None


@dataclass(frozen=True)
class Block:
    """A top-level block of the rendered diff (a paragraph, heading, list, table...) or a gap."""

    kind: Kind
    html: SafeString


class Comparison(Sequence[Row]):
    """Two policy texts compared: as a sequence, the source diff's rows; `blocks`, as read."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    @cached_property
    def rows(self) -> list[Row]:
        return _source_rows(self.old, self.new)

    @cached_property
    def blocks(self) -> list[Block]:
        """The rendered diff, runs of unchanged blocks folded to a little context."""
        compared = _compare_items(_items(_parse(self.old)), _items(_parse(self.new)))
        return [
            Block(kind, mark_safe("") if kind == "gap" else _sanitised(html))
            for kind, html in _folded(compared)
        ]

    @property
    def reads_the_same(self) -> bool:
        """True when nothing people read changed (only the Markdown source, if anything)."""
        return not self.blocks

    def __getitem__(self, index):
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)


def side_by_side(old: str, new: str) -> Comparison:
    """Two texts compared: iterate for the source diff's rows, read `blocks` for the rendered diff."""
    return Comparison(old, new)


# --- The source diff: Markdown lines side by side ---------------------------------------------


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


def _source_rows(old: str, new: str) -> list[Row]:
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


# --- The rendered diff: the sanitised HTML as a tree ------------------------------------------

Attributes = tuple[tuple[str, str], ...]


@dataclass
class _Element:
    tag: str
    attributes: Attributes
    children: list[_Element | str] = field(default_factory=list)


@dataclass(frozen=True)
class _Run:
    """Consecutive text and inline elements: the words of a paragraph, heading or list item."""

    nodes: tuple[_Element | str, ...]


Item = _Element | _Run


class _TreeBuilder(HTMLParser):
    """The sanitised HTML as elements and texts, keeping only the allowlisted attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Element("", ())
        self.open: list[_Element] = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            return
        allowed = _MARKED_ATTRIBUTES.get(tag, set())
        element = _Element(
            tag, tuple((name, value or "") for name, value in attrs if name in allowed)
        )
        self.open[-1].children.append(element)
        if tag not in _VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.open) - 1, 0, -1):
            if self.open[depth].tag == tag:
                del self.open[depth:]
                return

    def handle_data(self, data: str) -> None:
        children = self.open[-1].children
        if children and isinstance(children[-1], str):
            children[-1] += data
        else:
            children.append(data)


def _parse(source: str) -> list[_Element | str]:
    builder = _TreeBuilder()
    builder.feed(render_html(source))
    builder.close()
    return builder.root.children


def _items(children: Sequence[_Element | str]) -> list[Item]:
    """Block children as they are; each stretch of text and inline elements as one run."""
    items: list[Item] = []
    run: list[_Element | str] = []
    for child in [*children, None]:
        if child is not None and (isinstance(child, str) or child.tag in _INLINE):
            run.append(child)
            continue
        if run and not all(isinstance(node, str) and not node.strip() for node in run):
            items.append(_Run(tuple(run)))
        run = []
        if child is not None:
            items.append(child)
    return items


# --- Serialising, with every text and attribute escaped ---------------------------------------


def _open_tag(tag: str, attributes: Attributes) -> str:
    if tag in _HEADINGS:
        return f'<p class="{_HEADING_CLASS} {_HEADING_CLASS}--{tag}">'
    rendered = "".join(f' {name}="{escape(value)}"' for name, value in attributes)
    return f"<{tag}{rendered}>"


def _close_tag(tag: str) -> str:
    return "</p>" if tag in _HEADINGS else f"</{tag}>"


def _html(node: _Element | str | _Run) -> str:
    if isinstance(node, str):
        return escape(node)
    if isinstance(node, _Run):
        return "".join(_html(child) for child in node.nodes)
    if node.tag in _VOID:
        return _open_tag(node.tag, node.attributes)
    inner = "".join(_html(child) for child in node.children)
    return f"{_open_tag(node.tag, node.attributes)}{inner}{_close_tag(node.tag)}"


def _key(item: Item) -> str:
    return ("run:" if isinstance(item, _Run) else "block:") + _html(item)


# --- Words: a run as tokens, each with the inline elements around it --------------------------


@dataclass(frozen=True)
class _Token:
    context: tuple[tuple[str, Attributes], ...]  # the inline elements around the word
    text: str  # "" for a line break

    @property
    def blank(self) -> bool:
        return bool(self.text) and not self.text.strip()


Context = tuple[tuple[str, Attributes], ...]


def _tokens(nodes: Sequence[_Element | str], context: Context = ()) -> list[_Token]:
    found: list[_Token] = []
    for node in nodes:
        if isinstance(node, str):
            found += [_Token(context, word) for word in _WORDS.findall(node)]
        elif node.tag == "br":
            found.append(_Token((*context, ("br", ())), ""))
        else:
            found += _tokens(node.children, (*context, (node.tag, node.attributes)))
    return found


def _words_html(tokens: Sequence[_Token]) -> str:
    """Tokens as HTML, opening and closing their inline elements as the context changes."""
    parts: list[str] = []
    stack: list[tuple[str, Attributes]] = []
    for token in tokens:
        context = [entry for entry in token.context if entry[0] != "br"]
        shared = 0
        while shared < min(len(stack), len(context)) and stack[shared] == context[shared]:
            shared += 1
        parts += [_close_tag(tag) for tag, _ in reversed(stack[shared:])]
        parts += [_open_tag(tag, attributes) for tag, attributes in context[shared:]]
        stack = context
        parts.append(escape(token.text) if token.text else "<br>")
    parts += [_close_tag(tag) for tag, _ in reversed(stack)]
    return "".join(parts)


def _marked(mark: Mark, tokens: Sequence[_Token]) -> str:
    """Words in <del> or <ins>, announced as removed or added to people who cannot see it."""
    if all(token.blank for token in tokens):
        # Marking a lone space would show an empty mark: keep the new text's, drop the old's.
        return "" if mark == "del" else _words_html(tokens)
    label = gettext("removed:") if mark == "del" else gettext("added:")
    hidden = f'<span class="visually-hidden">{escape(label)} </span>'
    return f"<{mark}>{hidden}{_words_html(tokens)}</{mark}>"


def _compare_words(old: Sequence[_Token], new: Sequence[_Token]) -> str:
    opcodes = difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes()
    last = len(opcodes) - 1

    def changed(n: int) -> bool:
        # A lone space left equal between two changes would split one edit into many.
        tag, i1, i2, _, _ = opcodes[n]
        return tag != "equal" or (0 < n < last and all(token.blank for token in old[i1:i2]))

    parts: list[str] = []
    for is_change, numbers in groupby(range(len(opcodes)), key=changed):
        spans = [opcodes[n] for n in numbers]
        removed = [token for _, i1, i2, _, _ in spans for token in old[i1:i2]]
        added = [token for _, _, _, j1, j2 in spans for token in new[j1:j2]]
        if not is_change:
            parts.append(_words_html(added))
            continue
        if removed:
            parts.append(_marked("del", removed))
        if added:
            parts.append(_marked("ins", added))
    return "".join(parts)


# --- Blocks: comparing sequences of items -----------------------------------------------------


def _words_of(item: Item) -> list[str]:
    nodes = item.nodes if isinstance(item, _Run) else item.children
    return [token.text for token in _tokens(nodes) if token.text.strip()]


def _alike(old: Item, new: Item, words: dict[int, list[str]]) -> bool:
    if isinstance(old, _Run) != isinstance(new, _Run):
        return False
    if isinstance(old, _Element) and isinstance(new, _Element):
        if old.tag != new.tag:
            return False
        if old.tag in _CONTAINERS:
            return True
    for item in (old, new):
        if id(item) not in words:
            words[id(item)] = _words_of(item)
    matcher = difflib.SequenceMatcher(a=words[id(old)], b=words[id(new)], autojunk=False)
    # The quick upper bounds rule most pairs out before the full comparison.
    return (
        matcher.real_quick_ratio() >= SIMILAR_ENOUGH
        and matcher.quick_ratio() >= SIMILAR_ENOUGH
        and matcher.ratio() >= SIMILAR_ENOUGH
    )


def _whole(item: Item, mark: Mark) -> str:
    """An item that is only in one text, every word in it marked."""
    if isinstance(item, _Run):
        return _marked(mark, _tokens(item.nodes))
    if item.tag in _VOID:
        return "" if mark == "del" else _html(item)
    inner = "".join(_whole(child, mark) for child in _items(item.children))
    return f"{_open_tag(item.tag, item.attributes)}{inner}{_close_tag(item.tag)}"


def _edited(old: Item, new: Item) -> str:
    """Two versions of one item: words compared in a run, children compared in an element."""
    if isinstance(old, _Run) and isinstance(new, _Run):
        return _compare_words(_tokens(old.nodes), _tokens(new.nodes))
    assert isinstance(old, _Element) and isinstance(new, _Element)
    inner = "".join(html for _, html in _compare_items(_items(old.children), _items(new.children)))
    return f"{_open_tag(new.tag, new.attributes)}{inner}{_close_tag(new.tag)}"


def _paired(old: Sequence[Item], new: Sequence[Item]) -> list[tuple[Item | None, Item | None]]:
    """Replaced items paired with the next alike one, in order; the others stand alone."""
    pairs: list[tuple[Item | None, Item | None]] = []
    words: dict[int, list[str]] = {}
    start = 0
    for item in old:
        ahead = range(start, min(start + LOOK_AHEAD, len(new)))
        match = next((k for k in ahead if _alike(item, new[k], words)), None)
        if match is None:
            pairs.append((item, None))
            continue
        pairs += [(None, added) for added in new[start:match]]
        pairs.append((item, new[match]))
        start = match + 1
    pairs += [(None, added) for added in new[start:]]
    return pairs


def _sanitised(html: str) -> SafeString:
    return mark_safe(  # noqa: S308 - cleaned by nh3 just now
        nh3.clean(
            html,
            tags=_MARKED_TAGS,
            attributes=_MARKED_ATTRIBUTES,
            allowed_classes=_MARKED_CLASSES,
            url_schemes=ALLOWED_URL_SCHEMES,
            link_rel="noopener noreferrer",
        )
    )


def _compare_items(old: Sequence[Item], new: Sequence[Item]) -> list[tuple[Kind, str]]:
    matcher = difflib.SequenceMatcher(
        a=[_key(item) for item in old], b=[_key(item) for item in new], autojunk=False
    )
    blocks: list[tuple[Kind, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            blocks += [("same", _html(item)) for item in new[j1:j2]]
            continue
        for before, after in _paired(old[i1:i2], new[j1:j2]):
            if before is not None and after is not None:
                blocks.append(("changed", _edited(before, after)))
            elif before is not None and (removed := _whole(before, "del")):
                # A removed rule has no words to strike through, and is left out.
                blocks.append(("removed", removed))
            elif after is not None:
                blocks.append(("added", _whole(after, "ins")))
    return blocks


def _folded(blocks: list[tuple[Kind, str]]) -> list[tuple[Kind, str]]:
    """Unchanged blocks more than CONTEXT_BLOCKS away from a change become one gap; none if
    nothing changed."""
    changes = [n for n, (kind, _) in enumerate(blocks) if kind != "same"]
    if not changes:
        return []
    shown = {
        n
        for change in changes
        for n in range(change - CONTEXT_BLOCKS, change + CONTEXT_BLOCKS + 1)
        if 0 <= n < len(blocks)
    }
    folded: list[tuple[Kind, str]] = []
    for n, block in enumerate(blocks):
        if n in shown:
            folded.append(block)
        elif not folded or folded[-1][0] != "gap":
            folded.append(("gap", ""))
    return folded
