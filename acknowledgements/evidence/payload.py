"""Reading a decoded ledger payload, and showing what it recorded: one rule for receipts,
reports and exports alike."""

from __future__ import annotations

import json
from typing import Any

NOT_RECORDED = "not recorded"


def lookup(payload: Any, *path: str) -> Any:
    """The value at `path` in a decoded payload, or None when a key is missing or a step is not
    an object."""
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def shown(value: Any) -> str:
    """A recorded value as text, never a guess: a missing or null one is "not recorded", a
    string exactly as recorded (an empty one stays empty, so that an export can be read back),
    booleans yes/no, other JSON as compact JSON with sorted keys."""
    if value is None:
        return NOT_RECORDED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
