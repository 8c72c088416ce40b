"""MNIST-5k quality: Mustangs grid vs single GAN vs fixed-loss grid, same wall-clock budget.

Every setting trains for the same number of seconds on this machine's cores (whole
generations; the one that crosses the budget finishes), then the best cell's mixture is scored
once with the classifier FID, Inception-style score and label TVD. Prints one JSON object.

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

from common import emit, machine, mean_std  # noqa: E402

from raygan.config import RunConfig, load_config  # noqa: E402
from raygan.engine.controller import Controller  # noqa: E402
from raygan.engine.pool import LocalCellPool  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "tune_configs"
METRICS = ["fid", "inception_score", "tvd", "generations", "seconds_per_generation"]


def settings(grid: int) -> dict[str, list[str]]:
    """name -> overrides of `default.yaml` (the 2x2 Mustangs MNIST-5k run)."""
    size = [f"grid.rows={grid}", f"grid.cols={grid}"]
    return {
        f"mustangs_{grid}x{grid}": size,
        "single_1x1": [
            "grid.rows=1",
            "grid.cols=1",
            "evolution.selection=false",
            "evolution.replacement=false",
            "evolution.lr_mutation=none",
            "losses.generator=[heuristic]",
            "mixture.enabled=false",
        ],
        f"lipizzaner_{grid}x{grid}": size + ["losses.generator=[heuristic]"],
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
    p.add_argument("--quick", action="store_true", help="15 s per run, under a minute or two")
    args = p.parse_args()
    budget = 15.0 if args.quick else args.budget
    # evaluations only at the end, so every setting spends its budget training
    extra = ["metrics.every=1000000", "training.generations=1000000"]
    result: dict[str, Any] = {
        "bench": "mnist_quality",
        "data": "mnist5k",
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
            print(f"{name} seed {seed}: {runs[-1]}", file=sys.stderr, flush=True)
        result["settings"][name] = {"overrides": overrides, "runs": runs, **mean_std(runs, METRICS)}
    emit(result)


if __name__ == "__main__":
    main()
