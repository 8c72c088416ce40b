"""MNIST-5k quality: Mustangs grid vs single GAN vs fixed-loss grid, same wall-clock budget.

Settings (overrides of tune_configs/default.yaml, MLP G and D): `mustangs_2x2` (the
ALGORITHM.md rule: neighbourhood adversaries, selection, replacement, loss mutation),
`single_1x1` (one GAN, fixed heuristic loss, no selection/replacement/mutation/mixture),
`lipizzaner_2x2` (the ALGORITHM.md rule with a fixed heuristic loss) and `mustangs_2x2_own`
(each cell trains its own G-D pair, no selection/replacement; neighbours only in the mixture).

Every setting trains for the same number of seconds (whole generations; the one that crosses
the budget finishes) in this process: the local pool runs the cells one after another with one
torch thread, so every setting gets the same compute (one core), whatever its grid size. Then
the best cell's mixture is scored once with the classifier FID, Inception-style score and label
TVD (classifier trained on MNIST-5k, cached). Seeds 0..N-1. Prints one JSON object.

    python bench/mnist_quality.py [--budget SECONDS] [--seeds N] [--grid 2] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CONFIGS,
    LIPIZZANER,
    NEIGHBOURHOOD,
    OWN,
    SINGLE,
    config_summary,
    finish,
    log,
    machine,
    mean_std,
)

from raygan.config import RunConfig, load_config  # noqa: E402
from raygan.engine.controller import Controller  # noqa: E402
from raygan.engine.pool import LocalCellPool  # noqa: E402

METRICS = [
    "fid", "fid_floor", "tvd", "tvd_floor", "inception_score", "generations",
    "seconds_per_generation",
]


def settings(grid: int) -> dict[str, list[str]]:
    """name -> overrides of `default.yaml` (the 2x2 Mustangs MNIST-5k run)."""
    size = [f"grid.rows={grid}", f"grid.cols={grid}"]
    return {
        f"mustangs_{grid}x{grid}": size + NEIGHBOURHOOD,
        "single_1x1": [*SINGLE],
        f"lipizzaner_{grid}x{grid}": size + LIPIZZANER,
        # each cell trains its own pair; neighbours act only through the mixture
        f"mustangs_{grid}x{grid}_own": size + OWN,
    }


def run_for(config: RunConfig, budget: float) -> dict[str, Any]:
    """Train whole generations until `budget` seconds have passed, then score the best mixture."""
    controller = Controller(config, LocalCellPool(config))
    per_generation: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < budget and not controller.done:
        per_generation.append(controller.step().seconds)
    trained = time.perf_counter() - start
    per_cell = controller.evaluate()
    return {
        "generations": controller.generation,
        "train_seconds": trained,
        "seconds_per_generation": statistics.fmean(per_generation),
        "gradient_steps": int(sum(r["steps"] for r in controller.history)),
        "best_cell": controller.best_cell,
        **per_cell[controller.best_cell],
    }


def main() -> None:
    """Run every setting over the seeds and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=240.0, help="training seconds per run")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--grid", type=int, default=2, help="side of the square grids")
    p.add_argument("--only", nargs="*", help="run only these settings")
    p.add_argument("--quick", action="store_true", help="4 s per run, under a minute")
    args = p.parse_args()
    budget = 4.0 if args.quick else args.budget
    start = time.perf_counter()
    # evaluations only at the end, so every setting spends its budget training
    extra = ["metrics.every=1000000", "training.generations=1000000"]
    result: dict[str, Any] = {
        "bench": "mnist_quality",
        "data": "mnist5k",
        "quick": args.quick,
        "machine": machine(),
        "budget_seconds": budget,
        "seeds": args.seeds,
        "settings": {},
    }
    for name, overrides in settings(args.grid).items():
        if args.only and name not in args.only:
            continue
        runs = []
        for seed in range(args.seeds):
            cfg = load_config(CONFIGS / "default.yaml", overrides + extra + [f"seed={seed}"])
            runs.append(run_for(cfg, budget))
            log(f"{name} seed {seed}: {runs[-1]}")
        result["settings"][name] = {
            "overrides": overrides,
            "config": config_summary(cfg),
            "runs": runs,
            **mean_std(runs, METRICS),
        }
    finish(result, start)


if __name__ == "__main__":
    main()
