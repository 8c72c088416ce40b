"""Resource arithmetic for cell actors: bundles, GPU shares, thread counts and actor options.

Pure functions of `ResourcesConfig`; nothing here imports ray or torch, so the numbers can be
checked (and printed by tools) without a cluster.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from raygan.config import ResourcesConfig

# Ray accounts fractional resources in units of 1e-4; anything finer is rounding noise.
_EPS = 1e-9


def validate_gpus(gpus_per_cell: float) -> float:
    """Check a per-cell GPU request: 0, a fraction in (0, 1], or a whole number of GPUs.

    Args:
        gpus_per_cell: requested GPUs per cell.

    Returns:
        The request as a float.

    Raises:
        ValueError: for a negative request or a fraction above 1 (e.g. 1.5), which Ray cannot
            place on a single GPU.
    """
    gpus = float(gpus_per_cell)
    if not math.isfinite(gpus) or gpus < 0:
        raise ValueError(f"resources.gpus_per_cell must be >= 0, got {gpus_per_cell}")
    if gpus > 1 and abs(gpus - round(gpus)) > _EPS:
        raise ValueError(
            "resources.gpus_per_cell must be a fraction in (0, 1] (cells sharing a GPU) or a "
            f"whole number of GPUs, got {gpus_per_cell}"
        )
    return gpus


def cell_bundle(cfg: ResourcesConfig) -> dict[str, float]:
    """The placement-group bundle one cell reserves, e.g. `{"CPU": 1.0, "GPU": 0.25}`.

    Zero entries are left out (Ray treats `{"GPU": 0}` as a request for a GPU node type).

    Raises:
        ValueError: if the cell would reserve nothing at all, which Ray rejects as an empty
            bundle, or the GPU request is invalid.
    """
    gpus = validate_gpus(cfg.gpus_per_cell)
    bundle: dict[str, float] = {}
    if cfg.cpus_per_cell > 0:
        bundle["CPU"] = float(cfg.cpus_per_cell)
    if gpus > 0:
        bundle["GPU"] = gpus
    if not bundle:
        raise ValueError(
            "a cell must reserve some resource: set resources.cpus_per_cell > 0 or "
            "resources.gpus_per_cell > 0"
        )
    return bundle


def worker_bundle(cfg: ResourcesConfig, cells: int) -> dict[str, float]:
    """The bundle of a worker hosting `cells` cells: the sum of their shares."""
    # rounded to Ray's resource unit, so 13 x 0.0769 GPU reads 0.9997, not 0.99969999...
    return {k: round(v * cells, 4) for k, v in cell_bundle(cfg).items()}


def memory_fraction(gpus_per_cell: float) -> float | None:
    """Share of its GPU's memory a cell may allocate, or None when it needs no cap.

    A cell with a fractional GPU shares the device with other cells, so it is capped at its
    share; a cell with whole GPUs (or none) is not capped.
    """
    gpus = validate_gpus(gpus_per_cell)
    if gpus <= 0 or gpus >= 1 - _EPS:
        return None
    return gpus


def _package_root() -> str:
    # the directory that holds the `raygan` package, so workers of a local cluster can import
    # it even when it is used from a source checkout rather than installed
    return str(Path(__file__).resolve().parent.parent.parent)


def actor_options(cfg: ResourcesConfig, cells: int = 1) -> dict[str, Any]:
    """Keyword arguments for `ray.remote(...).options(...)` of an actor hosting `cells` cells.

    CPU-only actors get `CUDA_VISIBLE_DEVICES=""` so torch never initialises CUDA in them (and
    cannot grab a GPU another cell reserved); the thread variables match
    `ResourcesConfig.cell_threads` so the actor does not oversubscribe its CPU share.
    """
    gpus = validate_gpus(cfg.gpus_per_cell)
    threads = str(cfg.cell_threads(cells))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if gpus <= 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    root = _package_root()
    existing = os.environ.get("PYTHONPATH", "")
    env["PYTHONPATH"] = root + (os.pathsep + existing if existing else "")
    return {
        "num_cpus": float(cfg.cpus_per_cell) * cells,
        "num_gpus": gpus * cells,
        "runtime_env": {"env_vars": env},
    }


def trial_bundles(cfg: ResourcesConfig, n_cells: int) -> list[dict[str, float]]:
    """Placement-group bundles of one Ray Tune trial of a grid of `n_cells`.

    Backend `ray`: bundle 0 is the trial's own process (the controller: `controller_cpus`,
    possibly empty) and bundles 1.. are the cell actors (`resources.cells_per_actor` cells
    each), so Tune places (and the autoscaler sizes for) whole grids. Backend `local`: the
    trial process runs the cells one after another, so it reserves one cell's share, which
    lets small machines run several trials side by side.
    """
    cell = cell_bundle(cfg)
    if cfg.backend == "local":
        return [cell]
    head = {"CPU": float(cfg.controller_cpus)} if cfg.controller_cpus > 0 else {}
    return [head] + [worker_bundle(cfg, len(cells)) for cells in cfg.workers(n_cells)]


def describe_request(cfg: ResourcesConfig, n_cells: int) -> str:
    """Human-readable total of what a grid of `n_cells` asks for, for error messages."""
    workers = cfg.workers(n_cells)
    bundle = worker_bundle(cfg, len(workers[0]))
    total = {k: v * n_cells for k, v in cell_bundle(cfg).items()}
    each = f" (up to {cfg.cells_per_actor} cells each)" if cfg.cells_per_actor > 1 else ""
    return (f"{len(workers)} bundles of {bundle}{each} (total {total}, "
            f"strategy {cfg.placement_strategy})")
