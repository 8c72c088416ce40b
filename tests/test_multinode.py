"""Losing a node of a multi-node Ray cluster in the middle of a Tune run of a 1x2 grid.

`tests/node_loss.py` runs the scenario in a process of its own: a `ray.cluster_utils.Cluster`
(a head and two worker nodes on this machine) cannot share a process with the test session's
Ray instance. This test checks what it reports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray.tune")

HERE = Path(__file__).resolve().parent


def _kill_processes_mentioning(text: str) -> None:
    """SIGKILL whatever still runs with `text` (our private Ray directory) in its command."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


@pytest.mark.slow
def test_a_lost_node_ends_in_the_uninterrupted_state_after_tune_restores_the_trial() -> None:
    temp_dir = Path(tempfile.mkdtemp(prefix="rgn"))  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        # the cluster's files, and its address file, stay out of /tmp/ray: another process's
        # plain `ray.init()` must not join it
        RAY_TMPDIR=str(temp_dir), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p),
    )
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "node_loss.py"), str(temp_dir)],
            env=env, capture_output=True, text=True, timeout=400, cwd=HERE.parent,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        facts = json.loads((temp_dir / "facts.json").read_text())
    finally:
        _kill_processes_mentioning(str(temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)

    workers, removed, replacement = set(facts["workers"]), facts["removed"], facts["replacement"]
    # the grid spanned both worker nodes (a cell each), and one of them was lost
    assert set(facts["before"]) == workers and removed in workers
    assert sorted(facts["before"].count(node) for node in workers) == [1, 1]
    # the restored trial's cells run on the surviving worker and the replacement
    assert set(facts["after"]) == (workers - {removed}) | {replacement}
    # the pool could not rerun the generation (its restart point was on the lost node) and
    # said so at once, so Tune restored the trial from its last checkpoint, and it ran on
    assert "generation 3: the cells' restart point" in facts["error"], facts["error"][-3000:]
    assert "after cell actor failures" not in facts["error"]  # no retries in vain first
    assert (facts["status"], facts["failures"], facts["errors"]) == ("TERMINATED", 1, 0)
    assert facts["generation"] == 4  # node_loss.GENERATIONS
    assert facts["differences"] == []  # history, scores and every cell as uninterrupted
