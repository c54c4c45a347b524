import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from acknowledgements.evidence import checks, transparency


class Command(BaseCommand):
    help = (
        "Link any entry committed but not yet linked, then walk the evidence ledger and "
        "recompute every hash, check the transparency log's stored tree and every signed "
        "checkpoint against it, and check that the database's triggers still protect it; the "
        "result is recorded (administrators see a banner while it is not intact). With "
        "--checkpoint FILE, also prove that the ledger extends a checkpoint kept outside the "
        "portal. Exit 1 on any failure."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            type=Path,
            metavar="FILE",
            help="a signed checkpoint kept earlier (from /ledger/checkpoint or a receipt)",
        )

    def handle(self, *args, checkpoint: Path | None = None, **options):
        try:
            kept = checkpoint.read_text(encoding="utf-8") if checkpoint else None
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read the checkpoint {checkpoint}: {error}") from None
        result = checks.run()
        if result.linked:
            self.stdout.write(f"Linked {result.linked} entries that were waiting for their place.")
        if not result.chain.intact:
            self.stderr.write(result.chain.summary())
            sys.exit(1)
        self.stdout.write(result.chain.summary())
        problems = list(result.problems)
        if kept is not None:
            problems += [
                f"Kept checkpoint: {problem}."
                for problem in transparency.check_kept_checkpoint(kept)
            ]
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            sys.exit(1)
        head = transparency.latest()
        if head is not None:
            self.stdout.write(
                f"Transparency log intact: checkpoint {head.tree_size}, root "
                f"{transparency.b64(bytes.fromhex(head.root_hash))}."
            )
        if kept is not None:
            self.stdout.write("The ledger extends the kept checkpoint.")
