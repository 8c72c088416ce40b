"""Helpers shared by the bench scripts: machine info, timed runs, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from typing import Any

import torch

from raygan.config import RunConfig
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool


def machine() -> dict[str, Any]:
    """Cores, versions and device of this machine."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:  # pragma: no cover - ray is a dependency
        info["ray"] = None
    return info


def run_local(config: RunConfig) -> dict[str, Any]:
    """Run a whole config in this process; return final best-mixture scores, steps and time."""
    start = time.perf_counter()
    controller = Controller(config, LocalCellPool(config))
    summary = None
    while not controller.done:
        summary = controller.step()
    assert summary is not None
    return {
        "seconds": time.perf_counter() - start,
        "gradient_steps": int(sum(r["steps"] for r in controller.history)),
        "best_cell": summary.best_cell,
        **summary.scores,
    }


def mean_std(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """Mean and (sample) std of each key over runs."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [float(r[key]) for r in runs if r.get(key) is not None]
        if values:
            out[key] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            }
    return out


def emit(result: dict[str, Any]) -> None:
    """Print the one JSON object a bench script produces."""
    json.dump(result, sys.stdout, indent=2, default=float)
    sys.stdout.write("\n")
