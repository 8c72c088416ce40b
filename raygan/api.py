"""raygan from Python: `load_config`, `train`, `tune`, `load` and `resume`.

The `raygan` command is a thin layer over these functions. Data and networks may be Python
objects instead of names in the config: `train(config, data=x, generator=G,
discriminator=D)` takes an array, a tensor, an `(x, y)` pair or a `Dataset`, and classes or
factories defined anywhere (a notebook, a function); no module has to be importable.

How the config records them: `data` becomes `data.name: python` with `data.source` a token,
`generator` / `discriminator` become `networks.kind: custom` with `networks.generator` /
`networks.discriminator` tokens (`"raygan.objects:Generator_3f2a9c1b"`, see `raygan.objects`).
The saved config stays plain YAML, but the objects themselves are not saved: reading the run in
another process (`load`, `resume`, `Result.generator`) needs the same objects passed again
(`load(path, data=x, generator=G, discriminator=D)`); `raygan sample`, `raygan export` and
`raygan resume` cannot open such a run. The exported mixture (`Result.export`) needs nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raygan import objects
from raygan.config import ConfigError, RunConfig
from raygan.config import load_config as load_yaml
from raygan.config.coerce import plain, set_dotted
from raygan.config.schema import config_from_dict
from raygan.errors import check_run_name
from raygan.result import Result, read_result

if TYPE_CHECKING:
    from ray.tune import ResultGrid

    from raygan.engine.controller import Controller
    from raygan.engine.run import PoolFactory

BACKENDS = ("local", "ray")


def load_config(path_or_dict: str | Path | Mapping[str, Any] | RunConfig | None = None,
                overrides: Sequence[str] | None = None) -> RunConfig:
    """A checked run configuration.

    Args:
        path_or_dict: a YAML file; a dict of sections (`{"grid": {"rows": 3}}`), whose keys
            may also be dotted (`{"grid.rows": 3}`) and whose sections may be the section
            dataclasses (`{"grid": GridConfig(rows=3, cols=3)}`); a `RunConfig`; or None for
            the defaults.
        overrides: `"section.key=value"` strings, as `raygan train --set` takes them (the
            value is read as YAML: `3`, `true`, `[a, b]`), applied in order.

    Raises:
        ConfigError: one line naming an unknown key or a value that is not allowed.
        FileNotFoundError: the YAML file does not exist.
    """
    if isinstance(overrides, str):  # one override given bare
        overrides = [overrides]
    if path_or_dict is None or isinstance(path_or_dict, (str, Path)):
        return load_yaml(path_or_dict, list(overrides or []))
    if isinstance(path_or_dict, RunConfig):
        data = path_or_dict.to_dict()
    elif isinstance(path_or_dict, Mapping):
        data = {}
        for key, value in path_or_dict.items():
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = plain(dataclasses.asdict(value))
            set_dotted(data, str(key), copy.deepcopy(value))
    else:
        raise ConfigError(f"config: a {type(path_or_dict).__name__} is not a config; pass a "
                          "YAML path, a dict of sections or a RunConfig")
    from raygan.config import parse_override

    for text in overrides or []:
        set_dotted(data, *parse_override(text))
    return config_from_dict(data)


def _ray_starter(config: RunConfig, force: bool, trials: bool = False) -> Callable[[], None]:
    """Starts (or joins) Ray as the pool (`trials`: Tune's `start_ray`) would, for `force`."""
    def start() -> None:
        import logging

        from raygan.distributed.session import ensure_ray, trial_cpus
        from raygan.engine.task import grid_of

        if trials:
            ensure_ray(logging_level=logging.WARNING, cpus=trial_cpus(config) if force else 0.0)
        else:
            ensure_ray(cpus=config.resources.cpus_per_cell * grid_of(config).size if force
                       else 0.0)

    return start


def describe(config: RunConfig) -> str:
    """`name (RxC grid, data, backend)`, as progress messages name a run."""
    return (f"{config.name} ({config.grid.rows}x{config.grid.cols} grid, {config.data.name}, "
            f"{config.resources.backend})")


def pool_factory(backend: str, force: bool = False) -> PoolFactory:
    """The cell pool of `backend` ("local": this process; "ray": Ray actors), `force` as for
    `RayCellPool`."""
    if backend == "ray":
        import functools

        from raygan.distributed import RayCellPool

        return functools.partial(RayCellPool, force=force)  # type: ignore[return-value]
    from raygan.engine.pool import LocalCellPool

    return LocalCellPool


def run_plain(config: RunConfig, out: str | Path, *, force: bool = False,
              progress: bool = True, what: str | None = None) -> Controller:
    """A plain run of `config` in this process, files in `out` (`raygan train --out`).

    Args:
        config: the run configuration (`resources.backend` says where the cells run).
        out: the run's folder.
        force: run where raygan estimates this machine's memory is too small.
        progress: a line (or bar) per generation on stderr.
        what: the line "raygan: training <what> -> <out>" on stderr once the checks passed
            (None: no line).

    Returns:
        The controller, holding the run's record.
    """
    from raygan.atomic import probe_writable
    from raygan.engine.run import train as run_train

    probe_writable(out)
    dataset = None
    if config.resources.backend == "local":  # the ray backend checks once Ray is up
        from raygan.engine.capacity import check_memory
        from raygan.engine.task import prepare

        # the cells index this one copy in this process, so it is loaded (and its size
        # counted) here; the Ray pool puts what `train` loads and keeps no copy here
        config, dataset = prepare(config)
        check_memory(config, ray=False, tune=False, force=force, dataset=dataset)
    if what is not None:
        print(f"raygan: training {what} -> {out}", file=sys.stderr)
    with objects.shipped(config, _ray_starter(config, force)
                         if config.resources.backend == "ray" else None):
        return run_train(config, out, progress=progress, dataset=dataset,
                         pool_factory=pool_factory(config.resources.backend, force))


def _as_config(config: RunConfig | Mapping[str, Any] | str | Path) -> RunConfig:
    return config if isinstance(config, RunConfig) else load_config(config)


def _with_backend(config: RunConfig, backend: str | None) -> RunConfig:
    if backend is None:
        return config
    if backend not in BACKENDS:
        raise ConfigError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    return config.replace(**{"resources.backend": backend})


def train(config: RunConfig | Mapping[str, Any] | str | Path, *, storage: str | Path | None = None,
          name: str | None = None, backend: str | None = None, data: Any = None,
          generator: Any = None, discriminator: Any = None) -> Result:
    """Train one grid in this process (a plain run, as `raygan train --out`) and return its
    result.

    Args:
        config: a `RunConfig`, a dict (see `load_config`) or a YAML path.
        storage: the folder runs go in (default: `output.storage_path`, "./results").
        name: the run's folder under `storage` (default: the config's `name`); it must not
            hold a run already.
        backend: "local" (cells in this process) or "ray" (each cell group a Ray actor;
            Ray is started here unless `RAY_ADDRESS` or a `ray start` says where it runs);
            default `resources.backend`.
        data: the training set instead of the config's `data` section: a numpy array or
            torch tensor of samples ((N, D) vectors; (N, H, W), (N, C, H, W) or (N, H, W, C)
            images, uint8 or float in [-1, 1]), an `(x, y)` pair with integer labels, a
            `raygan.data.Dataset` or a `torch.utils.data.Dataset`.
        generator: G's class or a factory returning an `nn.Module` (called with
            `networks.g_kwargs`, plus `latent_dim` and `data_shape` where its signature names
            them), or an import path; sets `networks.kind: custom`.
        discriminator: D's, likewise (called with `networks.d_kwargs` and `data_shape`).

    Returns:
        The finished run (`Result`).

    Raises:
        ConfigError: one line for a bad config, argument or network (a wrong output shape
            is found by a dry forward pass before anything trains).
        DataError: one line for data that cannot be used.
        FileExistsError: `storage/name` already holds a run.
    """
    from raygan.tuning.state import STATE_GLOB

    run_config = _with_backend(_as_config(config), backend)
    run_config = objects.with_objects(run_config, data=data, generator=generator,
                                      discriminator=discriminator)
    root = str(storage if storage is not None else run_config.output.storage_path)
    if "://" in root:
        raise ConfigError(f"storage: {root!r}: a plain run writes to a local folder (copy it "
                          "up afterwards, or use raygan.tune, which writes to URIs)")
    if name is not None:
        check_run_name(name, "name")
    out = Path(root).expanduser() / (name or run_config.name)
    if (out / "checkpoint.pt").exists() or list(out.glob(STATE_GLOB)):
        raise FileExistsError(f"{out} already holds a run; open it with raygan.load("
                              f"{str(out)!r}) or pass another name= or storage=")
    run_plain(run_config, out, what=describe(run_config))
    return read_result(out)


def experiment(config: RunConfig, *, sweep: bool, storage: str | Path | None = None,
               name: str | None = None, quiet: bool = False, force: bool = False,
               what: str | None = None) -> tuple[str, ResultGrid]:
    """A Ray Tune experiment of `config` (`raygan train` without `--out`, `raygan tune`).

    Args:
        config: the run configuration.
        sweep: the trials of the `tune` section; else one trial.
        storage: directory or URI (default `output.storage_path`).
        name: the experiment's name (default the config's).
        quiet: no progress lines.
        force: run trials raygan estimates this machine or cluster cannot hold.
        what: the line "raygan: training|sweeping <what> -> <path>" on stderr before it
            starts (None: no line).

    Returns:
        The experiment's path and Tune's results.
    """
    from raygan.atomic import probe_writable
    from raygan.tuning.experiment import experiment_path, is_uri, run_experiment

    root = str(storage) if storage is not None else config.output.storage_path
    if name is not None:
        check_run_name(name, "name")
    path = experiment_path(root, name or config.name)
    if not is_uri(path):
        probe_writable(root)
    if what is not None:
        print(f"raygan: {'sweeping' if sweep else 'training'} {what} -> {path}", file=sys.stderr)
    with objects.shipped(config, _ray_starter(config, force, trials=True)):
        return run_experiment(config, sweep=sweep, storage_path=root, name=name, quiet=quiet,
                              force=force)


def tune(config: RunConfig | Mapping[str, Any] | str | Path, *,
         storage: str | Path | None = None,
         name: str | None = None, backend: str | None = None, data: Any = None,
         generator: Any = None, discriminator: Any = None, num_samples: int | None = None,
         quiet: bool = False, force: bool = False) -> ResultGrid:
    """Sweep whole runs with Ray Tune, as `raygan tune` does: `tune.num_samples` trials drawn
    from `tune.space` under `tune.scheduler`.

    Args:
        config, backend, data, generator, discriminator: as for `train`.
        storage: directory or `s3://` / `gs://` URI (default `output.storage_path`).
        name: the experiment's name (default the config's); `load(storage/name)` reads it.
        num_samples: overrides `tune.num_samples`.
        quiet: no progress lines.
        force: run trials raygan estimates this machine or cluster cannot hold.

    Returns:
        Tune's `ResultGrid` (each result's metrics as `best/<name>` keys).

    Raises:
        ConfigError, DataError: one line, as for `train`.
        FileExistsError: the experiment folder already holds an experiment.
    """
    run_config = _with_backend(_as_config(config), backend)
    if num_samples is not None:
        run_config = run_config.replace(**{"tune.num_samples": num_samples})
    run_config = objects.with_objects(run_config, data=data, generator=generator,
                                      discriminator=discriminator)
    return experiment(run_config, sweep=True, storage=storage, name=name, quiet=quiet,
                      force=force)[1]


def load(path: str | Path, *, data: Any = None, generator: Any = None,
         discriminator: Any = None) -> Result:
    """A finished or interrupted run: a plain run's folder, a Tune trial's, or a Tune
    experiment's (read as its best trial).

    Args:
        path: the folder.
        data, generator, discriminator: the objects a run trained on Python objects was
            given (`train(data=..., generator=..., discriminator=...)`), when it is loaded in
            another process and its mixture is wanted (`Result.generator`, `Result.export`).

    Raises:
        FileNotFoundError: one line, when `path` holds no run.
        ConfigError, CheckpointError: one line, when its files cannot be read, or an object
            is passed for a part the run names by an import path.
    """
    result = read_result(path)
    objects.reattach(result.config, data, generator, discriminator)
    return result


def resume_plain(out: str | Path, *, generations: int | None = None,
                 backend: str | None = None, progress: bool = True) -> Controller | None:
    """Continue the plain run in `out` (`raygan resume`); None when it has nothing left to
    train (a line on stderr says so).

    Args:
        out: the run's folder.
        generations: a new total of generations (more than it trained).
        backend: where the cells run (default: as the run was started).
        progress: a line per generation on stderr.

    Raises:
        ConfigError: `generations` not above what the run has trained.
    """
    from raygan.atomic import probe_writable
    from raygan.engine.checkpoint import load_checkpoint_or_previous
    from raygan.engine.run import CHECKPOINT
    from raygan.engine.run import train as run_train

    out = Path(out)
    (config, controller_state, _), _ = load_checkpoint_or_previous(out / CHECKPOINT)
    done = int(controller_state.get("generation", 0))
    if generations is not None:
        if generations <= done:
            raise ConfigError(
                f"--generations {generations}: {out} has already trained {done} "
                f"generations; give a larger total to train more"
            )
        config = config.replace(**{"training.generations": generations})
    elif done >= config.training.generations:
        print(f"raygan: {out} has already trained all {done} generations; nothing to resume "
              "(raise the total with --generations N)", file=sys.stderr)
        return None
    probe_writable(out)
    config = _with_backend(config, backend)
    with objects.shipped(config, _ray_starter(config, force=False)
                         if config.resources.backend == "ray" else None):
        return run_train(config, out, pool_factory=pool_factory(config.resources.backend),
                         resume=True, progress=progress)


def resume(path: str | Path, *, generations: int | None = None, backend: str | None = None,
           data: Any = None, generator: Any = None, discriminator: Any = None) -> Result:
    """Continue an interrupted plain run or Tune experiment, and return its result.

    Args:
        path: the run's or experiment's folder.
        generations: plain runs: a new total of generations to train to.
        backend: plain runs: where the cells run (default: as the run was started).
        data, generator, discriminator: the objects the run was given, as for `load`.

    Raises:
        FileNotFoundError: `path` holds no run.
        ConfigError: a bad argument (one line).
    """
    from raygan.engine.checkpoint import checkpoint_exists
    from raygan.engine.run import CHECKPOINT

    objects.reattach(read_result(path).config, data, generator, discriminator)
    folder = Path(path).expanduser()
    if checkpoint_exists(folder / CHECKPOINT):
        resume_plain(folder, generations=generations, backend=backend)
        return read_result(folder)
    if generations is not None or backend is not None:
        raise ConfigError("generations and backend apply to plain runs only; a Tune experiment "
                          "resumes with the settings it was started with")
    from raygan.tuning.experiment import resume_experiment, start_ray

    with objects.shipped(read_result(folder).config, start_ray):
        resume_experiment(str(folder))
    return read_result(folder)
