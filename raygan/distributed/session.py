"""Starting or joining Ray, and checking that a run's request can be placed on the cluster.

A local Ray instance that raygan starts is private to the run: it binds to 127.0.0.1 only
and uses Ray's token authentication (its default since Ray 2.60), chosen explicitly so Ray
prints no warning about it. A cluster raygan joins keeps its own settings.

What a run asks for is compared with the cluster before anything waits for it. A cluster
that raygan started cannot grow, so a request beyond it is refused at once; any other
cluster may be autoscaling, so raygan reserves the request for up to
`resources.placement_timeout_s` (at least `AUTOSCALER_WAIT_S` where an autoscaler runs) and
gives up with one line if it is never placed.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group

from raygan.config import ResourcesConfig, RunConfig, specs
from raygan.data import Dataset
from raygan.distributed.resources import fitting_shares, trial_bundles, trials_at_once, unmet
from raygan.engine.capacity import CapacityError, check_memory
from raygan.engine.task import grid_of

log = logging.getLogger(__name__)

AUTH_MODE = "RAY_AUTH_MODE"

AUTOSCALER_WAIT_S = 600.0
"""The least time a request waits for nodes where an autoscaler runs: a cloud takes minutes to
start a (spot GPU) node, and the shipped cluster files scale their workers from zero."""


def ensure_ray(*, cpus: float = 0.0, **init_kwargs: Any) -> None:
    """Start or join Ray if this process has not.

    Joins `RAY_ADDRESS` when it is set (as under `ray job submit`), else the cluster of the last
    `ray start` on this machine, else starts a private local instance on 127.0.0.1.

    Args:
        cpus: logical CPUs a private instance gets at least (`--force`: a request beyond the
            cores runs oversubscribed); 0: as many as the machine has.
        init_kwargs: more `ray.init` arguments (e.g. `logging_level`).
    """
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **init_kwargs)
        return
    from ray._private.services import canonicalize_bootstrap_address

    # the last `ray start` here, if it is running
    started = canonicalize_bootstrap_address(None)  # type: ignore[arg-type]
    if started is not None:
        _choose_auth(new_cluster=False)
        ray.init(address=started, **init_kwargs)
        return
    _choose_auth(new_cluster=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cpus > (cores or 1):
        init_kwargs.setdefault("num_cpus", math.ceil(cpus - 1e-9))
    # a local instance's dashboard would only cost start-up time
    init_kwargs.setdefault("include_dashboard", False)
    with _loopback_only():
        ray.init(address="local", _node_ip_address="127.0.0.1", **init_kwargs)


def _choose_auth(new_cluster: bool) -> None:
    """Set `RAY_AUTH_MODE` as Ray would, so that it does not warn about its choice.

    Ray enables token authentication for a new local instance (creating ~/.ray/auth_token),
    and when joining a local cluster while a token exists; an explicit setting stays.
    """
    if AUTH_MODE in os.environ:
        return
    from ray._private.authentication.authentication_token_setup import _enable_token_auth
    from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]

    if new_cluster or AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        _enable_token_auth()  # what Ray does itself, minus the warning


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Make Ray take 127.0.0.1 as this node's address, so GCS, raylet, object manager, agents
    and metrics listen there only.

    `ray.init(_node_ip_address="127.0.0.1")` alone is turned into the machine's outward address
    on Linux (`resolve_ip_for_localhost`); Ray keeps the loopback address only where it treats
    the machine as unfit for clusters, which it decides from this constant.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def cluster_is_private() -> bool:
    """True when this process started the Ray instance it is connected to (`ray.init` without
    an address): a single machine no node joins, whose resources are fixed."""
    node = ray._private.worker._global_node
    return bool(ray.is_initialized() and node is not None and node.ray_init_cluster)


def check_request(
    bundles: list[dict[str, float]],
    res: ResourcesConfig,
    what: str,
    *,
    advice: list[str] | None = None,
    force: bool = False,
    probe: bool = False,
) -> None:
    """Refuse a placement request the cluster can never hold, in one line.

    Args:
        bundles: the placement group's bundles.
        res: the run's resources section (strategy, timeout).
        what: who asks, for the message ("a Tune trial of a 3x3 grid").
        advice: settings that would fit, for the message (`fitting_shares`).
        force: on a cluster raygan did not start, wait for nodes as long as it takes.
        probe: on a cluster raygan did not start, reserve the request (up to
            `placement_timeout_s`, which lets an autoscaler add nodes) and release it again.

    Raises:
        CapacityError: on a private instance at once; on any other cluster after
            `placement_timeout_s` of waiting (`probe`).
    """
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    problem = unmet(bundles, nodes, res.placement_strategy)
    if problem is None:
        return
    if cluster_is_private():
        ways = list(advice or [])
        without_cpus = [{k: v for k, v in b.items() if k != "CPU"} for b in bundles]
        if not force and unmet(without_cpus, nodes, res.placement_strategy) is None:
            ways.append("--force to give it that many logical CPUs (the cores are then "
                        "oversubscribed)")
        ways.append("a cluster (cluster/README.md)")
        raise CapacityError(f"resources: {what} asks {problem} (raygan's own Ray on this "
                            "machine); use " + ", or ".join(ways))
    if force or not probe:
        return
    remove_placement_group(reserve(bundles, res, what))


def reserve(bundles: list[dict[str, float]], res: ResourcesConfig, what: str) -> PlacementGroup:
    """A ready placement group of `bundles`, waiting at most `placement_wait_s(res)`.

    Raises:
        CapacityError: one line with what the cluster has, when the group is not placed in time.
    """
    wait = placement_wait_s(res)
    pg = placement_group([b for b in bundles if b], strategy=res.placement_strategy)
    try:
        ray.get(pg.ready(), timeout=wait)
    except GetTimeoutError:
        remove_placement_group(pg)
        floor = (f" (at least {AUTOSCALER_WAIT_S:g}s with an autoscaler)"
                 if wait > res.placement_timeout_s else "")
        raise CapacityError(
            f"resources: could not reserve {what} within placement_timeout_s="
            f"{res.placement_timeout_s:g}s{floor}; the cluster has "
            f"{fmt(ray.cluster_resources())} in total, {fmt(ray.available_resources())} "
            "available. Lower resources.cpus_per_cell "
            "/ resources.gpus_per_cell, use a smaller grid (grid.rows, grid.cols), relax "
            "resources.placement_strategy (PACK or SPREAD), raise resources.placement_timeout_s "
            "if nodes are still joining, or add nodes to the cluster"
        ) from None
    return pg


def placement_wait_s(res: ResourcesConfig) -> float:
    """How long a placement group may wait for nodes: `res.placement_timeout_s`, and at least
    `AUTOSCALER_WAIT_S` on a cluster with an autoscaler."""
    if not cluster_is_private() and _may_autoscale():
        return max(res.placement_timeout_s, AUTOSCALER_WAIT_S)
    return res.placement_timeout_s


def _may_autoscale() -> bool:
    # Ray's cluster launcher leaves its config on the head node, where jobs run (Ray Tune tests
    # the same file); KubeRay names the cluster in every pod's environment
    bootstrap = Path("~/ray_bootstrap_config.yaml").expanduser()
    return bootstrap.exists() or "RAY_CLUSTER_NAME" in os.environ


def check_trials(
    config: RunConfig, *, sweep: bool, force: bool = False, dataset: Dataset | None = None
) -> None:
    """Refuse Tune trials of `config` that the cluster cannot place or, on raygan's own local
    instance, that this machine's memory cannot hold (see `check_request`, `check_memory`;
    `dataset`: the loaded training set, whose size the memory estimate counts).

    Raises:
        CapacityError: one line, unless `force` (for what a user may know better).
    """
    res = config.resources
    n = grid_of(config).size
    bundles = trial_bundles(res, n)
    cluster = ray.cluster_resources()
    what = f"a Tune trial of a {config.grid.rows}x{config.grid.cols} grid (backend {res.backend})"
    check_request(bundles, res, what, advice=fitting_shares(res, n, cluster, tune=True),
                  force=force, probe=True)
    if cluster_is_private():
        at_once = trials_at_once(bundles, cluster, _trial_count(config, sweep),
                                 config.tune.max_concurrent_trials)
        check_memory(config, ray=True, tune=True, trials=at_once, force=force, dataset=dataset)


def trial_cpus(config: RunConfig) -> float:
    """Logical CPUs one Tune trial of `config` reserves."""
    return sum(b.get("CPU", 0.0) for b in trial_bundles(config.resources, grid_of(config).size))


def _trial_count(config: RunConfig, sweep: bool) -> int:
    """Trials of the experiment: `tune.num_samples` times every grid domain's values."""
    if not sweep:
        return 1
    t = config.tune
    grids = [len(d.values()) for d in t.space.values() if d.grid is not None]
    population = specs.scheduler(t.scheduler).population  # the scheduler draws the trials
    return t.num_samples * (1 if population else math.prod(grids))


def fmt(resources: dict[str, float]) -> str:
    """CPU, GPU and memory of a Ray resource dict, readable ("{CPU: 4, memory: 7.5 GiB}")."""
    parts = []
    for key in ("CPU", "GPU", "memory"):
        if key in resources:
            value = resources[key]
            parts.append(f"memory: {value / 2**30:.1f} GiB" if key == "memory"
                         else f"{key}: {value:g}")
    return "{" + ", ".join(parts) + "}"
