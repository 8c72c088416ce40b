"""Train the metrics classifiers raygan ships, or check how far a retrain lands from them.

    python scripts/ship_classifiers.py          # (re)writes raygan/metrics/shipped/
    python scripts/ship_classifiers.py --check  # retrains in a temp folder and compares
    python scripts/ship_classifiers.py --check --threads 2  # with 2 torch threads

For each built-in labelled image set (`SHIPPED_DATASETS`) and each classifier family of its
default metrics, the classifier is trained exactly as a run trains it: the run's default config
for that set, its `Dataset`, `raygan.engine.task.metric_context` and `MetricContext.scorer`,
with the shipped lookup pointed at an empty folder so that nothing shipped is loaded. The
weights (safetensors), the real-data statistics at the config's `eval_samples` and
`manifest.json` go to `raygan/metrics/shipped/`. Like a default run's cells, it trains with
one torch thread unless `--threads` says otherwise. Both modes print JSON: held-out accuracy,
floors and seconds per classifier; `--check` adds the differences from the shipped numbers
and overwrites nothing. A retrain is bit for bit the shipped classifier only with the same
torch version and thread count (`trained_with` in the manifest): other thread counts sum
floats in another order, which is why raygan ships these classifiers instead of training them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import raygan.metrics.shipped as shipped
from raygan.config import load_config
from raygan.config.catalog import _NEEDS_LABELS, families
from raygan.data import load_dataset
from raygan.engine.task import metric_context
from raygan.metrics.classifier import (
    CLASSIFIER_VERSION,
    DEFAULT_SETTINGS,
    architecture_for,
    classifier_cache_key,
    classifier_data,
    data_fingerprint,
    split_indices,
)
from raygan.metrics.image import STATS_VERSION

SHIPPED_DATASETS = ("mnist5k", "digits8x8")
"""The built-in labelled sets whose classifiers ship (no download, the same data everywhere)."""


def train_one(
    name: str, family: str, work: Path, threads: int | None = None
) -> tuple[dict[str, Any], Path, float]:
    """Train `family`'s classifier of data set `name` as a run does, in cache folder `work`,
    with `threads` torch threads (default: those of a default run's cells, as its pool sets).

    Returns:
        The manifest entry (its `file` and `sha256` not yet set), the real-statistics file in
        `work`, and the seconds taken.
    """
    cfg = load_config(None, [f"data.name={name}", f"metrics.cache_dir={work}"])
    torch.set_num_threads(threads or cfg.resources.cell_threads())
    dataset = load_dataset(cfg.data, cfg.seed)
    ctx = metric_context(cfg, dataset)
    start = time.perf_counter()
    scorer = ctx.scorer(family)
    seconds = time.perf_counter() - start
    extractor = scorer.extractor
    arch = architecture_for(family, dataset.sample_shape)
    settings = DEFAULT_SETTINGS[arch]
    data = classifier_data(dataset)
    key = classifier_cache_key(data, settings, arch)
    if key != extractor.key:
        raise RuntimeError(f"{name}: the scorer's key {extractor.key} is not the cache key {key}")
    (stats,) = work.glob(f"real-stats-{name}-*.npz")
    entry = {
        "dataset": name,
        "family": family,
        "arch": arch,
        "arch_args": extractor.model.arch_args(),
        "settings": asdict(settings),
        "version": CLASSIFIER_VERSION,
        "data_fingerprint": data_fingerprint(data),
        "cache_key": key,
        "accuracy": extractor.accuracy,
        "held_out_images": len(split_indices(len(data), settings.holdout_fraction,
                                             settings.seed)[1]),
        "real_stats": [{
            "file": stats.name,
            "eval_samples": cfg.eval_samples,
            "stats_version": STATS_VERSION,
            "floors": scorer.floors,
        }],
        "trained_with": {"torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in extractor.model.state_dict().items()}
    save_file(state, work / f"classifier-{arch}-{name}.safetensors")
    return entry, stats, seconds


def classifier_families(name: str) -> list[str]:
    """The families of `name`'s default metrics whose features come from a trained classifier."""
    cfg = load_config(None, [f"data.name={name}"])
    # the families that need labels are those `MetricContext` trains a classifier for
    return [f for f in families(cfg.metric_names) if f in _NEEDS_LABELS]


def train_all(work: Path, threads: int | None) -> tuple[list[dict[str, Any]], list[float]]:
    """Train every shipped classifier into `work`; entries get their files' names and sha256."""
    entries, seconds = [], []
    empty = work / "no-shipped"
    empty.mkdir(parents=True)
    was, shipped.SHIPPED_DIR = shipped.SHIPPED_DIR, empty  # train, never load what ships now
    try:
        for name in SHIPPED_DATASETS:
            for family in classifier_families(name):
                folder = work / f"{name}-{family}"
                folder.mkdir()
                entry, stats, took = train_one(name, family, folder, threads)
                weights = folder / f"classifier-{entry['arch']}-{name}.safetensors"
                shutil.copy(stats, work / stats.name)
                shutil.copy(weights, work / weights.name)
                entry["file"] = weights.name
                entry["sha256"] = shipped.sha256_of(weights.read_bytes())
                entry["real_stats"][0]["sha256"] = shipped.sha256_of(stats.read_bytes())
                entries.append(entry)
                seconds.append(took)
    finally:
        shipped.SHIPPED_DIR = was
    return entries, seconds


def summary(entry: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What the script prints of one classifier."""
    return {"dataset": entry["dataset"], "arch": entry["arch"], "accuracy": entry["accuracy"],
            "floors": entry["real_stats"][0]["floors"], "seconds": round(seconds, 1)}


def ship(target: Path, threads: int | None) -> dict[str, Any]:
    """Retrain everything and replace the shipped files and manifest in `target`."""
    old = shipped.read_manifest(target)
    with tempfile.TemporaryDirectory() as tmp:
        entries, seconds = train_all(Path(tmp), threads)
        for entry in old["classifiers"]:  # files of classifiers no longer shipped
            for name in [entry["file"], *(s["file"] for s in entry["real_stats"])]:
                (target / name).unlink(missing_ok=True)
        for entry in entries:
            for name in [entry["file"], *(s["file"] for s in entry["real_stats"])]:
                shutil.copyfile(Path(tmp) / name, target / name)
    manifest = {"format": shipped.MANIFEST_FORMAT, "classifiers": entries}
    (target / shipped.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    out = [summary(e, s) for e, s in zip(entries, seconds, strict=True)]
    for item, entry in zip(out, entries, strict=True):
        item["bytes"] = (target / entry["file"]).stat().st_size
    return {"written": str(target), "classifiers": out}


def check(target: Path, threads: int | None) -> dict[str, Any]:
    """Retrain everything in a temp folder and compare with what `target` ships."""
    recorded = {e["cache_key"]: e for e in shipped.read_manifest(target)["classifiers"]}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        entries, seconds = train_all(Path(tmp), threads)
        for entry, took in zip(entries, seconds, strict=True):
            item = summary(entry, took)
            was = recorded.get(entry["cache_key"])
            if was is None:
                item["shipped"] = None  # nothing shipped for this key: settings or data changed
                out.append(item)
                continue
            floors, was_floors = entry["real_stats"][0]["floors"], was["real_stats"][0]["floors"]
            new_w, old_w = load_file(Path(tmp) / entry["file"]), load_file(target / was["file"])
            item.update({
                "shipped_accuracy": was["accuracy"],
                "accuracy_difference": entry["accuracy"] - was["accuracy"],
                "shipped_floors": was_floors,
                "floor_differences": {k: v - was_floors[k] for k, v in floors.items()},
                "identical_weights": entry["sha256"] == was["sha256"],
                "max_weight_difference": max(float((new_w[k] - old_w[k]).abs().max())
                                             for k in new_w),
            })
            out.append(item)
    return {"checked": str(target), "classifiers": out}


def main(argv: list[str] | None = None) -> int:
    """Entry point: ship, or `--check`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="retrain in a temp folder and report the differences; write nothing")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads to train with (default: a default run's, 1); the "
                             "float sums, and so the weights, depend on it")
    args = parser.parse_args(argv)
    target = shipped.SHIPPED_DIR
    result = (check if args.check else ship)(target, args.threads)
    result.update(torch=torch.__version__, threads=torch.get_num_threads())
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
