"""Requests that cannot be met end in one line: memory, CPUs and GPUs, placement on a cluster;
and a local Ray that raygan starts listens on 127.0.0.1 only, with token auth and no warning.

The session's Ray instance (conftest.py, 4 logical CPUs, started by this process) stands for a
cluster raygan started itself; patching `cluster_is_private` makes it one raygan joined.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_toy_config

from raygan.cli import main
from raygan.config import ResourcesConfig
from raygan.distributed.resources import fitting_shares, trial_bundles, trials_at_once, unmet
from raygan.engine import capacity
from raygan.engine.capacity import GIB, CapacityError, check_memory, estimate_memory

REPO = Path(__file__).resolve().parent.parent
ray = pytest.importorskip("ray")


def _groups() -> set[str]:
    table = ray.util.placement_group_table()
    return {pg_id for pg_id, info in table.items() if info["state"] != "REMOVED"}


# -- pure arithmetic ------------------------------------------------------------------------
def test_unmet_names_what_no_cluster_of_these_nodes_can_place() -> None:
    node = {"CPU": 2.0, "memory": 8e9}
    assert unmet([{"CPU": 1.0}, {"CPU": 1.0}], [node]) is None
    assert unmet([{}, {"CPU": 1.0}] * 5, [node]) == "5 CPU in all, the cluster has 2"
    assert unmet([{"GPU": 0.5}], [node]) == "0.5 GPU in all, the cluster has 0"
    assert unmet([{"CPU": 3.0}], [node, node]) == "a bundle of {CPU: 3}, which no node has"
    assert "STRICT_PACK" in str(unmet([{"CPU": 2.0}] * 2, [node, node], "STRICT_PACK"))
    assert "STRICT_SPREAD" in str(unmet([{"CPU": 1.0}] * 2, [node], "STRICT_SPREAD"))


def test_fitting_shares_and_trials_at_once() -> None:
    ray_res = ResourcesConfig(backend="ray", controller_cpus=1.0)
    # a 3x3 Tune trial asks 1 + 9 CPUs; on 2 CPUs each cell may have (2 - 1) / 9
    assert fitting_shares(ray_res, 9, {"CPU": 2.0}, tune=True) == [
        "resources.cpus_per_cell <= 0.1111", "resources.backend local"]
    assert fitting_shares(ray_res, 9, {"CPU": 2.0}, tune=False) == [
        "resources.cpus_per_cell <= 0.2222", "resources.backend local"]
    local = ResourcesConfig(cpus_per_cell=4.0)
    assert fitting_shares(local, 9, {"CPU": 2.0}, tune=True) == ["resources.cpus_per_cell <= 2"]
    one = trial_bundles(ResourcesConfig(), 4)  # backend local: one cell's share per trial
    assert trials_at_once(one, {"CPU": 4.0}, trials=6, limit=None) == 4
    assert trials_at_once(one, {"CPU": 4.0}, trials=6, limit=2) == 2
    assert trials_at_once(one, {"CPU": 4.0}, trials=3, limit=None) == 3


def test_memory_estimate_grows_with_neighbours_data_copies_and_processes() -> None:
    base = tiny_toy_config()
    plain = estimate_memory(base, ray=False, tune=False)
    moore = estimate_memory(base.replace(**{"grid.neighbourhood": "moore"}), ray=False, tune=False)
    assert moore.cell_bytes > plain.cell_bytes and plain.processes == 1
    copies = estimate_memory(base.replace(**{"data.sharding": "replicate"}), ray=False, tune=False)
    assert copies.cell_bytes - plain.cell_bytes == pytest.approx(1600 * 8 * 3 / 4)
    actors = estimate_memory(base.replace(**{"resources.backend": "ray"}), ray=True, tune=True)
    assert actors.processes == 5  # 4 cell actors + the trial, beside the driver and Ray's
    assert actors.fixed_bytes > plain.fixed_bytes
    # measured: a plain run of 36 toy cells (256-unit MLPs) peaked at 1067 MiB
    toy = tiny_toy_config(**{"grid.rows": 6, "grid.cols": 6, "networks.g_hidden": 256,
                             "networks.d_hidden": 256, "networks.latent_dim": 64})
    assert 0.8 * 1067 < estimate_memory(toy, ray=False, tune=False).total / 2**20 < 1.2 * 1067


def test_memory_check_says_what_fits() -> None:
    config = tiny_toy_config(**{"grid.rows": 30, "grid.cols": 30})
    need = estimate_memory(config, ray=False, tune=False).total
    room = int((need + estimate_memory(config, ray=False, tune=False, cells=0).total) / 2)
    with pytest.raises(CapacityError) as info:
        check_memory(config, ray=False, tune=False, available=room)
    message = str(info.value)
    assert "\n" not in message and message.startswith("grid.rows, grid.cols: a 30x30 grid")
    assert "--force" in message
    fits = int(message.split("at most about ")[1].split(" cells")[0])
    assert 0 < fits < 900
    assert estimate_memory(config, ray=False, tune=False, cells=fits).total <= room
    assert estimate_memory(config, ray=False, tune=False, cells=fits + 1).total > room
    assert check_memory(config, ray=False, tune=False, available=1, force=True).total == need


def test_cli_refuses_a_grid_beyond_memory_in_one_line_and_force_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(capacity, "available_memory", lambda: GIB // 2)  # a 0.5 GiB machine
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({"name": "tiny", "data": {"samples": 400},
                                  "networks": {"latent_dim": 8, "g_hidden": 16, "d_hidden": 16,
                                               "hidden_layers": 1},
                                  "evolution": {"fitness_sample_size": 100},
                                  "mixture": {"samples": 100}, "metrics": {"samples": 100},
                                  "training": {"generations": 1, "batch_size": 50,
                                               "device": "cpu"}}))
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("raygan: error: grid.rows, grid.cols: a 2x2 grid")
    assert "0.5 GiB available" in err[0]
    assert not out.exists() or not any(out.iterdir())
    assert main(["train", str(config), "--out", str(out), "--quiet", "--force"]) == 0
    assert (out / "final.json").is_file()


# -- against the session's cluster ----------------------------------------------------------
def test_cell_actors_beyond_raygans_own_ray_are_refused_at_once(ray_session: None) -> None:
    from raygan.distributed import RayCellPool

    config = tiny_toy_config(**{"resources.cpus_per_cell": 64.0})
    before, start = _groups(), time.perf_counter()
    with pytest.raises(CapacityError) as info:
        RayCellPool(config)
    assert time.perf_counter() - start < 10  # not placement_timeout_s (60 s)
    message = str(info.value)
    assert "\n" not in message and "asks 256 CPU in all, the cluster has 4" in message
    assert "resources.cpus_per_cell <= 1" in message and "--force" in message
    assert _groups() == before


def test_placement_on_a_joined_cluster_ends_after_the_timeout_in_one_line(
    ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raygan.distributed import RayCellPool, session

    monkeypatch.setattr(session, "cluster_is_private", lambda: False)  # may be autoscaling
    config = tiny_toy_config(**{"resources.cpus_per_cell": 64.0,
                                "resources.placement_timeout_s": 3.0})
    before, start = _groups(), time.perf_counter()
    with pytest.raises(CapacityError) as info:
        RayCellPool(config)
    assert 3 <= time.perf_counter() - start < 15
    message = str(info.value)
    assert "\n" not in message and "4 bundles of {'CPU': 64.0}" in message
    assert f"the cluster has {{CPU: {ray.cluster_resources()['CPU']:g}" in message
    assert "placement_timeout_s=3s" in message
    assert _groups() == before  # the failed group was removed


def test_tune_trials_beyond_the_cluster_end_in_one_line(
    ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raygan.distributed import session
    from raygan.tuning.experiment import run_experiment

    # backend ray: the controller's CPU + 4 cells = 5 CPUs per trial, on 4
    config = tiny_toy_config(**{"resources.backend": "ray", "resources.placement_timeout_s": 2.0})
    start = time.perf_counter()
    with pytest.raises(CapacityError) as info:
        run_experiment(config, sweep=False, storage_path=str(tmp_path), quiet=True)
    assert time.perf_counter() - start < 10
    assert "a Tune trial of a 2x2 grid (backend ray) asks 5 CPU in all, the cluster has 4" in str(
        info.value)
    assert "resources.cpus_per_cell <= 0.75" in str(info.value)
    assert not list(tmp_path.rglob("experiment_state-*.json"))
    # a cluster raygan joined: the probe waits placement_timeout_s, then the same one line
    monkeypatch.setattr(session, "cluster_is_private", lambda: False)
    before = _groups()
    with pytest.raises(CapacityError, match="placement_timeout_s=2s"):
        session.check_trials(config, sweep=False)
    assert _groups() == before
    session.check_trials(config, sweep=False, force=True)  # nodes may join: no wait at all


def test_an_autoscaling_cluster_gets_time_to_start_nodes(
    ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raygan.distributed import session

    res = ResourcesConfig(placement_timeout_s=60.0)
    assert session.placement_wait_s(res) == 60.0  # raygan's own Ray: nothing can join
    monkeypatch.setattr(session, "cluster_is_private", lambda: False)
    assert session.placement_wait_s(res) == 60.0  # e.g. `ray start` on this machine
    monkeypatch.setenv("RAY_CLUSTER_NAME", "raygan")  # KubeRay's pods
    assert session.placement_wait_s(res) == session.AUTOSCALER_WAIT_S
    assert session.placement_wait_s(ResourcesConfig(placement_timeout_s=3600.0)) == 3600.0


def test_tune_memory_counts_the_trials_that_run_at_once(
    ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raygan.distributed import session

    monkeypatch.setattr(capacity, "available_memory", lambda: 2 * GIB)
    config = tiny_toy_config(**{"tune.num_samples": 6, "tune.max_concurrent_trials": 3})
    session.check_trials(config, sweep=False)  # one trial fits in 2 GiB, three do not
    with pytest.raises(CapacityError, match=r"x 3 trials at once \(tune.max_concurrent_trials\)"):
        session.check_trials(config, sweep=True)
    session.check_trials(config, sweep=True, force=True)


# -- a local Ray started by raygan -----------------------------------------------------------
_LOCAL_RAY = """
import json, os, sys
import ray
import psutil  # Ray's own copy, on sys.path once ray is imported
from raygan.distributed.session import ensure_ray
ensure_ray(num_cpus=1)
ray.get(ray.remote(lambda: 1).remote())
session = ray._private.worker._global_node.get_session_dir_path()
me = psutil.Process()
procs = [me, *me.children(recursive=True)]
for p in psutil.process_iter():
    try:
        if session in " ".join(p.cmdline()):
            procs.append(p)
    except psutil.Error:
        pass
listening = set()
for p in procs:
    try:
        listening |= {(c.laddr.ip, p.name()) for c in p.net_connections("inet")
                      if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        pass
print(json.dumps({"listening": sorted(listening), "auth": os.environ.get("RAY_AUTH_MODE")}))
ray.shutdown()
"""


@pytest.mark.slow
def test_local_ray_listens_on_loopback_only_with_a_token_and_no_warning(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env["HOME"] = str(tmp_path)  # Ray keeps its token in ~/.ray/auth_token
    done = subprocess.run([sys.executable, "-c", _LOCAL_RAY], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    names = {name for _, name in report["listening"]}
    assert {"gcs_server", "raylet"} <= names, report
    outward = [(ip, name) for ip, name in report["listening"]
               if ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert not outward, outward
    assert report["auth"] == "token" and (tmp_path / ".ray" / "auth_token").is_file()
    assert "Token authentication" not in done.stderr and "RAY_AUTH_MODE" not in done.stderr
