"""Many cells per worker: vectorised against sequential cells, pool start-up, exchange overhead.

Prints one JSON object on stdout (progress on stderr):
- `cpu_vectorised`: training throughput (G steps per second of the batch loop alone, and whole
  generations per second) of k MLP cells of one worker trained one after another against the
  same cells trained as one stacked step (`resources.vectorise`), for each config and k.
  Target: 4 MLP cells vectorised >= 1.5x the sequential throughput.
- `pool_start`: seconds until a 3x3 `RayCellPool` answers (Ray already running) with one
  actor per cell against one actor for all 9 (`resources.cells_per_actor`). Target <= 5 s, k=9.
- `exchange`: `Controller.step` wall time on the bench grids (ring of 8 and the MNIST MLP, 2x2
  and 3x3) on Ray, split into cell compute and exchange + control (wall minus the slowest
  worker's compute), with one actor per cell and with every cell on one vectorised actor.
  Target: exchange + control <= 5 % of a generation on every grid.
- `gpu` (only when CUDA is present, else the reason it was skipped): (a) where a Ray cell
  actor with a GPU runs, (b) k = 1, 8, 64 MLP cells vectorised vs sequential on one GPU
  (target 64: >= 10x), (c) DCGAN cells: one cell's training steps per second against a plain
  PyTorch loop (target >= 0.85), and 8 DCGAN cells vectorised vs sequential.
- `machine`: cores, load average, versions, device.

Timings are wall-clock and noisy on a shared machine; the script never asserts.

Usage: python bench/packing.py [--quick] [--only SECTION ...] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import emit, log, machine  # noqa: E402
from overhead import MNIST, TOY, _merge, cell_vs_plain, make_config, time_pool  # noqa: E402

from raygan.config import RunConfig, config_from_dict  # noqa: E402
from raygan.engine.controller import Controller  # noqa: E402
from raygan.engine.pool import LocalCellPool  # noqa: E402

SECTIONS = ("cpu_vectorised", "pool_start", "exchange", "gpu")
CONFIGS = {"ring8": TOY, "mnist5k_mlp": MNIST}
DCGAN: dict[str, Any] = _merge(MNIST, {
    "name": "bench_mnist5k_dcgan", "networks": {"kind": "dcgan", "dcgan_width": 64},
    "training": {"batch_size": 64},
    "metrics": {"names": ["tvd"], "rank_by": "tvd"}, "mixture": {"enabled": False},
})


def grid_config(base: dict[str, Any], cells: int, generations: int, batches: int,
                device: str, vectorise: bool) -> RunConfig:
    """`base` on a 1 x `cells` grid, all cells on one worker, lipizzaner (the reference rule)."""
    return config_from_dict(_merge(base, {
        "grid": {"rows": 1, "cols": cells},
        "training": {"generations": generations, "max_batches": batches, "device": device,
                     "rule": "lipizzaner"},
        "evolution": {"fitness_sample_size": 100},
        "resources": {"cells_per_actor": cells, "vectorise": vectorise and cells > 1,
                      "torch_threads": 1},
    }))


def train_throughput(config: RunConfig, generations: int) -> dict[str, float]:
    """G steps per second of the batch loop (`CellGroup.train`) and of whole generations,
    over `generations` generations after one untimed."""
    pool = LocalCellPool(config)
    controller = Controller(config, pool)
    (group,) = pool.groups
    train_s = total_s = 0.0
    steps = 0
    for g in range(generations + 1):
        rows = controller.route(pool.publish())
        t0 = time.perf_counter()
        batches = group.begin(g, rows)
        t1 = time.perf_counter()
        group.train(None, max(batches))
        if config.training.device == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        reports = group.finish()
        t3 = time.perf_counter()
        if g:  # generation 0 warms up
            train_s += t2 - t1
            total_s += t3 - t0
            steps += sum(r.g.steps for r in reports)
    return {"g_steps": steps, "train_steps_per_s": round(steps / train_s, 1),
            "generation_steps_per_s": round(steps / total_s, 1)}


def compare(base: dict[str, Any], cells: int, generations: int, batches: int,
            device: str) -> dict[str, Any]:
    """Sequential and vectorised throughput of `cells` cells on one worker."""
    out: dict[str, Any] = {"cells": cells}
    for mode in ("sequential", "vectorised"):
        config = grid_config(base, cells, generations + 1, batches, device, mode == "vectorised")
        out[mode] = train_throughput(config, generations)
        log(f"  {cells} cells {mode}: {out[mode]}")
    for key in ("train_steps_per_s", "generation_steps_per_s"):
        out[f"speedup_{key}"] = round(out["vectorised"][key] / out["sequential"][key], 3)
    return out


def cpu_vectorised(quick: bool) -> list[dict[str, Any]]:
    """Sequential vs vectorised cells on the CPU (one thread)."""
    torch.set_num_threads(1)
    gens, batches = (2, 10) if quick else (3, 30)
    out = []
    for name, base in CONFIGS.items():
        for cells in (2, 4) if quick else (2, 4, 9):
            log(f"cpu_vectorised: {name}")
            out.append({"config": name, **compare(base, cells, gens, batches, "cpu")})
    return out


def pool_start(quick: bool) -> list[dict[str, Any]]:
    """Start-up of a 3x3 Ray pool with one actor per cell and with one actor for all."""
    import ray

    from raygan.distributed import RayCellPool, ensure_ray

    ensure_ray(logging_level="ERROR")
    out = []
    for per_actor, vectorise in ((1, False), (9, True)):
        config = config_from_dict(_merge(TOY, {
            "grid": {"rows": 3, "cols": 3}, "training": {"generations": 2},
            "resources": {"cpus_per_cell": 0.2, "torch_threads": 1,
                          "cells_per_actor": per_actor, "vectorise": vectorise},
        }))
        t0 = time.perf_counter()
        pool = RayCellPool(config)
        ray.get([a.ping.remote() for a in pool.actors])
        seconds = time.perf_counter() - t0
        pool.close()
        out.append({"grid": "3x3", "cells_per_actor": per_actor, "actors": len(pool.workers),
                    "startup_s": round(seconds, 3)})
        log(f"pool_start: k={per_actor}: {seconds:.2f} s")
    return out


def exchange(quick: bool) -> list[dict[str, Any]]:
    """Compute vs exchange + control per generation on Ray, one actor per cell vs one for all."""
    from raygan.distributed import RayCellPool, ensure_ray

    ensure_ray(logging_level="ERROR")
    cpus = os.cpu_count() or 1
    gens = 3 if quick else 5
    out = []
    for name, base in CONFIGS.items():
        for rows in (2,) if quick else (2, 3):
            for per_actor in (1, rows * rows):
                config = make_config(base, rows, gens + 1, cpus)
                config = config.replace(**{"resources.cells_per_actor": per_actor,
                                           "resources.vectorise": per_actor > 1})
                log(f"exchange: {name} {rows}x{rows}, {per_actor} cells per actor")
                timed = time_pool(config, "ray", RayCellPool, gens)
                out.append({"config": name, "grid": f"{rows}x{rows}",
                            "cells_per_actor": per_actor, **timed})
    return out


def gpu(quick: bool) -> dict[str, Any]:
    """The GPU checks of the packing issue (skipped without CUDA)."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine"}
    out: dict[str, Any] = {"device_name": torch.cuda.get_device_name(0)}
    import ray

    from raygan.distributed import RayCellPool, ensure_ray

    ensure_ray(logging_level="ERROR")
    pinned = config_from_dict(_merge(TOY, {
        "grid": {"rows": 1, "cols": 2}, "training": {"device": "auto", "generations": 2},
        "resources": {"cpus_per_cell": 1, "gpus_per_cell": 0.5, "cells_per_actor": 2,
                      "vectorise": True}}))
    pool = RayCellPool(pinned)
    out["pinned_actor"] = ray.get(pool.actors[0].ping.remote())
    pool.close()
    gens, batches = (1, 10) if quick else (2, 30)
    whole = {"data": {"sharding": "replicate"}}  # 64 shards of MNIST-5k would hold 1 batch each
    out["mlp"] = [{"config": "mnist5k_mlp", **compare(_merge(MNIST, whole), k, gens, batches,
                                                      "cuda")} for k in (1, 8, 64)]
    out["dcgan_cell_vs_plain"] = cell_vs_plain(
        _merge(DCGAN, {"training": {"device": "cuda"}}), 20 if quick else 60, 3)
    out["dcgan"] = compare(_merge(DCGAN, whole), 8, gens, batches, "cuda")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the sections and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and batches")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sections = {"cpu_vectorised": cpu_vectorised, "pool_start": pool_start,
                "exchange": exchange, "gpu": gpu}
    result: dict[str, Any] = {"quick": args.quick}
    for name in args.only or SECTIONS:
        result[name] = sections[name](args.quick)
    result["machine"] = machine()
    result["seconds"] = round(time.perf_counter() - start, 1)
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
