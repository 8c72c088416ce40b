"""Will a run fit in this machine's memory? A rough estimate, checked before anything starts.

A grid's memory grows with its cells: each holds its centre networks with their gradients and
Adam state, a weight average, the snapshots it publishes and checkpoints, one read-only copy
per neighbour, and its data shard, which is indices into the data set (8 bytes a sample, the
whole set's count under `data.sharding: replicate`); each process that holds cells pays for
Python, torch and raygan; the libraries' code is shared by all processes. The data set itself
is held once on the machine in its stored form (uint8 pixels, float32 vectors): in the process
of a plain local run, in Ray's object store for Ray and Tune runs, whose processes read it
zero-copy (`raygan.distributed.pool.share_dataset`). Its size is the loaded set's when the
driver has loaded it (`engine.task.prepare`), else what the config tells (the built-in sets).
The constants were measured on CPU runs of `raygan train` (peak resident memory of 1 to 100
cells, toy and MNIST data, both neighbourhoods; proportional set size for runs of several
processes); the estimate is within about 20% of them, which is enough to refuse a 100x100 grid
on a 24 GB machine before it swaps.
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from raygan.config import ConfigError, GridConfig, LossesConfig, NetworksConfig, RunConfig
from raygan.core.grid import Grid
from raygan.engine.task import grid_of

if TYPE_CHECKING:
    from raygan.data import Dataset

MIB = 2**20
GIB = 2**30

LIBRARY_BYTES = 400 * MIB
"""Python's, torch's and raygan's code and data, in memory once however many processes share
it (a plain 1-cell run: 807 MiB in all)."""

PROCESS_BYTES = 420 * MIB
"""What each process that holds cells adds, before its cells (Ray cell actors: 400 MiB of
unique memory each)."""

RAY_BYTES = 800 * MIB
"""A Ray run's driver and Ray's own processes (GCS, raylet, agents), beyond the libraries:
measured 2.8 GiB in all for 4 cell actors, 1.7 GiB for a Tune trial of 4 cells."""

CELL_BYTES = int(0.8 * MIB)
"""A cell's Python and torch objects besides its tensors (100 cells of 8-unit networks)."""

PAIR_COPIES = 7
"""Copies of a cell's own network pair (weights, gradients, two Adam moments, weight average,
published and checkpointed states); each neighbour adds one more (fitted: 11.4 with 4
neighbours, 15.6 with 8)."""

IMAGE_SAMPLES = {"mnist5k": 5000, "digits8x8": 1797, "mnist": 60000, "fashion_mnist": 60000,
                 "cifar10": 50000, "celeba": 162770}
"""Training images of each built-in image set (the whole split is held, as uint8 pixels)."""

INDEX_BYTES = 8
"""A shard's bytes per sample: an int64 index into the shared data set."""


class CapacityError(ConfigError):
    """A run asks for more than this machine or cluster has (a `--force` may override)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory a run needs on one machine.

    Attributes:
        cells: cells held, over all trials.
        cell_bytes: one cell (networks, optimizer state, neighbour copies, shard indices).
        processes: processes holding cells, over all trials.
        process_bytes: one such process (interpreter, libraries).
        fixed_bytes: the libraries, and a Ray run's driver and Ray's own processes.
        data_bytes: the data set in its stored form, held once on this machine whatever the
            trials, processes and cells.
    """

    cells: int
    cell_bytes: float
    processes: int
    process_bytes: float
    fixed_bytes: float
    data_bytes: float = 0.0

    @property
    def total(self) -> float:
        """Bytes of the whole run."""
        return (self.fixed_bytes + self.data_bytes + self.processes * self.process_bytes
                + self.cells * self.cell_bytes)

    def describe(self) -> str:
        """`about 72.4 GiB (10000 cells x 7.1 MiB + 1 process x 0.4 GiB + 2.4 GiB data + 0.4
        GiB shared)`."""
        parts = [f"{_count(self.cells, 'cell')} x {self.cell_bytes / MIB:.1f} MiB",
                 f"{_count(self.processes, 'process')} x {self.process_bytes / GIB:.1f} GiB",
                 f"{self.data_bytes / GIB:.1f} GiB data",
                 f"{self.fixed_bytes / GIB:.1f} GiB shared"]
        return f"about {self.total / GIB:.1f} GiB ({' + '.join(parts)})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"


def pair_bytes(config: RunConfig, shape: tuple[int, ...] | None = None) -> int:
    """Bytes of one generator-discriminator pair's parameters and buffers, built once on the CPU.

    0 when the networks cannot be built from the config alone (an architecture search draws
    the genomes, or the sample `shape` is unknown before the data is loaded), so the estimate
    then counts the processes and data only.
    """
    shape = shape if shape is not None else sample_shape(config)
    return _pair_bytes(config.networks, config.losses, shape) if shape else 0


@functools.lru_cache(maxsize=8)  # `_most_cells` asks again for every grid size it tries
def _pair_bytes(networks: NetworksConfig, losses: LossesConfig, shape: tuple[int, ...]) -> int:
    from raygan.core.local_d import LocalDiscriminators
    from raygan.core.networks import build_networks

    generator = torch.Generator().manual_seed(0)
    try:
        g, d = build_networks(networks, shape, generator)
    except (ValueError, KeyError):
        return 0
    if losses.discriminators == "local":  # as `Cell` builds its discriminator
        d = LocalDiscriminators(shape, losses.k, networks.d_hidden, networks.hidden_layers,
                                generator)
    tensors = [*g.parameters(), *g.buffers(), *d.parameters(), *d.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def sample_shape(config: RunConfig) -> tuple[int, ...] | None:
    """One sample's shape, without loading the data (None: known once loaded)."""
    if config.data.is_toy:
        return (2,)
    if config.data.name not in IMAGE_SAMPLES:
        return None
    from raygan.data.images import image_shape

    return image_shape(config.data.name, config.data.image_size)


def data_samples(config: RunConfig) -> int:
    """Samples in the training set, without loading it (0: known once loaded)."""
    if config.data.is_toy:
        return config.data.samples
    return IMAGE_SAMPLES.get(config.data.name, 0)


def data_size(
    config: RunConfig, dataset: Dataset | None = None
) -> tuple[int, int, tuple[int, ...] | None]:
    """Samples, stored bytes and one sample's shape of the training set: the loaded
    `dataset`'s, else what the config tells without loading it (toy points are float32, the
    built-in images uint8; 0 samples and no shape for data known only once loaded)."""
    if dataset is not None:
        return len(dataset), dataset.nbytes, dataset.sample_shape
    shape = sample_shape(config)
    samples = data_samples(config)
    per_sample = 4 * 2 if config.data.is_toy else math.prod(shape) if shape else 0
    return samples, samples * per_sample, shape


def _on_gpu(config: RunConfig, cells_here: bool) -> bool:
    device = config.training.device
    if device == "auto":
        return torch.cuda.is_available() if cells_here else config.resources.gpus_per_cell > 0
    return device == "cuda"


def estimate_memory(
    config: RunConfig,
    *,
    ray: bool,
    tune: bool,
    trials: int = 1,
    cells: int | None = None,
    dataset: Dataset | None = None,
) -> MemoryEstimate:
    """The memory of `trials` runs of `config` side by side on this machine.

    Args:
        config: the run configuration.
        ray: the run uses Ray (Tune, or `resources.backend: ray`).
        tune: the cells run in Tune trials (each trial's controller is a process of its own).
        trials: trials at once.
        cells: cells per trial instead of the grid's (to find how many fit).
        dataset: the loaded training set (its size and sample shape), else what the config
            tells (`data_size`).
    """
    g = config.grid
    n = g.rows * g.cols if cells is None else cells
    neighbours = _mean_neighbours(g)
    samples, stored, shape = data_size(config, dataset)
    shard = samples if config.data.sharding == "replicate" else samples / max(n, 1)
    on_gpu = _on_gpu(config, cells_here=not ray)
    networks = 0.0 if on_gpu else (PAIR_COPIES + neighbours) * pair_bytes(config, shape)
    cell = CELL_BYTES + networks + shard * INDEX_BYTES
    res = config.resources
    holders = len(res.workers(n)) if res.backend == "ray" else 1
    per_trial = holders + (1 if tune and res.backend == "ray" else 0)
    return MemoryEstimate(
        cells=n * trials,
        cell_bytes=cell,
        processes=per_trial * trials,
        process_bytes=PROCESS_BYTES,
        fixed_bytes=LIBRARY_BYTES + (RAY_BYTES if ray else 0),
        # one copy: in the object store (Ray) or the run's process, read by every cell
        data_bytes=stored,
    )


@functools.lru_cache(maxsize=8)  # `_most_cells` asks again for every grid size it tries
def _mean_neighbours(g: GridConfig) -> float:
    grid = Grid(g.rows, g.cols, g.neighbourhood, g.radius)
    return sum(len(nbh) - 1 for nbh in grid.all_neighbourhoods()) / grid.size


def available_memory() -> int:
    """Bytes of memory this machine (or its container's memory limit) can still give."""
    try:
        import psutil
    except ImportError:  # Ray ships psutil and puts it on sys.path when it is imported
        import ray  # noqa: F401

        psutil = importlib.import_module("psutil")
    free = int(psutil.virtual_memory().available)
    room = _cgroup_room()
    return free if room is None else min(free, room)


def _cgroup_room() -> int | None:
    # psutil reports the host's memory; a container may be limited to far less (cgroup v2)
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        used = int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def check_memory(
    config: RunConfig,
    *,
    ray: bool,
    tune: bool,
    trials: int = 1,
    force: bool = False,
    available: int | None = None,
    dataset: Dataset | None = None,
) -> MemoryEstimate:
    """Refuse a run whose estimated memory exceeds what this machine has available.

    Args:
        config, ray, tune, trials, dataset: as for `estimate_memory`.
        force: only return the estimate (the user knows better).
        available: bytes available (default `available_memory()`).

    Raises:
        CapacityError: one line with the estimate, what is available and the largest grid
            that fits.
    """
    estimate = estimate_memory(config, ray=ray, tune=tune, trials=trials, dataset=dataset)
    room = available_memory() if available is None else available
    if force or estimate.total <= room:
        return estimate
    fits = _most_cells(config, room, ray=ray, tune=tune, trials=trials, dataset=dataset)
    side = math.isqrt(fits)
    advice = (f"at most about {fits} cells fit (e.g. grid {side}x{side})" if fits
              else "not even one cell fits")
    g = config.grid
    many = f" x {trials} trials at once (tune.max_concurrent_trials)" if trials > 1 else ""
    raise CapacityError(
        f"grid.rows, grid.cols: a {g.rows}x{g.cols} grid{many} needs {estimate.describe()}, "
        f"this machine has {room / GIB:.1f} GiB available; {advice}. Use a smaller grid or "
        "smaller networks, or pass --force to run anyway"
    )


def _most_cells(config: RunConfig, room: float, *, ray: bool, tune: bool, trials: int,
                dataset: Dataset | None) -> int:
    """The most cells per trial whose estimate fits in `room` bytes (0 if none)."""
    low, high = 0, grid_of(config).size
    while low < high:  # the estimate grows with the cells
        mid = (low + high + 1) // 2
        total = estimate_memory(config, ray=ray, tune=tune, trials=trials, cells=mid,
                                dataset=dataset).total
        low, high = (mid, high) if total <= room else (low, mid - 1)
    return low
