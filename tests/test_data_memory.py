"""The training set is held once per node: a Ray cell actor's memory does not grow with the
cells it hosts, and the memory estimate counts the data once, not per process or cell.

What is measured is an actor's unique set size (USS: the pages only it maps). Its resident set
size (RSS) would not do: every page of the object store's shared memory that the actor reads
counts in its RSS, and again in the RSS of every other process that reads it, so RSS shows the
one stored copy as if each actor held it. A copy the actor makes itself (the old per-actor
float32 load, each cell's float32 shard) is private memory, in USS.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import tiny_toy_config

from raygan.config import RunConfig
from raygan.data import Dataset
from raygan.engine.capacity import PROCESS_BYTES, estimate_memory

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")  # Ray's own copy, on sys.path once ray is imported
# the probes below run in cell actors, which cannot import this test module
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

N = 50_000
SHAPE = (1, 28, 28)
FLOAT_COPY = N * int(np.prod(SHAPE)) * 4
"""Bytes of one float32 copy of the set (157 MB): what the old code held per actor and again
per cell under `data.sharding: replicate`."""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A uint8 (50000, 1, 28, 28) `.npy` of random pixels (39 MB)."""
    path = tmp_path_factory.mktemp("array") / "images.npy"
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(N, *SHAPE))
    x[:] = np.random.default_rng(0).integers(0, 256, size=x.shape, dtype=np.uint8)
    x.flush()
    return path


def array_config(path: Path, rows: int, cols: int, per_actor: int) -> RunConfig:
    """Tiny MLPs on the array, every cell on the whole set (`replicate`: the old code's worst
    case, a float32 copy per cell), a few batches, no evaluation in the first generation."""
    return tiny_toy_config(**{
        "data.name": "array", "data.path": str(path), "data.sharding": "replicate",
        "grid.rows": rows, "grid.cols": cols, "resources.backend": "ray",
        "resources.cells_per_actor": per_actor, "resources.cpus_per_cell": 0.5,
        "training.generations": 5, "training.max_batches": 2, "metrics.every": 5,
    })


def _mapping(address: int) -> tuple[str, str]:
    """Permissions and file of this process's memory mapping that holds `address`."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms, *rest = line.split()
        low, high = (int(v, 16) for v in span.split("-"))
        if low <= address < high:
            return perms, rest[-1] if len(rest) == 4 else ""
    raise LookupError(hex(address))


def _holding(cells: list[Any]) -> list[tuple[str, int, str, str]]:
    """Each cell's shard type and length, and the mapping its samples live in (run where the
    cells are)."""
    return [(type(c.task.data).__name__, len(c.task.data),
             *_mapping(c.task.data.dataset.store.ctypes.data)) for c in cells]


def _in_actor(actor: Any) -> list[tuple[str, int, str, str]]:
    """`_holding` of a `CellActor`'s cells, run in the actor."""
    return _holding(actor.group.cells)


def _shared(held: list[tuple[str, int, str, str]], source: Path, size: int) -> bool:
    """Every cell's shard is `size` indices into shared memory other than the source file: the
    node's object store, not a load or memory map of the process's own."""
    return all(kind == "Shard" and n == size and "s" in perms and file != str(source)
               for kind, n, perms, file in held)


def _actor_memory(config: RunConfig) -> list[dict[str, Any]]:
    """Build the pool as `raygan train` does (the driver loads, the pool puts), train one
    generation, and read each actor's memory and how its cells hold the data."""
    from raygan.distributed import RayCellPool
    from raygan.engine.controller import Controller
    from raygan.engine.task import prepare

    config, dataset = prepare(config, cells_here=False)
    pool = RayCellPool(config, dataset=dataset)
    del dataset
    try:
        Controller(config, pool).step()
        out = []
        for actor in pool.actors:
            pid = ray.get(actor.ping.remote())["pid"]
            info = psutil.Process(pid).memory_full_info()
            out.append({"uss": info.uss, "rss": info.rss,
                        "cells": ray.get(actor.__ray_call__.remote(_in_actor))})
        return out
    finally:
        pool.close()


def test_an_actor_holds_the_data_once_however_many_cells_it_hosts(
    images: Path, ray_session: None
) -> None:
    # 5 cells, 4 per actor: one actor hosts 4 cells, the other 1 (as with cells_per_actor 1),
    # side by side under the same load
    four, one = _actor_memory(array_config(images, 1, 5, per_actor=4))
    assert (len(four["cells"]), len(one["cells"])) == (4, 1)
    for actor in (four, one):
        assert _shared(actor["cells"], images, N), actor["cells"]
    growth = four["uss"] - one["uss"]
    # the old code: 3 more float32 copies (470 MB) for 3 more cells; now their networks only
    assert growth < FLOAT_COPY, (growth / 2**20, four, one)


def test_the_memory_estimate_counts_the_data_once(images: Path) -> None:
    dataset = Dataset.from_pixels("array", np.load(images, mmap_mode="r"))
    one_actor = array_config(images, 3, 3, per_actor=9)
    nine_actors = one_actor.replace(**{"resources.cells_per_actor": 1})
    one = estimate_memory(one_actor, ray=True, tune=False, dataset=dataset)
    nine = estimate_memory(nine_actors, ray=True, tune=False, dataset=dataset)
    assert one.data_bytes == nine.data_bytes == dataset.nbytes  # uint8, in the object store
    assert nine.total - one.total == pytest.approx(8 * PROCESS_BYTES)  # no data per process
    # a cell adds indices into the set (8 bytes a sample), not a copy of its samples
    small = Dataset.from_pixels("array", dataset.store[:1000])
    fewer = estimate_memory(one_actor, ray=True, tune=False, dataset=small)
    assert one.cell_bytes - fewer.cell_bytes == (N - 1000) * 8


def test_a_trial_reads_the_drivers_copy_and_hands_its_reference_to_its_actors(
    images: Path, ray_session: None
) -> None:
    from raygan.engine.task import prepare
    from raygan.tuning.trainable import CoevolutionTrainable, share_data

    config, dataset = prepare(array_config(images, 1, 1, per_actor=1), cells_here=False)
    data = share_data(config, dataset)  # what `run_experiment` hands every trial
    assert data.serves(config.replace(**{"seed": 9}))  # a file is the same set for any seed
    toy = tiny_toy_config()
    assert not share_data(toy, prepare(toy)[1]).serves(toy.replace(**{"seed": 9}))
    local: Any = CoevolutionTrainable._make_pool(
        config.replace(**{"resources.backend": "local"}), data.ref)
    assert _shared(_holding(local.cells), images, N)  # this process's view of the store
    actors: Any = CoevolutionTrainable._make_pool(config, data.ref)
    try:
        assert actors._data == data.ref  # the same object, not put again
        assert _shared(ray.get(actors.actors[0].__ray_call__.remote(_in_actor)), images, N)
    finally:
        actors.close()
