"""Toy quality: the shipped 3x3 Mustangs grid vs single GAN vs the ALGORITHM.md training rule.

Settings (all from tune_configs/toy_<data>_mustangs.yaml): `mustangs_3x3` as shipped (on the
ring of 8: each cell trains its own G-D pair, loss and lr mutation, mixture ES, no selection or
replacement), `single_1x1` (one GAN, fixed heuristic loss, no selection/replacement/mutation/
mixture, same networks), `mustangs_3x3_neighbourhood` (the ALGORITHM.md rule: adversaries drawn
from the neighbourhood, selection and elitist replacement on; `common.NEIGHBOURHOOD`) and
`lipizzaner_3x3` (that rule with a fixed heuristic loss). Each 3x3 cell trains on a 1/9 shard,
the single GAN on the whole set, so the same number of generations gives the same total number
of gradient steps. The best cell's mixture is scored once at the end: modes covered,
high-quality fraction, reverse KL, mode TVD; mean and std over seeds 0..N-1. Prints one JSON
object.

    python bench/toy_quality.py [--data ring8|grid25] [--seeds 5] [--generations N] [--quick]
        [--only SETTING ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CONFIGS,
    LIPIZZANER,
    NEIGHBOURHOOD,
    SINGLE,
    config_summary,
    finish,
    log,
    machine,
    mean_std,
    run_local,
)

from raygan.config import load_config  # noqa: E402

METRICS = ["modes_covered", "hq_fraction", "reverse_kl", "mode_tvd", "seconds", "gradient_steps"]


def settings(data: str) -> dict[str, tuple[Path, list[str]]]:
    """name -> (config file, overrides)."""
    grid = CONFIGS / f"toy_{data}_mustangs.yaml"
    return {
        "mustangs_3x3": (grid, []),
        "single_1x1": (grid, [*SINGLE]),
        "mustangs_3x3_neighbourhood": (grid, [*NEIGHBOURHOOD]),
        "lipizzaner_3x3": (grid, [*LIPIZZANER]),
    }


def main() -> None:
    """Run every setting over the seeds and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["ring8", "grid25"], default="ring8")
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 per setting (default 5, quick 2)")
    p.add_argument("--generations", type=int, help="default: the config's (quick: 5)")
    p.add_argument("--only", nargs="*", help="run only these settings")
    p.add_argument(
        "--quick", action="store_true", help="5 generations on 4,500 samples, under a minute"
    )
    args = p.parse_args()
    seeds = args.seeds or (2 if args.quick else 5)
    start = time.perf_counter()
    result: dict[str, Any] = {
        "bench": "toy_quality",
        "data": args.data,
        "quick": args.quick,
        "machine": machine(),
        "seeds": seeds,
        "settings": {},
    }
    for name, (path, overrides) in settings(args.data).items():
        if args.only and name not in args.only:
            continue
        extra = ["metrics.every=1000000"]
        if args.quick:
            extra.append("data.samples=4500")
        generations = args.generations or (5 if args.quick else None)
        if generations:
            extra.append(f"training.generations={generations}")
        runs = []
        for seed in range(seeds):
            cfg = load_config(path, overrides + extra + [f"seed={seed}"])
            runs.append(run_local(cfg))
            log(f"{name} seed {seed}: {runs[-1]}")
        result["settings"][name] = {
            "overrides": overrides,
            "generations": cfg.training.generations,
            "config": config_summary(cfg),
            "runs": runs,
            **mean_std(runs, METRICS),
        }
    finish(result, start)


if __name__ == "__main__":
    main()
