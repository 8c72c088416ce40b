"""Where a generation's time goes: cell compute vs exchange/control overhead, local vs Ray.

Prints one JSON object on stdout (progress on stderr):
- `grids`: for each (config, grid, backend), pool start-up time and per-generation wall time
  split into compute (sum and max of the cells' `report.seconds`) and overhead. The overhead is
  wall minus max compute for Ray (cells run in parallel) and wall minus sum compute for the local
  pool (cells run one after another). Generation 0 is reported apart as warm-up.
- `controller`: the controller's own bookkeeping per generation on a simulated 32x32 grid (a fake
  pool returns precomputed reports; no networks, no evaluation). Target: <= 50 ms.
- `state_fetch_all_cells_s` (Ray entries): what pulling every cell's state to the driver would
  cost per generation; the pool avoids it by keeping the states (returned by the generation task
  itself) in the object store as restart points.
- `machine`: cores, load average, versions, device.

Timings are wall-clock and noisy on a shared machine; the script never asserts.

Usage: python bench/overhead.py [--quick] [--generations N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from raygan.config import RunConfig, config_from_dict  # noqa: E402
from raygan.core.cell import CellReport  # noqa: E402
from raygan.engine.controller import Controller  # noqa: E402
from raygan.engine.pool import LocalCellPool  # noqa: E402
from raygan.engine.task import grid_of  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# The shipped toy_ring8_mustangs.yaml and default.yaml (MNIST MLP) settings, with fewer batches
# per generation so a benchmark generation stays short on 2 cores.
TOY: dict[str, Any] = {
    "name": "bench_ring8", "seed": 0,
    "data": {"name": "ring8", "samples": 18000},
    "networks": {"kind": "mlp", "latent_dim": 16, "g_hidden": 64, "d_hidden": 64,
                 "hidden_layers": 2},
    "evolution": {"fitness_sample_size": 500},
    "mixture": {"sigma": 0.01, "samples": 1000},
    "training": {"batch_size": 100, "lr_g": 1e-3, "lr_d": 1e-3, "device": "cpu",
                 "max_batches": 20},
    "metrics": {"every": 1_000_000},
}
# the mixture ES is off for MNIST: its FID needs a trained classifier in every process, which
# would measure classifier training (once per process) rather than the exchange
MNIST: dict[str, Any] = {
    "name": "bench_mnist5k", "seed": 0,
    "data": {"name": "mnist5k"},
    "networks": {"kind": "mlp", "latent_dim": 64, "g_hidden": 256, "d_hidden": 256,
                 "hidden_layers": 2},
    "evolution": {"fitness_sample_size": 500},
    "mixture": {"enabled": False},
    "training": {"batch_size": 50, "lr_g": 5e-4, "lr_d": 5e-4, "device": "cpu",
                 "max_batches": 10},
    "metrics": {"every": 1_000_000},
}


def log(message: str) -> None:
    """Progress on stderr, so stdout stays one JSON object."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def make_config(base: dict[str, Any], rows: int, generations: int, cpus: int) -> RunConfig:
    """`base` on a rows x rows grid; each cell's CPU share is the machine split evenly."""
    n = rows * rows
    share = math.floor(cpus / n * 1e4) / 1e4  # Ray's resource unit; n shares must fit
    data = json.loads(json.dumps(base))
    data["grid"] = {"rows": rows, "cols": rows}
    data["training"]["generations"] = generations
    data["resources"] = {"cpus_per_cell": share, "torch_threads": 1,
                         "placement_timeout_s": 120.0}
    return config_from_dict(data)


def _summary(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def time_pool(
    config: RunConfig, backend: str, factory: Callable[[RunConfig], Any]
) -> dict[str, Any]:
    """Start a pool, run the configured generations without evaluation, split the time."""
    start = time.perf_counter()
    pool = factory(config)
    startup = time.perf_counter() - start
    neighbourhoods = grid_of(config).all_neighbourhoods()
    rows: list[dict[str, float]] = []
    state_fetch: float | None = None
    try:
        for gen in range(config.training.generations):
            t0 = time.perf_counter()
            handles = pool.publish()
            inputs = [[handles[j] for j in nbh[1:]] for nbh in neighbourhoods]
            reports = pool.run_generation(gen, inputs)
            wall = time.perf_counter() - t0
            secs = [r.seconds for r in reports]
            compute = max(secs) if backend == "ray" else sum(secs)
            rows.append({"wall_s": wall, "compute_sum_s": sum(secs),
                         "compute_max_s": max(secs), "overhead_s": wall - compute})
        if backend == "ray":
            import ray

            t0 = time.perf_counter()
            ray.get([a.state_dict.remote() for a in pool.actors])
            state_fetch = time.perf_counter() - t0
    finally:
        pool.close()
    steady = rows[1:] or rows
    out: dict[str, Any] = {
        "startup_s": round(startup, 3),
        "warmup_generation": {k: round(v, 4) for k, v in rows[0].items()},
        "generations_timed": len(steady),
        **{f"mean_{k}": _summary([r[k] for r in steady]) for k in rows[0]},
    }
    wall = out["mean_wall_s"]
    if wall:
        out["overhead_fraction"] = round(out["mean_overhead_s"] / wall, 3)
    if state_fetch is not None:
        out["state_fetch_all_cells_s"] = round(state_fetch, 4)
    return out


class FakePool:
    """A pool without networks: trivial handles and reports precomputed for every generation."""

    def __init__(self, config: RunConfig) -> None:
        grid = grid_of(config)
        self.size = grid.size
        first = [_fake_report(i, grid.neighbours(i)) for i in range(self.size)]
        self._reports = [
            [dataclasses.replace(r, generation=g) for r in first]
            for g in range(config.training.generations)
        ]

    def publish(self) -> list[Any]:
        """Integers stand in for snapshot handles."""
        return list(range(self.size))

    def run_generation(self, generation: int, inputs: Sequence[Sequence[Any]]) -> list[CellReport]:
        """That generation's precomputed reports."""
        return self._reports[generation]

    def evaluate(
        self, inputs: Sequence[Sequence[Any]], n: int, seed: int
    ) -> list[dict[str, float]]:
        """Constant scores (not reached with a large `metrics.every`)."""
        return [{"mode_tvd": 0.5} for _ in range(self.size)]

    def sample(self, cell: int, inputs: Sequence[Any], n: int, seed: int) -> torch.Tensor:
        """Zeros."""
        return torch.zeros(n, 2)

    def state_dicts(self) -> list[dict[str, Any]]:
        """No state."""
        return [{} for _ in range(self.size)]

    def load_state_dicts(self, states: Sequence[dict[str, Any]]) -> None:
        """Nothing to load."""

    def close(self) -> None:
        """Nothing to release."""


def _fake_report(cell: int, members: Sequence[int]) -> CellReport:
    k = len(members)
    return CellReport(
        generation=0, cell=cell, g_lr=2e-4, d_lr=2e-4, g_loss="heuristic",
        g_loss_counts={"heuristic": 20}, g_fitness=0.7, d_fitness=1.3, g_replaced=True,
        d_replaced=False, g_parent=cell, d_parent=members[-1], g_lr_mutated=True,
        d_lr_mutated=False, mixture_members=list(members), mixture_weights=[1.0 / k] * k,
        mixture_score=0.4, mixture_accepted=False, train_g_loss=0.7, train_d_loss=1.3,
        steps=20, nonfinite=False, seconds=0.5,
    )


def time_controller(rows: int, generations: int) -> dict[str, Any]:
    """Controller.step on a fake rows x rows grid: routing, reports, history, summaries."""
    config = config_from_dict({
        "grid": {"rows": rows, "cols": rows},
        "training": {"generations": generations + 1},
        "metrics": {"every": 1_000_000},
    })
    start = time.perf_counter()
    controller = Controller(config, FakePool(config))
    setup = time.perf_counter() - start
    steps: list[float] = []
    for _ in range(generations):
        t0 = time.perf_counter()
        controller.step()
        steps.append(time.perf_counter() - t0)
    return {
        "cells": rows * rows,
        "generations": generations,
        "controller_setup_ms": round(setup * 1e3, 2),
        "step_ms_mean": round(statistics.fmean(steps) * 1e3, 2),
        "step_ms_median": round(statistics.median(steps) * 1e3, 2),
        "step_ms_max": round(max(steps) * 1e3, 2),
        "target_ms": 50,
    }


def _shallow_to_dict(report: CellReport) -> dict[str, Any]:
    # what `CellReport.to_dict` returns, without `dataclasses.asdict`'s recursive deep copy:
    # every field is a scalar or a flat list/dict, so copying the containers is enough
    row = dict(vars(report))
    for key, value in row.items():
        if isinstance(value, (list, dict)):
            row[key] = value.copy()
    return row


def time_controller_variants(rows: int, generations: int) -> dict[str, Any]:
    """`time_controller` as is, and with a shallow `CellReport.to_dict` (a proposed change)."""
    result = time_controller(rows, generations)
    original = CellReport.to_dict
    CellReport.to_dict = _shallow_to_dict  # type: ignore[method-assign]
    try:
        fast = time_controller(rows, generations)
    finally:
        CellReport.to_dict = original  # type: ignore[method-assign]
    result["with_shallow_to_dict"] = {
        k: v for k, v in fast.items() if k.startswith("step_ms")
    }
    return result


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import ray

    return {
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "numpy": np.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads_per_cell": 1,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2x2 ring8 only; under a minute")
    parser.add_argument("--generations", type=int, help="generations per case (incl. warm-up)")
    args = parser.parse_args(argv)
    import ray

    from raygan.distributed import RayCellPool

    cpus = os.cpu_count() or 1
    gens = args.generations or (2 if args.quick else 4)
    sizes = [2] if args.quick else [2, 3]
    images = (ROOT / "raygan" / "data" / "images.py").exists()
    bases = [("ring8", TOY)] + ([("mnist5k_mlp", MNIST)] if images and not args.quick else [])
    notes = [
        "timings are wall-clock on a shared machine (other CPU-heavy jobs may run): noisy",
        "ray overhead = wall - max cell compute; local overhead = wall - sum of cell compute",
        "each cell gets cpus/cells of the machine and 1 torch thread in both backends",
    ]
    if not images:
        notes.append("raygan/data/images.py missing: ring8 only")
    if args.quick:
        notes.append("--quick: 2x2 ring8 only")
    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    result: dict[str, Any] = {"machine": machine(), "grids": [], "notes": notes}
    try:
        for name, base in bases:
            for rows in sizes:
                config = make_config(base, rows, gens, cpus)
                for backend, factory in (("local", LocalCellPool), ("ray", RayCellPool)):
                    log(f"{name} {rows}x{rows} {backend}")
                    entry = {"config": name, "grid": f"{rows}x{rows}", "backend": backend}
                    try:
                        entry.update(time_pool(config, backend, factory))
                    except Exception as exc:  # a benchmark reports failures, it does not stop
                        entry["error"] = f"{type(exc).__name__}: {exc}"
                    result["grids"].append(entry)
        log("controller bookkeeping, 32x32")
        result["controller"] = time_controller_variants(32, 5 if args.quick else 20)
    finally:
        ray.shutdown()
    result["total_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
