import hashlib
from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from acknowledgements.policies.text import headings, normalise, render_html, text_sha256


def test_markdown_renders_headings_one_level_down_with_anchors():
    html = render_html("# Title\n\n## 1. Purpose\n\nText **bold**.\n")
    assert '<h2 id="title">Title</h2>' in html
    assert '<h3 id="1-purpose">1. Purpose</h3>' in html
    assert "<strong>bold</strong>" in html


class Elements(HTMLParser):
    """The elements and attributes a browser would build from some HTML."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def test_script_and_javascript_links_never_reach_the_browser():
    html = render_html(
        "Hello <script>alert(1)</script>\n\n[click](javascript:alert(1))\n\n"
        '<a href="javascript:alert(2)">raw</a> <img src=x onerror=alert(3)>\n\n'
        "[ok](https://example.com)\n"
    )
    elements = Elements(html).found
    assert {tag for tag, _ in elements} <= {"p", "a"}
    assert [attrs["href"] for tag, attrs in elements if tag == "a"] == ["https://example.com"]
    assert all("onerror" not in attrs for _, attrs in elements)


def test_duplicate_headings_get_unique_anchors():
    found = headings("## Scope\n\ntext\n\n## Scope\n")
    assert [h.anchor for h in found] == ["scope", "scope-2"]


def test_hash_is_of_the_normalised_source():
    assert normalise("a  \r\nb\r\n\r\n") == "a\nb\n"
    assert text_sha256("a  \r\nb") == hashlib.sha256(b"a\nb\n").hexdigest()


@given(st.text())
def test_renderer_accepts_any_text(source):
    elements = Elements(render_html(source)).found
    assert not {tag for tag, _ in elements} & {"script", "img", "iframe", "style"}
    assert len(headings(source)) == sum(
        tag in {"h2", "h3", "h4", "h5", "h6"} for tag, _ in elements
    )
