"""Learning curves of a bench result: the best mixture's score against steps per network.

One figure per table of a `coevolution.py` result (or the one table of an older `rules.py`
result), one line per setting (mean over seeds, shaded between the seeds' min and max), the
real-data floor as a dashed line where the metric has one. Writes `<json stem>_<table>.png`
next to the JSON (or into `--out-dir`) and prints one JSON object naming them.

    python bench/plot_curves.py bench/results/coevolution.json [--metric fid] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import emit  # noqa: E402

DEFAULT_METRIC = {"mnist5k": "fid", "ring8": "hq_fraction", "grid25": "hq_fraction"}
LOG_SCALE = {"fid"}


def curves(setting: dict[str, Any], metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Steps and a (seeds, evaluations) array of `metric`; None if a run failed or lacks it."""
    runs = setting["runs"]
    if not runs or any("curve" not in r for r in runs):
        return None
    length = min(len(r["curve"]) for r in runs)
    steps = np.array([p["steps_per_network"] for p in runs[0]["curve"][:length]])
    values = np.array([[p.get(metric, np.nan) for p in r["curve"][:length]] for r in runs])
    return steps, values


def plot(result: dict[str, Any], metric: str, out: Path) -> list[str]:
    """Draw every setting's curve of `metric` in one table into `out`; return those drawn."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    drawn = []
    for name, setting in result["settings"].items():
        got = curves(setting, metric)
        if got is None:
            continue
        steps, values = got
        modes = [r["modes_covered"] for r in setting["runs"] if "modes_covered" in r]
        if modes:  # on the toys, how many modes the final mixture covers beside its quality
            name += f" ({sum(modes) / len(modes):.3g} modes)"
        (line,) = ax.plot(steps, values.mean(0), marker="o", ms=3, label=name,
                          lw=2.5 if name.split()[0] in ("own", "single") else 1.5)
        ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
        drawn.append(name)
    floor = next((r.get(f"{metric}_floor") for s in result["settings"].values()
                  for r in s["runs"] if r.get(f"{metric}_floor") is not None), None)
    label = f"{metric} of the best mixture"
    if floor is not None:
        label += f" (real data: {floor:.3g})"
        lows = [np.nanmin(np.asarray(line.get_ydata(), dtype=float)) for line in ax.get_lines()]
        low = min(ax.get_ylim()[0], *lows)
        if floor > 0.5 * low:  # a floor far below every curve would flatten them; it is named
            ax.axhline(floor, color="k", ls="--", lw=1, label="real data")
    if metric in LOG_SCALE:
        ax.set_yscale("log")
    ax.set_xlabel("gradient steps per network")
    ax.set_ylabel(label)
    seeds = "1 seed" if result["seeds"] == 1 else f"{result['seeds']} seeds (mean, min-max band)"
    ax.set_title(f"{result['data']}: {result['grid']}x{result['grid']} grids, {seeds}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return drawn


def main() -> None:
    """Read a bench result and write one learning-curve PNG per table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("result", type=Path, help="JSON printed by bench/coevolution.py or rules.py")
    p.add_argument("--metric", help="score to plot (default: fid on MNIST, hq_fraction on toys)")
    p.add_argument("--out-dir", type=Path, help="where the PNGs go (default: beside the JSON)")
    args = p.parse_args()
    result = json.loads(args.result.read_text())
    tables = result.get("tables") or {"": result}  # a rules.py result is one table
    out_dir = args.out_dir or args.result.parent
    written = {}
    for name, table in tables.items():
        metric = args.metric or DEFAULT_METRIC[table["data"]]
        out = out_dir / (args.result.stem + (f"_{name}" if name else "") + ".png")
        if plot(table, metric, out):
            written[name or args.result.stem] = {"png": str(out), "metric": metric}
    emit({"bench": "plot_curves", "figures": written})


if __name__ == "__main__":
    main()
