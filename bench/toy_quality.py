"""Toy quality: 3x3 Mustangs grid vs single GAN vs 3x3 fixed-loss grid, same gradient steps.

Each 3x3 cell trains on a 1/9 shard, the single GAN on the whole set, so the same number of
generations gives the same total number of gradient steps. Prints one JSON object.

    python bench/toy_quality.py [--data ring8|grid25] [--seeds 5] [--generations N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine, mean_std, run_local  # noqa: E402

from raygan.config import load_config  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "tune_configs"
METRICS = ["modes_covered", "hq_fraction", "reverse_kl", "mode_tvd", "seconds", "gradient_steps"]


def settings(data: str) -> dict[str, tuple[Path, list[str]]]:
    """name -> (config file, overrides)."""
    grid = CONFIGS / f"toy_{data}_mustangs.yaml"
    return {
        "mustangs_3x3": (grid, []),
        "single_1x1": (
            grid,
            [
                "grid.rows=1",
                "grid.cols=1",
                "evolution.selection=false",
                "evolution.replacement=false",
                "evolution.lr_mutation=none",
                "losses.generator=[heuristic]",
                "mixture.enabled=false",
            ],
        ),
        "lipizzaner_3x3": (grid, ["losses.generator=[heuristic]"]),
    }


def main() -> None:
    """Run every setting over the seeds and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["ring8", "grid25"], default="ring8")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--generations", type=int)
    p.add_argument("--only", nargs="*", help="run only these settings")
    p.add_argument("--quick", action="store_true", help="tiny budget, under a minute")
    args = p.parse_args()
    result: dict = {
        "bench": "toy_quality",
        "data": args.data,
        "machine": machine(),
        "seeds": args.seeds,
        "settings": {},
    }
    for name, (path, overrides) in settings(args.data).items():
        if args.only and name not in args.only:
            continue
        extra = ["metrics.every=1000000"]
        if args.generations:
            extra.append(f"training.generations={args.generations}")
        if args.quick:
            extra += ["training.generations=5", "data.samples=4500"]
        runs = []
        for seed in range(args.seeds):
            cfg = load_config(path, overrides + extra + [f"seed={seed}"])
            runs.append(run_local(cfg))
            print(f"{name} seed {seed}: {runs[-1]}", file=sys.stderr, flush=True)
        result["settings"][name] = {
            "overrides": overrides,
            "generations": cfg.training.generations,
            "runs": runs,
            **mean_std(runs, METRICS),
        }
    emit(result)


if __name__ == "__main__":
    main()
