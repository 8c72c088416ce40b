"""`CellReport`: what one cell did in one generation, one row of the population history.

It is the history's only schema: `to_dict` flattens it into the rows the controller keeps,
and the Parquet columns (`raygan.engine.history`) and per-cell TensorBoard curves
(`raygan.engine.board`) derive from `report_fields`, so a new field appears in all of them.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any


@dataclass
class SideReport:
    """What one side (the generator or the discriminator) of a cell did in one generation.

    Flattened into the history with the side's prefix: `g_lr`, `d_lr`, `g_parent`, ...

    Attributes:
        lr: the new centre's learning rate.
        fitness: the new centre's fitness against the neighbourhood (lower is better).
        replaced: the start centre gave way to another individual (a trained clone of another
            cell's network, or an adopted neighbour).
        discarded: training ran but its result is not the new centre.
        parent: the cell the new centre's network descends from (this cell when kept).
        lr_mutated: the new centre's rate was mutated this generation.
        opponents: gradient steps against each cell's networks (G: steps per cell of the
            adversary D; D: steps per cell of the generator of its fakes).
        steps: gradient steps over all trainees of this side.
        train_loss: mean training loss over those steps.
    """

    lr: float
    fitness: float
    replaced: bool
    discarded: bool
    parent: int
    lr_mutated: bool
    opponents: dict[int, int]
    steps: int
    train_loss: float


@dataclass
class CellReport:
    """What one cell did in one generation (one row of the population history).

    Attributes:
        generation, cell: which generation and cell.
        rule: the training rule that ran.
        g, d: the generator's and the discriminator's side (see `SideReport`).
        g_loss: the new G centre's loss; g_loss_counts: G steps per loss (all trainees; rule
            `egan`: per loss, the offspring that survived a step).
        mixture_members: the cells whose generators the mixture draws on, this cell first.
        mixture_weights: their weights after this generation's ES step.
        mixture_score: the objective the ES step minimises (of the kept weights).
        mixture_accepted: the ES step's proposal was kept.
        steps: batches trained.
        exchanges: neighbour refreshes during the generation (rule `fresh`).
        nonfinite: a NaN/inf loss stopped training.
        reconstruction: `networks.kind: aae`: the mean reconstruction error (MSE per element)
            of the reconstruction phase's steps, on the training batches before each step; NaN
            for GANs.
        seconds: the cell's wall time (vectorised cells share their worker's: each reports
            the whole group's generation).
        scores: metrics of the cell's mixture at evaluations (empty otherwise).
        broken: the centre networks holding a non-finite value after the generation ("G",
            "D"; empty when finite): such a cell ranks last and its G feeds no mixture.
        reseeded: centres that went non-finite this generation and were replaced by the
            fittest finite neighbour's network ("G" / "D" -> that neighbour's cell).
        exploited: the cell whose G and D this cell copied in a PBT-style exploit step
            (`raygan.core.exploit`); -1 when it kept its own.
    """

    generation: int
    cell: int
    rule: str
    g: SideReport
    d: SideReport
    g_loss: str
    g_loss_counts: dict[str, int]
    mixture_members: list[int]
    mixture_weights: list[float]
    mixture_score: float
    mixture_accepted: bool
    steps: int
    exchanges: int
    nonfinite: bool
    seconds: float
    reconstruction: float
    scores: dict[str, float] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)
    reseeded: dict[str, int] = field(default_factory=dict)
    exploited: int = -1

    def to_dict(self) -> dict[str, Any]:
        """The flat row of logs and tables: sides as `g_<field>` / `d_<field>`."""
        # fields are scalars or flat lists/dicts: copying the containers equals asdict, 10x faster
        row: dict[str, Any] = {}
        for key, value in vars(self).items():
            if isinstance(value, SideReport):
                for name, item in vars(value).items():
                    row[f"{key}_{name}"] = item.copy() if isinstance(item, dict) else item
            else:
                row[key] = value.copy() if isinstance(value, (list, dict)) else value
        return row


def report_fields() -> dict[str, Any]:
    """Every column of `CellReport.to_dict` but `scores`, with its type (`int`, `list[float]`,
    ...), in declaration order: the history table's columns and the TensorBoard tags derive
    from it, so a new field appears in both."""
    out: dict[str, Any] = {}
    for f in fields(CellReport):
        kind = typing.get_type_hints(CellReport)[f.name]
        if is_dataclass(kind):
            side = typing.get_type_hints(kind)
            out.update({f"{f.name}_{s.name}": side[s.name] for s in fields(kind)})
        elif f.name != "scores":
            out[f.name] = kind
    return out


def scalar_fields() -> list[str]:
    """The numeric (int, float, bool) per-cell columns worth a curve: all but the indices."""
    return [name for name, kind in report_fields().items()
            if kind in (int, float, bool) and name not in ("generation", "cell")]
