"""Tables of a grid's evolution, read from its population history (`history.parquet`), and
which trials ran which part of that history (PBT/PB2 exploits, from `pbt_global.txt`).

Pure pandas and JSON, no plotting and no Ray: the figures of `raygan.reporting.figures` draw
these, and tests check them against histories with planted replacements. Generations are
counted as completed generations (the history's 0-based `generation` + 1, as in Tune's results
and the report's curves), so step 0 is the initial population.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from raygan.config.catalog import floor_name, lower_is_better
from raygan.engine.history import SCORE_PREFIX

Side = Literal["g", "d"]

EXPLOIT_LOG = "pbt_global.txt"  # Tune's name; written by `raygan.tuning.schedulers`
_TAG_INDEX = re.compile(r"^(\d+)(?:_|$)")  # Tune's experiment tags start with the trial's index


@dataclass(frozen=True)
class Edge:
    """A centre replaced by another cell's network.

    Attributes:
        step: the generations completed when the new centre took over.
        parent: the cell whose centre (at `step - 1`) the new centre descends from.
        cell: the cell whose centre was replaced.
    """

    step: int
    parent: int
    cell: int


def latest_rows(history: pd.DataFrame) -> pd.DataFrame:
    """One row per (generation, cell), the last one recorded, sorted, with a `step` column.

    A generation recorded twice (a history inherited through a PBT exploit, then rerun) counts
    as its last record, as in the report's curves.
    """
    rows = history.drop_duplicates(["generation", "cell"], keep="last")
    rows = rows.sort_values(["generation", "cell"]).reset_index(drop=True)
    return rows.assign(step=rows["generation"].astype(int) + 1)


def cell_label(cell: int, cols: int) -> str:
    """`3 (1,0)`: a cell index with its (row, column) on the grid."""
    row, col = divmod(int(cell), max(int(cols), 1))
    return f"{cell} ({row},{col})"


def replacement_edges(history: pd.DataFrame, side: Side) -> list[Edge]:
    """Every replacement of a `side` centre ("g" or "d"), in step then cell order."""
    rows = latest_rows(history)
    rows = rows[rows[f"{side}_replaced"].astype(bool)]
    return [Edge(int(r.step), int(getattr(r, f"{side}_parent")), int(r.cell))
            for r in rows.itertuples()]


def founders(history: pd.DataFrame, side: Side) -> pd.DataFrame:
    """The founding cell of every `side` centre: whose initial network it descends from.

    Follows the parents back step by step. A cell missing from a step (a partial history)
    keeps its founder from the step before.

    Returns:
        Steps (0: the initial population, each cell its own founder) by cells.
    """
    rows = latest_rows(history)
    cells = sorted(int(c) for c in rows["cell"].unique())
    current = {c: c for c in cells}
    table = {0: dict(current)}
    for step, group in rows.groupby("step", sort=True):
        previous = dict(current)
        for cell, parent in zip(group["cell"], group[f"{side}_parent"]):
            # a parent outside the recorded cells can only come from a foreign history: its own
            current[int(cell)] = previous.get(int(parent), int(parent))
        table[int(step)] = dict(current)
    return pd.DataFrame.from_dict(table, orient="index")[cells].rename_axis("step")


def _counts(value: Any) -> dict[str, int]:
    # Arrow maps read back as lists of (key, value) pairs; hand-built frames may hold dicts
    if isinstance(value, Mapping):
        return {str(k): int(v) for k, v in value.items()}
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return {}
    return {str(k): int(v) for k, v in value}


def loss_shares(history: pd.DataFrame) -> pd.DataFrame:
    """Share of G steps taken with each loss per step, summed over the cells (rows sum to 1).

    A step without counted steps counts each cell's centre loss (`g_loss`) once instead.

    Returns:
        Steps by loss names (sorted), zeros where a loss was not used.
    """
    rows = latest_rows(history)
    shares: dict[int, dict[str, float]] = {}
    for step, group in rows.groupby("step", sort=True):
        total: dict[str, int] = {}
        for value in group["g_loss_counts"] if "g_loss_counts" in group else []:
            for loss, n in _counts(value).items():
                total[loss] = total.get(loss, 0) + n
        if sum(total.values()) <= 0:
            total = group["g_loss"].astype(str).value_counts().to_dict()
        size = sum(total.values())
        shares[int(step)] = {loss: n / size for loss, n in total.items()}
    frame = pd.DataFrame.from_dict(shares, orient="index").fillna(0.0)
    return frame[sorted(frame.columns)].rename_axis("step")


def mixture_at_end(history: pd.DataFrame) -> list[tuple[int, list[int], list[float]]]:
    """Each cell's mixture at the last step: (cell, member cells, weights), own cell first."""
    rows = latest_rows(history)
    last = rows[rows["step"] == rows["step"].max()]
    return [(int(r.cell), [int(m) for m in r.mixture_members],
             [float(w) for w in r.mixture_weights]) for r in last.itertuples()]


def own_weight(history: pd.DataFrame) -> pd.DataFrame:
    """The weight of each cell's own generator in its mixture, steps by cells."""
    rows = latest_rows(history)
    own = [float(w[0]) if len(w) else float("nan") for w in rows["mixture_weights"]]
    return rows.assign(own=own).pivot(index="step", columns="cell", values="own")


@dataclass(frozen=True)
class MetricCurves:
    """A metric over the evaluated steps.

    Attributes:
        name: the metric.
        cells: evaluated steps by cells (each cell's mixture).
        best: the best cell's value per evaluated step (by the metric's direction).
        floor: the real-data floor (its last value), None when the metric has none.
    """

    name: str
    cells: pd.DataFrame
    best: pd.Series
    floor: float | None


def metric_curves(history: pd.DataFrame, name: str) -> MetricCurves | None:
    """`name`'s per-cell curves, best and floor; None when no step evaluated it."""
    column = SCORE_PREFIX + name
    if column not in history.columns:
        return None
    rows = latest_rows(history)
    scored = rows[rows[column].notna()]
    if scored.empty:
        return None
    cells = scored.pivot(index="step", columns="cell", values=column)
    best = cells.min(axis=1) if lower_is_better(name) else cells.max(axis=1)
    floor = None
    floor_column = SCORE_PREFIX + floor_name(name)
    if floor_column in rows.columns:
        levels = rows[floor_column].dropna()
        floor = float(levels.iloc[-1]) if len(levels) else None
    return MetricCurves(name, cells, best, floor)


@dataclass(frozen=True)
class Exploit:
    """One PBT/PB2 exploit: a trial restarted from a donor's checkpoint with perturbed knobs.

    The trial's history is replaced by the donor's up to the checkpoint (`history.parquet`
    travels in it); its own rows follow.

    Attributes:
        trial: the exploited trial's id.
        donor: the id of the trial it was cloned from.
        generation: the trial's generation when it was exploited.
        donor_generation: the generation of the donor's checkpoint, where the trial restarted.
        knobs: the trial's knobs (searched keys) after the exploit.
        donor_knobs: the donor's knobs, which the trial's were perturbed from.
    """

    trial: str
    donor: str
    generation: int
    donor_generation: int
    knobs: dict[str, Any]
    donor_knobs: dict[str, Any]


def _trial_id(name: str, trial_ids: list[str]) -> str:
    """A logged trial name as a trial id: raygan logs ids; older logs hold Tune's experiment
    tags (`3_seed=3,...`), whose index is the last five digits of the trial's id."""
    match = _TAG_INDEX.match(name)
    if name in trial_ids or match is None:
        return name
    ids = [t for t in trial_ids if t.endswith(f"_{int(match.group(1)):05d}")]
    return ids[0] if len(ids) == 1 else name


def read_exploits(experiment: str | Path, trial_ids: Iterable[str] = ()) -> list[Exploit]:
    """The experiment's exploits in the order they happened (empty when it made none).

    Args:
        experiment: the experiment directory (holding `pbt_global.txt`).
        trial_ids: the experiment's trials, to name trials of an older log by id.

    Raises:
        CheckpointError: naming the line, when one is not an exploit record.
    """
    path = Path(experiment) / EXPLOIT_LOG
    if not path.is_file():
        return []
    ids = list(trial_ids)
    exploits = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            trial, donor, generation, donor_generation, donor_config, config = json.loads(line)
            exploits.append(Exploit(
                _trial_id(str(trial), ids), _trial_id(str(donor), ids), int(generation),
                int(donor_generation), _knobs(config), _knobs(donor_config)))
        except (ValueError, TypeError, AttributeError) as exc:
            from raygan.engine.checkpoint import CheckpointError  # torch: only on a bad line

            raise CheckpointError(f"{path}:{number}: not an exploit record (trial, donor, "
                                  f"their generations and configs): {exc}") from None
    return exploits


def _knobs(config: Mapping[str, Any]) -> dict[str, Any]:
    # a trial's Tune config is the searched knobs (values) and the base run config (a mapping)
    return {k: v for k, v in config.items() if not isinstance(v, Mapping)}


def inherited(exploits: list[Exploit], trial: str) -> list[Exploit]:
    """The exploits that handed `trial` the start of its current history, latest first.

    The first is the trial's last exploit: its history up to `donor_generation` is the
    donor's. That part may itself begin with the history the donor inherited, the exploit
    of the donor before it, and so on back to the trial that ran generation 1.
    """
    chain: list[Exploit] = []
    current = trial
    for exploit in reversed(exploits):
        if exploit.trial == current and (
            not chain or exploit.donor_generation <= chain[-1].donor_generation
        ):
            chain.append(exploit)
            current = exploit.donor
    return chain
