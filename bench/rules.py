"""Every training rule against independent GANs and the single GAN, at equal per-network steps.

Settings: `single` (one GAN: 1x1 grid, fixed non-saturating loss, no mutation, no mixture) and
every rule of `common.RULES` on a `--grid` x `--grid` grid (`own` is N independent GANs mixed
by the ES). All start from the data set's shipped config (`BASES`) with its networks, losses
and learning rates; every cell sees the whole data set (`data.sharding=replicate`, as in the
reference), and every network makes the same number of gradient steps: `--steps` batches per
network, in generations of `--batches` batches (`live` makes more steps per cell: one per
neighbourhood member and batch, but still `--steps` per network). The best cell's mixture
(by the data set's ranking metric) is scored every `--every` generations (the learning
curve) and at the end: modes, high-quality share and reverse KL on the toy mixtures,
reference-protocol FID and TVD with their real-data floor on MNIST-5k. Seeds 0..N-1; runs go
to `--jobs` processes with one torch thread each. Prints one JSON object.

    python bench/rules.py --data ring8|grid25|mnist5k [--grid 2] [--steps N] [--batches N]
        [--seeds 3] [--every N] [--jobs 2] [--only SETTING ...] [--set KEY=VALUE ...] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CONFIGS,
    RULES,
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
from raygan.metrics.catalog import best_scores  # noqa: E402

BASES = {
    "ring8": CONFIGS / "toy_ring8_mustangs.yaml",
    "grid25": CONFIGS / "toy_grid25_mustangs.yaml",
    "mnist5k": CONFIGS / "mnist5k_mustangs.yaml",
}
METRICS = {
    "toy": ["modes_covered", "hq_fraction", "reverse_kl", "mode_tvd"],
    "mnist5k": ["fid", "fid_floor", "tvd", "tvd_floor", "inception_score"],
}
TIMES = ["seconds", "steps_per_network", "gradient_steps", "steps_per_s"]


def settings(grid: int) -> dict[str, list[str]]:
    """name -> overrides: the single GAN and every rule on a `grid` x `grid` grid."""
    size = [f"grid.rows={grid}", f"grid.cols={grid}"]
    return {"single": [*SINGLE], **{name: size + over for name, over in RULES.items()}}


def run(config: RunConfig) -> dict[str, Any]:
    """Train one config in this process; final best-mixture scores, curve, steps and time."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    controller = Controller(config, LocalCellPool(config))
    curve = []
    while not controller.done:
        summary = controller.step()
        if summary.evaluated:
            steps = sum(r["steps"] for r in controller.history if r["cell"] == 0)
            curve.append({"steps_per_network": steps, **best_scores(summary.to_dict())})
    seconds = time.perf_counter() - start
    gradient = int(sum(r["g_steps"] for r in controller.history))
    return {
        **curve[-1],
        "seconds": seconds,
        "gradient_steps": gradient,
        "steps_per_s": gradient / seconds,
        "best_cell": controller.best_cell,
        "curve": curve,
    }


def _task(job: tuple[str, int, list[str], str]) -> tuple[str, int, dict[str, Any], RunConfig]:
    name, seed, overrides, path = job
    config = load_config(path, [*overrides, f"seed={seed}"])
    try:
        result = run(config)
    except Exception as exc:  # a benchmark reports failures, it does not stop
        result = {"error": f"{type(exc).__name__}: {exc}"}
    log(f"{name} seed {seed}: " + ", ".join(
        f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)))
    return name, seed, result, config


def main() -> None:
    """Run every setting over the seeds and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=sorted(BASES), default="ring8")
    p.add_argument("--grid", type=int, default=2, help="side of the square grids")
    p.add_argument("--steps", type=int, default=3000, help="gradient steps per network")
    p.add_argument("--batches", type=int, default=50, help="batches per generation")
    p.add_argument("--every", type=int, default=10, help="generations between evaluations")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per setting")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--only", nargs="*", help="run only these settings")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="another override for every setting (repeatable)")
    p.add_argument("--quick", action="store_true", help="200 steps, 1 seed: under a minute")
    args = p.parse_args()
    steps, seeds = (200, 1) if args.quick else (args.steps, args.seeds)
    generations = max(1, steps // args.batches)
    common = [
        "data.sharding=replicate",
        f"training.max_batches={args.batches}",
        f"training.generations={generations}",
        f"metrics.every={args.every}",
        "resources.torch_threads=1",
        *args.extra,
    ]
    chosen = {k: v for k, v in settings(args.grid).items() if not args.only or k in args.only}
    jobs = [(name, seed, over + common, str(BASES[args.data]))
            for name, over in chosen.items() for seed in range(seeds)]
    start = time.perf_counter()
    result: dict[str, Any] = {
        "bench": "rules",
        "data": args.data,
        "quick": args.quick,
        "machine": machine(),
        "grid": args.grid,
        "steps_per_network": generations * args.batches,
        "batches_per_generation": args.batches,
        "seeds": seeds,
        "common_overrides": common,
        "settings": {},
    }
    keys = (METRICS["mnist5k"] if args.data == "mnist5k" else METRICS["toy"]) + TIMES
    context = multiprocessing.get_context("spawn")  # a clean torch in every worker
    with context.Pool(args.jobs) as pool:
        done = pool.map(_task, jobs, chunksize=1)
    for name, over in chosen.items():
        runs = [r for n, _, r, _ in sorted(done, key=lambda d: d[1]) if n == name]
        config = next(c for n, _, _, c in done if n == name)
        result["settings"][name] = {
            "overrides": over,
            "config": config_summary(config),
            "runs": runs,
            **mean_std(runs, keys),
        }
    finish(result, start)


if __name__ == "__main__":
    main()
