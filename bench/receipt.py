"""Figure 3: rendering and sealing one receipt, warm, against a bare WeasyPrint render.

    python -m bench.receipt --size full --json out.json

The document is a real signature of the generated data set, built as services.issue_receipt
builds it. Its HTML is rendered once with the receipt template; the baseline is
`weasyprint.HTML(string=html).write_pdf()` of that HTML (no PDF/A, attachments, tags or seal);
the figure is `receipt_seal.render_and_seal(document, identity)` (render the template, PDF/A-3b with
evidence.json and the policy attached, tagged, then sealed with pyHanko). Both are warmed up
once, then timed alternately `receipt_reps` times in one process; medians. Each timing starts
from a garbage collection (`alone`): otherwise each side paid for part of the other's garbage.

The same measurement runs again in a child process where WeasyPrint is told HarfBuzz's subset
library is missing (weasyprint.pdf.fonts.harfbuzz_subset = None: it then subsets fonts with
fontTools, as on a machine without libharfbuzz-subset0), to show what that package is worth.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial

from bench.common import Figure, django_setup, main_args, median, size, write_json

RATIO_TARGET = 1.5


def document_and_identity():
    from django.conf import settings
    from django.urls import reverse

    from acknowledgements.models import Acknowledgement
    from acknowledgements.receipts import authority as receipt_authority
    from acknowledgements.receipts import document as receipt_document

    acknowledgement = (
        Acknowledgement.objects.select_related("ledger_entry", "revision__policy", "person")
        .order_by("-pk")
        .first()
    )
    identity = receipt_authority.load_sealing_identity()
    entry, revision = acknowledgement.ledger_entry, acknowledgement.revision
    document = receipt_document.ReceiptDocument(
        receipt_number=acknowledgement.receipt_number,
        payload=bytes(entry.payload),
        payload_sha256=entry.payload_sha256,
        sequence=entry.sequence,
        previous_hash=entry.previous_hash,
        row_hash=entry.row_hash,
        policy_source=revision.body,
        policy_html=revision.body_html,
        verify_url=f"{settings.PORTAL_BASE_URL}{reverse('acknowledgements:verify')}",
        seal_fingerprint=identity.fingerprint,
    )
    return document, identity


def alone(work: Callable[[], bytes]) -> tuple[bytes, float]:
    """`work`'s result and its time, started from a garbage collection (not timed).

    A render leaves cyclic garbage that Python's collector frees during whatever runs next:
    timed back to back, one side paid for the other's (a receipt's render took about 350 ms
    after a collection and 475 ms right after another render). From a collection, each pays
    for the collections its own allocations cause and nothing else. (Collecting again inside
    the timing would add a scan of the whole heap, about 100 ms, to both sides.)
    """
    gc.collect()
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def measure(reps: int, without_hb_subset: bool) -> dict:
    import weasyprint
    import weasyprint.pdf.fonts

    from acknowledgements.receipts import document as receipt_document
    from acknowledgements.receipts import seal as receipt_seal

    if without_hb_subset:
        weasyprint.pdf.fonts.harfbuzz_subset = None
        logging.getLogger("weasyprint").setLevel(logging.ERROR)  # its "using fontTools" warning
    document, identity = document_and_identity()
    html = receipt_document.receipt_html(document)

    def bare() -> bytes:
        return weasyprint.HTML(string=html).write_pdf()

    def full() -> bytes:
        return receipt_seal.render_and_seal(document, identity)

    bare(), full()  # warm: fonts, templates, pyHanko
    bare_s, full_s, render_s, seal_s = [], [], [], []
    for _ in range(reps):
        pdf, seconds = alone(bare)
        bare_s.append(seconds)
        sealed, seconds = alone(full)
        full_s.append(seconds)
        if reps < 3:
            continue  # the breakdown is for the full run
        # Where the time goes: the PDF/A-3b render alone, then the seal alone.
        unsealed, seconds = alone(partial(receipt_document.render_receipt, document))
        render_s.append(seconds)
        _sealed, seconds = alone(partial(receipt_seal.seal_pdf, unsealed, identity))
        seal_s.append(seconds)
    report = receipt_seal.inspect_receipt(sealed, trust_roots_pem=[identity.root_pem])
    if not report.ok:
        raise SystemExit(f"the benchmark's receipt does not verify: {report.problem}")
    return {
        "bare_s": bare_s,
        "full_s": full_s,
        "render_s": render_s,
        "seal_s": seal_s,
        "bare_bytes": len(pdf),
        "sealed_bytes": len(sealed),
        "harfbuzz_subset_loaded": weasyprint.pdf.fonts.harfbuzz_subset is not None,
    }


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    chosen = size(args.size)
    if os.environ.get("BENCH_RECEIPT_CHILD"):
        django_setup()
        without = os.environ["BENCH_RECEIPT_CHILD"] == "no-hb-subset"
        with open(args.json, "w") as out:
            json.dump(measure(chosen.receipt_reps, without), out)
        return
    results = {}
    for variant in ("hb-subset", "no-hb-subset"):
        path = f"{args.json}.{variant}"
        subprocess.run(
            [sys.executable, "-m", "bench.receipt", "--size", chosen.name, "--json", path],
            env={**os.environ, "BENCH_RECEIPT_CHILD": variant},
            check=True,
        )
        with open(path) as result:
            results[variant] = json.load(result)
        os.unlink(path)
    with_hb, without_hb = results["hb-subset"], results["no-hb-subset"]
    full, bare = median(with_hb["full_s"]), median(with_hb["bare_s"])
    full_no, bare_no = median(without_hb["full_s"]), median(without_hb["bare_s"])
    figures = [
        Figure(
            number="3a",
            name="Receipt: render + seal one receipt (warm)",
            value=1000 * full,
            unit="ms",
            baseline_name="bare WeasyPrint render of the same HTML",
            baseline=1000 * bare,
            ratio=full / bare,
            target=f"<= {RATIO_TARGET}x",
            met=full / bare <= RATIO_TARGET,
            note=(
                f"median of {chosen.receipt_reps}"
                + (
                    f": PDF/A-3b render {1000 * median(with_hb['render_s']):.0f} ms + seal "
                    f"{1000 * median(with_hb['seal_s']):.0f} ms"
                    if with_hb["render_s"]
                    else ""
                )
                + "; libharfbuzz-subset0 in use: "
                f"{with_hb['harfbuzz_subset_loaded']}; {with_hb['sealed_bytes'] / 1024:.0f} KiB sealed"
            ),
            samples=[1000 * s for s in with_hb["full_s"]],
        ),
        Figure(
            number="3b",
            name="Receipt without HarfBuzz subsetting (fontTools fallback)",
            value=1000 * full_no,
            unit="ms",
            baseline_name="the same with libharfbuzz-subset0 (3a)",
            baseline=1000 * full,
            ratio=full_no / full,
            target="reported",
            note=(
                f"bare render without it {1000 * bare_no:.0f} ms; STACK.md: ~300 ms without, "
                "~60 ms warm with it"
            ),
            samples=[1000 * s for s in without_hb["full_s"]],
        ),
    ]
    write_json(args.json, {"figures": [f.as_dict() for f in figures], **results})


if __name__ == "__main__":
    main()
