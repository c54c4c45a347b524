"""Policy text: normalising the Markdown source, hashing it, and rendering it to safe HTML.

The source is parsed by markdown-it-py with raw HTML disabled, and the result is sanitised by
nh3 anyway, so neither a `<script>` nor a `javascript:` link in a policy body reaches a browser.
"""

import hashlib
import itertools
from dataclasses import dataclass

import nh3
from django.utils.text import slugify
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li",
    "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "h1": {"id"}, "h2": {"id"}, "h3": {"id"}, "h4": {"id"}, "h5": {"id"}, "h6": {"id"},
    "ol": {"start"},
}  # fmt: skip
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str


def normalise(source: str) -> str:
    """The canonical form of a policy text: LF line endings, no trailing spaces at line ends."""
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


def text_sha256(source: str) -> str:
    """The hash signers agree to, computed as models.TEXT_SHA256_RULE words it."""
    return hashlib.sha256(normalise(source).encode("utf-8")).hexdigest()


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def headings(source: str) -> list[Heading]:
    """The document's headings with unique anchors, for the table of contents."""
    tokens = _parser().parse(normalise(source))
    found: list[Heading] = []
    used: set[str] = set()
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open":
            text = inline.content
            anchor = base = slugify(text) or "section"
            counter = 2
            while anchor in used:
                anchor, counter = f"{base}-{counter}", counter + 1
            used.add(anchor)
            found.append(Heading(level=int(opening.tag[1]), text=text, anchor=anchor))
    return found


def render_html(source: str) -> str:
    """Markdown to sanitised HTML, headings carrying the anchors that `headings` lists.

    Headings move down one level (# becomes h2) because the page's own h1 names the policy.
    """
    parser = _parser()
    tokens = parser.parse(normalise(source))
    anchors = iter(heading.anchor for heading in headings(source))
    for token in tokens:
        if token.type in {"heading_open", "heading_close"}:
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
            if token.type == "heading_open":
                token.attrSet("id", next(anchors))
    html = parser.renderer.render(tokens, parser.options, {})
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer",
    )
