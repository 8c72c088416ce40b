"""Reporting: an experiment's trials table (printed after `raygan train` / `raygan tune`) and
the HTML page of `raygan report`.

Built offline from the experiment directory, as `raygan.tuning.results` reads it (no Ray
cluster, nothing unpickled):

* `report`: the trials table and the static HTML page (metric curves, samples, exploits);
* `lineage`: tables of a grid's evolution from its population history (`history.parquet`)
  and which trials ran which part of it (PBT/PB2 exploits); pandas only;
* `figures`: the figures of that evolution (learning rates, losses, genealogy, mixture
  weights, the ranking metric and its floor); matplotlib, no Ray;
* `evolve_report`: the page's section on an `evolve` sweep (its elitist steps).

The figures of a run as it trains (samples, TensorBoard) are the engine's
(`raygan.engine.plots`, `raygan.engine.board`): they are written during the run, below this
layer.
"""
