"""Ray Tune layer: coevolution runs as Tune trials, sweeps, and reading the results back.

* `trainable`: `CoevolutionTrainable` (one Tune iteration = one generation of the grid), the
  trial config (`{"raygan": <base config>, "<dotted.key>": value}`) and trial resources;
* `experiment`: `Tuner`s for `raygan train` / `raygan tune` (schedulers, checkpoints, failure
  handling, progress lines) and `raygan resume`;
* `results`: offline access (trials, `ResultGrid`, checkpoints, samples of the best mixture),
  reading the folder as plain files only (nothing in it is unpickled);
* `restore`: Tune's objects rebuilt from those plain files in this process (for
  `ResultGrid` and `raygan resume`, which never lets Tune unpickle the folder);
* `schedulers`, `evolve`: PBT/PB2 with exploits logged by trial id, and the architecture
  evolution scheduler.

The `tune` section of a run config (search space, PBT/PB2 policy) is `raygan.config.tune`. The
trials table and the HTML page of `raygan report`, built from these results, are
`raygan.reporting`. Importing `raygan.tuning` alone does not import Ray.
"""
