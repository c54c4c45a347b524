"""Shared plumbing of the benchmarks: sizes, the database, processes, timing, results.

Everything here runs without Django set up; modules that need Django call `django_setup()`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("BENCH_OUT_DIR") or ROOT / "bench" / ".out")
# The code the benchmark processes run: a copy of the tree taken when the run starts (see
# run.snapshot), so that edits made to the working tree during a 20-minute run cannot mix two
# versions of the application in one set of figures.
TREE = Path(os.environ.get("BENCH_TREE") or ROOT)
SNAPSHOT_PARTS = [
    "manage.py",
    "pyproject.toml",
    "aup_portal",
    "acknowledgements",
    "templates",
    "static",
    "locale",
    "bench",
]
SETTINGS = "bench.settings"
DB_PREFIX = "portal_bench"
DEFAULT_URLS = {
    "full": "postgres://postgres@127.0.0.1:5432/portal_bench",
    "smoke": "postgres://postgres@127.0.0.1:5432/portal_bench_smoke",
}
# Every generated person shares this password (hashed once); the bench signs them in by
# writing their sessions, so it is only used by the one real sign-in that checks the format.
PASSWORD = "bench-password-2026"
AUDITOR_EMAIL = "bench-auditor@example.com"
ADMIN_EMAIL = "bench-admin@example.com"


@dataclass(frozen=True)
class Size:
    name: str
    people: int
    ledger_rows: int
    runs: int  # every figure is the median of this many runs
    clients: int  # concurrent signing clients
    requests_per_client: int  # per run
    # The signing sweep: (clients, requests per client) of each point; one of them is
    # (clients, requests_per_client), the point of figures 1a-1d and 1k-1m.
    sweep: tuple[tuple[int, int], ...]
    # Rounds of figures 1h-1j, each one run without and one with checkpointing.
    checkpointing_runs: int
    workers: int  # gunicorn sync workers
    pgbench_seconds: int
    pgbench_clients: tuple[int, ...]
    pgbench_runs: int
    critical_section_signatures: int
    receipt_reps: int
    dashboard_reps: int
    fanout_runs: int
    bare_smtp_messages: int
    signin_people: int  # legitimate sign-ins per phase of the attack benchmark (9)
    signin_runs: int  # runs of its three phases (baseline, spread attack, concentrated attack)
    attack_seconds: int  # length of each phase
    attack_clients: int  # concurrent attacker connections
    attack_addresses: int  # forwarded addresses the attacker uses in each attack
    attack_accounts: int  # accounts the spread attack aims at


SIZES = {
    "full": Size(
        name="full",
        people=100_000,
        ledger_rows=1_000_000,
        runs=3,
        clients=32,
        requests_per_client=40,
        # Each signature is a person who has not signed yet: about 47,000 of the data set's
        # 100,000. The sweep's runs take 3 x 2,940 of them, 1h-1j 12,800 more.
        sweep=((1, 60), (8, 40), (32, 40), (64, 20)),
        # Five: the two conditions' runs differ by up to 15 % between rounds (machine noise),
        # which three rounds did not average out against a 5 % target.
        checkpointing_runs=5,
        workers=5,
        pgbench_seconds=5,
        pgbench_clients=(1, 5, 32),
        pgbench_runs=3,
        critical_section_signatures=200,
        receipt_reps=7,
        dashboard_reps=3,
        fanout_runs=1,  # one run is every person; it stops at the 300 s target
        bare_smtp_messages=2_000,
        signin_people=40,
        signin_runs=3,
        attack_seconds=30,
        attack_clients=16,
        attack_addresses=200,
        attack_accounts=200,
    ),
    "smoke": Size(
        name="smoke",
        people=300,
        ledger_rows=3_000,
        runs=2,
        clients=4,
        requests_per_client=3,
        sweep=((1, 4), (4, 3)),
        checkpointing_runs=2,
        workers=2,
        pgbench_seconds=1,
        pgbench_clients=(1, 4),
        pgbench_runs=1,
        critical_section_signatures=10,
        receipt_reps=1,
        dashboard_reps=2,
        fanout_runs=1,
        bare_smtp_messages=100,
        signin_people=6,
        signin_runs=1,
        attack_seconds=4,
        attack_clients=4,
        attack_addresses=50,
        attack_accounts=10,
    ),
}


def size(name: str | None = None) -> Size:
    return SIZES[name or os.environ.get("BENCH_SIZE", "full")]


# --- The database ------------------------------------------------------------------------------


def database_url(size_name: str) -> str:
    """DATABASE_URL when set (its database must be named portal_bench*), else the default."""
    url = os.environ.get("DATABASE_URL") or DEFAULT_URLS[size_name]
    name = urlsplit(url).path.lstrip("/")
    if not name.startswith(DB_PREFIX):
        sys.exit(
            f"The benchmarks drop and recreate their database: DATABASE_URL must name a database "
            f"starting with {DB_PREFIX!r}, not {name!r}."
        )
    return url


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def admin_url(url: str) -> str:
    """The same server and credentials, on the maintenance database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres"))


def psql_args(url: str) -> list[str]:
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url]


def fresh_database(url: str) -> None:
    import psycopg2

    name = database_name(url)
    assert name.startswith(DB_PREFIX), name
    connection = psycopg2.connect(admin_url(url))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def connect(url: str):
    import psycopg2

    return psycopg2.connect(url)


# --- Processes -----------------------------------------------------------------------------------


def bench_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of every bench process: production-like settings on the bench database."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DJANGO_DEBUG": "0",
        "DJANGO_CONN_MAX_AGE": "600",
        "PORTAL_TASK_BACKEND": "database",
        "PORTAL_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(TREE),
        "BENCH_OUT_DIR": str(OUT),
        "BENCH_TREE": str(TREE),
    }
    for name in ("EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_TLS"):
        env.pop(name, None)
    env.update(extra)
    return env


def snapshot() -> Path:
    """Copy the application (not .venv, .git or bench/.out) to OUT/tree; return its path."""
    global TREE
    target = OUT / "tree"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for part in SNAPSHOT_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(
                source, target / part, ignore=shutil.ignore_patterns(".out", "__pycache__")
            )
        elif source.exists():
            shutil.copy2(source, target / part)
    TREE = target
    return target


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    sys.path.insert(0, str(TREE))
    import django

    django.setup()


def python() -> str:
    return sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, timeout: float = 60.0, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def gunicorn(
    url: str,
    *,
    workers: int,
    log_name: str,
    timeout: int = 30,
    app: str = "aup_portal.wsgi",
    interpreter: str = "",
    **env: str,
):
    """`gunicorn aup_portal.wsgi` with sync workers on a free loopback port; yields (port, proc).

    `app` and `interpreter` serve another application with the same flags (the signing
    benchmark's peer, from its own virtualenv)."""
    port = free_port()
    log = (OUT / f"{log_name}.log").open("w")
    command = [
        interpreter or python(),
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--timeout",
        str(timeout),
        "--chdir",
        str(TREE),
        "--no-control-socket",
    ]
    process = subprocess.Popen(
        command, cwd=TREE, env=bench_env(url, **env), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, process=process)
        yield port, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def worker_pids(master: int) -> list[int]:
    """The gunicorn master's children (its workers), from /proc."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since start or the last reset) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def reset_peak_memory(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run(command: Sequence[str], *, env: dict[str, str] | None = None, log: str = "") -> None:
    """Run a command, its output kept in .out/<log>.log (shown when it fails)."""
    path = OUT / f"{log or Path(command[0]).name}.log"
    with path.open("w") as out:
        result = subprocess.run(
            list(command), cwd=TREE, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode:
        sys.stderr.write(path.read_text()[-5000:])
        raise SystemExit(f"{' '.join(command[:4])}... failed ({result.returncode}); see {path}")


def bench_module(module: str, url: str, size_name: str, *, name: str = "", **env: str) -> dict:
    """Run `python -m bench.<module>` in a fresh process; return the JSON it wrote."""
    name = name or module
    result_file = OUT / f"{name}.json"
    result_file.unlink(missing_ok=True)
    run(
        [python(), "-m", f"bench.{module}", "--size", size_name, "--json", str(result_file)],
        env=bench_env(url, **env),
        log=name,
    )
    return json.loads(result_file.read_text())


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


# --- Timing and results ------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(fraction * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Figure:
    """One line of the results table."""

    number: str  # "1", "1a", ...
    name: str
    value: float | None
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    ratio: float | None = None  # value / baseline, in the direction the target states
    target: str = ""
    met: bool | None = None  # None: no target, or pending
    note: str = ""
    samples: list[float] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def write_json(path: str | os.PathLike, data: object) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str))


def main_args(description: str):
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--size", choices=sorted(SIZES), default=os.environ.get("BENCH_SIZE", "full")
    )
    parser.add_argument("--json", required=True, help="where to write the figures")
    return parser.parse_args()
