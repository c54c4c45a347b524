"""The rendered diff between two policy texts: formatted as people read it, changes marked, safe."""

import re
from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from acknowledgements.policies.diffs import side_by_side
from acknowledgements.policies.text import ALLOWED_TAGS

ADDED = '<ins><span class="visually-hidden">added: </span>'
REMOVED = '<del><span class="visually-hidden">removed: </span>'

OLD = """# Acceptable use

### Passwords

Use a **strong** password of at least 12 characters.

- Do not share it.
- Lock your screen.

Old closing paragraph.
"""
NEW = """# Acceptable use

### Passwords and keys

Use a **unique** password of at least 14 characters.

- Do not share it.
- Report a lost laptop at once.
- Lock your screen.
"""


def rendered(old: str, new: str) -> str:
    return "".join(block.html for block in side_by_side(old, new).blocks)


class Elements(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def test_the_diff_shows_formatted_text_not_markdown():
    html = rendered(OLD, NEW)

    assert "#" not in html
    assert "**" not in html
    assert (
        f"Use a {REMOVED}<strong>strong</strong></del>{ADDED}<strong>unique</strong></ins>" in html
    )
    assert f"at least {REMOVED}12</del>{ADDED}14</ins> characters." in html


def test_headings_show_as_headings_without_joining_the_pages_outline():
    html = rendered(OLD, NEW)

    assert (
        '<p class="rendered-diff__heading rendered-diff__heading--h4">'
        f"Passwords{ADDED} and keys</ins></p>"
    ) in html
    assert not re.search(r"<h\d", html)
    assert " id=" not in html  # the policy text below carries the anchors


def test_added_list_items_and_removed_paragraphs_are_marked_whole():
    blocks = side_by_side(OLD, NEW).blocks

    assert f"<li>{ADDED}Report a lost laptop at once.</ins></li>" in blocks[-2].html
    assert "<li>Do not share it.</li>" in blocks[-2].html
    assert (blocks[-1].kind, blocks[-1].html) == (
        "removed",
        f"<p>{REMOVED}Old closing paragraph.</del></p>",
    )


def test_a_paragraph_inserted_before_an_edited_one_is_not_mistaken_for_it():
    old = "Keep your laptop locked when you leave it.\n"
    new = "Report a lost badge at once.\n\nKeep your laptop locked whenever you leave it.\n"

    blocks = side_by_side(old, new).blocks

    assert [block.kind for block in blocks] == ["added", "changed"]
    assert f"locked {REMOVED}when</del>{ADDED}whenever</ins> you" in blocks[1].html


def test_a_version_number_changes_as_one_word():
    html = rendered("Version 1.0.\n", "Version 2.0.\n")

    assert html == f"<p>Version {REMOVED}1.0</del>{ADDED}2.0</ins>.</p>"


def test_a_changed_link_target_shows_both_links():
    html = rendered(
        "See [the guide](https://a.example/).\n", "See [the guide](https://b.example/).\n"
    )

    assert (
        REMOVED + '<a href="https://a.example/" rel="noopener noreferrer">the guide</a></del>'
        in html
    )
    assert (
        ADDED + '<a href="https://b.example/" rel="noopener noreferrer">the guide</a></ins>' in html
    )


def test_long_unchanged_stretches_are_folded():
    paragraphs = [f"Paragraph {n} stays." for n in range(10)]
    old = "\n\n".join(paragraphs) + "\n"
    new = old.replace("Paragraph 5 stays.", "Paragraph 5 changes.")

    blocks = side_by_side(old, new).blocks

    assert [block.kind for block in blocks] == ["gap", "same", "changed", "same", "gap"]
    assert blocks[1].html == "<p>Paragraph 4 stays.</p>"


def test_a_change_of_markdown_alone_reads_the_same():
    comparison = side_by_side("Be *kind*.\n", "Be _kind_.\n")

    assert comparison  # the source lines differ...
    assert comparison.reads_the_same  # ...but not the text people read
    assert comparison.blocks == []


def test_the_source_diff_is_still_there_for_administrators():
    rows = list(
        side_by_side("# Title\n\nBe excellent.\n", "# Title\n\nBe excellent to each other.\n")
    )

    assert [row.kind for row in rows] == ["same", "same", "changed"]
    assert rows[-1].new == "Be excellent<ins> to each other</ins>."


def test_markup_in_a_policy_never_reaches_the_diff_as_markup():
    html = rendered(
        "Hello.\n",
        'Hello <script>alert(1)</script> & <b onclick="x">bold</b>.\n\n'
        "[click](javascript:alert(1))\n\n<img src=x onerror=alert(3)>\n",
    )

    elements = Elements(html).found
    assert {tag for tag, _ in elements} <= {"p", "del", "ins", "span"}
    assert not any(
        "onerror" in attrs or "onclick" in attrs or "href" in attrs for _, attrs in elements
    )
    # The policy shows raw HTML as the text it is, and so does the diff.
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b onclick" in html


@given(st.text(), st.text())
def test_any_two_texts_compare_to_allowlisted_markup(old, new):
    html = rendered(old, new)

    elements = Elements(html).found
    allowed = (ALLOWED_TAGS - {"h1", "h2", "h3", "h4", "h5", "h6"}) | {"ins", "del", "span"}
    assert {tag for tag, _ in elements} <= allowed
    assert all(set(attrs) <= {"href", "title", "rel", "start", "class"} for _, attrs in elements)


def test_a_changed_table_cell_is_marked_inside_the_table():
    old = "| Data | Where |\n| --- | --- |\n| Customer | CRM |\n| Code | Git |\n"
    new = "| Data | Where |\n| --- | --- |\n| Customer | CRM only |\n| Code | Git |\n"

    html = re.sub(r">\s+<", "><", rendered(old, new))

    assert html.startswith("<table><thead><tr><th>Data</th><th>Where</th></tr></thead><tbody>")
    assert f"<tr><td>Customer</td><td>CRM{ADDED} only</ins></td></tr>" in html
    assert "<tr><td>Code</td><td>Git</td></tr></tbody></table>" in html
