"""A 1x2 Ray-backend grid under Tune on a three-node `ray.cluster_utils.Cluster`, one node lost.

Run by `tests/test_multinode.py` in a process of its own (the test session's Ray instance
cannot also be a `Cluster`), with `RAY_TMPDIR` pointing at a private directory so that the
cluster's address file never makes another process's `ray.init()` join it.

The head holds only the trial's controller bundle (2 logical CPUs); each worker node holds one
cell (1 CPU, cells of 1). When the trial reports generation `LOSE_AT`, the worker node of
cell 0 is removed and a replacement joins (the head and the other worker cannot hold the grid
alone). The run must then end exactly where an uninterrupted local run of the same config ends.
Cell states live in the object store of their cell's node (Ray inlines nothing here, as it
would not inline a real GAN's megabytes), and the node is lost after a generation that was not
checkpointed, so the states the pool would restart from are gone with it: the pool gives up
after its retries, the trial fails, and Tune restores it from its last checkpoint
(`tune.max_failures`) onto the surviving worker and the replacement.

Usage: `python tests/node_loss.py OUT_DIR`; writes `OUT_DIR/facts.json` (see `main`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # conftest's configs and comparisons

import ray  # noqa: E402
from conftest import assert_same_state, comparable, tiny_toy_config  # noqa: E402
from ray import tune  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from raygan.config import RunConfig  # noqa: E402
from raygan.engine.checkpoint import load_checkpoint  # noqa: E402
from raygan.engine.controller import Controller  # noqa: E402
from raygan.engine.pool import LocalCellPool  # noqa: E402
from raygan.tuning.experiment import run_experiment  # noqa: E402
from raygan.tuning.results import latest_checkpoint, load_trials  # noqa: E402

GENERATIONS = 4
LOSE_AT = 3
"""The node is lost once the trial has reported this generation (checkpoints: 2, 4): the
restart point of generation 4 is lost with it, and Tune restores the trial from generation 2."""

MIB = 2**20


CONFIG: RunConfig = tiny_toy_config(**{
    "name": "node_loss", "training.generations": GENERATIONS, "training.max_batches": 4,
    "metrics.every": 2, "output.checkpoint_every": 2, "tune.max_failures": 2,
    "resources.backend": "ray", "resources.controller_cpus": 2.0,
    "resources.cpus_per_cell": 1.0, "grid.rows": 1,
})
"""A tiny 1x2 grid, each cell an actor in the trial's placement group (every actor start takes
seconds, before the loss and again after it: two cells show the scenario)."""
CELLS = CONFIG.grid.size


def cell_nodes() -> list[str]:
    """Node ids of the cell bundles (1..CELLS) of the trial's placement group."""
    groups = [g for g in ray.util.placement_group_table().values()
              if g["state"] == "CREATED" and len(g["bundles"]) == 1 + CELLS]
    assert len(groups) == 1, groups
    nodes = groups[0]["bundles_to_node_id"]
    return [nodes[i] for i in range(1, 1 + CELLS)]


class LoseANode(tune.Callback):
    """Removes the worker node holding cell 0 when generation `LOSE_AT` is reported, adds a
    replacement, and notes where the cells were placed before and at the end."""

    def __init__(self, cluster: Cluster, workers: list[Any]) -> None:
        self.cluster = cluster
        self.workers = workers
        self.facts: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state; a cluster holds locks and
        # processes, and a restored experiment would not have them anyway
        return {**self.__dict__, "cluster": None, "workers": []}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        """Lose the node at `LOSE_AT`; note the placement then and at the last generation."""
        gen = result["generation"]
        if gen == LOSE_AT and "removed" not in self.facts:
            self.facts["before"] = cell_nodes()
            victim = next(w for w in self.workers if w.node_id == self.facts["before"][0])
            self.cluster.remove_node(victim)
            self.facts["removed"] = victim.node_id
            self.facts["replacement"] = self.cluster.add_node(
                num_cpus=1, object_store_memory=80 * MIB).node_id
        if gen == GENERATIONS:
            self.facts["after"] = cell_nodes()


def main(out: Path) -> None:
    """Run the scenario; write what happened to `out/facts.json`.

    The facts: `workers` (the two worker node ids), `before` / `after` (the cells' nodes when
    the node was lost / at the end), `removed`, `replacement`, `status` and `failures` of the
    trial, `error` (the traceback of its failure), `generation` of its last checkpoint and
    `differences` from the uninterrupted local run (empty when the history and every cell's
    state are identical).
    """
    reference = Controller(CONFIG, LocalCellPool(CONFIG))
    while not reference.done:
        reference.step()
    reference_cells = reference.pool.state_dicts()

    # Ray passes objects below 100 KiB inline to their owner (the trial process), where the
    # tiny grid's states would outlive any node; 0 keeps them in the node's store
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "object_store_memory": 80 * MIB, "include_dashboard": False,
        "_system_config": {"max_direct_call_object_size": 0}})
    try:
        workers = [cluster.add_node(num_cpus=1, object_store_memory=80 * MIB)
                   for _ in range(2)]
        cluster.wait_for_nodes()
        os.environ["RAY_ADDRESS"] = cluster.address  # run_experiment joins this cluster
        loser = LoseANode(cluster, workers)
        path, results = run_experiment(CONFIG, sweep=False, storage_path=str(out / "results"),
                                       quiet=True, callbacks=[loser])
        (record,) = load_trials(path)
        found = latest_checkpoint(record.path)
        assert found is not None, "the trial left no checkpoint"
        _, controller, cells = load_checkpoint(found)
        differences = []
        for name, ours, theirs in (
            ("history", comparable(controller["history"]),
             comparable(reference.history)),
            ("summaries", comparable(controller["summaries"]),
             comparable(reference.summaries)),
            ("cells", cells, reference_cells),
        ):
            try:
                assert_same_state(ours, theirs, name)
            except AssertionError as exc:
                differences.append(f"{name}: {exc}")
        facts = {
            **loser.facts, "workers": [w.node_id for w in workers], "status": record.status,
            "failures": record.failures, "errors": len(results.errors),
            "error": _read(record.path / "error.txt"),
            "generation": controller["generation"], "differences": differences,
        }
    finally:
        ray.shutdown()
        cluster.shutdown()
    (out / "facts.json").write_text(json.dumps(facts, indent=1))


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""



if __name__ == "__main__":
    main(Path(sys.argv[1]))
