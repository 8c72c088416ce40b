"""`CellReport`: what one cell did in one generation, one row of the population history."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class CellReport:
    """What one cell did in one generation (one row of the population history).

    Attributes:
        generation, cell: which generation and cell.
        rule: the training rule that ran.
        g_lr, d_lr, g_loss: the new centres' learning rates and G loss.
        g_fitness, d_fitness: their fitness against the neighbourhood (lower is better).
        g_replaced, d_replaced: the start centre gave way to another individual (a trained
            clone of another cell's network, or an adopted neighbour).
        g_discarded, d_discarded: training ran but its result is not the new centre.
        g_parent, d_parent: the cell each new centre's network descends from.
        g_lr_mutated, d_lr_mutated: the new centre's rate was mutated this generation.
        g_loss_counts: G steps per loss (all trainees).
        g_opponents, d_opponents: gradient steps against each cell's networks (G steps per
            adversary D's cell; D steps per cell of the generator of its fakes).
        steps: batches trained; g_steps, d_steps: gradient steps over all trainees.
        exchanges: neighbour refreshes during the generation (rule `fresh`).
        mixture_*: the mixture-weights ES step (score: the objective it minimises).
        train_g_loss, train_d_loss: mean training losses; nonfinite: a NaN/inf stopped it.
        seconds: the cell's wall time; scores: metrics at evaluations.
    """

    generation: int
    cell: int
    rule: str
    g_lr: float
    d_lr: float
    g_loss: str
    g_loss_counts: dict[str, int]
    g_fitness: float
    d_fitness: float
    g_replaced: bool
    d_replaced: bool
    g_discarded: bool
    d_discarded: bool
    g_parent: int
    d_parent: int
    g_lr_mutated: bool
    d_lr_mutated: bool
    g_opponents: dict[int, int]
    d_opponents: dict[int, int]
    mixture_members: list[int]
    mixture_weights: list[float]
    mixture_score: float
    mixture_accepted: bool
    train_g_loss: float
    train_d_loss: float
    steps: int
    g_steps: int
    d_steps: int
    exchanges: int
    nonfinite: bool
    seconds: float
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for logs and tables."""
        # fields are scalars or flat lists/dicts: copying the containers equals asdict, 10x faster
        row = dict(vars(self))
        for key, value in row.items():
            if isinstance(value, (list, dict)):
                row[key] = value.copy()
        return row


def report_fields() -> dict[str, Any]:
    """Every `CellReport` field but `scores` with its type (`int`, `list[float]`, ...), in
    declaration order: the history table's columns and the TensorBoard tags derive from it, so
    a new field appears in both."""
    hints = typing.get_type_hints(CellReport)
    return {f.name: hints[f.name] for f in fields(CellReport) if f.name != "scores"}


def scalar_fields() -> list[str]:
    """The numeric (int, float, bool) per-cell fields worth a curve: all but the indices."""
    return [name for name, kind in report_fields().items()
            if kind in (int, float, bool) and name not in ("generation", "cell")]
