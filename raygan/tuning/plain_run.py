"""A plain run (`raygan train CONFIG --out DIR`) read as an experiment of one trial.

A plain run's directory holds the files a Tune trial's does (`raygan.engine.outputs`), less
Tune's `result.json`: its results are rebuilt here from `generations.jsonl`, row for row as the
trial would have reported them, so `raygan report` and `load_trials` treat both alike.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from raygan.engine.checkpoint import CheckpointError
from raygan.engine.outputs import RUN_CONFIG
from raygan.engine.run import CHECKPOINT
from raygan.tuning.records import TrialRecord
from raygan.tuning.trainable import trial_result

SUMMARIES = "generations.jsonl"
"""One generation summary a line (`GenerationSummary.to_dict`), as the run appends them."""


def read_summaries(path: Path) -> list[dict[str, Any]]:
    """The rows of a run's `generations.jsonl` (none before its first generation).

    Raises:
        CheckpointError: one line, when a row is not a generation summary; a torn last line
            (a crash while it was appended) is left out instead.
    """
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if number == len(lines):
                break
            row = None
        generation = row.get("generation") if isinstance(row, dict) else None
        if not isinstance(generation, int) or isinstance(generation, bool):
            raise CheckpointError(f"{path}: line {number} is not a generation summary (a JSON "
                                  'object with an integer "generation")')
        rows.append(row)
    return rows


def tune_results(summaries: list[dict[str, Any]], total: int, metric: str) -> list[dict[str, Any]]:
    """The results a Tune trial reports for these generations (`trial_result` after each)."""
    # the log writes NaN as null (JSON has no NaN); Tune's results hold NaN
    return [{k: math.nan if v is None else v
             for k, v in trial_result(summaries[: i + 1], total, metric).items()}
            for i in range(len(summaries))]


def plain_run_trial(folder: Path) -> TrialRecord:
    """The plain run in `folder` as a trial named after the folder: TERMINATED once its
    generations are done, else RUNNING (interrupted; `raygan resume` continues it).

    Raises:
        ConfigError, CheckpointError: one line, when its config or log cannot be read.
    """
    import pandas as pd

    from raygan.config import load_config
    from raygan.engine.checkpoint import load_checkpoint

    if (folder / RUN_CONFIG).is_file():
        config = load_config(folder / RUN_CONFIG)
    else:  # the checkpoint holds the config too
        config = load_checkpoint(folder / CHECKPOINT)[0]
    results = tune_results(read_summaries(folder / SUMMARIES), config.training.generations,
                           config.tune_metric)
    return TrialRecord(
        trial_id=folder.name,
        path=folder,
        status="TERMINATED" if results and results[-1]["done"] else "RUNNING",
        config=config,
        knobs={},
        last=results[-1] if results else {},
        curves=pd.DataFrame(results),
        error=None,
    )
