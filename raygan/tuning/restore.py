"""Tune's objects of an experiment, made in this process from its plain files.

Tune reads an experiment folder by unpickling it: `tuner.pkl`, the `CLOUDPICKLE_FALLBACK`
entries and hex-pickled fields of `experiment_state-*.json` (storage contexts, checkpoint
managers, placement groups), the searcher's `basic-variant-state-*.json`, a
`callback-states-*.pkl`, a checkpoint's `_dict_checkpoint.pkl`, a trial's `error.pkl`. A
folder synced from a shared bucket may hold anything there, so raygan never lets Tune read
them: the trials are rebuilt from `read_experiment_state` (plain JSON) and the checkpoint
directories on disk, the searcher from the experiment's own config, and Tune pickles those in
this process (`prepare_resume`), or they are handed to Tune's `ResultGrid` directly
(`result_grid`). A file Tune would unpickle but that raygan does not rewrite is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import tune
from ray.train import Checkpoint
from ray.train._internal.checkpoint_manager import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune import ResumeConfig
from ray.tune.experiment import Experiment, Trial
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.utils.serialization import TuneFunctionEncoder

from raygan.atomic import atomic_write_text
from raygan.config import RunConfig, config_from_saved
from raygan.engine.checkpoint import CheckpointError
from raygan.tuning.state import (
    ExperimentState,
    TrialState,
    checkpoint_dirs,
    trial_dir,
)
from raygan.tuning.trainable import BASE_KEY

SETTINGS_FILE = "raygan-experiment.json"
"""How the experiment was started (config, sweep or not, quiet), for `raygan resume`."""

_TRAINABLE = "CoevolutionTrainable"
_CALLBACK_STATES = "callback-states-*.pkl"  # `CallbackList` unpickles the newest on resume
_DICT_CHECKPOINT = "_dict_checkpoint.pkl"  # `Trainable.restore` unpickles it when present


def write_settings(folder: str | Path, config: RunConfig, sweep: bool, quiet: bool) -> None:
    """Record how the experiment at `folder` was started (`SETTINGS_FILE`, plain JSON)."""
    settings = {"sweep": sweep, "quiet": quiet, "config": config.to_dict()}
    atomic_write_text(Path(folder) / SETTINGS_FILE, json.dumps(settings, indent=1))


def read_settings(folder: Path, state: ExperimentState) -> tuple[RunConfig, bool, bool]:
    """The config, sweep flag and quietness the experiment at `folder` was started with.

    An experiment from before `SETTINGS_FILE` existed is read from its trial when it is one
    `raygan train` run (its trial config is the whole config).

    Raises:
        FileNotFoundError: when neither says it.
        ConfigError: when the recorded config is not valid.
    """
    path = folder / SETTINGS_FILE
    if path.is_file():
        try:
            settings = json.loads(path.read_text())
            config, sweep, quiet = settings["config"], settings["sweep"], settings["quiet"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None
        if not isinstance(config, dict) or not isinstance(sweep, bool):
            raise CheckpointError(f"{path} is damaged: no config or sweep flag")
        return config_from_saved(config), sweep, bool(quiet)
    if len(state.trials) == 1 and set(state.trials[0].config) == {BASE_KEY}:
        return config_from_saved(state.trials[0].config[BASE_KEY]), False, False
    raise FileNotFoundError(
        f"{path} is missing (the sweep was started before raygan recorded it), and the sweep "
        "cannot be rebuilt without unpickling Tune's files; start it again")


def _apply(trial: Trial, state: TrialState, folder: Path) -> Trial:
    """`trial` with the snapshot's plain values and the checkpoints found on disk.

    The newest checkpoint directory on disk is the one restored (it may be newer than the
    snapshot, written just before the driver died); Tune's next one follows its number.
    Errors are read from their text file only (`pickled_error_filename` stays unset).
    """
    trial.set_config(state.config)
    trial.evaluated_params = state.evaluated_params
    trial.set_experiment_tag(state.experiment_tag)
    trial.set_status(state.status)
    where = trial_dir(folder, state)
    storage: Any = trial.storage
    storage.trial_dir_name = where.name
    if state.logdir is not None:  # else Tune names it when the trial starts
        trial.relative_logdir = state.logdir  # type: ignore[assignment]
    meta: Any = trial.run_metadata
    meta.last_result = state.last_result
    stamp = state.last_result.get("timestamp")  # Tune resumes the latest trials first
    meta.last_result_time = float(stamp) if isinstance(stamp, (int, float)) else float("-inf")
    meta.num_failures = state.num_failures
    meta.error_filename = state.error_file
    found = checkpoint_dirs(where)
    keep = meta.checkpoint_manager.checkpoint_config.num_to_keep
    for _, path in found[-keep:] if keep else found:
        # no metrics: the trainable sets its iteration from the checkpoint's generation
        checkpoint = Checkpoint.from_directory(str(path))
        meta.checkpoint_manager.register_checkpoint(_TrainingResult(checkpoint, metrics={}))
    if found:
        storage.current_checkpoint_index = found[-1][0]
    trial.invalidate_json_state()
    return trial


def result_grid(folder: Path, state: ExperimentState) -> Any:
    """Tune's `ResultGrid` of the experiment, from stub trials built here (no cluster needed).

    Raises:
        FileNotFoundError: when the snapshot lists no trial yet.
    """
    from ray.tune import CheckpointConfig, ExperimentAnalysis, ResultGrid

    if not state.trials:  # Tune's analysis would then load the snapshot itself
        raise FileNotFoundError(f"{state.file} lists no trial yet")
    storage = StorageContext(str(folder.parent), folder.name)
    trials = [
        _apply(Trial(_TRAINABLE, stub=True, trial_id=t.trial_id, storage=storage,
                     checkpoint_config=CheckpointConfig()), t, folder)
        for t in state.trials
    ]
    return ResultGrid(ExperimentAnalysis(str(folder), trials=trials))


def refuse_foreign_pickles(folder: Path, state: ExperimentState) -> None:
    """Refuse a folder that holds a pickle Tune would load on resume and raygan never writes.

    Raises:
        FileExistsError: naming the file (a callback state, a dict checkpoint).
    """
    found = sorted(folder.glob(_CALLBACK_STATES))
    for trial in state.trials:
        found += sorted(trial_dir(folder, trial).glob(f"checkpoint_*/{_DICT_CHECKPOINT}"))
    if found:
        raise FileExistsError(
            f"{found[0]}: raygan never writes this file, and Tune would unpickle it on resume "
            "(running whatever code it holds); remove it if you trust nothing in it, then resume"
        )


def _internal(tuner: tune.Tuner) -> Any:
    """The `TunerInternal` of a Tuner built in this process (never a Ray client's)."""
    return tuner._local_tuner


def mark_restored(tuner: tune.Tuner) -> None:
    """Make `tuner.fit()` resume the experiment, as `Tuner.restore` would leave it (unfinished
    and errored trials resume from their checkpoints), without reading `tuner.pkl`."""
    internal = _internal(tuner)
    internal._is_restored = True
    resume = ResumeConfig.ResumeType.RESUME
    internal._resume_config = ResumeConfig(unfinished=resume, errored=resume)  # type: ignore[arg-type]


def _searcher(tuner: tune.Tuner, prefix: str, max_concurrent: int) -> BasicVariantGenerator:
    """The searcher `tune.run` makes for `tuner`, its trial ids starting with `prefix`."""
    internal = _internal(tuner)
    trainable = internal.converted_trainable
    args = internal._get_tune_run_arguments(trainable)
    experiment = Experiment(  # as `tune.run` makes it from the same arguments
        name=args["name"], run=trainable, stop=args["stop"],
        time_budget_s=args["time_budget_s"], config=internal.param_space,
        num_samples=internal._tune_config.num_samples, storage_path=args["storage_path"],
        storage_filesystem=args["storage_filesystem"], sync_config=args["sync_config"],
        checkpoint_config=args["checkpoint_config"],
        trial_name_creator=args["trial_name_creator"],
        trial_dirname_creator=args["trial_dirname_creator"],
        log_to_file=internal._run_config.log_to_file, max_failures=args["max_failures"],
    )
    searcher = BasicVariantGenerator(max_concurrent=max_concurrent)
    searcher._uuid_prefix = prefix
    searcher.add_configurations([experiment])
    return searcher


def prepare_resume(
    folder: Path, state: ExperimentState, tuner: tune.Tuner, max_concurrent: int
) -> None:
    """Rewrite what Tune resumes from with objects made in this process.

    `tuner` is the experiment's Tuner built afresh (its `tuner.pkl` is this process's). Its
    searcher draws the snapshot's trials again (same ids, in order), so that it goes on where
    the experiment stopped; those trials then take the snapshot's plain values
    (`_apply`), and the snapshot and searcher state are written over the folder's.

    Call `refuse_foreign_pickles` first: the pickles Tune reads that are not rewritten here.

    Raises:
        CheckpointError: when the snapshot's trial ids are not the ones its searcher draws.
    """
    ids = [t.trial_id.rpartition("_") for t in state.trials]  # Tune's "<prefix>_<index>"
    prefixes = {prefix for prefix, _, _ in ids}
    valid = len(prefixes) == 1 and all(index.isdigit() for *_, index in ids)
    prefix = f"{prefixes.pop()}_" if valid else ""
    searcher = _searcher(tuner, prefix, max_concurrent=0)  # the limit once all are drawn
    wanted = {t.trial_id for t in state.trials}
    drawn: dict[str, Trial] = {}
    limit = max(int(index) + 1 for *_, index in ids) if valid else 0
    while len(drawn) < limit and not wanted <= drawn.keys():
        trial = searcher.next_trial()
        if trial is None:
            break
        drawn[trial.trial_id] = trial
    if not prefix or not wanted <= drawn.keys():
        raise CheckpointError(
            f"{state.file}: its trials ({', '.join(sorted(wanted)) or 'none'}) are not the "
            "ones this experiment's config draws; it cannot be resumed")
    searcher.max_concurrent = max_concurrent
    searcher._live_trials = {t.trial_id for t in state.trials
                             if t.status not in ("TERMINATED", "ERROR")}
    trials = [_apply(drawn[t.trial_id], t, folder) for t in state.trials]
    for trial in trials:
        trial.create_placement_group_factory()
    snapshot = {
        "trial_data": [trial.get_json_state() for trial in trials],
        "runner_data": {"_session_str": state.session, "_start_time": state.start_time},
        "stats": {"start_time": state.start_time},
    }
    atomic_write_text(state.file, json.dumps(snapshot, cls=TuneFunctionEncoder))
    # Tune loads the newest searcher state by name: leave only the one written here
    for stale in folder.glob(BasicVariantGenerator.CKPT_FILE_TMPL.format("*")):
        stale.unlink()
    searcher.save_to_dir(str(folder), session_str=state.session)
