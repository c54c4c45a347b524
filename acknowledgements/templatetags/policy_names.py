"""A policy's name as a reader of the active language sees it above a revision's text."""

from __future__ import annotations

from django import template
from django.utils import translation

from acknowledgements.models import AUTHORITATIVE_LANGUAGE, PolicyRevision

register = template.Library()


@register.filter
def policy_name(revision: PolicyRevision) -> str:
    """The name its translation into the active language gives, else the policy's own.

    Reads the revision's translations: a page or email naming many revisions prefetches them.
    """
    language = (translation.get_language() or AUTHORITATIVE_LANGUAGE).split("-")[0]
    return revision.text_in(language).title
