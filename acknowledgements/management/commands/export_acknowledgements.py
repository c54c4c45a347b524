"""Export a policy's acknowledgements as CSV, XLSX or the audit package (ZIP), as the reports do.

The export is recorded in the audit log like one made from the browser, with no actor and the
command's name in its details.
"""

import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from acknowledgements.evidence import audit as evidence_audit
from acknowledgements.evidence import ledger
from acknowledgements.models import Policy
from acknowledgements.reports import (
    audit_package,
    documents,
    exports,
    lists,
    signatures_csv,
)
from acknowledgements.standings import coverage

COMMAND = "export_acknowledgements"
FORMATS = ("csv", "xlsx", "zip")


def parse_moment(text: str) -> dt.datetime:
    """An ISO 8601 date or time; without an offset it is read as UTC. Refuses the future."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise CommandError(
            f"--as-of {text!r} is not an ISO 8601 date or time, such as 2026-03-31T17:00:00Z."
        ) from exc
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    if moment > timezone.now():
        raise CommandError(
            f"--as-of {text!r} is in the future: exports show what has been recorded."
        )
    return moment


class Command(BaseCommand):
    help = (
        "Export a policy's acknowledgements up to a moment (default: now) as CSV, XLSX or the "
        "audit package (ZIP). The export is recorded in the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("--policy", required=True, help="The policy's slug.")
        parser.add_argument(
            "--as-of",
            default="",
            help="An ISO 8601 time (UTC unless it has an offset); default: now.",
        )
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--output", required=True, help="The file to write.")

    def handle(self, *args, policy: str, as_of: str, format: str, output: str, **options):
        found = Policy.objects.filter(slug=policy).first()
        if found is None:
            known = ", ".join(Policy.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"No policy {policy!r}. Known policies: {known}.")
        moment = parse_moment(as_of) if as_of else timezone.now()
        path = Path(output)
        try:
            # Opened first, so that a path that cannot be written is refused before the work.
            target = path.open("wb")
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
        timeline = coverage.timeline_for(found, moment)
        signatures = lists.signatures(found, timeline, moment)
        by = exports.exported_by(None, COMMAND)
        try:
            with target:
                rows = self._write(target, format, found, timeline, moment, signatures, by)
        except BaseException:
            path.unlink(missing_ok=True)  # never leave half an export behind
            raise
        what = {"csv": "acknowledgements.csv", "xlsx": "acknowledgements.xlsx"}.get(
            format, "audit-package.zip"
        )
        evidence_audit.record_export(
            actor=None,
            what=what,
            filters=evidence_audit.export_scope(
                policy=found, moment=moment, command=COMMAND, output=str(path)
            ),
            rows=rows,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {rows} signatures of {found.name} as of {ledger.utc_iso(moment)} to {path}."
            )
        )

    @staticmethod
    def _write(target, format, policy, timeline, moment, signatures, by) -> int:
        if format == "csv":
            for block in signatures_csv.acknowledgements_csv(signatures):
                target.write(block)
            return signatures.count()
        if format == "xlsx":
            return documents.write_acknowledgements_xlsx(
                target,
                signatures,
                about=exports.export_metadata(policy=policy, moment=moment, exported_by=by),
            )
        return audit_package.write_package(
            target, policy=policy, timeline=timeline, moment=moment, exported_by=by
        ).signatures
