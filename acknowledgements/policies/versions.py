"""Version labels: numbers separated by dots, increasing from one published revision to the next."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import (
    Policy,
    PolicyRevision,
)

VERSION_LABEL = re.compile(r"^\d{1,4}(\.\d{1,4}){0,3}$")


def version_key(label: str) -> tuple[int, ...]:
    return tuple(int(part) for part in label.split("."))


def check_version_label(
    *, policy: Policy, version: str, draft: PolicyRevision | None = None
) -> None:
    """A version label is numbers separated by dots, new for its policy and above every published one."""
    if not VERSION_LABEL.match(version):
        raise ActionRefused(
            _("Write the version as numbers separated by dots, such as 2.0 or 2.1.1.")
        )
    others = policy.revisions.exclude(pk=draft.pk) if draft else policy.revisions.all()
    if others.filter(version=version).exists():
        raise ActionRefused(
            _("Version %(version)s of this policy already exists; choose another label.")
            % {"version": version}
        )
    published = [version_key(v) for v in others.published().values_list("version", flat=True)]
    if published and version_key(version) <= max(published):
        latest = ".".join(str(part) for part in max(published))
        raise ActionRefused(
            _(
                "Versions increase: this one must come after the latest published version, %(latest)s."
            )
            % {"latest": latest}
        )
