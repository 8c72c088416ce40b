"""A results folder from someone else runs nothing: `report`, `sample` and `resume` read it
without unpickling (issue 28).

One tiny experiment is trained; each test copies it and plants pickles whose loading runs
`touch MARKER`: a `CLOUDPICKLE_FALLBACK` entry and hex-pickled fields in the experiment state,
`tuner.pkl` and the searcher state (which raygan rewrites before resuming), or a callback state
(which it refuses).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from conftest import tiny_toy_config

from raygan.cli import main

pytest.importorskip("ray.tune")

from raygan.tuning.experiment import run_experiment  # noqa: E402
from raygan.tuning.results import load_trials  # noqa: E402


class _Touch:
    """Unpickling it runs `touch <path>`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)


@pytest.fixture(scope="module")
def finished(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-trial experiment of 2 generations, a checkpoint after each."""
    config = tiny_toy_config(**{"training.generations": 2, "output.checkpoint_every": 1})
    path, results = run_experiment(config, sweep=False, quiet=True,
                                   storage_path=str(tmp_path_factory.mktemp("results")))
    assert not results.errors
    return Path(path)


def _planted(finished: Path, tmp_path: Path, interrupted: bool = False) -> tuple[Path, Path]:
    """A copy of the experiment with the malicious pickles in place, and the marker they
    would create; `interrupted`: as if the driver died before the trial's last generation."""
    experiment, marker = tmp_path / "tiny", tmp_path / "MARKER"
    shutil.copytree(finished, experiment)
    blob = pickle.dumps(_Touch(marker))
    fallback = {"_type": "CLOUDPICKLE_FALLBACK", "value": blob.hex()}
    (state_file,) = experiment.glob("experiment_state-*.json")
    state = json.loads(state_file.read_text())
    state["runner_data"]["_stopper"] = fallback
    trial, meta = (json.loads(part) for part in state["trial_data"][0])
    trial.update(trial_name_creator=fallback, placement_group_factory=blob.hex())
    meta["checkpoint_manager"] = fallback
    if interrupted:
        trial["status"] = "RUNNING"
        (last,) = experiment.glob("trial_*/checkpoint_000001")
        shutil.rmtree(last)
    state["trial_data"][0] = [json.dumps(trial), json.dumps(meta)]
    state_file.write_text(json.dumps(state))
    (experiment / "tuner.pkl").write_bytes(blob)
    for searcher in experiment.glob("basic-variant-state-*.json"):
        searcher.write_bytes(blob)
    return experiment, marker


def test_report_and_sample_read_a_planted_folder_without_running_it(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    experiment, marker = _planted(finished, tmp_path)
    assert main(["report", str(experiment)]) == 0
    assert main(["sample", str(experiment), "-n", "16", "--out", str(tmp_path / "s.npy")]) == 0
    assert not marker.exists()
    (record,) = load_trials(experiment)
    assert record.status == "TERMINATED" and record.last["generation"] == 2
    assert record.trial_id in capsys.readouterr().out
    assert (experiment / "report.html").is_file() and (tmp_path / "s.npy").is_file()


def test_resume_rewrites_what_tune_would_unpickle_and_finishes(
    finished: Path, tmp_path: Path
) -> None:
    experiment, marker = _planted(finished, tmp_path, interrupted=True)
    assert main(["resume", str(experiment)]) == 0
    assert not marker.exists()
    (record,) = load_trials(experiment)
    assert record.status == "TERMINATED" and record.last["generation"] == 2
    assert record.last["training_iteration"] == 2  # the count goes on from the checkpoint
    assert (record.path / "checkpoint_000001" / "checkpoint.pt").is_file()


def test_resume_refuses_a_pickle_it_would_not_rewrite(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    experiment, marker = _planted(finished, tmp_path, interrupted=True)
    planted = experiment / "callback-states-2026-01-01_00-00-00.pkl"
    planted.write_bytes(pickle.dumps({"callbacks": _Touch(marker)}))
    assert main(["resume", str(experiment)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"raygan: error: {planted}: "), err
    assert err.count("\n") <= 2 and "Traceback" not in err  # "resuming DIR", then the error
    assert not marker.exists()
