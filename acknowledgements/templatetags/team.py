"""Whether to show someone the "My team" link: they manage at least one active person."""

from __future__ import annotations

from django import template

from acknowledgements.notifications.reminders import direct_reports

register = template.Library()


@register.simple_tag
def manages_people(user) -> bool:
    """True for a signed-in person with an active direct report (one query)."""
    return bool(user.is_authenticated) and direct_reports(user).exists()
