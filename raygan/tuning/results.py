"""Read finished (or interrupted) experiments offline: trials, checkpoints, samples.

Nothing here needs a running Ray cluster: Tune's `ExperimentAnalysis` / `ResultGrid` read the
experiment directory, and sampling rebuilds the best trial's grid in this process.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raygan.config import RunConfig
from raygan.engine.run import CHECKPOINT
from raygan.tuning.trainable import BASE_KEY, run_config_of

_CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")


@dataclass
class TrialRecord:
    """One trial of an experiment, as read from disk.

    Attributes:
        trial_id: Tune's trial id.
        path: the trial directory.
        status: TERMINATED, ERROR, RUNNING (interrupted), PAUSED or PENDING.
        config: the run config the trial ran.
        knobs: the values the sweep drew (dotted keys), empty for a plain run.
        last: the last result Tune recorded (empty if none).
        curves: every result, one row per generation (a pandas DataFrame, maybe empty).
        error: the last line of the trial's error, if it failed.
        failures: how many times the trial failed (and was restarted, up to
            `tune.max_failures`).
    """

    trial_id: str
    path: Path
    status: str
    config: RunConfig
    knobs: dict[str, Any]
    last: dict[str, Any]
    curves: Any
    error: str | None
    failures: int = 0

    @property
    def metric(self) -> str:
        """The result key the trial is ranked by."""
        return self.config.tune_metric

    @property
    def score(self) -> float:
        """The last value of the ranking metric (NaN if there is none)."""
        value = self.last.get(self.metric)
        return float(value) if isinstance(value, (int, float)) else math.nan


def require_experiment(path: str | Path) -> Path:
    """`path` as an absolute local directory that holds a Tune experiment.

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
    if not list(folder.glob("experiment_state-*.json")):
        raise FileNotFoundError(
            f"{folder} is not a Tune experiment (no experiment_state-*.json); pass the "
            "directory `raygan train` or `raygan tune` printed (<storage_path>/<name>)"
        )
    return folder


def load_results(path: str | Path) -> Any:
    """Tune's `ResultGrid` of the experiment at `path`, read without a cluster."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    return ResultGrid(ExperimentAnalysis(str(require_experiment(path))))


def load_trials(path: str | Path) -> list[TrialRecord]:
    """Every trial of the experiment at `path`, in trial-id order."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(require_experiment(path)))
    frames = analysis.trial_dataframes
    records = []
    for trial in sorted(analysis.trials, key=lambda t: t.trial_id):
        error = None
        if trial.status == "ERROR":
            text = str(trial.get_error() or "")
            error = text.strip().splitlines()[-1] if text.strip() else "failed"
        records.append(
            TrialRecord(
                trial_id=trial.trial_id,
                path=Path(str(trial.path)),
                status=trial.status,
                config=run_config_of(trial.config),
                knobs={k: v for k, v in trial.config.items() if k != BASE_KEY},
                last=dict(trial.last_result or {}),
                curves=frames.get(trial.trial_id),
                error=error,
                failures=int(trial.run_metadata.num_failures),
            )
        )
    return records


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
    found = []
    for child in Path(trial_dir).iterdir():
        match = _CHECKPOINT_DIR.match(child.name)
        if match and (child / CHECKPOINT).is_file():
            found.append((int(match.group(1)), child / CHECKPOINT))
    return max(found)[1] if found else None


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
    if list(target.glob("experiment_state-*.json")):
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
    """
    import torch

    from raygan.engine.checkpoint import load_checkpoint
    from raygan.engine.controller import Controller
    from raygan.engine.pool import LocalCellPool

    config, controller_state, cell_states = load_checkpoint(checkpoint)
    if config.training.device != "cpu" and not torch.cuda.is_available():
        config = config.replace(**{"training.device": "cpu"})
    pool = LocalCellPool(config)
    pool.load_state_dicts(cell_states)
    controller = Controller(config, pool)
    controller.load_state_dict(controller_state)
    best = controller.best_cell
    inputs = controller.route(pool.publish())[best]
    return pool.sample(best, inputs, n, seed), config


def write_samples(samples: Any, config: RunConfig, out: str | Path) -> list[Path]:
    """Save samples as `.npy` (the array) and a `.png` beside it (scatter or image grid)."""
    from raygan.data import load_dataset
    from raygan.engine.plots import plot_image_samples, plot_toy_samples

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    npy, png = out.with_suffix(".npy"), out.with_suffix(".png")
    np.save(npy, samples.numpy())
    title = f"{config.name}: {len(samples)} samples of the best mixture"
    if config.data.is_toy:
        data = load_dataset(config.data, config.seed)
        assert data.modes is not None
        plot_toy_samples(png, samples, data.samples[:5000], data.modes, title)
    else:
        plot_image_samples(png, samples[:400], title)
    return [npy, png]
