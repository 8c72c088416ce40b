"""`Result`: a finished or interrupted run, read back from its folder (`raygan.load`).

A plain run (`raygan.train`, `raygan train --out`), a Tune trial and a Tune experiment (read as
its best trial) all hold the same files (`raygan.engine.outputs`), so one reader serves them.
Nothing is unpickled: the folder may come from anyone (`raygan.tuning.results`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raygan.config import RunConfig

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from raygan.export import MixtureGenerator

FINAL = "final.json"
"""The best mixture's scores once a run is done (`raygan.engine.outputs`)."""


@dataclass(frozen=True, eq=False)
class Result:
    """A run's outcome: its final metrics, its history and its best mixture.

    Attributes:
        path: the folder that was loaded: a plain run, a Tune trial or a Tune experiment.
        run_path: the run the rest describes: `path` itself, or an experiment's best trial.
        config: the configuration it ran (with the metrics that default from the data
            written out).
        status: "TERMINATED" (every generation done) or "RUNNING" (interrupted: resuming
            continues it); a trial of an experiment may also be "ERROR", "PAUSED" or
            "PENDING".
        generations: generations completed.
        metrics: the best mixture's scores by metric name, each metric's real-data floor
            beside it as "<name>_floor" where it has one (e.g. `{"fid": 41.2, "fid_floor":
            3.1}`): `final.json`'s "best/" keys without the prefix, non-finite values left
            out; an interrupted run's are those of its last evaluation.
        history: one row per cell per generation (`history.parquet`: generation, cell,
            learning rates, losses, fitness, mixture weights, `score/<name>`, ...); empty
            before the first checkpoint.
        checkpoint: the checkpoint that holds the best mixture (the run's latest), or None
            before the first.
    """

    path: Path
    run_path: Path
    config: RunConfig
    status: str
    generations: int
    metrics: dict[str, float]
    history: pd.DataFrame
    checkpoint: Path | None

    @property
    def done(self) -> bool:
        """Whether every generation was trained."""
        return self.status == "TERMINATED"

    def generator(self, device: str | torch.device = "cpu") -> MixtureGenerator:
        """The best mixture as one `nn.Module` with `sample(n, seed)`.

        Its `sample(n, seed)` draws what `raygan sample` and the exported file draw for the
        same seed. A run trained on Python objects (`raygan.train(data=..., generator=...)`)
        needs them in this process: pass them to `raygan.load` in a new one.

        Args:
            device: where the module (and the samples it draws) live.

        Raises:
            FileNotFoundError: the run has no checkpoint yet.
            CheckpointError: its best mixture is not finite.
        """
        from raygan.export import load_mixture

        return load_mixture(self.checkpoint or self.run_path).to(device)

    def export(self, path: str | Path, format: str = "torchscript") -> Path:
        """Write the best mixture to `path`, as `raygan export` does.

        Args:
            path: the file to write; for "state_dict", the JSON (the members' `.safetensors`
                go beside it).
            format: "torchscript" (one file for `torch.jit.load`, no raygan needed) or
                "state_dict" (safetensors of each member plus a JSON of the mixture).

        Returns:
            The file written.

        Raises:
            ExportError: a member network can be neither scripted nor traced (one line;
                use format="state_dict").
            FileNotFoundError, CheckpointError: as `generator`.
        """
        from raygan.atomic import probe_writable
        from raygan.export import export_mixture

        probe_writable(Path(path).expanduser().absolute().parent)
        return export_mixture(self.checkpoint or self.run_path, path, format)

    def __repr__(self) -> str:
        from raygan.config.catalog import format_scores

        scores = format_scores(self.metrics) or "no scores yet"
        return (f"Result({self.config.name!r}, {self.status}, {self.generations}/"
                f"{self.config.training.generations} generations, {scores}, "
                f"path={str(self.path)!r})")


def final_metrics(run: Path) -> dict[str, float] | None:
    """The best mixture's scores in a run's `final.json` (see `Result.metrics`); None when the
    run has none (it is not done).

    Raises:
        CheckpointError: one line, when the file is not a JSON object.
    """
    from raygan.config.catalog import best_scores
    from raygan.engine.checkpoint import CheckpointError

    file = run / FINAL
    if not file.is_file():
        return None
    try:
        final = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{file} is truncated or not JSON ({type(exc).__name__})") from None
    if not isinstance(final, dict):
        raise CheckpointError(f"{file} is not a JSON object")
    return best_scores(final)


def read_result(path: str | Path) -> Result:
    """The `Result` of the plain run, Tune trial or Tune experiment (its best trial) at `path`.

    Raises:
        FileNotFoundError: one line, when `path` holds none of those or no trial.
        ConfigError, CheckpointError: one line, when its config or logs cannot be read.
    """
    import pandas as pd

    from raygan.config.catalog import best_scores
    from raygan.engine.history import HISTORY_FILE, read_history
    from raygan.tuning.results import (
        best_trial,
        find_checkpoint,
        load_trials,
        require_experiment,
    )

    folder = require_experiment(path, plain_run=True)
    trials = load_trials(folder)
    if not trials:
        raise FileNotFoundError(f"{folder}: the experiment has no trials yet")
    best = best_trial(trials)
    run = best.path
    metrics = final_metrics(run)
    if metrics is None:
        metrics = best_scores(best.last)
    history = read_history(run / HISTORY_FILE) if (run / HISTORY_FILE).is_file() else (
        pd.DataFrame())
    try:
        checkpoint: Path | None = find_checkpoint(run)
    except FileNotFoundError:  # stopped before its first checkpoint
        checkpoint = None
    generation: Any = best.last.get("generation", 0)
    done = int(generation) if isinstance(generation, (int, float)) and math.isfinite(
        generation) else 0
    return Result(path=folder, run_path=run, config=best.config, status=best.status,
                  generations=done, metrics=metrics, history=history, checkpoint=checkpoint)
