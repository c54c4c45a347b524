"""Refusals the actions raise; their messages are shown to the person as they are."""

from __future__ import annotations


class ActionRefused(Exception):
    """A request the rules do not allow; the message is shown to the person as it is."""


class ConsentRequired(ActionRefused):
    """A first signature without the e-signing consent ticked (shown next to its checkbox)."""
