"""The Ray Tune `Trainable`: one training iteration is one generation of the whole grid.

A trial's Tune config is `{"raygan": <RunConfig as a dict>, "<dotted.key>": value, ...}`: the
base run config plus the knobs the sweep drew (see `trial_config` / `run_config_of`). The
trainable drives an engine `Controller` over a cell pool:

* `resources.backend: ray`: every cell is an actor placed in the trial's own placement group
  (bundle 0 is this process, bundles 1..n the cells), so Tune places whole grids;
* `resources.backend: local`: the cells run one after another inside this process, which then
  reserves one cell's share (small machines, tests, several trials side by side).

The trial drives the engine's `Run`, the same run loop as `raygan train`, so its directory
holds the same files as a plain run's (`raygan.engine.outputs`: logs, `history.parquet`,
`tensorboard/`, figures, `final.json`), beside Tune's `checkpoint_*/checkpoint.pt` (the
engine's checkpoint), `result.json` and `params.json`.

The experiment's driver loads the training set once and puts it in the object store
(`share_data`); trials receive its reference through `tune.with_parameters` (`SharedData`):
cells in the trial's process read it zero-copy, and a trial's cell actors get the same
reference, so a node holds one copy whatever the trials and cells.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs
import ray
from ray import ObjectRef, tune
from ray.train import Checkpoint as StoredCheckpoint  # Tune's checkpoints are these too
from ray.tune import PlacementGroupFactory

from raygan.atomic import check_free_space
from raygan.config import DataConfig, RunConfig, config_from_saved, specs
from raygan.config.catalog import BEST_PREFIX
from raygan.distributed.resources import trial_bundles
from raygan.engine.checkpoint import CheckpointError, load_checkpoint
from raygan.engine.controller import GenerationSummary
from raygan.engine.pool import CellPool
from raygan.engine.run import CHECKPOINT, Run
from raygan.engine.task import grid_of
from raygan.tuning.evolve_spec import NEURALES_FITNESS

if TYPE_CHECKING:
    from raygan.data import Dataset

BASE_KEY = "raygan"
"""Key of the base run config in a trial's Tune config; every other key is a dotted override."""

# sections a checkpoint must share with the trial that loads it (PBT clones within a shape)
_STRUCTURE = ("grid", "networks", "data")
_PATH_KEYS = ("data.root", "data.path", "data.cache_dir", "metrics.cache_dir",
              "metrics.inception_weights")
CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")  # Tune's names for a trial's checkpoints
_SCHEMES = {"s3": "s3://", "gcs": "gs://"}  # pyarrow filesystem type -> URI prefix


def trial_config(config: RunConfig, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Tune config of a trial of `config`.

    The sweep itself (space, scheduler) is left out of the base: a trial is one run, ranked by
    the same metric and mode. Under `evolve` the scheduler is kept: a trial's restore reads how
    its genome was refilled, and its results carry the fitness evolve ranks by.
    """
    base = config.to_dict()
    keep = specs.scheduler(config.tune.scheduler).population  # evolve: see the docstring
    base["tune"].update(space={}, scheduler=config.tune.scheduler if keep else "none")
    return {BASE_KEY: base, **(overrides or {})}


def run_config_of(tune_config: dict[str, Any]) -> RunConfig:
    """The `RunConfig` a trial runs: the base config with the drawn knobs applied."""
    if BASE_KEY not in tune_config:
        raise ValueError(f"not a raygan trial config (no {BASE_KEY!r} key): {sorted(tune_config)}")
    base = config_from_saved(tune_config[BASE_KEY])
    overrides = {k: v for k, v in tune_config.items() if k != BASE_KEY}
    return base.replace(**overrides) if overrides else base


def with_absolute_paths(config: RunConfig, base: str | Path) -> RunConfig:
    """Relative local paths in the config (data files, caches, the files of custom networks)
    resolved against `base`.

    Only the `data.*` paths its source reads (another one must stay unset), and `data.path`
    only when it is there (it may name a Hugging Face hub set instead).
    """
    from raygan.data.sources import get_source

    reads = get_source(config.data.name).keys
    overrides = {}
    for key in _PATH_KEYS:
        section, name = key.split(".")
        if section == "data" and name not in reads:
            continue
        value = getattr(getattr(config, section), name)
        local = value and "://" not in value and not value.startswith("~")
        if local and not Path(value).is_absolute() and (
                name != "path" or Path(base, value).exists()):
            overrides[key] = str(Path(base, value))
    for side in ("generator", "discriminator"):  # networks.kind custom's "file.py:name"
        module, _, name = getattr(config.networks, side).rpartition(":")
        if module.endswith(".py") and not Path(module).expanduser().is_absolute():
            overrides[f"networks.{side}"] = f"{Path(base, module)}:{name}"
    return config.replace(**overrides) if overrides else config


def latest_scores(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The best mixture's scores (result keys) of the last evaluation (empty before the first)."""
    for summary in reversed(summaries):
        if summary.get("evaluated"):
            return {k: v for k, v in summary.items() if k.startswith(BEST_PREFIX)}
    return {}


def trial_result(summaries: list[dict[str, Any]], total: int, metric: str) -> dict[str, Any]:
    """The Tune result of a run after the last of its generation `summaries`
    (`GenerationSummary.to_dict` rows): generations done of `total`, the ranking `metric`
    always present and the last evaluation's scores carried forward.

    Schedulers need the metric in every result, so it is NaN before the first evaluation;
    config checks make PBT/ASHA decide only on fresh ones.
    """
    last = summaries[-1]
    generation = int(last["generation"]) + 1  # a summary's count starts at 0
    return {
        "generation": generation,
        "generations": total,
        "seconds": last.get("seconds"),
        "evaluated": last.get("evaluated"),
        "best_cell": last.get("best_cell"),
        metric: math.nan,
        **latest_scores(summaries),
        "done": generation >= total,
    }


@dataclass(frozen=True)
class SharedData:
    """The training set an experiment's driver put in the object store once, as its trials
    receive it: the reference itself (a value Tune puts and gets is copied into each trial,
    a reference inside one is not), so that a trial's cell actors get that same reference.

    Attributes:
        ref: the object-store reference of the `Dataset` (`share_dataset`).
        data: the data section it was loaded with.
        seed: the seed it was loaded with (the toy sets are generated from it).
    """

    ref: ObjectRef
    data: DataConfig
    seed: int

    def serves(self, config: RunConfig) -> bool:
        """Whether a trial of `config` trains on this set (one that draws `seed` gets other toy
        points, and loads them itself)."""
        return config.data == self.data and (config.seed == self.seed or not config.data.is_toy)


def share_data(config: RunConfig, dataset: Dataset) -> SharedData:
    """Put the training set `engine.task.prepare(config)` loaded in the object store, once."""
    from raygan.distributed.actor import share_dataset

    return SharedData(share_dataset(dataset), config.data, config.seed)


class CoevolutionTrainable(tune.Trainable):
    """A coevolution run as a Tune trial (see the module docstring)."""

    def setup(self, config: dict[str, Any], data: SharedData | None = None) -> None:
        """Build the run: its pool, controller and outputs.

        Args:
            config: the trial's Tune config (`trial_config`).
            data: the experiment's training set (`tune.with_parameters(..., data=...)`);
                None, or another set than the trial's config names: loaded by the pool.
        """
        # Ray Train logs every checkpoint at INFO level from this process; keep warnings only
        logging.getLogger("ray.train").setLevel(logging.WARNING)
        self.run_config = run_config_of(config)
        self.out = Path(self.logdir)
        self._data = data if data is not None and data.serves(self.run_config) else None
        if self._data is not None:  # `raygan.tune(data=...)`: the set is only this reference
            from raygan.objects import serve_shared

            serve_shared(self.run_config.data.source, self._data.ref)
        # Tune runs trials in their own directories; relative paths mean the directory the
        # worker started in (the job's working directory on a cluster)
        start_dir = os.environ.get("TUNE_ORIG_WORKING_DIR", os.getcwd())
        self.pool = self._make_pool(with_absolute_paths(self.run_config, start_dir),
                                    None if self._data is None else self._data.ref)
        self.run = Run(self.run_config, self.pool, self.out)
        self.controller = self.run.controller
        self._genome_params: tuple[int, int] | None = None
        self._checkpoint_bytes = 0  # the last checkpoint's size: the room a save needs

    @classmethod
    def default_resource_request(cls, config: dict[str, Any]) -> PlacementGroupFactory:
        """Bundles of a trial (see `raygan.distributed.trial_bundles`)."""
        run = run_config_of(config)
        res = run.resources
        bundles = trial_bundles(res, grid_of(run).size)
        return PlacementGroupFactory(bundles, strategy=res.placement_strategy)

    @staticmethod
    def _make_pool(config: RunConfig, data: ObjectRef | None) -> CellPool:
        """The trial's cells, over the shared training set `data` (None: the pool loads it)."""
        if config.resources.backend == "local":
            from raygan.engine.pool import LocalCellPool

            # a read-only view of the node's object store: no copy in this process
            return LocalCellPool(config, dataset=None if data is None else ray.get(data))
        from ray.util import get_current_placement_group

        from raygan.distributed.pool import RayCellPool

        group = get_current_placement_group()
        if group is None:  # run outside Tune (a test, a notebook): the pool reserves its own
            return RayCellPool(config, dataset=data)
        # the cells take the last bundles; an empty bundle 0 is dropped by Tune
        offset = len(group.bundle_specs) - grid_of(config).size
        return RayCellPool(config, placement_group=group, bundle_offset=offset, dataset=data)

    def step(self) -> dict[str, Any]:
        """Run and record one generation (`Run.step`)."""
        self._check_room()  # a restarted trial stops at once, before training anything
        return self._result(self.run.step())

    def _check_room(self, checkpoint: Path | None = None) -> None:
        """Stop (`StorageError`) while the trial's storage still has room for its last
        checkpoint, logs and experiment state: Tune copies them there file by file, and a copy
        that fills the disk leaves torn files in place of good ones."""
        if checkpoint is not None:
            self._checkpoint_bytes = checkpoint.stat().st_size
        storage = getattr(self, "_storage", None)  # Tune's StorageContext (None outside Tune)
        if (storage is not None and self._checkpoint_bytes
                and isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem)):
            check_free_space(storage.trial_fs_path, self._checkpoint_bytes)

    def _result(self, summary: GenerationSummary) -> dict[str, Any]:
        config = self.run_config
        result = trial_result(self.controller.summaries, config.training.generations,
                              config.tune_metric)
        return {**result, **self._genome_result(summary), "done": result["done"]}

    def _genome_result(self, summary: GenerationSummary) -> dict[str, Any]:
        """A genome's parameter counts (one cell's G and D) and, under `tune.fitness:
        neurales`, its fitness; nothing for other networks."""
        nets = self.run_config.networks
        if not specs.network(self.run_config).genome:
            return {}
        from raygan.arch.build import parameter_count
        from raygan.arch.genome import Genome
        from raygan.tuning.evolve import data_shape_of, neurales_fitness

        if self._genome_params is None:  # once per genome: the count needs the data's shape
            shape = (data_shape_of(self.run_config) if self._data is None
                     else ray.get(self._data.ref).sample_shape)  # not a second load
            self._genome_params = parameter_count(Genome.decode(nets.genome), nets.latent_dim,
                                                  shape)
        g, d = self._genome_params
        out: dict[str, Any] = {"g_params": g, "d_params": d}
        if self.run_config.tune_metric == NEURALES_FITNESS:  # evolve's tune.fitness: neurales
            losses = [r.g.train_loss for r in summary.reports]
            penalty = self.run_config.tune.parameter_penalty
            out[NEURALES_FITNESS] = neurales_fitness(losses, g + d, penalty)
        return out

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """The engine's checkpoint; also refreshes the Parquet history and flushes TensorBoard.

        Raises:
            StorageError: when the storage has no room for it (`_check_room`); Tune then keeps
                the previous checkpoint and copies nothing.
        """
        self.run.save(Path(checkpoint_dir) / CHECKPOINT)
        self._check_room(Path(checkpoint_dir) / CHECKPOINT)

    def restore(self, checkpoint_path: Any) -> None:
        """Tune's restore, remembering where the checkpoint is stored (see `load_checkpoint`)."""
        # Tune hands `load_checkpoint` a local directory (a download when the storage is
        # remote); the previous checkpoints are found next to the stored one
        self._restoring = getattr(checkpoint_path, "checkpoint", checkpoint_path)
        try:
            super().restore(checkpoint_path)
        finally:
            self._restoring = None

    def load_checkpoint(self, checkpoint: Any) -> None:
        """Restore the cells and the controller from `save_checkpoint`'s directory.

        The trial's current config wins (after a PBT exploit it holds the perturbed knobs); the
        checkpoint must describe the same grid, networks and data. A truncated or corrupt
        checkpoint is reported in one line naming the file, and the newest good checkpoint
        before it in the same trial directory is loaded instead (Tune keeps at least two).
        """
        try:
            saved, controller_state, cell_states = load_checkpoint(Path(checkpoint) / CHECKPOINT)
            self._checkpoint_bytes = (Path(checkpoint) / CHECKPOINT).stat().st_size
        except CheckpointError as exc:
            stored = _stored_checkpoint(getattr(self, "_restoring", None), checkpoint)
            # name the stored file, not the temporary download of a remote one
            reason = str(exc).replace(
                str(Path(checkpoint) / CHECKPOINT), _location(stored.filesystem, stored.path)
            )
            (saved, controller_state, cell_states), previous = _previous_good(stored, reason)
            generation = int(controller_state["generation"])
            print(f"raygan: {reason}; resuming from {previous} (generation {generation})",
                  file=sys.stderr, flush=True)
        # one step is one generation, so the count goes on where the loaded checkpoint stands
        # (Tune set it from the checkpoint's result, which neither a damaged checkpoint's
        # fallback nor `raygan resume`, which keeps no pickled results, has)
        self._iteration = int(controller_state["generation"])
        if saved.networks != self.run_config.networks and _evolved(saved, self.run_config):
            # an evolve step gave this trial another genome: the elite's states, new networks
            from raygan.tuning.evolve import adopt_genome

            inherit = self.run_config.tune.refill == "mutate"
            cell_states, _ = adopt_genome(cell_states, self.pool.state_dicts(), inherit)
            saved = saved.replace(**{"networks.genome": self.run_config.networks.genome})
        for section in _STRUCTURE:
            if getattr(saved, section) != getattr(self.run_config, section):
                raise ValueError(
                    f"checkpoint {checkpoint} has another {section} section than this trial: "
                    f"{getattr(saved, section)} vs {getattr(self.run_config, section)}"
                )
        self.run.restore(controller_state, cell_states)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        """Start over with another config in this process (`reuse_actors`, PBT exploits)."""
        self.cleanup()
        self.setup(new_config)
        return True

    def cleanup(self) -> None:
        """Release the pool (its actors, if any) and close the event file."""
        self.run.close()


def _evolved(saved: RunConfig, current: RunConfig) -> bool:
    """True when `current` differs from `saved` only by an evolve step's new genome."""
    return (specs.scheduler(current.tune.scheduler).population and specs.network(saved).genome
            and dataclasses.replace(saved.networks, genome=current.networks.genome)
            == current.networks)

def _stored_checkpoint(restoring: Any, local_dir: Any) -> StoredCheckpoint:
    """Where the checkpoint being restored is stored: what Tune handed `restore`, else the
    local directory `load_checkpoint` got (a direct call outside Tune)."""
    if isinstance(restoring, StoredCheckpoint):
        return restoring
    return StoredCheckpoint.from_directory(str(restoring or local_dir))


def _location(fs: pyarrow.fs.FileSystem, checkpoint_dir: str) -> str:
    """The checkpoint file of a stored checkpoint directory, as a path or URI."""
    return f"{_SCHEMES.get(fs.type_name, '')}{checkpoint_dir.rstrip('/')}/{CHECKPOINT}"


def _previous_good(
    stored: StoredCheckpoint, reason: str
) -> tuple[tuple[RunConfig, dict[str, Any], list[dict[str, Any]]], str]:
    """The newest readable checkpoint written before `stored` in the same trial directory.

    Returns:
        The loaded checkpoint and where it is stored.

    Raises:
        CheckpointError: `reason` (the damaged file, one line) when there is none.
    """
    fs = stored.filesystem or pyarrow.fs.LocalFileSystem()
    parent, name = stored.path.rstrip("/").rsplit("/", 1)
    own = CHECKPOINT_DIR.match(name)
    earlier = []
    if own is not None:  # not a trial's checkpoint_NNNNNN: there is no "before" to go back to
        for info in fs.get_file_info(pyarrow.fs.FileSelector(parent)):
            match = CHECKPOINT_DIR.match(info.base_name)
            if match and info.type == pyarrow.fs.FileType.Directory and (
                int(match.group(1)) < int(own.group(1))
            ):
                earlier.append((int(match.group(1)), info.path))
    for _, path in sorted(earlier, reverse=True):
        # a remote checkpoint is downloaded to a temporary directory, removed after loading
        with StoredCheckpoint(path, filesystem=fs).as_directory() as local:
            try:
                return load_checkpoint(Path(local) / CHECKPOINT), _location(fs, path)
            except (FileNotFoundError, CheckpointError):
                continue  # damaged too, or deleted meanwhile: try the one before
    raise CheckpointError(f"{reason}; no earlier good checkpoint in {parent}")
