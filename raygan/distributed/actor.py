"""The cell actor: the engine `Cell`s of one worker living in a Ray worker process.

`CellActor` is a plain class; `remote_cell_class` turns it into an actor class at run time, so
the engine never depends on ray. Snapshots are numpy dicts put in the object store by the actor
that made them; neighbours read them zero-copy, and the controller only ever holds references.
The training set comes the same way: the driver puts it once, every actor receives its
reference as a constructor argument and reads the node's one copy zero-copy.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
from ray import ObjectRef

from raygan.config import RunConfig
from raygan.core import operators as ops
from raygan.core.cell import cell_seeds
from raygan.core.group import CellGroup
from raygan.core.individual import numpy_to_tensors, tensors_to_numpy
from raygan.core.neighbourhood import Snapshot
from raygan.core.report import CellReport
from raygan.data import Dataset, load_dataset
from raygan.distributed.resources import memory_fraction
from raygan.engine.task import build_cell, grid_of, metric_context


def _resolve_snapshots(refs: Sequence[Any]) -> list[Snapshot]:
    """Neighbour handles -> snapshots.

    A handle is the reference `publish` returned, whose value is in turn the reference to the
    snapshot (so the weights stay in the publishing actor's store rather than being inlined
    into the controller). Refs nested in a list are not resolved by Ray, hence the explicit gets.
    """
    values = ray.get(list(refs)) if refs else []
    inner = [i for i, v in enumerate(values) if isinstance(v, ObjectRef)]
    if inner:
        fetched = ray.get([values[i] for i in inner])
        for i, snap in zip(inner, fetched):
            values[i] = snap
    return values


def share_dataset(dataset: Dataset) -> ObjectRef:
    """Put `dataset` in the object store, once, so that every process reads it zero-copy.

    Ray stores a plain contiguous numpy array as an out-of-band buffer: one copy per node,
    which a reader gets as a read-only view. A memory map (an `.npy` or a folder's cache) or a
    non-contiguous array would be pickled into the object instead and copied by every reader,
    so the arrays go in as plain contiguous ones (a view of a contiguous memory map; a copy
    only of a strided array).
    """
    def plain(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a).view(np.ndarray)

    labels = None if dataset.labels is None else plain(dataset.labels)
    return ray.put(dataclasses.replace(dataset, store=plain(dataset.store), labels=labels))


@dataclass(frozen=True)
class LocalSnapshot:
    """A neighbour handle the pool rewrites for a cell on the same actor: the actor reads the
    snapshot it published itself, with no object-store round trip."""

    cell: int


class CellActor:
    """The cells of one worker (`resources.cells_per_actor`) in an actor process.

    Args:
        config: the run configuration.
        cells: the grid indices of the cells it hosts.
        dataset: the run's data set; passed as the reference the driver put (Ray resolves it
            to a read-only view of the node's object store, shared by every actor there). The
            cells' shards are indices into it. None: loaded here (a copy per actor).
    """

    def __init__(self, config: RunConfig, cells: Sequence[int],
                 dataset: Dataset | None = None) -> None:
        res = config.resources
        torch.set_num_threads(res.cell_threads(len(cells)))
        # snapshots read from the object store are read-only numpy views; `load_numpy` copies
        # them into the slot networks, so torch's warning about non-writable arrays is noise
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self.device = self._pick_device(config)
        if self.device.type == "cuda":
            fraction = memory_fraction(res.gpus_per_cell * len(cells))
            if fraction is not None:
                torch.cuda.set_per_process_memory_fraction(fraction, self.device)
        seeds = cell_seeds(config.seed, grid_of(config).size)
        if dataset is None:
            dataset = load_dataset(config.data, config.seed)
        context = metric_context(config, dataset, str(self.device))
        self.group = CellGroup(
            [build_cell(config, i, seeds[i], dataset, context, self.device) for i in cells],
            res.vectorise,
        )
        self.cells = list(cells)
        self._published: dict[int, Snapshot] = {}
        self._finite: list[dict[str, bool]] = []

    @staticmethod
    def _pick_device(config: RunConfig) -> torch.device:
        """CUDA if Ray gave this actor a GPU (and the config allows it), else the CPU."""
        has_gpu = bool(ray.get_gpu_ids()) and torch.cuda.is_available()
        wanted = config.training.device
        if wanted == "cuda" and not has_gpu:
            raise RuntimeError(
                "training.device is 'cuda' but this cell actor has no GPU; set "
                "resources.gpus_per_cell > 0 (or training.device: auto)"
            )
        if wanted != "cpu" and has_gpu:
            return torch.device("cuda", 0)  # Ray narrows CUDA_VISIBLE_DEVICES to our GPU
        return torch.device("cpu")

    def ping(self) -> dict[str, Any]:
        """Liveness check; also says where the cells run."""
        return {
            "cells": self.cells,
            "pid": os.getpid(),
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def publish(self, remote: Sequence[bool]) -> Any:
        """Snapshot every cell; put in the object store those another actor reads (`remote`).

        Returns:
            Per cell, the reference of its stored snapshot or None (read here only); a bare
            value for one cell, since the pool calls this with `num_returns` = cells.
        """
        out: list[ObjectRef | None] = []
        for cell, snap, shared in zip(self.cells, self.group.publish(), remote):
            self._published[cell] = snap
            out.append(ray.put(snap) if shared else None)
        return out[0] if len(out) == 1 else out

    def _resolve(self, neighbours: Sequence[Sequence[Any]]) -> list[list[Snapshot]]:
        """Each cell's neighbour handles -> snapshots (own cells' from this process)."""
        remote = [h for handles in neighbours for h in handles if not isinstance(h, LocalSnapshot)]
        fetched = iter(_resolve_snapshots(remote))
        return [[self._published[h.cell] if isinstance(h, LocalSnapshot) else next(fetched)
                 for h in handles] for handles in neighbours]

    def run_generation(
        self, generation: int, neighbours: Sequence[Sequence[Any]]
    ) -> tuple[list[CellReport], list[dict[str, Any]], list[dict[str, bool]]]:
        """One generation of every cell.

        Returns:
            The reports, the cells' states after the generation and whether each centre's G and
            D were finite before it (`{"g": bool, "d": bool}`). The pool calls this with
            `num_returns=3`, so the states stay in the object store as a restart point and
            reach the controller only if it asks for them.
        """
        finite = self._centres_finite()
        reports = self.group.run_generation(generation, self._resolve(neighbours))
        return reports, self.state_dict(), finite

    def _centres_finite(self) -> list[dict[str, bool]]:
        return [{"g": ops.all_finite(c.g.net), "d": ops.all_finite(c.d.net)}
                for c in self.group.cells]

    def begin_generation(self, generation: int, neighbours: Sequence[Sequence[Any]]) -> list[int]:
        """Start a generation run in rounds (`Cell.begin`); returns the cells' batch counts."""
        self._finite = self._centres_finite()
        return self.group.begin(generation, self._resolve(neighbours))

    def train_round(self, neighbours: Sequence[Sequence[Any]] | None, batches: int) -> None:
        """One round: reload the neighbours (unless None), train `batches` batches."""
        self.group.train(None if neighbours is None else self._resolve(neighbours), batches)

    def finish_generation(
        self,
    ) -> tuple[list[CellReport], list[dict[str, Any]], list[dict[str, bool]]]:
        """End the generation; returns what `run_generation` returns."""
        return self.group.finish(), self.state_dict(), self._finite

    def evaluate(
        self, neighbours: Sequence[Sequence[Any]], n: int, seeds: Sequence[int]
    ) -> list[tuple[dict[str, float], np.ndarray]]:
        """Metrics of each cell's mixture and the preview of the scored samples (numpy, so
        the driver reads it from the object store without a copy)."""
        out = []
        for cell, snapshots, seed in zip(self.group.cells, self._resolve(neighbours), seeds):
            scored = cell.evaluate(snapshots, n, seed)
            out.append((scored.scores, scored.preview.numpy()))
        return out

    def sample(
        self, cell: int, handles: Sequence[Any], n: int, seed: int, centre_only: bool = False
    ) -> np.ndarray:
        """Samples of one cell's mixture (or centre generator) as a numpy array."""
        (snapshots,) = self._resolve([handles])
        host = self.group.cells[self.cells.index(cell)]
        return host.sample(snapshots, n, seed, centre_only).numpy()

    def state_dict(self) -> list[dict[str, Any]]:
        """Every hosted cell's full state (see `Cell.state_dict`), its tensors as numpy
        arrays (`numpy_to_tensors` turns them back)."""
        return [tensors_to_numpy(cell.state_dict()) for cell in self.group.cells]

    def load_state_dict(self, states: Sequence[dict[str, Any]]) -> None:
        """Restore the cells from `state_dict` output (tensors or numpy arrays)."""
        for cell, state in zip(self.group.cells, states):
            cell.load_state_dict(numpy_to_tensors(state))


def remote_cell_class(num_cpus: float, num_gpus: float) -> Any:
    """`CellActor` as a Ray actor class with the given per-actor resources."""
    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(CellActor)
