"""Build cells from a config: the one place that wires data and metrics into `core.Cell`.

Both the local pool and the Ray actors call `build_cell`, so a cell is the same object
whichever backend runs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from raygan.config import ConfigError, RunConfig
from raygan.config.catalog import BUILTIN_IMAGE_DATASETS as IMAGE_DATASETS
from raygan.core.cell import Cell, resolve_device
from raygan.core.custom import check_custom_networks
from raygan.core.grid import Grid
from raygan.core.task import CellTask
from raygan.data import Dataset, cell_shard, load_dataset
from raygan.metrics.registry import MetricContext, evaluate, objective_fn


def grid_of(config: RunConfig) -> Grid:
    """The grid described by the config."""
    g = config.grid
    return Grid(g.rows, g.cols, g.neighbourhood, g.radius)


def check_inputs(config: RunConfig, cells_here: bool = True) -> None:
    """What the run needs that the config can only name, checked before anything trains: files,
    and a CUDA device where `training.device` asks for one.

    Args:
        config: the run configuration.
        cells_here: the cells run in this process (a plain run's local pool); else in Ray
            workers (Tune trials, backend ray), which see a GPU only if they reserve one.

    Raises:
        FileNotFoundError: one line naming the file and what to download (a missing data set
            or weights file), found in the driver before any cell or Tune trial starts.
        ConfigError: `training.device` 'cuda' where no cell can see a GPU.
    """
    if config.training.device == "cuda":
        if cells_here:
            resolve_device("cuda")
        elif config.resources.gpus_per_cell <= 0:
            raise ConfigError(
                "training.device: 'cuda' needs resources.gpus_per_cell > 0 here: Ray workers "
                "(Tune trials, backend ray) see only the GPUs they reserve"
            )
    if "fid_inception" in (*config.metric_names, config.mixture_objective):
        from raygan.metrics.image import check_inception_weights

        check_inception_weights(config.metrics.inception_weights)
    if config.data.name in IMAGE_DATASETS:
        from raygan.data.images import check_image_dataset

        check_image_dataset(config.data.name, config.data.root, config.data.download)


def prepare(config: RunConfig, cells_here: bool = True) -> tuple[RunConfig, Dataset]:
    """What a run's driver does before any cell or trial starts: check the inputs
    (`check_inputs`), load the data once, check the config against it (networks, metrics,
    batch size) and write out the metrics that default from it.

    Returns:
        The config every process of the run uses, and the data set to share with them.

    Raises:
        ConfigError: one line (a `DataError` for data that cannot be used).
        FileNotFoundError: a built-in set's or a weights file is missing.
    """
    check_inputs(config, cells_here)
    dataset = load_dataset(config.data, config.seed)
    config = config.for_data(dataset.kind)
    if config.networks.kind == "custom":  # a dry forward pass: a wrong shape is one line here
        check_custom_networks(config, dataset.sample_shape)
    n = len(dataset)
    _check_batch(config, n if config.data.sharding == "replicate" else n // grid_of(config).size,
                 n)
    return config, dataset


def _check_batch(config: RunConfig, shard: int, total: int) -> None:
    """A generation must hold at least one full batch."""
    batch, size = config.training.batch_size, grid_of(config).size
    if batch > shard:
        raise ConfigError(
            f"training.batch_size: {batch} is larger than the {shard} samples a cell trains on "
            f"({total} in {config.data.name!r}, data.sharding {config.data.sharding!r} over "
            f"{size} cells); use at most {shard}"
        )


def metric_context(config: RunConfig, dataset: Dataset, device: str = "cpu") -> MetricContext:
    """Metric state for the run's data set."""
    return MetricContext(
        dataset,
        Path(config.metrics.cache_dir).expanduser(),
        device,
        config.eval_samples,
        config.metrics.inception_weights,
    )


def build_cell(
    config: RunConfig,
    index: int,
    seed: np.random.SeedSequence,
    dataset: Dataset | None = None,
    context: MetricContext | None = None,
    device: str | torch.device | None = None,
) -> Cell:
    """Create cell `index` of the run with its data shard and scoring functions.

    Args:
        config: the run configuration.
        index: cell index on the grid.
        seed: the cell's seed stream (`core.cell.cell_seeds(config.seed, n)[index]`).
        dataset: the loaded data set (loaded from the config when None).
        context: shared metric state (built when None).
        device: torch device; default from `training.device`.
    """
    grid = grid_of(config)
    dataset = dataset if dataset is not None else load_dataset(config.data, config.seed)
    dev = resolve_device(config.training.device) if device is None else torch.device(device)
    context = context if context is not None else metric_context(config, dataset, str(dev))
    names = config.metric_names
    shard = cell_shard(dataset, config.data.sharding, grid.size, index, dev)
    _check_batch(config, len(shard), len(dataset))
    task = CellTask(
        data=shard,
        mixture_score=objective_fn(context, config.mixture_objective),
        evaluate=lambda samples: evaluate(context, samples, names),
    )
    return Cell(config, index, grid.neighbours(index)[1:], task, seed, dev)
