"""The signing sweep as a picture: throughput and p95 latency against the number of clients.

    python -m bench.plot bench/.out/full/signing.json bench/.out/full/signing-sweep.png

bench.run draws it after the signing benchmark (into bench/.out/<size>/, and copies a full
run's to bench/ for RESULTS.md). Three servers: the portal's signing POST, the bare one-INSERT
view and the peer's accept (django-termsandconditions); each point is the median of the runs,
its bar the lowest and highest run. Needs matplotlib (bench/requirements.txt).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SWEEP_PNG = "signing-sweep.png"
DPI = 120
# (key in the sweep, label, colour, marker), drawn in this order; colours tell apart in grey too.
SERIES = (
    ("sign", "Portal: signing POST", "#1f4e99", "o"),
    ("bare", "Bare one-INSERT view (the portal's server)", "#8c8c8c", "s"),
    ("peer", "Peer: {peer} accept", "#d9661f", "^"),
)


def label_points(axis, positions: list[int], series: list[tuple[list[float], str]]) -> None:
    """Write each point's value beside it, nudged apart where two series come close."""
    gap = 17  # pixels between two labels (9-point text at 120 dpi is 15 pixels high)
    for index, x in enumerate(positions):
        points = sorted(
            (axis.transData.transform((x, values[index]))[1], values[index], colour)
            for values, colour in series
        )
        placed: list[float] = []
        for y, value, colour in points:
            placed.append(max(y, placed[-1] + gap) if placed else y)
            axis.annotate(
                f"{value:.0f}",
                (x, value),
                textcoords="offset pixels",
                xytext=(12, placed[-1] - y),
                va="center",
                fontsize=9,
                color=colour,
                # Readable where a line or an error bar passes behind it.
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none"},
                zorder=10,
            )


def sweep_png(signing: dict, path: Path) -> None:
    """Draw the sweep of a signing benchmark's results (its JSON) into a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    sweep = signing["sweep"]
    positions = list(range(len(sweep)))
    peer_name = f"django-termsandconditions {signing['peer']['termsandconditions']}"
    figure, (throughput, latency) = plt.subplots(
        1, 2, figsize=(12, 5.4), dpi=DPI, layout="constrained"
    )
    labels: dict[str, list[tuple[list[float], str]]] = {"rps": [], "p95_ms": []}
    for key, label, colour, marker in SERIES:
        for axis, metric in ((throughput, "rps"), (latency, "p95_ms")):
            medians = [point["median"][key][metric] for point in sweep]
            lows = [min(run[metric] for run in point["runs"][key]) for point in sweep]
            highs = [max(run[metric] for run in point["runs"][key]) for point in sweep]
            axis.errorbar(
                positions,
                medians,
                yerr=[
                    [m - low for m, low in zip(medians, lows, strict=True)],
                    [high - m for m, high in zip(medians, highs, strict=True)],
                ],
                label=label.format(peer=peer_name),
                color=colour,
                marker=marker,
                markersize=7,
                linewidth=2,
                capsize=4,
            )
            labels[metric].append((medians, colour))
    for axis in (throughput, latency):
        axis.set_xticks(positions, [str(point["clients"]) for point in sweep])
        axis.set_xlabel("Concurrent clients (each request a different person)")
        axis.grid(True, which="major", alpha=0.3)
        axis.set_xlim(-0.3, len(sweep) - 0.55)
    throughput.set_ylabel("Throughput (successful requests/s)")
    throughput.set_title("Throughput (higher is better)")
    throughput.set_ylim(bottom=0)
    latency.set_ylabel("p95 latency (ms, log scale)")
    latency.set_title("p95 latency (lower is better)")
    latency.set_yscale("log")
    latency.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    latency.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    latency.yaxis.set_minor_formatter(NullFormatter())
    handles, names = throughput.get_legend_handles_labels()
    figure.legend(
        handles, names, loc="outside lower center", ncols=len(SERIES), frameon=False, fontsize=10
    )
    runs = len(sweep[0]["runs"]["sign"])
    figure.suptitle(
        f"Signing under load: {signing.get('workers', '?')} gunicorn sync workers per server, "
        f"median of {runs} runs (bars: lowest and highest run)",
        fontsize=13,
    )
    # The labels are placed in pixels, once the layout has settled.
    figure.canvas.draw()
    label_points(throughput, positions, labels["rps"])
    label_points(latency, positions, labels["p95_ms"])
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    sweep_png(json.loads(Path(source).read_text()), Path(target))


if __name__ == "__main__":
    main()
