"""Run every benchmark against a fresh PostgreSQL database and print one table.

    python -m bench.run --size full     (make bench)
    python -m bench.run --size smoke    (make bench-smoke: the same code, tiny, in under a minute)

Steps: drop and create the database (DATABASE_URL, whose name must start with portal_bench;
default portal_bench / portal_bench_smoke on 127.0.0.1), migrate, collect static files, generate
the data set, then each benchmark in its own process, all running a copy of the tree taken at
the start (bench/.out/<size>/tree): verify (6), transparency (8), reports (5), api (10), export (2),
receipt (3), chain (1e/1f), signing (1a-1d, 1g-1n: the sweep, with its open-source peer),
signin_attack (9), fanout (4: it publishes revisions), people_import (7: last, it adds as many
people again). Raw results go to bench/.out/<size>/results.json and the table to
bench/.out/<size>/RESULTS.md, with the signing sweep's plot beside it (signing-sweep.png; a full
run also copies it to bench/).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench import common, plot
from bench.common import (
    ROOT,
    SIZES,
    bench_env,
    bench_module,
    database_url,
    fresh_database,
    python,
    run,
    snapshot,
)

MODULES = [
    "verify",
    "transparency",
    "reports",
    "api",
    "export",
    "receipt",
    "chain",
    "signing",
    "signin_attack",
    "fanout",
    "people_import",
]


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    try:
        postgres = subprocess.run(
            ["psql", "--version"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        postgres = "psql not found"
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "postgres_client": postgres,
        "kernel": platform.release(),
    }


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if (
        unit in ("queries", "requests", "emails")
        or (isinstance(value, int) and not unit)
        or abs(value) >= 100
    ):
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def table(figures: list[dict]) -> str:
    lines = [
        "| # | Figure | Value | Baseline (same run) | Ratio | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        baseline = ""
        if f.get("baseline") is not None:
            baseline = f"{fmt(f['baseline'], f['unit'])} ({f['baseline_name']})"
        unit_for_baseline = f["unit"]
        if f["number"].startswith("1f"):
            baseline = f"{fmt(f['baseline'], unit_for_baseline)} ({f['baseline_name']})"
        ratio = f"{f['ratio']:.2f}x" if f.get("ratio") is not None else ""
        met = {True: "yes", False: "**NO**", None: ""}[f.get("met")]
        if f.get("target") == "pending":
            met = "pending"
        value = fmt(f["value"], f["unit"]) if f["value"] is not None else (f.get("note") or "—")
        lines.append(
            f"| {f['number']} | {f['name']} | {value} | {baseline} | {ratio} | {f['target']} | {met} |"
        )
    return "\n".join(lines)


def notes(figures: list[dict]) -> str:
    return "\n".join(f"- **{f['number']}**: {f['note']}" for f in figures if f.get("note"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--only", nargs="*", choices=MODULES, help="run only these benchmarks (no fresh data)"
    )
    parser.add_argument(
        "--fresh-data",
        action="store_true",
        help="with --only: build a fresh database and data set first, as a full run does",
    )
    args = parser.parse_args()
    # One output folder per size, so a smoke run next to a full one overwrites nothing of it.
    if not os.environ.get("BENCH_OUT_DIR"):
        common.OUT = common.OUT / args.size
    out = common.OUT
    out.mkdir(parents=True, exist_ok=True)
    url = database_url(args.size)
    tree = snapshot()
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC)
    loads = [load_average()]
    env = bench_env(url)  # after snapshot(): runs the copied tree
    steps: dict[str, float] = {}
    results: dict[str, dict] = {}
    failures: list[str] = []

    def step(name: str, action) -> None:
        began = time.perf_counter()
        print(f"==> {name}", flush=True)
        try:
            action()
        except BaseException as error:  # a failed benchmark is reported; the others still run
            if isinstance(error, KeyboardInterrupt):
                raise
            failures.append(name)
            print(f"    FAILED: {error}", flush=True)
            traceback.print_exc()
        steps[name] = time.perf_counter() - began
        print(f"    {steps[name]:.1f} s", flush=True)

    if not args.only or args.fresh_data:
        step("fresh database", lambda: fresh_database(url))
        step(
            "migrate",
            lambda: run(
                [python(), "manage.py", "migrate", "--no-input", "-v", "0"], env=env, log="migrate"
            ),
        )
        step(
            "collectstatic",
            lambda: run(
                [python(), "manage.py", "collectstatic", "--no-input", "-v", "0"],
                env=env,
                log="collectstatic",
            ),
        )

        def generate() -> None:
            results["datagen"] = bench_module("datagen", url, args.size)

        step("generate data", generate)
        if "generate data" in failures:
            sys.exit("the data set could not be generated")
    for module in args.only or MODULES:

        def measure(module: str = module) -> None:
            results[module] = bench_module(module, url, args.size)

        step(module, measure)
        loads.append(load_average())

    if "sweep" in results.get("signing", {}):

        def plot_sweep() -> None:
            plot.sweep_png(results["signing"], out / plot.SWEEP_PNG)
            # Where the committed RESULTS.md (a full run's) links it.
            if args.size == "full":
                shutil.copy2(out / plot.SWEEP_PNG, ROOT / "bench" / plot.SWEEP_PNG)

        step("plot", plot_sweep)

    figures = [f for module in MODULES if module in results for f in results[module]["figures"]]
    for name in failures:
        figures.append({"number": "!", "name": f"{name} FAILED (see {out.relative_to(ROOT)}/{name}.log)",
                        "value": None, "unit": "", "target": "", "met": False, "note": ""})  # fmt: skip
    # By figure number (10 after 9), then letter; a failure ("!") last.
    figures.sort(
        key=lambda f: (
            not f["number"][0].isdigit(),
            [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", f["number"])],
        )
    )
    elapsed = time.perf_counter() - started
    info = machine()
    data = results.get("datagen", {})
    command = f"make {'bench' if args.size == 'full' else 'bench-smoke'}"
    header = (
        f"Run of `{command}` (`python -m bench.run --size {args.size}`), "
        f"{started_at:%Y-%m-%d %H:%M} UTC, {elapsed / 60:.1f} min (the application as it was "
        f"in the working tree at the start, copied to {tree.relative_to(ROOT)}).\n\n"
        f"Machine: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB memory, Linux "
        f"{info['kernel']}, Python {info['python']}, {info['postgres_client']} (server on "
        f"127.0.0.1, default configuration). Load average at start and after each benchmark: "
        f"{' / '.join(loads)}.\n\n"
        + (
            f"Data set: {data['people']:,} people, {data['policies']} policies, "
            f"{data['revisions']} revisions, {data['ledger_rows']:,} ledger rows "
            f"({data['signatures']:,} signatures), generated and COPYed in "
            f"{data['seconds']:.0f} s.\n\n"
            if data
            else ""
        )
    )
    picture = (
        f"![Signing sweep: throughput and p95 latency against clients, the portal, the bare "
        f"view and the peer (1n)]({plot.SWEEP_PNG})\n\n"
        if "plot" in steps and "plot" not in failures
        else ""
    )
    report = (
        f"{header}{table(figures)}\n\nNotes:\n\n{notes(figures)}\n\n{picture}Steps: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in steps.items())
    )
    (out / "RESULTS.md").write_text(report + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {"machine": info, "loads": loads, "steps": steps, "results": results},
            indent=2,
            default=str,
        )
    )
    print()
    print(report)
    if failures:
        sys.exit(f"failed: {', '.join(failures)}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
