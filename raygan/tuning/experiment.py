"""Build and run Tune experiments of coevolution runs: search space, scheduler, run settings.

`raygan train` is an experiment with one trial; `raygan tune` draws `tune.num_samples` trials
from `tune.space` and hands them to the scheduler named in `tune.scheduler` (PBT, PB2, ASHA).
Checkpoints are the engine's; Tune keeps them (all of them under PBT/PB2, whose exploits restore
other trials' older checkpoints), restarts failed trials from the last one (`FailureConfig`)
and copies the trial's files (TensorBoard, Parquet history, figures) to the storage path.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune import Callback, CheckpointConfig, FailureConfig, ResultGrid, SyncConfig
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from raygan.config import ConfigError, RunConfig, specs
from raygan.config.catalog import best_scores, format_scores
from raygan.data import Dataset
from raygan.engine.task import prepare
from raygan.errors import StorageError, storage_problem
from raygan.tuning.schedulers import make_scheduler, population, tune_domain
from raygan.tuning.trainable import (
    CoevolutionTrainable,
    SharedData,
    run_config_of,
    share_data,
    trial_config,
)


def is_uri(path: str) -> bool:
    """True for `s3://...`, `gs://...` and other URIs (as opposed to local paths)."""
    return "://" in path


def storage_location(path: str | Path) -> str:
    """A URI as it is, a local path made absolute (Tune reads relative paths as URIs)."""
    text = str(path)
    return text if is_uri(text) else str(Path(text).expanduser().resolve())


def experiment_path(storage_path: str, name: str) -> str:
    """Where Tune writes the experiment: `<storage_path>/<name>`."""
    return f"{storage_location(storage_path).rstrip('/')}/{name}"


def start_ray(
    config: RunConfig | None = None,
    *,
    sweep: bool = False,
    force: bool = False,
    dataset: Dataset | None = None,
) -> None:
    """Join the cluster (`RAY_ADDRESS`, or the last `ray start` here) or start a local one.

    With `config`, refuse trials the cluster cannot place or this machine cannot hold
    (`raygan.distributed.session.check_trials`; `force`, `dataset`: see there).
    """
    from raygan.distributed.session import check_trials, ensure_ray, trial_cpus

    # Tune's status tables and banners stay off (ProgressCallback prints one line per
    # generation); an explicit RAY_AIR_NEW_OUTPUT from the user wins
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # short generations checkpoint often, so Tune's snapshots are forced often: that is expected
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if "TUNE_WARN_THRESHOLD_S" not in os.environ:
        # Tune reads this threshold at import and warns about any result handling slower than
        # 0.5 s, which a loaded 2-core machine hits every few generations; 5 s still flags a
        # real bottleneck
        from ray.tune.utils.util import warn_if_slow

        warn_if_slow.DEFAULT_THRESHOLD = 5.0
    ensure_ray(logging_level=logging.WARNING,
               cpus=trial_cpus(config) if config is not None and force else 0.0)
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _StorageFailureFilter) for f in log.filters):
            log.addFilter(_StorageFailureFilter())
    # a restarted trial's result.json may not have reached storage yet; Tune warns, then writes it
    logging.getLogger("ray.tune.logger.logger").setLevel(logging.ERROR)
    if config is not None:
        check_trials(config, sweep=sweep, force=force, dataset=dataset)


def storage_failure(error: BaseException | None) -> str | None:
    """One line when a trial failed because its storage is full, read-only or forbidden
    (`raygan.errors.storage_problem` of the error or of the trial error it wraps), else None."""
    cause = getattr(error, "cause", None) or error
    return None if cause is None else storage_problem(cause)


class _StorageFailureFilter(logging.Filter):
    """Drops Tune's traceback of a trial that stopped for lack of room (the CLI says it in one
    line) and its closing "Trials did not complete" (the trials table says which)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and storage_failure(exc) is not None:
            return False
        return not str(record.msg).startswith("Trials did not complete")


class _DeletedCheckpointFilter(logging.Filter):
    """Drops Tune's traceback for re-deleting a checkpoint that is already gone.

    When the driver dies after Tune deleted an old checkpoint (`num_to_keep`) but before its
    next experiment snapshot, the restored state still lists that checkpoint; Tune deletes it
    again on the next save and logs the FileNotFoundError as an error. Nothing is lost: the new
    checkpoint is registered before the deletion.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, FileNotFoundError) and "checkpoint_" in str(exc))


def param_space(config: RunConfig, sweep: bool) -> dict[str, Any]:
    """Tune's param space: the base config plus one Tune domain per `tune.space` entry (and,
    for a scheduler that draws its population, one trial per member: `population`)."""
    if not sweep:
        return trial_config(config, {})
    space = {k: tune_domain(d) for k, d in config.tune.space.items()}
    return trial_config(config, {**space, **population(config)})


def _failed_for_storage(trial: Trial) -> bool:
    """Whether a trial's last failure, as its `error.txt` records it, was a `StorageError`."""
    try:
        text = Path(trial.error_file).read_text(errors="replace") if trial.error_file else ""
    except OSError:
        return False
    last = text.rsplit("Failure # ", 1)[-1]
    return f"{StorageError.__module__}.{StorageError.__name__}" in last


def _trial_name(trial: Trial) -> str:
    return f"trial_{trial.trial_id}"


class ProgressCallback(Callback):
    """One line per generation per trial on stderr, instead of Tune's status tables."""

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        """Report a generation."""
        gen, total = result.get("generation"), result.get("generations")
        scores = best_scores(result)
        if scores:
            text = f"best cell {result.get('best_cell')} " + format_scores(scores) + (
                "" if result.get("evaluated") else " (last evaluation)"
            )
        else:
            text = "not evaluated yet"
        print(
            f"raygan: {trial.trial_id} generation {gen}/{total} "
            f"({result.get('seconds', 0):.1f}s) {text}",
            file=sys.stderr,
            flush=True,
        )

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """Say where the traceback is (a storage failure is said once, by the CLI)."""
        if _failed_for_storage(trial):
            return
        print(
            f"raygan: {trial.trial_id} failed (attempt {trial.run_metadata.num_failures}); see "
            f"{trial.path}/error.txt",
            file=sys.stderr,
            flush=True,
        )


def build_tuner(
    config: RunConfig,
    *,
    sweep: bool,
    storage_path: str | None = None,
    name: str | None = None,
    quiet: bool = False,
    callbacks: list[Callback] | None = None,
    data: SharedData | None = None,
) -> tune.Tuner:
    """A `Tuner` for `config`: a one-trial run (`sweep=False`) or the sweep in `tune`.

    Args:
        config: the run config (its `tune` section when `sweep`).
        sweep: draw `tune.num_samples` trials from `tune.space` under `tune.scheduler`.
        storage_path: directory or URI (default `output.storage_path`).
        name: experiment name (default the config's name).
        quiet: no progress lines.
        callbacks: more Tune callbacks (after the progress printer).
        data: the training set the driver shared (`share_data`), handed to every trial;
            None: each trial loads its own.
    """
    run_config_of(trial_config(config))  # fail here, not in the first trial
    t = config.tune
    if specs.network(config).genome and not config.networks.genome and not sweep:
        raise ConfigError("networks.genome: a single run trains one genome; set it, or run "
                          "`raygan tune` with tune.scheduler: evolve to draw a population")
    # a scheduler's own population is a grid over its members (evolve's genomes)
    drawn = sweep and specs.scheduler(t.scheduler).population
    storage = storage_path or config.output.storage_path
    keep = config.output.keep_checkpoints
    if keep is None and not (sweep and t.perturbs):
        keep = 2
    tune_run = tune.RunConfig(  # Tune's run settings; `config` is raygan's RunConfig
        name=name or config.name,
        storage_path=storage_location(storage),
        failure_config=FailureConfig(max_failures=t.max_failures),
        checkpoint_config=CheckpointConfig(
            num_to_keep=keep,
            checkpoint_frequency=config.output.checkpoint_every,
            checkpoint_at_end=True,
        ),
        sync_config=SyncConfig(sync_artifacts=True),
        callbacks=([] if quiet else [ProgressCallback()]) + list(callbacks or []),
        verbose=0,
    )
    tune_config = tune.TuneConfig(
        metric=config.tune_metric,
        mode=config.tune_mode,
        scheduler=make_scheduler(config) if sweep else FIFOScheduler(),
        num_samples=t.num_samples if sweep and not drawn else 1,
        max_concurrent_trials=t.max_concurrent_trials,
        reuse_actors=t.reuse_actors,
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )
    # the trials get the reference (Tune puts the small `SharedData` once), not the data
    trainable = (CoevolutionTrainable if data is None
                 else tune.with_parameters(CoevolutionTrainable, data=data))
    return tune.Tuner(
        trainable,
        param_space=param_space(config, sweep),
        tune_config=tune_config,
        run_config=tune_run,
    )


def run_experiment(
    config: RunConfig,
    *,
    sweep: bool,
    storage_path: str | None = None,
    name: str | None = None,
    quiet: bool = False,
    callbacks: list[Callback] | None = None,
    force: bool = False,
) -> tuple[str, ResultGrid]:
    """Run a new experiment (see `build_tuner` for the arguments); returns its path and results.

    `force` runs trials that raygan estimates this machine or cluster cannot hold (`start_ray`).
    The data is loaded here, once, before Ray starts (`engine.task.prepare`: bad data is one
    line), and shared with every trial (`share_data`); the trials run the config `prepare`
    returns, with the metrics that default from the data written out.

    Raises:
        FileExistsError: when the experiment directory already holds an experiment.
    """
    storage = storage_path or config.output.storage_path
    path = experiment_path(storage, name or config.name)
    if tune.Tuner.can_restore(path):
        raise FileExistsError(
            f"{path} already holds an experiment; continue it with `raygan resume {path}`, "
            "or choose another --name or --storage"
        )
    # relative paths mean this directory here, as in the trials (`with_absolute_paths`)
    config, dataset = prepare(config, cells_here=False)
    start_ray(config, sweep=sweep, force=force, dataset=dataset)
    data = share_data(config, dataset)
    del dataset  # the object store holds it now; this process keeps the reference only
    tuner = build_tuner(config, sweep=sweep, storage_path=storage, name=name, quiet=quiet,
                        callbacks=callbacks, data=data)
    if not is_uri(path):  # what `resume_experiment` rebuilds the Tuner from
        from raygan.tuning.restore import write_settings

        write_settings(path, config, sweep, quiet)
    return path, tuner.fit()


def resume_experiment(path: str) -> ResultGrid:
    """Continue an interrupted experiment: unfinished and errored trials from their checkpoints.

    Nothing of the folder is unpickled (it may come from anyone): the Tuner is built afresh
    from the config the experiment recorded (`raygan.tuning.restore.SETTINGS_FILE`), and the
    state Tune resumes from is rewritten from its plain JSON before Tune reads it
    (`raygan.tuning.restore.prepare_resume`).

    Raises:
        FileNotFoundError: when `path` holds no Tune experiment, or is remote.
        FileExistsError: when the folder holds a pickle Tune would load that raygan never
            writes.
        CheckpointError: when its experiment state is damaged or not this experiment's.
    """
    from raygan.tuning.restore import (
        mark_restored,
        prepare_resume,
        read_settings,
        refuse_foreign_pickles,
    )
    from raygan.tuning.results import require_experiment
    from raygan.tuning.state import read_experiment_state

    if is_uri(path):
        raise FileNotFoundError(
            f"{path}: resuming a remote experiment is not supported; copy it down first (e.g. "
            "`aws s3 sync`) and resume the copy"
        )
    folder = require_experiment(path)
    state = read_experiment_state(folder)
    config, sweep, quiet = read_settings(folder, state)
    refuse_foreign_pickles(folder, state)
    config, dataset = prepare(config, cells_here=False)  # as `run_experiment` shares it
    start_ray()
    data = share_data(config, dataset)
    del dataset
    controller_log = logging.getLogger("ray.tune.execution.tune_controller")
    if not any(isinstance(f, _DeletedCheckpointFilter) for f in controller_log.filters):
        controller_log.addFilter(_DeletedCheckpointFilter())
    tuner = build_tuner(  # writes tuner.pkl anew, from this process's objects
        config, sweep=sweep, storage_path=str(folder.parent), name=folder.name, quiet=quiet,
        data=data,
    )
    prepare_resume(folder, state, tuner, config.tune.max_concurrent_trials or 0)
    mark_restored(tuner)
    return tuner.fit()

