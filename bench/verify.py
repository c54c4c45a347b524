"""Figure 6: verifying the whole ledger (ledger.verify_chain) against sha256sum of its payloads.

    python -m bench.verify --size full --json out.json

verify_chain reads every row in sequence order, hashes its payload, recomputes the link and the
row hash and compares the columns with the payload (json.loads + canonical_bytes). The baseline
is the bare cost of hashing the same payload bytes: `sha256sum` over .out/payloads.bin, which
the generator wrote (every payload, concatenated, in sequence order).
"""

from __future__ import annotations

import subprocess
import time

from bench.common import OUT, Figure, django_setup, main_args, median, size, write_json


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    chosen = size(args.size)
    django_setup()
    from acknowledgements.evidence import ledger
    from acknowledgements.models import LedgerEntry

    rows = LedgerEntry.objects.count()
    payloads = OUT / "payloads.bin"
    payload_bytes = payloads.stat().st_size
    verify_times, sha_times = [], []
    result = None
    for _run in range(chosen.runs):
        started = time.perf_counter()
        result = ledger.verify_chain()
        verify_times.append(time.perf_counter() - started)
        if not result.intact:
            raise SystemExit(result.summary())
        started = time.perf_counter()
        subprocess.run(["sha256sum", str(payloads)], check=True, stdout=subprocess.DEVNULL)
        sha_times.append(time.perf_counter() - started)
    assert result is not None
    if result.rows_checked != rows:
        raise SystemExit(f"verify_chain checked {result.rows_checked} rows of {rows}")
    verify_rate = rows / median(verify_times)
    sha_rate = rows / median(sha_times)
    figure = Figure(
        number="6",
        name=f"verify_chain over {rows:,} ledger rows",
        value=verify_rate,
        unit="rows/s",
        baseline_name=f"sha256sum of the same {payload_bytes / 1e6:,.0f} MB of payloads",
        baseline=sha_rate,
        ratio=verify_rate / sha_rate,
        target="reported (no target)",
        met=None,
        note=(
            f"median of {chosen.runs}: verify_chain {median(verify_times):.1f} s "
            f"({payload_bytes / 1e6 / median(verify_times):.0f} MB/s of payload), sha256sum "
            f"{median(sha_times):.2f} s ({payload_bytes / 1e6 / median(sha_times):.0f} MB/s)"
        ),
        samples=verify_times,
    )
    write_json(
        args.json,
        {
            "figures": [figure.as_dict()],
            "rows": rows,
            "payload_bytes": payload_bytes,
            "verify_s": verify_times,
            "sha256sum_s": sha_times,
            "head_hash": result.head_hash,
        },
    )


if __name__ == "__main__":
    main()
