"""Whether to show someone the "My team" link: they manage at least one active person."""

from __future__ import annotations

from django import template

register = template.Library()

# The session's note of whether the signed-in person manages anyone, refreshed at most a
# minute apart by middleware.ActiveSessionMiddleware.
MANAGES_PEOPLE = "portal_manages_people"


@register.simple_tag
def manages_people(request) -> bool:
    """True for a signed-in person with an active direct report, as their session noted it at
    most a minute ago (middleware.ActiveSessionMiddleware): no query on every page."""
    session = getattr(request, "session", None)
    return bool(session is not None and session.get(MANAGES_PEOPLE))
