"""Read finished (or interrupted) experiments offline: trials, checkpoints, samples.

Nothing here needs a running Ray cluster, and nothing here unpickles: an experiment folder may
come from anyone (a shared bucket), and Tune's own readers (`ExperimentAnalysis`, `ResultGrid`
loaded from disk, `Tuner.restore`) run the `CLOUDPICKLE_FALLBACK` entries of its
`experiment_state-*.json`. The state file is read here as plain JSON (those entries stay inert
data), the curves from Tune's `result.json`/`progress.csv`, checkpoints with
`torch.load(weights_only=True)`; sampling rebuilds the best trial's grid in this process.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raygan.config import RunConfig
from raygan.engine.checkpoint import CheckpointError
from raygan.engine.run import CHECKPOINT
from raygan.tuning.trainable import BASE_KEY, CHECKPOINT_DIR, run_config_of

STATE_GLOB = "experiment_state-*.json"
"""Tune's experiment snapshots; the newest (by name) is the one Tune resumes from."""
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=,+-]*$")  # one file or folder name, no ..
_STATUSES = ("PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR")
RUN_CONFIG = "config.yaml"
"""A run's resolved config, which `raygan.engine.outputs` writes first."""


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


@dataclass
class TrialState:
    """What an experiment snapshot says of one trial, as plain JSON values.

    Attributes:
        trial_id: Tune's trial id.
        status: one of PENDING, RUNNING, PAUSED, TERMINATED, ERROR.
        config: the trial's Tune config (`{"raygan": ..., "<dotted.key>": value}`).
        evaluated_params: the values the searcher drew for it.
        experiment_tag: Tune's tag (the trial's index and drawn values).
        logdir: its directory under the experiment (None before it started).
        last_result: its last result (empty if none).
        num_failures: how many times it failed.
        error_file: the text file with its last error, in its directory (or None).
    """

    trial_id: str
    status: str
    config: dict[str, Any]
    evaluated_params: dict[str, Any]
    experiment_tag: str
    logdir: str | None
    last_result: dict[str, Any]
    num_failures: int
    error_file: str | None


@dataclass
class ExperimentState:
    """The newest `experiment_state-*.json` of an experiment, read as plain JSON.

    Attributes:
        file: the snapshot read.
        session: Tune's session string (names the snapshot and the searcher's state).
        start_time: when the experiment started (seconds since the epoch).
        trials: its trials, in the snapshot's order.
    """

    file: Path
    session: str
    start_time: float
    trials: list[TrialState]


def _plain_name(value: Any, what: str, where: Path) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _PLAIN_NAME.match(value):
        raise CheckpointError(f"{where}: {what} {value!r} is not a plain file name")
    return value


def _trial_state(state: dict[str, Any], meta: dict[str, Any], where: Path) -> TrialState:
    trial_id = _plain_name(state.get("trial_id"), "trial id", where)
    status, config = state.get("status"), state.get("config")
    if trial_id is None or status not in _STATUSES or not isinstance(config, dict):
        raise CheckpointError(f"{where}: a trial without a valid id, status or config")
    if not isinstance(config.get(BASE_KEY), dict):
        raise CheckpointError(f"{where}: trial {trial_id} has no {BASE_KEY!r} config; this is "
                              "not a raygan experiment")
    last, drawn = meta.get("last_result"), state.get("evaluated_params")
    failures = meta.get("num_failures", 0)
    return TrialState(
        trial_id=trial_id,
        status=status,
        config=config,
        evaluated_params=drawn if isinstance(drawn, dict) else {},
        experiment_tag=str(state.get("experiment_tag", "")),
        logdir=_plain_name(state.get("relative_logdir"), "trial directory", where),
        last_result=dict(last) if isinstance(last, dict) else {},
        num_failures=failures if isinstance(failures, int) else 0,
        error_file=_plain_name(meta.get("error_filename"), "error file", where),
    )


def read_experiment_state(folder: Path) -> ExperimentState:
    """The newest experiment snapshot of `folder`, parsed with plain `json.loads`.

    `CLOUDPICKLE_FALLBACK` entries (Tune's pickled objects: storage contexts, checkpoint
    managers, name creators) are never decoded; every field used is checked for its type, and
    file names for being one plain name inside the experiment.

    Raises:
        FileNotFoundError: when `folder` has no snapshot.
        CheckpointError: when the snapshot is truncated or not Tune's (one line naming it).
    """
    files = sorted(folder.glob(STATE_GLOB))
    if not files:
        raise FileNotFoundError(f"{folder} has no {STATE_GLOB}")
    path = files[-1]
    try:
        data = json.loads(path.read_text())
        runner = data["runner_data"]
        rows = [(json.loads(state), json.loads(meta)) for state, meta in data["trial_data"]]
        session, start = runner["_session_str"], float(runner.get("_start_time") or 0.0)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{path} is truncated or not a Tune experiment state ({type(exc).__name__}: {exc})"
        ) from None
    session = _plain_name(session, "session", path)
    if session is None or not all(isinstance(s, dict) and isinstance(m, dict) for s, m in rows):
        raise CheckpointError(f"{path} is not a Tune experiment state")
    return ExperimentState(path, session, start, [_trial_state(s, m, path) for s, m in rows])


def trial_dir(folder: Path, trial: TrialState) -> Path:
    """The trial's directory (Tune's default name before the trial started)."""
    return folder / (trial.logdir or f"trial_{trial.trial_id}")


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


def checkpoint_dirs(trial_dir: str | Path) -> list[tuple[int, Path]]:
    """The trial's `checkpoint_*` directories that hold a `checkpoint.pt`, oldest first."""
    folder = Path(trial_dir)
    found = []
    for child in folder.iterdir() if folder.is_dir() else []:
        match = CHECKPOINT_DIR.match(child.name)
        if match and (child / CHECKPOINT).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


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

    from raygan.export import best_cell

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
