"""Ray Tune layer: coevolution runs as Tune trials, sweeps, and reading the results back.

* `section`: the `tune` section of a run config (search space, scheduler settings) and the
  PBT/PB2 policy (which knobs may be perturbed, within which bounds); no Ray, so that
  `raygan.config` can build on it;
* `trainable`: `CoevolutionTrainable` (one Tune iteration = one generation of the grid), the
  trial config (`{"raygan": <base config>, "<dotted.key>": value}`) and trial resources;
* `experiment`: `Tuner`s for `raygan train` / `raygan tune` (schedulers, checkpoints, failure
  handling, progress lines) and `raygan resume`;
* `results`: offline access (trials, `ResultGrid`, checkpoints, samples of the best mixture);
* `report`: the trials table and the static HTML page of `raygan report`.

Importing `raygan.tuning` alone does not import Ray (`section` never does).
"""
