"""`TrialRecord`: one trial of an experiment (or a plain run), as the readers
(`raygan.tuning.results`, `raygan.tuning.plain_run`) give it to the reports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raygan.config import RunConfig


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
