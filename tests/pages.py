"""Reading a response as a person or a test reads it: one home for the page helpers."""

import html
import re
from urllib.parse import urlencode

# Inline elements sit inside a sentence: dropping them without a space keeps it whole.
INLINE_TAGS = re.compile(r"</?(a|strong|em|span|time|code|ins|del)\b[^>]*>")
TAGS = re.compile(r"<[^>]+>")


def html_of(response) -> str:
    """The response's HTML as sent."""
    return response.content.decode()


def text_of(response) -> str:
    """The page's text as a person reads it: tags dropped, entities decoded, spaces collapsed."""
    without_inline = INLINE_TAGS.sub("", html_of(response))
    return " ".join(html.unescape(TAGS.sub(" ", without_inline)).split())


def field_error(response, field: str) -> str:
    """The error text shown next to one field (tied to it by id)."""
    found = re.search(rf'id="id_{field}_error"[^>]*>(.*?)</div>', html_of(response), re.S)
    assert found, f"no error next to {field}"
    return " ".join(html.unescape(TAGS.sub(" ", found.group(1))).split())


def with_query(url: str, params: dict | None = None) -> str:
    """`url` with `params` as its query string: what an export button POSTs to."""
    return f"{url}?{urlencode(params)}" if params else url
