"""The Ray backend: same results as the local pool, actor restarts, NaN centres, placement.

The session's Ray instance (conftest.py) serves the module, and one 2x2 pool (4 small actors)
serves every test that needs actors; each test first rolls the pool back to its initial states.
"""

from __future__ import annotations

import logging
import math
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import RULE_OVERRIDES, assert_same_state, comparable, tiny_toy_config

from raygan.config import ConfigError, ResourcesConfig, RunConfig
from raygan.distributed import (
    actor_options,
    cell_bundle,
    memory_fraction,
    validate_gpus,
)
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool

ray = pytest.importorskip("ray")

# half a CPU per cell: the 2x2 grid fits in 2 of the 4 logical CPUs, leaving room for restarts;
# generators keep a weight average, so snapshots carry it through the object store too
# own pairs with selection and elitist replacement, so a broken centre can be replaced
POOL_RULE = "own"
POOL_CONFIG: RunConfig = tiny_toy_config(
    **{**RULE_OVERRIDES[POOL_RULE], "resources.cpus_per_cell": 0.5, "training.g_ema": 0.9}
)
KILLED_RULES = ["lipizzaner", "fresh"]
"""The rules of `test_random_actor_kills_end_in_the_uninterrupted_state`: each of its runs
ends equal to the local pool's, so it compares these rules on Ray (and `POOL_RULE`'s pool
compares its rule, `test_ray_matches_local`) without a pool of their own (actors take
seconds to start)."""


# -- pure resource arithmetic ---------------------------------------------------------------
def test_cell_bundle_and_gpu_shares() -> None:
    assert cell_bundle(ResourcesConfig(cpus_per_cell=1.0)) == {"CPU": 1.0}
    assert cell_bundle(ResourcesConfig(cpus_per_cell=2, gpus_per_cell=0.25)) == {
        "CPU": 2.0, "GPU": 0.25}
    assert cell_bundle(ResourcesConfig(cpus_per_cell=0, gpus_per_cell=1)) == {"GPU": 1.0}
    with pytest.raises(ValueError, match="must reserve some resource"):
        cell_bundle(ResourcesConfig(cpus_per_cell=0, gpus_per_cell=0))
    assert memory_fraction(0.25) == 0.25
    assert memory_fraction(0.0) is None and memory_fraction(1.0) is None
    assert memory_fraction(2.0) is None
    for bad in (1.5, -0.5, math.nan):
        with pytest.raises(ValueError):
            validate_gpus(bad)
    assert validate_gpus(3) == 3.0
    with pytest.raises(ConfigError, match="gpus_per_cell"):
        ResourcesConfig(gpus_per_cell=1.5)


def test_actor_options_threads_and_visible_devices() -> None:
    cpu = actor_options(ResourcesConfig(cpus_per_cell=0.5))
    assert cpu["num_cpus"] == 0.5 and cpu["num_gpus"] == 0.0
    env = cpu["runtime_env"]["env_vars"]
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["OMP_NUM_THREADS"] == "1"
    gpu = actor_options(ResourcesConfig(cpus_per_cell=3, gpus_per_cell=0.5))
    assert gpu["num_gpus"] == 0.5
    assert "CUDA_VISIBLE_DEVICES" not in gpu["runtime_env"]["env_vars"]  # Ray sets it
    assert gpu["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == "3"
    assert ResourcesConfig(cpus_per_cell=3, torch_threads=2).cell_threads() == 2


def test_resource_helpers_do_not_import_ray() -> None:
    code = "import sys, raygan.distributed as d; d.cell_bundle; assert 'ray' not in sys.modules"
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=root)


# -- fixtures (`ray_session`, one Ray instance for the test session, is in conftest.py) -----
@pytest.fixture(scope="module")
def pool_and_start(ray_session: None) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """A 2x2 RayCellPool and its cells' initial states."""
    from raygan.distributed import RayCellPool

    pool = RayCellPool(POOL_CONFIG)
    try:
        yield pool, pool.state_dicts()
    finally:
        pool.close()


@pytest.fixture
def pool(pool_and_start: tuple[Any, list[dict[str, Any]]]) -> Any:
    """The module's pool, rolled back to generation 0."""
    ray_pool, start = pool_and_start
    ray_pool.load_state_dicts(start)
    return ray_pool


@pytest.fixture(scope="module")
def reference() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """History and final states of an uninterrupted local run of `POOL_CONFIG`."""
    local = LocalCellPool(POOL_CONFIG)
    controller = Controller(POOL_CONFIG, local)
    while not controller.done:
        controller.step()
    return controller.history, local.state_dicts()


# -- helpers --------------------------------------------------------------------------------
def _run(controller: Controller) -> None:
    while not controller.done:
        controller.step()


# -- the pool -------------------------------------------------------------------------------
def test_actors_are_cpu_only_with_one_thread(pool: Any) -> None:
    info = ray.get([a.ping.remote() for a in pool.actors])
    assert [i["cells"] for i in info] == [[0], [1], [2], [3]]
    assert all(i["device"] == "cpu" and i["threads"] == 1 for i in info)
    assert all(i["cuda_visible_devices"] == "" for i in info)
    assert len({i["pid"] for i in info}) == 4


def test_ray_matches_local(pool: Any, reference: tuple[list[Any], list[Any]]) -> None:
    history, states = reference
    controller = Controller(POOL_CONFIG, pool)
    _run(controller)
    assert len(controller.history) == len(history) == 12
    assert comparable(controller.history) == comparable(history)
    assert_same_state(pool.state_dicts(), states)
    # handles are references, and samples come back as torch tensors like the local pool's
    handles = pool.publish()
    assert all(isinstance(h, ray.ObjectRef) for h in handles)
    samples = pool.sample(0, controller.route(handles)[0], 50, seed=5)
    assert isinstance(samples, torch.Tensor) and samples.shape == (50, 2)
    centre = pool.sample(0, controller.route(handles)[0], 50, seed=5, centre_only=True)
    assert centre.shape == (50, 2) and not torch.equal(centre, samples)


@pytest.mark.parametrize(
    "rule", sorted(r for r in RULE_OVERRIDES if r not in (POOL_RULE, *KILLED_RULES)))
def test_every_rule_gives_the_same_results_on_ray(ray_session: None, rule: str) -> None:
    # the other rules are compared by the tests named at KILLED_RULES
    from raygan.distributed import RayCellPool

    # a 1x2 grid (two actors) per rule; `fresh` runs its rounds through the object store
    config = tiny_toy_config(**{
        **RULE_OVERRIDES[rule], "grid.cols": 2, "grid.rows": 1, "training.generations": 2,
        "training.max_batches": 6, "resources.cpus_per_cell": 0.5, "training.g_ema": 0.9,
    })
    local = LocalCellPool(config)
    expected = Controller(config, local)
    _run(expected)
    ray_pool = RayCellPool(config)
    try:
        controller = Controller(config, ray_pool)
        _run(controller)
        assert comparable(controller.history) == comparable(expected.history)
        assert_same_state(ray_pool.state_dicts(), local.state_dicts())
    finally:
        ray_pool.close()


def test_fresh_rounds_survive_an_actor_killed_mid_generation(
    ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raygan.distributed import RayCellPool

    config = tiny_toy_config(**{
        **RULE_OVERRIDES["fresh"], "grid.cols": 2, "grid.rows": 1, "training.generations": 2,
        "training.max_batches": 6, "resources.cpus_per_cell": 0.5,
    })
    local = LocalCellPool(config)
    expected = Controller(config, local)
    _run(expected)
    ray_pool = RayCellPool(config)
    publish, calls = ray_pool.publish, list[int]()

    def publish_then_kill() -> list[Any]:
        handles = publish()
        calls.append(len(calls))
        if len(calls) == 5:  # generation 1, its first refresh: the begin tasks already ran
            ray.kill(ray_pool.actors[1], no_restart=True)
        return handles

    monkeypatch.setattr(ray_pool, "publish", publish_then_kill)
    try:
        controller = Controller(config, ray_pool)
        _run(controller)
        assert ray_pool.restarts == 1
        assert comparable(controller.history) == comparable(expected.history)
        assert_same_state(ray_pool.state_dicts(), local.state_dicts())
    finally:
        ray_pool.close()


class _ChaosMonkey:
    """Kills cell actors of a `RayCellPool` at planned moments of a run.

    A moment is `(generation, phase, wait, cell)`. Phase "between" kills the actor before the
    controller's step for `generation`. Phases "generation" (`run_generation`), "rounds"
    (`run_rounds`) and "evaluation" (`evaluate`) kill it just before the driver's `wait`-th
    `ray.get` inside that call, counted from 1: the call's tasks are submitted, so the kill
    lands while they run; the waits of the pool's recovery count on, so a later `wait` kills
    during a retry (probing the actors, rolling them back, or the rerun itself).
    """

    def __init__(self, pool: Any, plan: list[tuple[int, str, int, int]],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        import raygan.distributed.pool as pool_module

        self.pool = pool
        self.plan = set(plan)
        self.killed: list[tuple[int, str, int, int]] = []
        self.generation = 0
        self._phase: str | None = None
        self._waits = 0
        real_get = pool_module.ray.get

        def get(*args: Any, **kwargs: Any) -> Any:
            if self._phase is not None:
                self._waits += 1
                self._kill(self._phase, self._waits)
            return real_get(*args, **kwargs)

        # the pool module's `ray`, with `get` counted; every other name is Ray's own
        monkeypatch.setattr(pool_module, "ray", _RayWith(get))
        for name, phase in (("run_generation", "generation"), ("run_rounds", "rounds"),
                            ("evaluate", "evaluation")):
            monkeypatch.setattr(pool, name, self._within(phase, getattr(pool, name)))

    def _within(self, phase: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self._phase, self._waits = phase, 0
            try:
                return method(*args, **kwargs)
            finally:
                self._phase = None
        return call

    def _kill(self, phase: str, wait: int) -> None:
        for moment in sorted(self.plan):
            if moment[:3] == (self.generation, phase, wait):
                ray.kill(self.pool.actors[moment[3]], no_restart=True)
                self.killed.append(moment)

    def run(self, controller: Controller) -> None:
        """Run the controller to the end, killing at the planned moments."""
        while not controller.done:
            self.generation = controller.generation
            self._kill("between", 0)
            controller.step()


class _RayWith:
    """The `ray` module with `get` replaced."""

    def __init__(self, get: Any) -> None:
        self.get = get

    def __getattr__(self, name: str) -> Any:
        return getattr(ray, name)


def _chaos_plan(
    seed: int, generations: int, evaluated: list[int], phase: str
) -> list[tuple[int, str, int, int]]:
    """Seeded kill moments (see `_ChaosMonkey`) of one run whose generations run in `phase`.

    One kill between generations, one during an evaluation, and two in one generation: the
    first while its tasks run (mid-round for "rounds"), the second somewhere in the recovery
    from the first.
    """
    rng = random.Random(seed)
    between, twice = rng.sample(range(generations), 2)
    first, second = rng.sample(range(4), 2)
    # run_rounds waits for its begin tasks (1), then for all its rounds' tasks (2)
    running = 2 if phase == "rounds" else 1
    # the recovery's waits: one probe per actor, the roll-back, the rerun (rounds: two waits)
    recovery = (running + 1, running + 6 + (phase == "rounds"))
    return [
        (between, "between", 0, rng.randrange(4)),
        (rng.choice(evaluated), "evaluation", 1, rng.randrange(4)),
        (twice, phase, running, first),
        (twice, phase, rng.randint(*recovery), second),
    ]


@pytest.mark.parametrize("rule", KILLED_RULES)
def test_random_actor_kills_end_in_the_uninterrupted_state(
    ray_session: None, rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raygan.distributed import RayCellPool

    # every kill costs an actor restart, a worker process start (seconds): a few per run, an
    # actor killed between generations and one while a generation's tasks run among them (each
    # (generation, cell) then reported once: the history equals the uninterrupted one)
    generations = 5
    config = tiny_toy_config(**{
        **RULE_OVERRIDES[rule], "training.generations": generations, "training.max_batches": 6,
        "metrics.every": 2, "resources.cpus_per_cell": 0.5, "training.g_ema": 0.9,
    })
    local = LocalCellPool(config)
    expected = Controller(config, local)
    _run(expected)

    evaluated = [g for g in range(generations) if (g + 1) % 2 == 0]
    phase = "rounds" if rule == "fresh" else "generation"
    # seed 133: the second kill of generation 2 hits an actor the recovery's probe has just
    # seen alive (lipizzaner), or the rerun's rounds (fresh)
    plan = _chaos_plan(seed=133, generations=generations, evaluated=evaluated, phase=phase)
    if rule == "fresh":  # kills between generations and in evaluations are the same for every
        plan = [moment for moment in plan if moment[1] == phase]  # rule: the other run has them
    ray_pool = RayCellPool(config)
    try:
        monkey = _ChaosMonkey(ray_pool, plan, monkeypatch)
        controller = Controller(config, ray_pool)
        monkey.run(controller)
        assert sorted(monkey.killed) == sorted(plan), "a planned kill did not happen"
        assert ray_pool.restarts == len(plan)  # and each dead actor was recreated once
        assert comparable(controller.history) == comparable(expected.history)
        assert comparable(controller.summaries) == comparable(expected.summaries)
        assert_same_state(ray_pool.state_dicts(), local.state_dicts())
        if rule == "fresh":  # one neighbour refresh a generation, every round on Ray
            assert all(row["exchanges"] == 1 for row in controller.history)
    finally:
        ray_pool.close()


def test_error_in_cell_code_is_not_retried(pool: Any) -> None:
    before = pool.restarts
    routed = Controller(POOL_CONFIG, pool).route(pool.publish())
    routed[0] = routed[0][::-1]  # cell 0 gets its neighbours in the wrong order
    with pytest.raises(ray.exceptions.RayTaskError, match="expects neighbours"):
        pool.run_generation(0, routed)
    assert pool.restarts == before
    # the cells that did finish were rolled back to the restart point
    live = ray.get([a.state_dict.remote() for a in pool.actors])
    assert [s["generation"] for states in live for s in states] == [0, 0, 0, 0]


def test_gives_up_after_max_retries(pool: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def always_lost(generation: int, inputs: Any) -> Any:
        calls.append(generation)
        raise ray.exceptions.RayActorError()

    monkeypatch.setattr(pool, "_submit_generation", always_lost)
    monkeypatch.setattr(pool, "max_retries", 1)
    routed = Controller(POOL_CONFIG, pool).route(pool.publish())
    with pytest.raises(RuntimeError, match="failed 2 times .* giving up"):
        pool.run_generation(0, routed)
    assert calls == [0, 0]


def test_nan_centre_is_replaced_by_a_neighbour(
    pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    states = pool.state_dicts()
    for side in ("g", "d"):
        for tensor in states[0][side]["net"].values():
            if tensor.is_floating_point():
                tensor.fill_(math.nan)
    pool.load_state_dicts(states)
    controller = Controller(POOL_CONFIG, pool)
    with caplog.at_level(logging.WARNING, logger="raygan.distributed.pool"):
        report = controller.step().reports[0]
    neighbours = set(controller.neighbourhoods[0][1:])
    assert report.g.parent in neighbours and report.d.parent in neighbours
    assert math.isfinite(report.g.fitness) and math.isfinite(report.d.fitness)
    after = pool.state_dicts()[0]
    for side in ("g", "d"):
        for name, tensor in after[side]["net"].items():
            assert bool(torch.isfinite(tensor).all()), f"{side}.{name} still non-finite"
    assert "non-finite weights; replaced by cell" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fractional_gpu_cells(ray_session: None) -> None:
    from raygan.distributed import RayCellPool

    config = tiny_toy_config(**{"resources.cpus_per_cell": 0.5, "resources.gpus_per_cell": 0.25,
                                "training.device": "auto", "training.generations": 1})
    gpu_pool = RayCellPool(config)
    try:
        info = ray.get([a.ping.remote() for a in gpu_pool.actors])
        assert all(i["device"].startswith("cuda") for i in info)
        controller = Controller(config, gpu_pool)
        _run(controller)
        assert len(controller.history) == 4
    finally:
        gpu_pool.close()
