"""Where a load run's CPU time goes: the server measured, PostgreSQL, the load generator.

On these 2-core machines the signing runs at 8 clients and more keep both cores busy (each
run's share is reported), so a server's requests per second is, to within a few per cent, the
machine's CPU divided by the CPU time one request costs in all processes together. Splitting
that cost by process shows what a ratio is made of and what bounds it (figure 1o, beside 1a and
1k).

Linux only (/proc): the CPU time (user + system) of
- the server: the gunicorn master and its workers;
- PostgreSQL: every process named `postgres` (backends, WAL writer, checkpointer...), whichever
  database they serve, so nothing else should use the server during a run, except the backends
  named in `excluded` (the bench's own lock sampler);
- the load generator: its own CPU time while it sent the requests, which it reports itself
  (bench.loadgen; its start-up is not part of a request's cost).
A process that starts during the run counts in full; one that ends during it is not counted
(gunicorn's workers and the backends of persistent connections live through the runs).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import worker_pids

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PARTS = ("server", "postgres", "clients")


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The fields after the command name, which is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _snapshot(server_pid: int, excluded: frozenset[int]) -> dict[str, dict[int, float]]:
    server = [server_pid, *worker_pids(server_pid)]
    parts = {"server": server, "postgres": set(_postgres_pids()) - excluded}
    return {
        name: {pid: cpu for pid in pids if (cpu := _cpu_s(pid)) is not None}
        for name, pids in parts.items()
    }


@dataclass
class CpuUse:
    """CPU seconds per part of one run: the server's and PostgreSQL's are filled in when the
    measured block ends, the load generator's (`clients`) by the caller from its report."""

    seconds: dict[str, float] = field(default_factory=dict)

    def ms_per_request(self, requests: int) -> dict[str, float]:
        per = {name: 1000 * self.seconds[name] / requests for name in PARTS}
        return {**per, "total": sum(per.values())}


@contextmanager
def measured(server_pid: int, *, excluded: frozenset[int] = frozenset()):
    """CPU spent by the server and PostgreSQL (less the `excluded` backends) while the block
    runs."""
    use = CpuUse()
    before = _snapshot(server_pid, excluded)
    try:
        yield use
    finally:
        after = _snapshot(server_pid, excluded)
        for name, processes in after.items():
            use.seconds[name] = sum(
                cpu - before[name].get(pid, 0.0) for pid, cpu in processes.items()
            )
