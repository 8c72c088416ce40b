"""The built-in Tune schedulers' specs: what the config knows of each (`raygan.config.specs`).

Plain Python, imported with `raygan` (`raygan.components`); `raygan.tuning.experiment` builds
the schedulers (`SCHEDULERS` of `raygan.tuning.schedulers`). `evolve`'s spec is
`raygan.tuning.evolve_spec`'s.
"""

from __future__ import annotations

from raygan.config.specs import SCHEDULERS, SchedulerSpec

NONE = SCHEDULERS.add(SchedulerSpec("none", "every trial runs to its last generation (FIFO)"))
ASHA = SCHEDULERS.add(SchedulerSpec(
    "asha", "asynchronous successive halving: stops the worse trials at each rung",
    decides_every="tune.grace_period"))
PBT = SCHEDULERS.add(SchedulerSpec(
    "pbt", "population-based training: the worse trials copy a better one and perturb its knobs",
    perturbs=True, decides_every="tune.perturbation_interval", mutates="any"))
PB2 = SCHEDULERS.add(SchedulerSpec(
    "pb2", "PBT with a bandit model choosing the continuous knobs",
    perturbs=True, decides_every="tune.perturbation_interval", mutates="continuous"))
