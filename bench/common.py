"""Helpers shared by the bench scripts: machine info, baseline settings, timing, JSON output.

Every bench script prints exactly one JSON object on stdout (progress goes to stderr), uses
fixed seeds, reports the machine it ran on and never asserts.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# a private local Ray instance without the token prompt or the usage-stats upload
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from raygan.config import RunConfig  # noqa: E402

CONFIGS = ROOT / "tune_configs"
"""The shipped configs the benches start from."""

SINGLE = [
    "grid.rows=1",
    "grid.cols=1",
    "training.rule=lipizzaner",
    "evolution.selection=false",
    "evolution.replacement=false",
    "evolution.lr_mutation=none",
    "losses.generator=[heuristic]",
    "mixture.enabled=false",
]
"""Overrides turning a grid config into the single-GAN baseline (1x1, fixed heuristic loss)."""

RULES: dict[str, list[str]] = {
    "own": ["training.rule=own", "evolution.selection=false", "evolution.replacement=false"],
    "own_selection": [
        "training.rule=own", "evolution.selection=true", "evolution.replacement=true",
    ],
    "lipizzaner": ["training.rule=lipizzaner"],
    "lipizzaner_selection": ["training.rule=lipizzaner-selection"],
    "fresh": ["training.rule=fresh", "training.exchange_every=1"],
    "live": ["training.rule=live"],
}
"""Overrides selecting each training rule, spelled out in full (selection and replacement
included) so a base config that sets them cannot change what a setting measures. `own` is N
independent GANs mixed by the ES; `own_selection` adds tournaments and elitist replacement."""


def cpu_share(cpus: float, cells: int) -> float:
    """Each of `cells` cells' even share of `cpus`, rounded down to Ray's resource unit (1e-4)
    so that all the shares fit."""
    return math.floor(cpus / cells * 1e4) / 1e4


def machine() -> dict[str, Any]:
    """Cores, load, versions and device of this machine (what the numbers were measured on)."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch_default_threads": torch.get_num_threads(),
    }
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:  # pragma: no cover - ray is a dependency
        info["ray"] = None
    return info


def config_summary(config: RunConfig) -> dict[str, Any]:
    """The resolved sections of a config that decide what a quality run trains."""
    data = config.to_dict()
    keys = ["data", "networks", "losses", "grid", "evolution", "mixture", "training"]
    return {key: data[key] for key in keys}


def log(message: str) -> None:
    """Progress on stderr, so stdout stays one JSON object."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


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


def ms_stats(seconds: Sequence[float]) -> dict[str, float]:
    """Median, mean, min and max of a list of durations, in milliseconds."""
    return {
        "median_ms": round(statistics.median(seconds) * 1e3, 3),
        "mean_ms": round(statistics.fmean(seconds) * 1e3, 3),
        "min_ms": round(min(seconds) * 1e3, 3),
        "max_ms": round(max(seconds) * 1e3, 3),
    }


def finish(result: dict[str, Any], start: float) -> None:
    """Add the run's total time (since `start`, a `time.perf_counter()`) and the load average at
    the end to `result`, and print it (`emit`)."""
    result["total_s"] = round(time.perf_counter() - start, 1)
    result["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    emit(result)


def emit(result: dict[str, Any]) -> None:
    """Print the one JSON object a bench script produces."""
    json.dump(result, sys.stdout, indent=2, default=float)
    sys.stdout.write("\n")
    sys.stdout.flush()
