"""`RayCellPool`: the cells in Ray actors (`resources.cells_per_actor` each), all reserved in
one placement group.

Handles are ObjectRefs: the controller routes references, and weights move from actor to actor
through the object store; a neighbour on the same actor is read in its process instead
(`LocalSnapshot`), and only snapshots another actor reads are stored at all. After each
generation the pool keeps a reference to every actor's cell states (produced by the same task
as its reports, so it costs no extra round trip). If an actor dies, the pool recreates it in
the same bundle, restores every cell to the start of the interrupted generation and runs that
generation again, so a run with failures gives the same results as one without.

The training set is put in the object store once (`share_dataset`); every actor, restarted ones
too, gets that one reference and reads the node's copy zero-copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import ray
import torch
from ray import ObjectRef
from ray.exceptions import ObjectLostError, RayActorError, RayError
from ray.util.placement_group import PlacementGroup, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from torch import Tensor

from raygan.config import ConfigError, RunConfig
from raygan.core.custom import worker_import_problem
from raygan.core.individual import numpy_to_tensors, tensors_to_numpy
from raygan.core.report import CellReport
from raygan.core.task import Scored
from raygan.data import Dataset, load_dataset
from raygan.distributed.actor import LocalSnapshot, remote_cell_class, share_dataset
from raygan.distributed.resources import (
    actor_options,
    describe_request,
    fitting_shares,
    worker_bundle,
)
from raygan.distributed.session import check_request, cluster_is_private, reserve
from raygan.distributed.session import ensure_ray as ensure_ray  # re-exported
from raygan.engine.capacity import check_memory
from raygan.engine.pool import Route, round_inputs, rounds_of
from raygan.engine.task import grid_of

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RETRIES = 3
"""Attempts at one generation (or evaluation) after the first before the pool gives up."""


class RayCellPool:
    """Cells as Ray actors; the same interface and results as `engine.pool.LocalCellPool`.

    Args:
        config: the run configuration (`resources` says what each cell reserves).
        max_retries: how many times one generation is retried after actor failures.
        placement_group: a group that already holds one bundle per actor (a Ray Tune trial's,
            see `raygan.tuning`); actor a goes into bundle `bundle_offset + a`. The pool neither
            reserves nor removes it. None: the pool reserves (and later removes) its own.
        bundle_offset: index of actor 0's bundle in `placement_group`.
        force: run a request beyond raygan's own local Ray on oversubscribed logical CPUs, and
            skip the memory estimate (see `raygan.engine.capacity`).
        dataset: the run's data set: loaded (`engine.task.prepare`; put here, once), the
            reference of one already put (`share_dataset`; a Tune trial's), or None (loaded
            here). Every actor gets the same reference.

    Attributes:
        size: number of cells.
        restarts: number of actors recreated after a failure, over the pool's life.
        actors: the current actor handles; actor a hosts cells `workers[a]`.
        workers: the cells of each actor (`ResourcesConfig.workers`).
    """

    def __init__(
        self,
        config: RunConfig,
        max_retries: int = MAX_RETRIES,
        *,
        placement_group: PlacementGroup | None = None,
        bundle_offset: int = 0,
        force: bool = False,
        dataset: Dataset | ObjectRef | None = None,
    ) -> None:
        self.config = config
        self.size = grid_of(config).size
        res = config.resources
        ensure_ray(cpus=res.cpus_per_cell * self.size if force else 0.0)
        if dataset is None:
            dataset = load_dataset(config.data, config.seed)
        if placement_group is None and cluster_is_private():  # every process is on this machine
            check_memory(config, ray=True, tune=False, force=force,
                         dataset=dataset if isinstance(dataset, Dataset) else None)
        # the pool keeps the reference for restarted actors; no copy stays in this process
        self._data: ObjectRef | None = (share_dataset(dataset) if isinstance(dataset, Dataset)
                                         else dataset)
        del dataset
        self.max_retries = max_retries
        self.restarts = 0
        self.workers = res.workers(self.size)
        self._where = {c: (a, j) for a, cells in enumerate(self.workers)
                       for j, c in enumerate(cells)}
        # a snapshot goes to the object store only if a cell on another actor reads it
        self._shared = [False] * self.size
        for cell, nbh in enumerate(grid_of(config).all_neighbourhoods()):
            for other in nbh[1:]:
                if self._where[other][0] != self._where[cell][0]:
                    self._shared[other] = True
        self._owns_pg = placement_group is None
        self._offset = bundle_offset
        if placement_group is not None:
            available = len(placement_group.bundle_specs) - bundle_offset
            if bundle_offset < 0 or available < len(self.workers):
                raise ValueError(
                    f"the placement group has {len(placement_group.bundle_specs)} bundles; "
                    f"{len(self.workers)} cell actors from bundle {bundle_offset} do not fit"
                )
        self._pg: PlacementGroup | None = placement_group or self._reserve()
        self.actors: list[Any] = []
        self._handle_cell: dict[Any, int] = {}  # last published handles -> cell index
        self._failure: BaseException | None = None  # the error that triggered a restore
        try:
            self.actors = [self._new_actor(a) for a in range(len(self.workers))]
            ray.get([a.ping.remote() for a in self.actors])
            # restart point before the first generation
            self._states: list[Any] = [a.state_dict.remote() for a in self.actors]
        except BaseException as exc:
            self.close()
            # the driver imported networks.kind 'custom's module; a worker could not
            problem = worker_import_problem(str(exc)) if isinstance(exc, RayError) else None
            if problem is not None:
                raise ConfigError(problem) from None
            raise

    # -- placement --------------------------------------------------------------------------
    def _reserve(self) -> PlacementGroup:
        res = self.config.resources
        bundles = [worker_bundle(res, len(cells)) for cells in self.workers]
        what = describe_request(res, self.size)
        grid = self.config.grid
        advice = fitting_shares(res, self.size, ray.cluster_resources(), tune=False)
        check_request(bundles, res, f"the placement group of a {grid.rows}x{grid.cols} grid's "
                      f"cell actors, {what},", advice=advice)
        return reserve(bundles, res, what)

    def _new_actor(self, index: int) -> Any:
        assert self._pg is not None and self._data is not None, "the pool is closed"
        strategy = PlacementGroupSchedulingStrategy(
            placement_group=self._pg, placement_group_bundle_index=self._offset + index
        )
        options = actor_options(self.config.resources, len(self.workers[index]))
        actor_cls = remote_cell_class(options["num_cpus"], options["num_gpus"])
        return actor_cls.options(
            runtime_env=options["runtime_env"],
            scheduling_strategy=strategy,
        ).remote(self.config, self.workers[index], self._data)

    def _neighbours_of(self, actor: int, inputs: Sequence[Any] | None) -> list[list[Any]] | None:
        """The neighbour handles of `actor`'s cells (picked from every cell's `inputs`), with
        the handles of its own cells' snapshots replaced by `LocalSnapshot`s."""
        if inputs is None:
            return None
        return [self._localise(actor, inputs[c]) for c in self.workers[actor]]

    def _localise(self, actor: int, handles: Sequence[Any]) -> list[Any]:
        """One cell's neighbour handles as `actor` reads them."""
        cell_of = self._handle_cell
        return [LocalSnapshot(cell_of[h]) if self._where.get(cell_of.get(h, -1), (-1,))[0]
                == actor else h for h in handles]

    # -- the CellPool interface -------------------------------------------------------------
    def publish(self) -> list[Any]:
        """Handles of every centre's snapshot, by cell (each actor stores its own)."""
        handles: list[Any] = []
        for actor, cells in zip(self.actors, self.workers):
            refs = actor.publish.options(num_returns=len(cells)).remote(
                [self._shared[c] for c in cells])
            handles += refs if len(cells) > 1 else [refs]
        self._handle_cell = {h: i for i, h in enumerate(handles)}
        return handles

    def run_generation(self, generation: int, inputs: Sequence[Sequence[Any]]) -> list[CellReport]:
        """Run one generation in every actor in parallel, retrying it after actor failures."""

        def attempt(neighbours: list[list[Any]]) -> tuple[list[CellReport], list[Any], list[Any]]:
            return self._gather(self._submit_generation(generation, neighbours))

        reports, states, finite = self._retrying(f"generation {generation}", inputs, attempt)
        # only a generation every cell finished becomes the new restart point
        self._states = states
        for report, was in zip(reports, finite):
            _log_nonfinite(report, was)
        return reports

    def _submit_generation(self, generation: int, inputs: Sequence[Sequence[Any]]) -> list[Any]:
        """Start every actor's generation; returns its (reports, states, finite) refs."""
        return [a.run_generation.options(num_returns=3).remote(
            generation, self._neighbours_of(i, inputs)) for i, a in enumerate(self.actors)]

    @staticmethod
    def _gather(triples: list[Any]) -> tuple[list[CellReport], list[Any], list[Any]]:
        """Every actor's (reports, states, finite) refs -> cells' reports, actors' state refs,
        cells' finite flags."""
        reports = [r for rs in ray.get([t[0] for t in triples]) for r in rs]
        finite = [f for fs in ray.get([t[2] for t in triples]) for f in fs]
        return reports, [t[1] for t in triples], finite

    def run_rounds(self, generation: int, every: int, route: Route) -> list[CellReport]:
        """One generation as synchronous rounds of `every` batches, retried like a generation.

        Everything is submitted at once: a cell's round r reads its neighbours' round-r
        snapshots through the object store, which their actors publish only after their
        round r - 1, so data flow alone keeps the rounds in step.
        """

        def attempt(_neighbours: list[list[Any]]) -> tuple[list[CellReport], list[Any], list[Any]]:
            neighbours = route(self.publish())
            begun = [a.begin_generation.remote(generation, self._neighbours_of(i, neighbours))
                     for i, a in enumerate(self.actors)]
            batches = [b for bs in ray.get(begun) for b in bs]
            trained = []
            for r in range(rounds_of(batches, every)):
                neighbours_r = round_inputs(r, self.size, route, self.publish)
                later = None if r == 0 else neighbours_r
                trained += [a.train_round.remote(self._neighbours_of(i, later), every)
                            for i, a in enumerate(self.actors)]
            triples = [a.finish_generation.options(num_returns=3).remote()
                       for a in self.actors]
            ray.get(trained)  # raises a round's error, if any
            return self._gather(triples)

        reports, states, finite = self._retrying(f"generation {generation}", [], attempt)
        self._states = states
        for report, was in zip(reports, finite):
            _log_nonfinite(report, was)
        return reports

    def evaluate(self, inputs: Sequence[Sequence[Any]], n: int, seed: int) -> list[Scored]:
        """Every cell's evaluation (`Cell.evaluate`); cell i samples with seed `seed + i`."""

        def attempt(neighbours: list[list[Any]]) -> list[Scored]:
            refs = [a.evaluate.remote(self._neighbours_of(i, neighbours), n,
                                      [seed + c for c in cells])
                    for i, (a, cells) in enumerate(zip(self.actors, self.workers))]
            return [Scored(scores, _tensor(preview))
                    for per_actor in ray.get(refs) for scores, preview in per_actor]

        return self._retrying("evaluation", inputs, attempt)

    def sample(
        self, cell: int, inputs: Sequence[Any], n: int, seed: int, centre_only: bool = False
    ) -> Tensor:
        """Samples from one cell's mixture (or its centre generator alone), as a CPU tensor."""

        actor = self._where[cell][0]

        def attempt(neighbours: list[list[Any]]) -> Tensor:
            handles = self._localise(actor, neighbours[0])
            return _tensor(ray.get(self.actors[actor].sample.remote(cell, handles, n, seed,
                                                                     centre_only)))

        return self._retrying(f"sampling cell {cell}", [inputs], attempt)

    def state_dicts(self) -> list[dict[str, Any]]:
        """Every cell's state after the last completed generation."""
        return [numpy_to_tensors(s) for per_actor in ray.get(self._states) for s in per_actor]

    def load_state_dicts(self, states: Sequence[dict[str, Any]]) -> None:
        """Restore every cell; the given states become the restart point."""
        if len(states) != self.size:
            raise ValueError(f"checkpoint has {len(states)} cells, the grid has {self.size}")
        refs = [ray.put([tensors_to_numpy(states[c]) for c in cells]) for cells in self.workers]
        ray.get([a.load_state_dict.remote(r) for a, r in zip(self.actors, refs)])
        self._states = refs

    def close(self) -> None:
        """Kill this pool's actors and release its own placement group (not a borrowed one)."""
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already dead or Ray shut down: nothing left to release
                pass
        self.actors = []
        self._data = None  # the object store lets go of the data set once no one holds it
        if self._pg is not None and self._owns_pg:
            try:
                remove_placement_group(self._pg)
            except Exception:
                pass
            self._pg = None

    # -- fault tolerance --------------------------------------------------------------------
    def _retrying(
        self, what: str, inputs: Sequence[Sequence[Any]], call: Callable[[list[list[Any]]], T]
    ) -> T:
        """`call(inputs)`, restarting dead actors and rolling back between attempts.

        A Ray error with no dead actor behind it (a bug in the cell code, bad inputs) is raised
        as is, after rolling the cells back so the pool stays consistent; actor failures are
        retried up to `max_retries` times.
        """
        neighbours = [list(r) for r in inputs]
        failures = 0
        dead: list[int] = []
        while True:
            try:
                if failures:
                    neighbours = self._restore(dead, what, failures, neighbours)
                return call(neighbours)
            except RayError as exc:
                dead = self._dead_actors()
                if not dead and not isinstance(exc, (RayActorError, ObjectLostError)):
                    self._roll_back()
                    raise
                failures += 1
                if failures > self.max_retries:
                    raise RuntimeError(
                        f"{what} failed {failures} times after cell actor failures (dead actors "
                        f"now: {dead}); giving up (max_retries={self.max_retries})"
                    ) from exc
                self._failure = exc

    def _roll_back(self) -> None:
        # cells that finished before another one failed are a generation ahead; put them back
        # so a checkpoint written while the error propagates is consistent
        try:
            ray.get([a.load_state_dict.remote(s) for a, s in zip(self.actors, self._states)])
        except RayError as exc:
            log.warning("could not roll the cells back after an error: %s", exc)

    def _dead_actors(self) -> list[int]:
        """Actors that no longer answer (waits for live actors' queued work)."""
        refs = [a.ping.remote() for a in self.actors]
        dead = []
        for i, ref in enumerate(refs):
            try:
                ray.get(ref)
            except RayActorError:
                dead.append(i)
        return dead

    def _restore(
        self, dead: list[int], what: str, failures: int, inputs: list[list[Any]]
    ) -> list[list[Any]]:
        """Recreate dead actors, roll every cell back to the restart point, re-publish.

        Returns the inputs rewritten to the new snapshot handles.

        Raises:
            RuntimeError: when the restart point itself is gone (lost with a node).
        """
        try:
            # the states live in the object store of the node their actor ran on: a dead
            # actor's may have gone with its node, and then no new actor could use them, so
            # look before starting any (a start takes seconds, and waits for a lost node's
            # bundle to be placed again)
            ray.get([self._states[i] for i in dead])
            for i in dead:
                self.restarts += 1
                log.warning(
                    "%s: the actor of cells %s died (%s); restarting it (restart %d, attempt "
                    "%d of %d)", what, self.workers[i], type(self._failure).__name__,
                    self.restarts, failures, self.max_retries,
                )
                self.actors[i] = self._new_actor(i)
            # every cell back to the same consistent point, so the retry repeats the
            # generation exactly and nothing is counted twice
            ray.get([a.load_state_dict.remote(s) for a, s in zip(self.actors, self._states)])
        except ObjectLostError as exc:
            # with that node gone no retry can bring them back, so fail now, with the way out
            raise RuntimeError(
                f"{what}: the cells' restart point (their states after the last completed "
                f"generation) was lost with a node ({type(exc).__name__}); resume the run from "
                "its last checkpoint (Tune restores a trial by itself, up to tune.max_failures)"
            ) from exc
        old = self._handle_cell
        fresh = self.publish()
        try:
            return [[fresh[old[h]] for h in handles] for handles in inputs]
        except KeyError:
            raise RuntimeError(
                f"{what}: cannot retry, the inputs are not handles from this pool's last publish"
            ) from self._failure


def _log_nonfinite(report: CellReport, was_finite: dict[str, bool]) -> None:
    """Make NaN/inf events visible: a broken centre and what replaced it, or a broken step."""
    for side in ("g", "d"):
        if was_finite[side]:
            continue
        parent = report.g.parent if side == "g" else report.d.parent
        outcome = (f"replaced by cell {parent}'s" if parent != report.cell
                   else "NOT replaced (no finite member was better)")
        log.warning("cell %d, generation %d: the centre %s had non-finite weights; %s",
                    report.cell, report.generation, side.upper(), outcome)
    if report.nonfinite:
        log.warning("cell %d, generation %d: training hit a non-finite loss after %d steps",
                    report.cell, report.generation, report.steps)


def _tensor(array: np.ndarray) -> Tensor:
    # the array is a read-only view of the object store; torch needs its own copy
    return torch.from_numpy(np.array(array, copy=True))
