"""The parts of a ledger payload that describe a person, a revision and the text shown: one shape everywhere."""

from __future__ import annotations

from acknowledgements.evidence import ledger
from acknowledgements.models import (
    AUTHORITATIVE_LANGUAGE,
    PolicyRevision,
    User,
)


def person_snapshot(person: User) -> dict:
    return {"id": person.pk, "email": person.email, "name": person.full_name}


def revision_snapshot(revision: PolicyRevision) -> dict:
    return {
        "slug": revision.policy.slug,
        "name": revision.policy.name,
        "version": revision.version,
        "revision_id": revision.pk,
        "effective_at": ledger.utc_iso(revision.effective_at),
        "material": revision.is_material,
    }


def text_snapshot(revision: PolicyRevision, language: str) -> dict:
    """The text shown: its language and SHA-256 beside the authoritative text's, and the policy's
    name above it ("title", in that language if the translation gives one; entries recorded
    before translations had names lack it, and showed the English name)."""
    shown_language, shown_title, shown_sha256 = revision.text_facts_in(language)
    return {
        "sha256": shown_sha256,
        "language": shown_language,
        "title": shown_title,
        "authoritative_language": AUTHORITATIVE_LANGUAGE,
        "authoritative_sha256": revision.text_sha256,
        "hashed": "Markdown source, UTF-8, LF line endings",
    }
