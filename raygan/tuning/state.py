"""An experiment's Tune snapshot (`experiment_state-*.json`) and its trials' checkpoint
folders, read as plain JSON and file names: what the readers (`raygan.tuning.results`) and the
resume path (`raygan.tuning.restore`) both build on.

Nothing here unpickles: an experiment folder may come from anyone (a shared bucket), and
Tune's `CLOUDPICKLE_FALLBACK` entries stay inert data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raygan.engine.checkpoint import CheckpointError
from raygan.engine.run import CHECKPOINT
from raygan.tuning.trainable import BASE_KEY, CHECKPOINT_DIR

STATE_GLOB = "experiment_state-*.json"
"""Tune's experiment snapshots; the newest (by name) is the one Tune resumes from."""
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=,+-]*$")  # one file or folder name, no ..
_STATUSES = ("PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR")


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


def checkpoint_dirs(trial_dir: str | Path) -> list[tuple[int, Path]]:
    """The trial's `checkpoint_*` directories that hold a `checkpoint.pt`, oldest first."""
    folder = Path(trial_dir)
    found = []
    for child in folder.iterdir() if folder.is_dir() else []:
        match = CHECKPOINT_DIR.match(child.name)
        if match and (child / CHECKPOINT).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)
