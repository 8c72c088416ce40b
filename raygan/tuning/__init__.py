"""Ray Tune layer: coevolution runs as Tune trials, sweeps, and reading the results back.

* `section`: the `tune` section of a run config (search space, scheduler settings) and the
  PBT/PB2 policy (which knobs may be perturbed, within which bounds); no Ray, so that
  `raygan.config` can build on it;
* `trainable`: `CoevolutionTrainable` (one Tune iteration = one generation of the grid), the
  trial config (`{"raygan": <base config>, "<dotted.key>": value}`) and trial resources;
* `experiment`: `Tuner`s for `raygan train` / `raygan tune` (schedulers, checkpoints, failure
  handling, progress lines) and `raygan resume`;
* `results`: offline access (trials, `ResultGrid`, checkpoints, samples of the best mixture),
  reading the folder as plain files only (nothing in it is unpickled);
* `restore`: Tune's objects rebuilt from those plain files in this process (for
  `ResultGrid` and `raygan resume`, which never lets Tune unpickle the folder);
* `report`: the trials table and the static HTML page of `raygan report`;
* `lineage`, `evolution`: the tables and figures of a grid's evolution in that page (learning
  rates, losses, genealogy, mixture weights, the ranking metric and its floor).

Importing `raygan.tuning` alone does not import Ray (`section`, `lineage` and `evolution` never
do).
"""
