"""Read finished (or interrupted) experiments offline: trials, checkpoints, samples.

Nothing here needs a running Ray cluster, and nothing here unpickles: an experiment folder may
come from anyone (a shared bucket), and Tune's own readers (`ExperimentAnalysis`, `ResultGrid`
loaded from disk, `Tuner.restore`) run the `CLOUDPICKLE_FALLBACK` entries of its
`experiment_state-*.json`. The state file is read as plain JSON (`raygan.tuning.state`: those
entries stay inert data), the curves from Tune's `result.json`/`progress.csv`, checkpoints with
`torch.load(weights_only=True)`; sampling rebuilds the best trial's grid in this process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from raygan.config import RunConfig
from raygan.engine.checkpoint import CheckpointError
from raygan.engine.outputs import RUN_CONFIG
from raygan.engine.run import CHECKPOINT
from raygan.tuning.records import TrialRecord
from raygan.tuning.state import (
    STATE_GLOB,
    TrialState,
    checkpoint_dirs,
    read_experiment_state,
    trial_dir,
)
from raygan.tuning.trainable import BASE_KEY, run_config_of


def is_plain_run(folder: Path) -> bool:
    """Whether `folder` holds a run's files (`raygan.engine.outputs`): a plain run's
    (`raygan train --out`) or one Tune trial's."""
    return (folder / RUN_CONFIG).is_file() or (folder / CHECKPOINT).is_file()


def require_experiment(path: str | Path, plain_run: bool = False) -> Path:
    """`path` as an absolute local directory that holds a Tune experiment (or, with
    `plain_run`, a plain run: see `is_plain_run`).

    Raises:
        FileNotFoundError: when it does not (with what to pass instead).
    """
    if "://" in str(path):
        raise FileNotFoundError(
            f"{path}: reading remote experiments is not supported; copy it to a local "
            "directory first (e.g. `aws s3 sync` / `gsutil rsync`)"
        )
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist")
    if list(folder.glob(STATE_GLOB)) or (plain_run and is_plain_run(folder)):
        return folder
    run = f" or a plain run (no {RUN_CONFIG} or {CHECKPOINT})" if plain_run else ""
    raise FileNotFoundError(
        f"{folder} is not a Tune experiment (no {STATE_GLOB}){run}; pass the directory "
        "`raygan train` or `raygan tune` printed (<storage_path>/<name>)"
        + (" or a plain run's (`raygan train CONFIG --out DIR`)" if run else "")
    )


def _curves(path: Path) -> Any:
    """Every result of a trial as Tune's `trial_dataframes` had it: `result.json` flattened
    with `/` (or `progress.csv`), an empty frame when neither is there or readable."""
    import pandas as pd

    try:
        if (path / "result.json").is_file():
            text = (path / "result.json").read_text().strip()
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            return pd.json_normalize(rows, sep="/") if rows else pd.DataFrame()
        if (path / "progress.csv").is_file():
            return pd.read_csv(path / "progress.csv", dtype={"trial_id": str})
    except (ValueError, OSError):  # a torn last line after a crash: Tune's reader gave up too
        pass
    return pd.DataFrame()


def _error_line(path: Path, trial: TrialState) -> str:
    """The last line of the trial's error text (`error.txt`), or "failed"."""
    file = path / (trial.error_file or "error.txt")
    text = file.read_text(errors="replace").strip() if file.is_file() else ""
    return text.splitlines()[-1] if text else "failed"


def load_trials(path: str | Path) -> list[TrialRecord]:
    """Every trial of the experiment at `path`, in trial-id order (nothing is unpickled); a
    plain run's directory (`raygan train --out`) reads as an experiment of one trial."""
    folder = require_experiment(path, plain_run=True)
    if not list(folder.glob(STATE_GLOB)):
        from raygan.tuning.plain_run import plain_run_trial  # it builds on this module

        return [plain_run_trial(folder)]
    state = read_experiment_state(folder)
    records = []
    for trial in sorted(state.trials, key=lambda t: t.trial_id):
        where = trial_dir(folder, trial)
        records.append(
            TrialRecord(
                trial_id=trial.trial_id,
                path=where,
                status=trial.status,
                config=run_config_of(trial.config),
                knobs={k: v for k, v in trial.config.items() if k != BASE_KEY},
                last=trial.last_result,
                curves=_curves(where),
                error=_error_line(where, trial) if trial.status == "ERROR" else None,
                failures=trial.num_failures,
            )
        )
    return records


def load_results(path: str | Path) -> Any:
    """Tune's `ResultGrid` of the experiment at `path`, read without a cluster.

    Built from `read_experiment_state` (see `raygan.tuning.restore.result_grid`), not with
    Tune's reader, which unpickles the snapshot.
    """
    from raygan.tuning.restore import result_grid

    folder = require_experiment(path)
    return result_grid(folder, read_experiment_state(folder))


def best_trial(trials: list[TrialRecord]) -> TrialRecord:
    """The trial whose last ranking metric is best (by its `tune.mode`); NaN ranks last.

    Raises:
        ValueError: when there are no trials.
    """
    if not trials:
        raise ValueError("the experiment has no trials")
    return min(trials, key=rank_key)


def rank_key(trial: TrialRecord) -> float:
    """Sort key that puts the best trial first (by its `tune.mode`) and NaN last."""
    s = trial.score
    if math.isnan(s):
        return math.inf
    return s if trial.config.tune_mode == "min" else -s


def latest_checkpoint(trial_dir: str | Path) -> Path | None:
    """The newest `checkpoint_*/checkpoint.pt` of a trial directory, or None."""
    found = checkpoint_dirs(trial_dir)
    return found[-1][1] / CHECKPOINT if found else None


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint to read for `path`: an experiment (its best trial), a trial directory, a
    plain run directory or a checkpoint file.

    Raises:
        FileNotFoundError: when there is no checkpoint there.
    """
    target = Path(path).expanduser().resolve()
    if target.is_file():
        return target
    if not target.is_dir():
        raise FileNotFoundError(f"{target} does not exist")
    if (target / CHECKPOINT).is_file():  # a plain run
        return target / CHECKPOINT
    if list(target.glob(STATE_GLOB)):
        best = best_trial(load_trials(target))
        found = latest_checkpoint(best.path)
        where = f"{target} (best trial {best.trial_id})"
    else:
        found = latest_checkpoint(target)
        where = str(target)
    if found is None:
        raise FileNotFoundError(
            f"{where} has no checkpoint (checkpoint_*/{CHECKPOINT}); nothing to sample. Was the "
            "run stopped before its first checkpoint (output.checkpoint_every)?"
        )
    return found


def sample_best_mixture(checkpoint: str | Path, n: int, seed: int = 0) -> tuple[Any, RunConfig]:
    """`n` samples of the best cell's mixture at a checkpoint, drawn in this process.

    Returns:
        The samples (a CPU tensor) and the run's config.

    Raises:
        CheckpointError: one line, when no cell is finite, the best cell is not, or its
            mixture draws non-finite samples: nothing non-finite is ever handed out.
    """
    import torch

    from raygan.engine.best import best_cell

    config, cell, inputs = best_cell(checkpoint)
    samples = cell.sample(inputs, n, seed)
    if not bool(torch.isfinite(samples).all()):
        raise CheckpointError(f"{checkpoint}: the best mixture (cell {cell.index}) draws "
                              "non-finite samples; refusing to write them")
    return samples, config


def write_samples(samples: Any, config: RunConfig, out: str | Path) -> list[Path]:
    """Save samples as `.npy` (the array) and a `.png` beside it (scatter or image grid)."""
    from raygan.data import load_dataset
    from raygan.engine.plots import plot_image_samples, plot_toy_samples

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    npy, png = out.with_suffix(".npy"), out.with_suffix(".png")
    np.save(npy, samples.numpy())
    title = f"{config.name}: {len(samples)} samples of the best mixture"
    if samples.ndim == 2:  # toy points or vectors
        data = load_dataset(config.data, config.seed)
        plot_toy_samples(png, samples, data.head(5000), data.modes, title)
    else:
        plot_image_samples(png, samples[:400], title)
    return [npy, png]
