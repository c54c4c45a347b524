"""Exports as documents: the acknowledgements workbook (XLSX) and the PDF summary of a policy's figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import IO, Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from acknowledgements.evidence import ledger
from acknowledgements.receipts import document as receipt_document
from acknowledgements.reports import charts
from acknowledgements.reports.exports import (
    ACKNOWLEDGEMENT_COLUMNS,
    SIGNED_AT_COLUMN,
    XLSX_DATE_FORMAT,
    damage_warning,
    neutralise,
    signature_records,
)
from acknowledgements.reports.figures import (
    PolicyFigures,
)

# A builder reports its progress every this many rows (a background export saves it for its page).
PROGRESS_ROWS = 1_000

# --- XLSX ----------------------------------------------------------------------------------------


Progress = Callable[[int], None]


class RowCounter:
    """Counts rows written and tells `progress` every PROGRESS_ROWS of them."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = 0

    def add(self, rows: int = 1) -> None:
        before, self.done = self.done, self.done + rows
        if self.progress and before // PROGRESS_ROWS != self.done // PROGRESS_ROWS:
            self.progress(self.done)


def write_acknowledgements_xlsx(
    target: IO[bytes],
    queryset,
    *,
    about: list[tuple[str, str]],
    progress: Progress | None = None,
) -> int:
    """Write the signatures as a workbook (dates as real cells in UTC); return the row count.

    openpyxl's write-only mode keeps memory flat but cannot stream while it writes: the caller
    gives a file (a temporary one, or the file of a background export). `progress` is called
    with the number of rows written so far, every PROGRESS_ROWS rows. While the ledger is
    damaged, the sheet's first row says so (damage_warning), above the header.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    warning = damage_warning()
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Acknowledgements")
    sheet.freeze_panes = "A3" if warning else "A2"  # the header (and the warning) stay in view
    for index, (_header, width) in enumerate(ACKNOWLEDGEMENT_COLUMNS, 1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    bold = Font(bold=True)

    def header_cell(text: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=text)
        cell.font = bold
        return cell

    if warning:
        warning_cell = WriteOnlyCell(sheet, value=neutralise(warning))
        warning_cell.font = Font(bold=True, color="A4161A")
        sheet.append([warning_cell])
    sheet.append([header_cell(header) for header, _width in ACKNOWLEDGEMENT_COLUMNS])
    counter = RowCounter(progress)
    for record in signature_records(queryset):
        cells: list[Any] = []
        for index, value in enumerate(record):
            if index == SIGNED_AT_COLUMN:
                # Excel has no time zones: naive UTC, as the header says.
                cell = WriteOnlyCell(sheet, value=value.astimezone(dt.UTC).replace(tzinfo=None))
                cell.number_format = XLSX_DATE_FORMAT
                cells.append(cell)
            elif isinstance(value, int):
                cells.append(value)
            else:
                cells.append(neutralise(str(value)))
        sheet.append(cells)
        counter.add()
    count = counter.done

    info = workbook.create_sheet("About this export")
    info.column_dimensions["A"].width = 28
    info.column_dimensions["B"].width = 90
    info.append([header_cell("Field"), header_cell("Value")])
    for key, value in [*about, ("Rows", str(count))]:
        info.append([neutralise(key), neutralise(value)])
    workbook.save(target)
    return count


# --- PDF summary ---------------------------------------------------------------------------------

SUMMARY_TEMPLATE = "acknowledgements/reports_pdf/summary.html"


def summary_context(policy_figures: PolicyFigures, *, generated_by: str) -> dict[str, Any]:
    policy = policy_figures.policy
    if policy is None:
        raise ValueError("A summary is of one policy's figures.")
    uid = f"pdf-{policy.slug}"
    context: dict[str, Any] = {
        "figures": policy_figures,
        "company_name": settings.PORTAL_COMPANY_NAME,
        "generated_at": timezone.now(),
        "generated_by": generated_by,
        "ledger_warning": damage_warning(),
        "moment_utc": ledger.utc_iso(policy_figures.moment),
        "zone_name": timezone.get_current_timezone_name(),
        "fonts": {
            role: (receipt_document.FONTS_DIR / name).as_uri()
            for role, name in receipt_document.FONT_FILES.items()
        },
        "status_bar": charts.stacked_bar(
            uid, policy_figures.completion, title=f"{policy.name}: status of everyone in scope"
        ),
        "audience_bars": [
            (
                row,
                charts.stacked_bar(
                    f"{uid}-{row.audience.slug}",
                    row.completion,
                    title=f"{row.audience.name}: status",
                    height=18,
                    width=200,
                ),
            )
            for row in policy_figures.audiences
        ],
        "signatures_chart": (
            charts.signatures_chart(
                f"{uid}-daily",
                policy_figures.signatures,
                title=f"{policy.name}: signatures over time",
            )
            if policy_figures.signatures
            else None
        ),
    }
    return context


def summary_pdf(policy_figures: PolicyFigures, *, generated_by: str) -> bytes:
    """Render the one-policy summary for a board or an external auditor (fetches nothing)."""
    import weasyprint

    html = render_to_string(
        SUMMARY_TEMPLATE, summary_context(policy_figures, generated_by=generated_by)
    )
    # Reused from receipts: it serves the bundled fonts and refuses every other URL.
    fetcher = receipt_document.font_fetcher()
    return weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf(pdf_tags=True)
