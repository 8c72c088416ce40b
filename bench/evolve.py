"""Architecture evolution against the shipped networks at the same training budget.

Runs an `evolve` sweep (default `tune_configs/evolve_mnist.yaml`: 6 genomes on MNIST-5k, 20
generations of 50 batches, an elitist step every 5) and then the shipped DCGAN and MLP as single
G-D pairs on the same data, losses and steps (the sweep's generations times its batches), each
scored with the same reference FID. Prints one JSON object: each elitist step's best and median
fitness, the final population, the best evolved genome with its FID and parameter counts, and
the two baselines' FIDs, with the ratios of the best genome's FID to theirs.

    python bench/evolve.py > bench/results/evolve.json            # about 20 min on 2 cores
    python bench/evolve.py --quick                                 # digits8x8, 4 tiny genomes
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coevolution import train  # noqa: E402
from common import finish, machine  # noqa: E402

from raygan.config import RunConfig, load_config  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "tune_configs"
QUICK = ["data.name=digits8x8", "networks.latent_dim=16", "training.generations=2",
         "training.max_batches=2", "training.batch_size=32", "metrics.every=1",
         "metrics.samples=100", "evolution.fitness_sample_size=64", "tune.num_samples=4",
         "tune.perturbation_interval=1", "tune.elite_fraction=0.5", "tune.max_parameters=20000",
         "output.checkpoint_every=1", "output.plot_every=1"]
"""`--quick`: two generations of 4 tiny genomes on digits8x8 (the test of this script)."""


def baseline(config: RunConfig, kind: str) -> RunConfig:
    """The shipped `kind` networks (their default sizes and Adam at the default rates) as one
    G-D pair with the sweep's data, losses, seed and budget."""
    return config.replace(**{"tune": {}, "networks.kind": kind, "networks.genome": "",
                             "grid.rows": 1, "grid.cols": 1, "resources.backend": "local"})


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def sweep(config: RunConfig, storage: Path) -> dict[str, Any]:
    """Run the evolve sweep; its steps, final population and best genome."""
    from raygan.reporting.evolve_report import evolve_steps
    from raygan.tuning.experiment import run_experiment
    from raygan.tuning.results import best_trial, load_trials

    path, _ = run_experiment(config, sweep=True, storage_path=str(storage), quiet=True)
    experiment = Path(path)
    trials = load_trials(experiment)
    steps = [{"step": s["step"], "generation": s["generation"],
              "best": _finite(s["trials"][0]["fitness"]),
              "median": _finite(sorted(r["fitness"] for r in s["trials"])[len(s["trials"]) // 2]),
              "population": [{k: r[k] for k in ("trial", "fitness", "g_params", "d_params",
                                                "elite", "genome", "parent", "new_genome")}
                             for r in s["trials"]]}
             for s in evolve_steps(experiment)]
    best = best_trial(trials)
    final = [{"trial": t.trial_id, "fitness": _finite(t.score), "genome": t.config.networks.genome,
              "g_params": t.last.get("g_params"), "d_params": t.last.get("d_params")}
             for t in trials]
    return {"experiment": str(experiment), "metric": best.metric, "steps": steps,
            "final": final, "best": {"trial": best.trial_id, "fitness": _finite(best.score),
                                     "genome": best.config.networks.genome,
                                     "g_params": best.last.get("g_params"),
                                     "d_params": best.last.get("d_params")}}


def main(argv: list[str] | None = None) -> int:
    """Run the sweep and the baselines; print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIGS / "evolve_mnist.yaml"))
    parser.add_argument("--quick", action="store_true", help="digits8x8, 4 tiny genomes")
    parser.add_argument("--storage", default=None, help="where the sweep goes (default: temp)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    config = load_config(args.config, QUICK if args.quick else [])
    result: dict[str, Any] = {"bench": "evolve", "quick": args.quick, "machine": machine(),
                              "config": args.config,
                              "steps_per_trial": config.training.generations
                              * (config.training.max_batches or 0)}
    with tempfile.TemporaryDirectory() as tmp:
        result["evolve"] = sweep(config, Path(args.storage or tmp))
    metric = result["evolve"]["metric"]
    name = metric.removeprefix("best/")
    for kind in ("dcgan", "mlp"):
        scores = train(baseline(config, kind))
        result[kind] = {name: scores.get(name), "seconds": scores["seconds"]}
    best = result["evolve"]["best"]["fitness"]
    result["ratios"] = {f"best_genome_vs_{kind}": (best / result[kind][name]
                                                   if best and result[kind][name] else None)
                        for kind in ("dcgan", "mlp")}
    finish(result, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
