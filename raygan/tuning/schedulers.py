"""Tune's schedulers by `tune.scheduler` name (`SCHEDULERS`), and PBT and PB2 with exploits
that cannot stop or repeat, logged by trial id.

What the config knows of each scheduler is its spec (`raygan.tuning.scheduler_specs`); the
builders are registered here (`evolve`'s by `raygan.tuning.evolve`, which its spec names), with
the trials a scheduler that draws its own population adds to the param space (`POPULATIONS`).

In synchronous mode (`tune.synch`), a trial that reaches the perturbation point before the rest
is paused with a checkpoint: Tune schedules a save and keeps the trial RUNNING until the save
resolves. When the last trial arrives while that save is still in flight (a slow save, a loaded
machine), PBT exploits the paused-to-be trial and pauses it again, without a checkpoint. Tune
2.60 then stops the trial's actor while `trial.is_saving` holds: `_schedule_trial_stop` caches a
STOP decision "for after the save", clears the save's future (so that save never resolves) and
marks the trial PAUSED. The cached STOP outlives the exploit: the next save the trial makes,
after its first generation from the cloned checkpoint, executes it, and the trial ends
TERMINATED generations short of `training.generations`.

The save in flight is dropped anyway (its future is cleared, and the exploited trial resumes
from the clone's checkpoint, not its own); forgetting it before the pause leaves no decision
behind, and the trial resumes and runs to its last generation like any other.

A second change is in the exploit log (`pbt_global.txt`, `pbt_policy_<id>.txt`): Tune writes
each trial's iteration from `trial.last_result`, which for the trial whose result triggered the
step is still its previous result (Tune updates it after the scheduler returns). In synchronous
mode that is the last trial to arrive, so the logged iterations depended on the arrival order;
here they come from the results PBT ranked the trials by (`last_result` of PBT's trial state).
The log names trials by id, not by Tune's experiment tag: the tag a trial was created with
names the knobs it was drawn with, which an exploit replaces (the report read `seed=3` for a
trial on seed 1). Tune's policy replay chains lines by these names, so ids serve it as well.

A third change: a trial's last result (`done`) is not a perturbation point. In synchronous
mode the last trial to report its final generation would otherwise step trials that have just
ended, which Tune marks finished only after the scheduler returns, and an exploited one would
restart from an elite's final checkpoint and train one generation past its budget.

A fourth: a trial is exploited at most once per perturbation point. Tune gives an exploited
trial its donor's last perturbation time, the time of the donor's checkpoint. In asynchronous
mode a donor may lag (paused while other trials take their turn, or slower): a trial at
generation 10 cloned from a donor's checkpoint of generation 6 restarted at 6, was at a
perturbation point again on reaching 10, and, the donor still at 6, was exploited from the
same checkpoint again (one trial trained generations 7-10 four times). Here the exploited
trial's last perturbation time is the point it was exploited at, when that is the later one,
so its next perturbation is a full interval past it.

A fifth: in synchronous mode an elite that is still saving its pause checkpoint when the step
comes is cloned from that save. Tune 2.60 schedules a second save of the same state; the first
save's pause then stops the trial before the second save is registered, so Tune never counts
its checkpoint index, and the elite's next save (its final generation) is written under the
same directory name. A trial cloned from it and started after that restarted from the elite's
last generation and trained one past its budget (seen on CI as a trial at generation 3 of 2).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

from ray import tune
from ray.air.constants import TRAINING_ITERATION
from ray.train._internal.session import _FutureTrainingResult
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.schedulers import PopulationBasedTraining as _TunePBT
from ray.tune.schedulers.pb2 import PB2 as _TunePB2
from ray.tune.utils.util import SafeFallbackEncoder

from raygan.config import RunConfig
from raygan.config.specs import SCHEDULERS as SPECS
from raygan.config.specs import implement
from raygan.config.tune import SearchDomain, clamp_to_space, perturbation_bounds


class _ExploitWithoutStaleStop:
    """Mixin for `PopulationBasedTraining` subclasses (see the module docstring)."""

    _reporting: Trial | None = None  # the trial whose result is being handled

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        if result.get("done"):
            # a trial's last result is no perturbation point: Tune marks the trial finished only
            # after this callback, so a step here could exploit trials that have just ended and
            # restart them from an elite's final checkpoint, one generation past their budget
            return TrialScheduler.CONTINUE
        self._reporting = trial
        try:
            return super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        finally:
            self._reporting = None

    def _checkpoint_or_exploit(
        self,
        trial: Trial,
        tune_controller: Any,
        upper_quantile: list[Trial],
        lower_quantile: list[Trial],
    ) -> None:
        saving = trial.temporary_state.saving_to
        if (trial in upper_quantile and trial is not self._reporting
                and trial.status == Trial.RUNNING and isinstance(saving, _FutureTrainingResult)):
            # paused at this point and still saving: that save holds the state PBT wants, and
            # a second one would be written where the trial's next save goes (module docstring)
            self._trial_state[trial].last_checkpoint = saving  # type: ignore[attr-defined]
            self._num_checkpoints += 1  # type: ignore[attr-defined]
            return
        super()._checkpoint_or_exploit(  # type: ignore[misc]
            trial, tune_controller, upper_quantile, lower_quantile)

    def _exploit(self, tune_controller: Any, trial: Trial, trial_to_clone: Trial) -> None:
        if trial.status == Trial.RUNNING and trial.is_saving:
            # a pause-with-checkpoint still saving: PBT pauses it now without one, and the
            # checkpoint it restores from is the clone's
            trial.temporary_state.saving_to = None
        state = self._trial_state[trial]  # type: ignore[attr-defined]
        point = state.last_train_time  # the perturbation point this exploit is decided at
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]
        # Tune copies the donor's last perturbation time: with a donor's checkpoint older than
        # `point`, the trial would be at a perturbation point again on re-reaching `point`
        state.last_perturbation_time = max(state.last_perturbation_time, point)

    def _log_config_on_step(
        self,
        trial_state: Any,
        new_state: Any,
        trial: Trial,
        trial_to_clone: Trial,
        new_config: dict[str, Any],
    ) -> None:
        # Tune 2.60's method, with the iterations of the results the step was decided on
        experiment = trial.local_experiment_path
        trial_path = os.path.join(experiment, f"pbt_policy_{trial.trial_id}.txt")
        clone_path = os.path.join(experiment, f"pbt_policy_{trial_to_clone.trial_id}.txt")
        policy = [
            trial.trial_id,  # not `orig_tag`: the knobs a trial was drawn with, stale after this
            trial_to_clone.trial_id,
            (trial_state.last_result or {}).get(TRAINING_ITERATION, 0),
            (new_state.last_result or {}).get(TRAINING_ITERATION, 0),
            trial_to_clone.config,
            new_config,
        ]
        line = json.dumps(policy, cls=SafeFallbackEncoder)
        with open(os.path.join(experiment, "pbt_global.txt"), "a+") as f:
            print(line, file=f)
        if os.path.exists(clone_path):  # the target inherits the clone's history
            shutil.copyfile(clone_path, trial_path)
        with open(trial_path, "a+") as f:
            f.write(line + "\n")


class PopulationBasedTraining(_ExploitWithoutStaleStop, _TunePBT):
    """Tune's `PopulationBasedTraining` (see the module docstring for the changes)."""


class PB2(_ExploitWithoutStaleStop, _TunePB2):
    """Tune's `PB2` (see the module docstring for the changes)."""


def tune_domain(domain: SearchDomain) -> Any:
    """Tune's search domain for one `tune.space` entry."""
    values = list(domain.values())
    if domain.choice is not None:
        return tune.choice(values)
    if domain.grid is not None:
        return tune.grid_search(values)
    if domain.uniform is not None:
        return tune.uniform(*values)
    if domain.loguniform is not None:
        return tune.loguniform(*values)
    return tune.randint(*values)


def _asha(config: RunConfig) -> TrialScheduler:
    t = config.tune
    return ASHAScheduler(time_attr="generation", max_t=config.training.generations,
                         grace_period=t.grace_period, reduction_factor=t.reduction_factor)


def _pb2(config: RunConfig) -> TrialScheduler:
    t = config.tune
    return PB2(
        time_attr="generation",
        perturbation_interval=t.perturbation_interval,
        hyperparam_bounds={k: list(d.values()) for k, d in t.mutable().items()},
        quantile_fraction=t.quantile_fraction,
        synch=t.synch,
        custom_explore_fn=functools.partial(clamp_to_space, perturbation_bounds(t)),
    )


def _pbt(config: RunConfig) -> TrialScheduler:
    t = config.tune
    mutations: dict[str, Any] = {
        k: list(d.values()) if d.listed else tune_domain(d) for k, d in t.mutable().items()
    }
    return PopulationBasedTraining(
        time_attr="generation",
        perturbation_interval=t.perturbation_interval,
        hyperparam_mutations=mutations,
        quantile_fraction=t.quantile_fraction,
        resample_probability=t.resample_probability,
        synch=t.synch,
        custom_explore_fn=functools.partial(clamp_to_space, perturbation_bounds(t)),
    )


SCHEDULERS: dict[str, Callable[[RunConfig], TrialScheduler]] = {
    "none": lambda config: FIFOScheduler(), "asha": _asha, "pbt": _pbt, "pb2": _pb2,
}
"""Each scheduler's builder, deciding on `generation` (results' time)."""
POPULATIONS: dict[str, Callable[[RunConfig], dict[str, Any]]] = {}
"""For a scheduler that draws its trials (`SchedulerSpec.population`): the param-space entries
that make one trial per member (a grid search)."""


def make_scheduler(config: RunConfig) -> TrialScheduler:
    """The scheduler named by `tune.scheduler`."""
    implement(SPECS, config.tune.scheduler, SCHEDULERS)
    return SCHEDULERS[config.tune.scheduler](config)


def population(config: RunConfig) -> dict[str, Any]:
    """The param-space entries of the scheduler's own population (none for most)."""
    implement(SPECS, config.tune.scheduler, SCHEDULERS)
    entries = POPULATIONS.get(config.tune.scheduler)
    return {} if entries is None else entries(config)
