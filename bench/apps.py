"""The bench app, and two switches read only by the task worker the signing benchmark starts.

Figures 1h-1j measure signing while `manage.py db_worker` runs the tasks the signatures queue.
Both switches are set in that worker's environment only (gunicorn never sees them):

- BENCH_RECEIPT_LEDGER_ONLY=1: a signature's receipt task does only its ledger work, what the
  link task does (link everything waiting, then sign a checkpoint), without rendering and
  sealing the PDF: one render takes a core for more than half a second, in both conditions
  alike, and would hide the checkpoint's cost;
- BENCH_SKIP_CHECKPOINT=1: `transparency.checkpoint` does nothing, so the same worker links
  without checkpointing (the baseline of 1h).
"""

import os

from django.apps import AppConfig


def receipt_ledger_part(*, receipt_number: str) -> None:
    """The receipt task's ledger work alone: the link task's link, then its checkpoint."""
    from acknowledgements.evidence import ledger

    ledger.link_ledger.call()


def no_checkpoint() -> None:
    return None


class BenchConfig(AppConfig):
    name = "bench"
    verbose_name = "Benchmarks"

    def ready(self) -> None:
        if os.environ.get("BENCH_RECEIPT_LEDGER_ONLY") == "1":
            from acknowledgements.receipts import actions as receipt_actions

            # issue_receipt_task calls the module's issue_receipt when it runs.
            receipt_actions.issue_receipt = receipt_ledger_part
        if os.environ.get("BENCH_SKIP_CHECKPOINT") == "1":
            from acknowledgements.evidence import transparency

            # The link task calls transparency.checkpoint() through the module when it runs.
            transparency.checkpoint = no_checkpoint
