"""Cell pools: where cells live. `LocalCellPool` keeps them all in this process.

A pool hands out opaque handles to published snapshots; the controller routes handles to
neighbours. Locally a handle is the snapshot itself; the Ray pool uses object references.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor

from raygan.config import RunConfig
from raygan.core.cell import Cell, cell_seeds, resolve_device
from raygan.core.group import CellGroup
from raygan.core.report import CellReport
from raygan.core.task import Scored
from raygan.data import Dataset, load_dataset
from raygan.engine.task import build_cell, grid_of, metric_context

T = TypeVar("T")

Route = Callable[[list[Any]], list[list[Any]]]
"""Every cell's handles -> each cell's neighbours' handles (`Controller.route`)."""


def rounds_of(batches: Sequence[int], every: int) -> int:
    """Rounds of `every` batches that cover the longest cell's generation (at least one)."""
    return max(1, math.ceil(max(batches, default=0) / every))


def round_inputs(
    r: int, size: int, route: Route, publish: Callable[[], list[Any]]
) -> list[list[Any] | None]:
    """Each cell's neighbour handles for round `r`: None in round 0, which trains on the
    snapshots `begin` received, fresh ones (every centre published now) after it."""
    return [*route(publish())] if r else [None] * size


class CellPool(Protocol):
    """What the controller needs from wherever the cells run."""

    size: int

    def publish(self) -> list[Any]:
        """Every cell's current centre, as handles indexed by cell."""
        ...

    def run_generation(self, generation: int, inputs: Sequence[Sequence[Any]]) -> list[CellReport]:
        """Run one generation in every cell; `inputs[i]` are cell i's neighbours' handles."""
        ...

    def run_rounds(self, generation: int, every: int, route: Route) -> list[CellReport]:
        """One generation as synchronous rounds of `every` batches.

        Before each round every cell publishes its centre and trains on its neighbours'
        snapshots of that moment; `route(handles)` gives each cell's neighbours' handles.
        """
        ...

    def evaluate(self, inputs: Sequence[Sequence[Any]], n: int, seed: int) -> list[Scored]:
        """Every cell's evaluation: its mixture's metrics and a preview of what was scored."""
        ...

    def sample(
        self, cell: int, inputs: Sequence[Any], n: int, seed: int, centre_only: bool = False
    ) -> Tensor:
        """Samples from one cell's mixture (or its centre generator alone)."""
        ...

    def state_dicts(self) -> list[dict[str, Any]]:
        """Every cell's full state, for checkpoints."""
        ...

    def load_state_dicts(self, states: Sequence[dict[str, Any]]) -> None:
        """Restore every cell from `state_dicts` output."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


class LocalCellPool:
    """All cells in this process, in groups of `resources.cells_per_actor` run one after
    another (each group's batches one stacked step with `resources.vectorise`).

    Args:
        config: the run configuration.
        dataset: the run's data set, as `engine.task.prepare` loaded it (every cell's shard
            indexes this one copy); None: loaded here.
    """

    def __init__(self, config: RunConfig, dataset: Dataset | None = None) -> None:
        n = grid_of(config).size
        torch.set_num_threads(config.resources.cell_threads())
        if dataset is None:
            dataset = load_dataset(config.data, config.seed)
        device = resolve_device(config.training.device)
        context = metric_context(config, dataset, str(device))
        seeds = cell_seeds(config.seed, n)
        self.cells: list[Cell] = [
            build_cell(config, i, seeds[i], dataset, context, device) for i in range(n)
        ]
        res = config.resources
        self.groups = [CellGroup([self.cells[i] for i in ids], res.vectorise)
                       for ids in res.workers(n)]
        self.size = n

    def publish(self) -> list[Any]:
        """Snapshots of every centre (copies, so later training cannot alter them)."""
        return [cell.publish() for cell in self.cells]

    def run_generation(self, generation: int, inputs: Sequence[Sequence[Any]]) -> list[CellReport]:
        """Run every group's generation in turn."""
        return [report for group in self.groups
                for report in group.run_generation(generation, _of_group(group, inputs))]

    def run_rounds(self, generation: int, every: int, route: Route) -> list[CellReport]:
        """Every round publishes all centres first, then trains every cell in turn."""
        neighbours = route(self.publish())
        batches = [b for group in self.groups for b in group.begin(generation,
                                                                   _of_group(group, neighbours))]
        for r in range(rounds_of(batches, every)):
            neighbours_r = round_inputs(r, self.size, route, self.publish)
            for group in self.groups:
                group.train(_of_group(group, neighbours_r), every)
        return [report for group in self.groups for report in group.finish()]

    def evaluate(self, inputs: Sequence[Sequence[Any]], n: int, seed: int) -> list[Scored]:
        """Every cell's evaluation (`Cell.evaluate`); cell i samples with seed `seed + i`."""
        return [cell.evaluate(inputs[i], n, seed + i) for i, cell in enumerate(self.cells)]

    def sample(
        self, cell: int, inputs: Sequence[Any], n: int, seed: int, centre_only: bool = False
    ) -> Tensor:
        """Samples from one cell's mixture (or its centre generator alone)."""
        return self.cells[cell].sample(inputs, n, seed, centre_only)

    def state_dicts(self) -> list[dict[str, Any]]:
        """Every cell's state."""
        return [cell.state_dict() for cell in self.cells]

    def load_state_dicts(self, states: Sequence[dict[str, Any]]) -> None:
        """Restore every cell."""
        if len(states) != self.size:
            raise ValueError(f"checkpoint has {len(states)} cells, the grid has {self.size}")
        for cell, state in zip(self.cells, states):
            cell.load_state_dict(state)

    def close(self) -> None:
        """Nothing to release locally."""


def _of_group(group: CellGroup, per_cell: Sequence[T]) -> list[T]:
    return [per_cell[i] for i in group.indices]
