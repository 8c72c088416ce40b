"""The cell actor: one engine `Cell` living in its own Ray worker process.

`CellActor` is a plain class; `remote_cell_class` turns it into an actor class at run time, so
the engine never depends on ray. Snapshots are numpy dicts put in the object store by the actor
that made them; neighbours read them zero-copy, and the controller only ever holds references.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
import torch
from ray import ObjectRef

from raygan.config import RunConfig
from raygan.core.cell import Cell, Snapshot, cell_seeds
from raygan.core.report import CellReport
from raygan.distributed.resources import memory_fraction
from raygan.engine.task import build_cell, grid_of


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


@torch.no_grad()
def _all_finite(net: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in net.state_dict().values()
               if t.is_floating_point())


class CellActor:
    """One grid cell in an actor process.

    Args:
        config: the run configuration.
        index: the cell's index on the grid.
    """

    def __init__(self, config: RunConfig, index: int) -> None:
        res = config.resources
        torch.set_num_threads(res.cell_threads())
        # snapshots read from the object store are read-only numpy views; `load_numpy` copies
        # them into the slot networks, so torch's warning about non-writable arrays is noise
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self.device = self._pick_device(config)
        if self.device.type == "cuda":
            fraction = memory_fraction(res.gpus_per_cell)
            if fraction is not None:
                torch.cuda.set_per_process_memory_fraction(fraction, self.device)
        n = grid_of(config).size
        seed = cell_seeds(config.seed, n)[index]
        self.cell: Cell = build_cell(config, index, seed, device=self.device)
        self.index = index
        self._finite: dict[str, bool] = {}

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
        """Liveness check; also says where the cell runs."""
        return {
            "cell": self.index,
            "pid": os.getpid(),
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def publish(self) -> ObjectRef:
        """Put the centre's snapshot in the object store and return its reference."""
        return ray.put(self.cell.publish())

    def run_generation(
        self, generation: int, neighbour_refs: Sequence[Any]
    ) -> tuple[CellReport, dict[str, Any], dict[str, bool]]:
        """One generation.

        Returns:
            The report, the cell's state after the generation and whether the centre's G and D
            were finite before it (`{"g": bool, "d": bool}`). The pool calls this with
            `num_returns=3`, so the state stays in the object store as a restart point and
            reaches the controller only if it asks for it.
        """
        finite = self._centre_finite()
        report = self.cell.run_generation(generation, _resolve_snapshots(neighbour_refs))
        return report, self.cell.state_dict(), finite

    def _centre_finite(self) -> dict[str, bool]:
        return {"g": _all_finite(self.cell.g.net), "d": _all_finite(self.cell.d.net)}

    def begin_generation(self, generation: int, neighbour_refs: Sequence[Any]) -> int:
        """Start a generation run in rounds (`Cell.begin`); returns its number of batches."""
        self._finite = self._centre_finite()
        return self.cell.begin(generation, _resolve_snapshots(neighbour_refs))

    def train_round(self, neighbour_refs: Sequence[Any] | None, batches: int) -> None:
        """One round: reload the neighbours (unless None), train `batches` batches."""
        snapshots = None if neighbour_refs is None else _resolve_snapshots(neighbour_refs)
        self.cell.train(snapshots, batches)

    def finish_generation(
        self, generation: int
    ) -> tuple[CellReport, dict[str, Any], dict[str, bool]]:
        """End the generation; returns what `run_generation` returns."""
        report = self.cell.finish(generation)
        return report, self.cell.state_dict(), self._finite

    def evaluate(
        self, neighbour_refs: Sequence[Any], n: int, seed: int
    ) -> tuple[dict[str, float], np.ndarray]:
        """Metrics of this cell's mixture and the preview of the scored samples (numpy, so
        the driver reads it from the object store without a copy)."""
        scored = self.cell.evaluate(_resolve_snapshots(neighbour_refs), n, seed)
        return scored.scores, scored.preview.numpy()

    def sample(
        self, neighbour_refs: Sequence[Any], n: int, seed: int, centre_only: bool = False
    ) -> np.ndarray:
        """Samples of this cell's mixture (or centre generator) as a numpy array."""
        snapshots = _resolve_snapshots(neighbour_refs)
        return self.cell.sample(snapshots, n, seed, centre_only).numpy()

    def state_dict(self) -> dict[str, Any]:
        """The cell's full state (see `Cell.state_dict`)."""
        return self.cell.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the cell from `state_dict` output."""
        self.cell.load_state_dict(state)


def remote_cell_class(num_cpus: float, num_gpus: float) -> Any:
    """`CellActor` as a Ray actor class with the given per-actor resources."""
    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(CellActor)
