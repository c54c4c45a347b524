"""The full check of the evidence, its record, and whether the latest one found damage.

`run` is what `manage.py verify_ledger` does (the scheduler runs it hourly): the hash chain from
the first row, the transparency log's tree and every signed checkpoint against the rows, and
the database triggers that protect them. Each run is recorded (LedgerCheck); while the latest
found a problem, administrators and auditors see a banner on every page, exports say so first,
and /verify/ explains that a receipt cannot be fully confirmed because the ledger is damaged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from acknowledgements.evidence import chain_check, ledger, protection, transparency
from acknowledgements.models import LedgerCheck

# Pages read the latest check at most once a minute per process, kept in the process itself:
# a shared cache would cost a round trip on every page, for news that changes hourly at most.
REREAD_AFTER_SECONDS = 60
_latest: tuple[float, LedgerCheck | None] | None = None  # (read at, the latest check)


@dataclass
class FullCheck:
    chain: chain_check.ChainVerification
    linked: int  # entries that were waiting for their place, linked first
    problems: list[str] = field(default_factory=list)  # one sentence each, without the chain's

    @property
    def intact(self) -> bool:
        return self.chain.intact and not self.problems


def run() -> FullCheck:
    """Link what waits, verify everything, checkpoint what was linked, and record the result."""
    linked = ledger.link_pending()
    chain = chain_check.verify_chain()
    result = FullCheck(chain, linked)
    if chain.intact:
        transparency.checkpoint()  # of what was just linked, as the link task would
        result.problems += [f"Transparency log: {p}." for p in transparency.verify_log()]
    result.problems += [f"Evidence protection weakened: {p}." for p in protection.weakened()]
    problems = ([] if chain.intact else [chain.summary()]) + result.problems
    LedgerCheck.objects.create(
        intact=result.intact, rows_checked=chain.rows_checked, problems=problems
    )
    forget_latest()
    return result


def forget_latest() -> None:
    global _latest
    _latest = None


def damage() -> LedgerCheck | None:
    """The latest check, when it found the ledger damaged; None when it was intact (or none ran)."""
    global _latest
    now = time.monotonic()
    if _latest is None or now - _latest[0] > REREAD_AFTER_SECONDS:
        _latest = (now, LedgerCheck.objects.order_by("-checked_at", "-pk").first())
    latest = _latest[1]
    return latest if latest is not None and not latest.intact else None
