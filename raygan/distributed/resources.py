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


def unmet(bundles: list[dict[str, float]], nodes: list[dict[str, float]],
          strategy: str = "PACK") -> str | None:
    """What of `bundles` a cluster of `nodes` (each node's total resources) can never place,
    as words to follow "asks" ("10 CPU in all, the cluster has 2"), or None when they may be
    placed. Only certain failures count: a sum above the cluster's, a bundle no node can
    hold, a strategy the node count rules out.
    """
    bundles = [b for b in bundles if b]  # Tune's empty controller bundle reserves nothing
    total = {k: sum(node.get(k, 0.0) for node in nodes) for k in _keys(bundles)}
    for key in sorted(total):
        need = sum(b.get(key, 0.0) for b in bundles)
        if need > total[key] + _EPS:
            return f"{need:g} {key} in all, the cluster has {total[key]:g}"
    if strategy == "STRICT_PACK":
        whole = {k: sum(b.get(k, 0.0) for b in bundles) for k in _keys(bundles)}
        if not any(_holds(node, whole) for node in nodes):
            return f"{_text(whole)} on one node (STRICT_PACK), which no node has"
    if strategy == "STRICT_SPREAD" and len(bundles) > len(nodes):
        return (f"{len(bundles)} bundles on as many nodes (STRICT_SPREAD), the cluster has "
                f"{len(nodes)}")
    for bundle in bundles:
        if not any(_holds(node, bundle) for node in nodes):
            return f"a bundle of {_text(bundle)}, which no node has"
    return None


def fitting_shares(cfg: ResourcesConfig, n_cells: int, cluster: dict[str, float],
                   tune: bool) -> list[str]:
    """Settings that would fit `cluster`'s totals, as advice for an error message:
    smaller per-cell shares (`resources.cpus_per_cell <= 0.1111`), the local backend."""
    cells = 1 if tune and cfg.backend == "local" else n_cells  # a local trial: one cell's share
    fixed = cfg.controller_cpus if tune and cfg.backend == "ray" else 0.0
    tips = []
    for key, share, room in (("cpus_per_cell", cfg.cpus_per_cell, cluster.get("CPU", 0) - fixed),
                             ("gpus_per_cell", cfg.gpus_per_cell, cluster.get("GPU", 0))):
        if share > 0 and room > _EPS:
            most = math.floor(room / cells * 1e4) / 1e4  # Ray's resource unit, never above
            if most < share:
                tips.append(f"resources.{key} <= {most:g}")
    shares = [" and ".join(tips)] if tips else []
    return shares + (["resources.backend local"] if cfg.backend == "ray" else [])


def trials_at_once(bundles: list[dict[str, float]], cluster: dict[str, float],
                   trials: int, limit: int | None) -> int:
    """How many trials of `bundles` run side by side on `cluster` (at least 1)."""
    most = trials if limit is None else min(trials, limit)
    for key in _keys(bundles):
        need = sum(b.get(key, 0.0) for b in bundles)
        if need > 0:
            most = min(most, int(cluster.get(key, 0.0) / need + _EPS))
    return max(1, most)


def _keys(bundles: list[dict[str, float]]) -> set[str]:
    return {k for b in bundles for k in b}


def _holds(node: dict[str, float], bundle: dict[str, float]) -> bool:
    return all(node.get(k, 0.0) + _EPS >= v for k, v in bundle.items())


def _text(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())) + "}"
