"""Ray Tune layer: `raygan train/tune/resume/sample/report`, checkpoints, restarts, PBT.

Trials use `backend: local` (one actor per trial) on the session's Ray instance (conftest.py);
one test kills a `raygan train` driver that runs its own Ray instance in a subprocess.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from browser import check_page, chromium
from conftest import RULE_OVERRIDES, assert_same_state, config_error, tiny_toy_config

from raygan.cli import main
from raygan.config import RunConfig, config_from_dict, load_config
from raygan.config.tune import clamp_to_space, perturbation_bounds
from raygan.distributed.resources import trial_bundles
from raygan.engine.checkpoint import load_checkpoint

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402

from raygan.core.report import report_fields, scalar_fields  # noqa: E402
from raygan.engine.history import read_history  # noqa: E402
from raygan.reporting.lineage import read_exploits  # noqa: E402
from raygan.reporting.report import write_report  # noqa: E402
from raygan.tuning.experiment import (  # noqa: E402
    make_scheduler,
    param_space,
    run_experiment,
)
from raygan.tuning.results import latest_checkpoint, load_trials  # noqa: E402
from raygan.tuning.trainable import (  # noqa: E402
    CoevolutionTrainable,
    run_config_of,
    trial_config,
    with_absolute_paths,
)

ROOT = Path(__file__).resolve().parent.parent
GENERATIONS = 6
# evaluations every 2 generations (so results carry scores forward), a checkpoint every one:
# the restarts below kill a trial at generation 5 and a driver after generation 2
TRAIN_CONFIG: RunConfig = tiny_toy_config(
    **{"training.generations": GENERATIONS, "metrics.every": 2, "output.checkpoint_every": 1,
       "output.figures": True}
)
RESTART_CONFIG: RunConfig = TRAIN_CONFIG.replace(**{"output.figures": False})
"""`TRAIN_CONFIG` without figures, for the restarts that compare their ends with `trained`:
figures change neither (tests/test_engine.py), and drawing them is most of a generation."""


def _write(config: RunConfig, path: Path, extra: dict[str, Any] | None = None) -> Path:
    data = config.to_dict()
    for section, values in (extra or {}).items():
        data[section] = {**data.get(section, {}), **values}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if p.is_dir() and p.name.startswith("trial_"))


def _history(experiment: Path) -> pd.DataFrame:
    (trial,) = _trial_dirs(experiment)
    return read_history(trial / "history.parquet").drop(columns="seconds")


def _final_scores(experiment: Path) -> dict[str, float]:
    (record,) = load_trials(experiment)
    return {k: v for k, v in record.last.items() if k.startswith("best/")}


def _final_cells(experiment: Path) -> list[dict[str, Any]]:
    (trial,) = _trial_dirs(experiment)
    found = latest_checkpoint(trial)
    assert found is not None
    _, controller, cells = load_checkpoint(found)
    assert controller["generation"] == GENERATIONS
    return cells


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`TRAIN_CONFIG` as a YAML file."""
    return _write(TRAIN_CONFIG, tmp_path_factory.mktemp("cfg") / "tiny.yaml")


@pytest.fixture(scope="module")
def trained(
    ray_session: None, config_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An uninterrupted `raygan train` of `TRAIN_CONFIG`; the experiment directory."""
    storage = tmp_path_factory.mktemp("results")
    assert main(["train", str(config_file), "--storage", str(storage), "--quiet"]) == 0
    return storage / "tiny"


# -- without a cluster ----------------------------------------------------------------------
def test_trial_resources_are_one_bundle_per_cell_plus_the_controller() -> None:
    ray_cfg = tiny_toy_config(**{"resources.backend": "ray", "resources.cpus_per_cell": 2.0,
                                 "resources.gpus_per_cell": 0.25})
    assert trial_bundles(ray_cfg.resources, 4) == [{"CPU": 1.0}] + [{"CPU": 2.0, "GPU": 0.25}] * 4
    no_head = ray_cfg.replace(**{"resources.controller_cpus": 0.0})
    assert trial_bundles(no_head.resources, 2) == [{}] + [{"CPU": 2.0, "GPU": 0.25}] * 2
    # backend local: the trial process runs the cells in turn, so it reserves one cell's share
    assert trial_bundles(TRAIN_CONFIG.resources, 4) == [{"CPU": 1.0}]
    factory = CoevolutionTrainable.default_resource_request(trial_config(ray_cfg))
    assert factory.bundles == [{"CPU": 1.0}] + [{"CPU": 2.0, "GPU": 0.25}] * 4
    gpu = load_config(ROOT / "tune_configs" / "pbt_toy_gpu.yaml")
    bundles = CoevolutionTrainable.default_resource_request(trial_config(gpu)).bundles
    assert len(bundles) == 1 + 25 and bundles[1] == {"CPU": 1.0, "GPU": 0.25}


@pytest.mark.parametrize(
    "path", sorted((ROOT / "tune_configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_config_builds_its_experiment(path: Path) -> None:
    config = load_config(path)
    space = param_space(config, sweep=True)
    evolve = config.tune.scheduler == "evolve"  # one trial per genome of the population
    assert set(space) == {"raygan", *config.tune.space, *(["networks.genome"] if evolve else [])}
    if evolve:
        assert len(space["networks.genome"]["grid_search"]) == config.tune.num_samples
    scheduler = make_scheduler(config)
    expected = {"none": "FIFOScheduler", "pbt": "PopulationBasedTraining", "pb2": "PB2",
                "asha": "AsyncHyperBandScheduler",
                "evolve": "ElitistEvolution"}[config.tune.scheduler]
    assert type(scheduler).__name__ == expected
    if config.tune.scheduler == "pbt":
        # population-shaping knobs are drawn once; only live ones are perturbed
        assert set(scheduler._hyperparam_mutations) == set(config.tune.mutable())
        assert "seed" not in scheduler._hyperparam_mutations
    if path.stem in ("pbt_toy", "asha_mnist"):  # sized for 2 CPUs: trials of one CPU each
        bundles = CoevolutionTrainable.default_resource_request(trial_config(config)).bundles
        assert bundles == [{"CPU": 1.0}]


def test_learning_rates_are_drawn_once_per_trial() -> None:
    config = load_config(ROOT / "tune_configs" / "asha_mnist.yaml")
    assert {"training.lr_g", "training.lr_d"} <= set(config.tune.space)
    drawn = run_config_of(trial_config(config, {"training.lr_g": 3e-4, "training.lr_d": 7e-4,
                                                "training.exchange_every": 5}))
    assert (drawn.training.lr_g, drawn.training.lr_d, drawn.training.exchange_every) == (
        3e-4, 7e-4, 5)
    pbt = config_from_dict({"tune": {"scheduler": "pbt", "space": {
        "training.lr_g": {"loguniform": [1e-4, 1e-3]}, "mixture.sigma": {"uniform": [0.01, 0.1]}}}})
    assert "training.lr_g" not in pbt.tune.mutable()  # never perturbed in a running grid


def test_the_methods_knobs_are_searched_where_they_act() -> None:
    # the multi-D objective drawn per trial; a temperature, label smoothing, historical
    # averaging and E-GAN's gamma perturbed in a running population
    fresh = tiny_toy_config(**RULE_OVERRIDES["fresh"]).to_dict()
    drawn = {**fresh, "tune": {"space": {
        "losses.multi_discriminator": {"choice": ["avg", "gman", "hv", "mgd"]}}}}
    assert config_from_dict(drawn).tune.mutable() == {}
    space = {"losses.gman_temperature": {"uniform": [0.0, 2.0]},
             "losses.real_label": {"uniform": [0.8, 1.0]}}
    gman = {**fresh, "losses": {**fresh["losses"], "multi_discriminator": "gman"},
            "tune": {"scheduler": "pbt", "space": space}}
    assert set(config_from_dict(gman).tune.mutable()) == set(space)
    averaged = {**fresh, "tune": {"scheduler": "pb2", "space": {
        "training.historical_averaging": {"loguniform": [1e-4, 1e-2]}}}}
    assert set(config_from_dict(averaged).tune.mutable()) == {"training.historical_averaging"}
    egan = {**tiny_toy_config(**RULE_OVERRIDES["egan"]).to_dict(),
            "tune": {"scheduler": "pb2", "space": {"evolution.egan_gamma": {"uniform": [0, 4]}}}}
    assert set(config_from_dict(egan).tune.mutable()) == {"evolution.egan_gamma"}
    # a knob searched where nothing reads it is refused, naming the value and why
    hv = {**gman, "tune": {"space": {"losses.hv_delta": {"uniform": [1.2, 2.0]}}}}
    config_error(lambda: config_from_dict(hv), "tune.space.losses.hv_delta", "cannot act")


def test_tune_section_errors_name_the_key() -> None:
    cases = [
        ({"tune": {"scheduler": "pbx"}}, ["tune.scheduler", "'pbt'"]),
        ({"tune": {"space": {"grid.rowz": {"choice": [2]}}}}, ["grid.rowz", "did you mean"]),
        ({"tune": {"space": {"grid.rows": {"choice": [0, 2]}}}}, ["grid.rows", "0", ">= 1"]),
        ({"tune": {"space": {"mixture.sigma": {"uniform": [0.1]}}}}, ["[low, high]"]),
        ({"tune": {"space": {"mixture.sigma": {"loguniform": [0.0, 1.0]}}}}, ["low > 0"]),
        ({"tune": {"space": {"mixture.sigma": {"uniform": [0.1, 0.2], "choice": [1]}}}},
         ["exactly one of"]),
        ({"tune": {"scheduler": "pbt", "space": {"seed": {"choice": [1, 2]}}}},
         ["pbt needs", "mixture.sigma"]),
        ({"tune": {"scheduler": "pb2", "space": {"evolution.tournament_size": {"choice": [2]}}}},
         ["pb2 needs", "uniform/loguniform"]),
        ({"metrics": {"every": 3}, "tune": {"scheduler": "asha", "grace_period": 4}},
         ["tune.grace_period", "multiple of metrics.every"]),
        ({"output": {"keep_checkpoints": 0}}, ["output.keep_checkpoints"]),
    ]
    base = TRAIN_CONFIG.to_dict()
    for extra, fragments in cases:
        data = {**base, **{k: {**base.get(k, {}), **v} for k, v in extra.items()}}
        config_error(lambda data=data: config_from_dict(data), *fragments)


def test_perturbed_knobs_stay_in_their_domains() -> None:
    bounds = {"mixture.sigma": (0.001, 0.1), "evolution.tournament_size": (2, 4)}
    out = clamp_to_space(bounds, {"raygan": {}, "mixture.sigma": 0.5,
                                  "evolution.tournament_size": 5, "seed": 9})
    assert out == {"raygan": {}, "mixture.sigma": 0.1, "evolution.tournament_size": 4, "seed": 9}
    assert clamp_to_space(bounds, {"mixture.sigma": 0.0001, "evolution.tournament_size": 3}) == {
        "mixture.sigma": 0.001, "evolution.tournament_size": 3}
    # the bounds come from the domains: randint's high is exclusive, listed values are not bounded
    space = {"mixture.sigma": {"loguniform": [0.001, 0.1]},
             "evolution.tournament_size": {"randint": [2, 5]},
             "evolution.lr_mutation_probability": {"choice": [0.1, 0.5]}}
    pbt = config_from_dict({"training": {"rule": "lipizzaner-selection"},
                            "tune": {"scheduler": "pbt", "space": space}})
    assert perturbation_bounds(pbt.tune) == bounds


def test_relative_paths_mean_the_directory_the_worker_started_in() -> None:
    config = tiny_toy_config(**{"data.name": "mnist5k", "data.root": "./data",
                                "metrics.inception_weights": "w/i.pt"})
    resolved = with_absolute_paths(config, "/job")
    assert resolved.data.root == "/job/data" and resolved.metrics.inception_weights == "/job/w/i.pt"
    assert resolved.metrics.cache_dir == "~/.cache/raygan"  # per node, left as it is
    remote = config.replace(**{"data.root": "s3://bucket/data"})
    assert with_absolute_paths(remote, "/job").data.root == "s3://bucket/data"


def test_bad_directories_give_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["resume", str(tmp_path / "empty")]) == 2
    assert "is not a Tune experiment" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "is not a Tune experiment" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "empty"), "-n", "5"]) == 2
    assert "has no checkpoint" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "missing"), "-n", "5"]) == 2
    assert "does not exist" in capsys.readouterr().err


# -- one trial --------------------------------------------------------------------------------
def test_train_writes_tensorboard_parquet_history_and_checkpoints(trained: Path) -> None:
    # the contract: <storage>/<name>/ with Tune's experiment state and one trial directory
    assert list(trained.glob("experiment_state*.json"))
    (trial,) = _trial_dirs(trained)
    results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    assert [r["generation"] for r in results] == list(range(1, GENERATIONS + 1))

    history = read_history(trial / "history.parquet")
    assert len(history) == GENERATIONS * 4
    # every CellReport field is a column, and every numeric one a TensorBoard curve (below)
    assert set(report_fields()) <= set(history.columns)
    assert sorted(zip(history["generation"], history["cell"])) == [
        (g, c) for g in range(GENERATIONS) for c in range(4)]
    for column in ("g_lr", "d_lr", "g_loss", "g_fitness", "d_fitness", "g_replaced",
                   "d_replaced", "g_parent", "d_parent", "mixture_weights", "score/mode_tvd"):
        assert column in history.columns, column
    assert set(history["g_loss"]) <= {"minimax", "heuristic", "least_squares"}
    assert all(abs(sum(w) - 1) < 1e-9 for w in history["mixture_weights"])
    evaluated = history["generation"] % 2 == 1  # metrics.every=2: after generations 2, 4, ...
    assert history.loc[evaluated, "score/mode_tvd"].notna().all()
    assert history.loc[~evaluated, "score/mode_tvd"].isna().all()

    checkpoints = sorted(trial.glob("checkpoint_*/checkpoint.pt"))
    assert 1 <= len(checkpoints) <= 2  # keep_checkpoints: 2 without PBT
    assert _final_cells(trained)[0]["generation"] == GENERATIONS
    assert (trial / "samples.png").is_file() and (trial / "mode_tvd_heatmap.png").is_file()

    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    (events,) = list((trial / "tensorboard").glob("events.out.tfevents.*"))
    acc = event_accumulator.EventAccumulator(str(events), size_guidance={"scalars": 0,
                                                                         "images": 0})
    acc.Reload()
    scalars, images = set(acc.Tags()["scalars"]), set(acc.Tags()["images"])
    for cell in range(4):
        assert {f"cell_{cell:02d}/{name}" for name in scalar_fields()} <= scalars
        assert f"cell_{cell:02d}/score/mode_tvd" in scalars
    assert [e.step for e in acc.Scalars("run/mode_tvd")] == list(range(2, GENERATIONS + 1, 2))
    assert len(acc.Scalars("cell_00/g_lr")) == GENERATIONS
    assert {"figures/samples", "figures/mode_tvd_heatmap"} <= images
    assert len(acc.Images("figures/samples")) == GENERATIONS // 2  # one per evaluation


def test_a_plain_run_writes_the_same_files_and_rows_as_a_trial(
    trained: Path, tmp_path: Path
) -> None:
    # one run loop: `raygan train --out` and a Tune trial of the same config leave the same
    # files (beside their own checkpoints) with the same rows
    from raygan.engine.run import train

    plain = tmp_path / "plain"
    train(TRAIN_CONFIG, plain, progress=False)
    (trial,) = _trial_dirs(trained)
    files = {p.name for p in plain.iterdir()} - {"checkpoint.pt", "checkpoint.prev.pt"}
    assert files == {"config.yaml", "generations.jsonl", "cells.jsonl", "history.parquet",
                     "tensorboard", "samples.png", "mode_tvd_heatmap.png", "final.json"}
    assert files <= {p.name for p in trial.iterdir()}

    def rows(run: Path, name: str) -> list[dict[str, Any]]:
        lines = (run / name).read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]

    for name in ("generations.jsonl", "cells.jsonl"):
        assert rows(plain, name) == rows(trial, name), name
    assert len(rows(plain, "cells.jsonl")) == GENERATIONS * 4
    assert read_history(plain / "history.parquet").drop(columns="seconds").equals(
        _history(trained))
    final = json.loads((plain / "final.json").read_text())
    assert final == {**json.loads((trial / "final.json").read_text()),
                     "seconds": final["seconds"]}


def test_result_grid_loads_without_a_running_cluster(trained: Path) -> None:
    code = (
        "import json, sys, ray\n"
        "from raygan.tuning.results import load_results\n"
        "grid = load_results(sys.argv[1])\n"
        "assert not ray.is_initialized()\n"
        "result = grid[0]\n"
        "print(json.dumps({'n': len(grid), 'errors': len(grid.errors),"
        " 'generation': result.metrics['generation'], 'rows': len(result.metrics_dataframe),"
        " 'checkpoint': result.checkpoint.path}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", code, str(trained)], capture_output=True,
                         text=True, timeout=120, env=env, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["n"] == 1 and info["errors"] == 0
    assert info["generation"] == GENERATIONS and info["rows"] == GENERATIONS
    assert Path(info["checkpoint"]).name.startswith("checkpoint_")


def test_sample_writes_the_best_mixture(trained: Path, tmp_path: Path) -> None:
    assert main(["sample", str(trained), "-n", "64", "--out", str(tmp_path / "a.npy")]) == 0
    samples = np.load(tmp_path / "a.npy")
    assert samples.shape == (64, 2) and np.isfinite(samples).all()
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    (trial,) = _trial_dirs(trained)
    assert main(["sample", str(trial), "-n", "64", "--out", str(tmp_path / "b.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), samples)  # same seed, same draw


EVOLUTION_TITLES = ("Learning rates", "Generator losses", "Genealogy", "Mixture weights",
                    "Ranking metric (mode_tvd)")


def test_report_shows_the_evolution_and_renders_in_chromium(trained: Path, tmp_path: Path) -> None:
    page, _ = write_report(trained, tmp_path / "report.html")
    text = page.read_text()
    assert all(f"<b>{title}.</b>" in text for title in EVOLUTION_TITLES)
    assert text.count("<figure>") == len(EVOLUTION_TITLES)  # every panel drew a figure
    if chromium() is None:
        pytest.skip("no chromium binary on PATH (.ci/run installs Debian's chromium)")
    # the probe must see a broken image and a script error, or its silence below means nothing
    spoiled = tmp_path / "spoiled.html"
    spoiled.write_text(text.replace("</body>", '<img alt="bad" src="data:image/png;base64,AAAA">'
                                    "<script>undefinedName();</script></body>"))
    control = check_page(spoiled)
    assert control["broken"] == ["bad"] and any("undefinedName" in e for e in control["errors"])

    checked = check_page(page, screenshot=tmp_path / "report.png")
    assert checked == {"images": text.count("<img"), "broken": [], "wide": [], "errors": []}
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_train_refuses_an_existing_experiment(
    trained: Path, config_file: Path, capsys: pytest.CaptureFixture
) -> None:
    storage = trained.parent
    assert main(["train", str(config_file), "--storage", str(storage), "--quiet"]) == 2
    assert "already holds an experiment" in capsys.readouterr().err
    assert main(["resume", str(trained), "--generations", "20"]) == 2
    assert "plain runs only" in capsys.readouterr().err


class _DamageCheckpointThenKillTrial(tune.Callback):
    """When the trial reports generation `at`: truncates its newest checkpoint (a torn write)
    and kills its process, so that Tune restores it from that checkpoint."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.damaged: list[Path] = []

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if result["generation"] == self.at and not self.damaged:
            newest = latest_checkpoint(trial.path)
            assert newest is not None
            newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
            self.damaged.append(newest)
            os.kill(result["pid"], signal.SIGKILL)


def test_a_damaged_checkpoint_restores_the_trial_from_the_one_before(
    trained: Path, tmp_path: Path
) -> None:
    # also the failed-trial test (a Tune run costs seconds): Tune restarts the killed trial,
    # one failure, and it ends as the uninterrupted run did; restoring from an intact last
    # checkpoint is the path of the multi-node and killed-driver tests
    import ray

    breaker = _DamageCheckpointThenKillTrial(at=5)
    path, results = run_experiment(RESTART_CONFIG, sweep=False, storage_path=str(tmp_path),
                                   quiet=True, callbacks=[breaker])
    (damaged,) = breaker.damaged
    assert not results.errors
    (record,) = load_trials(path)
    assert record.status == "TERMINATED" and record.failures == 1
    # generation 4's checkpoint was torn, so the trial went back to generation 3's (Tune keeps
    # two) and reported generations 4 on again; how many rows of the killed attempt survive in
    # result.json depends on when Tune had synced it
    results_file = record.path / "result.json"
    reported = [json.loads(line)["generation"] for line in results_file.read_text().splitlines()]
    rerun = list(range(4, GENERATIONS + 1))
    first = reported[: len(reported) - len(rerun)]
    assert reported[len(first):] == rerun, reported
    assert first in ([1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4, 5]), reported
    # one line in the trial process's output names the damaged file and the one used instead
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    lines = [line for log in logs.glob("worker-*.err") for line in log.read_text().splitlines()
             if f"{damaged} is truncated or corrupt" in line]
    assert len(lines) == 1, lines
    assert lines[0].endswith(f"resuming from {damaged.parent.parent}/checkpoint_000002/"
                             "checkpoint.pt (generation 3)"), lines[0]
    # and the run ends exactly where the uninterrupted one did
    assert _final_scores(Path(path)) == _final_scores(trained)
    pd.testing.assert_frame_equal(_history(Path(path)), _history(trained))
    assert_same_state(_final_cells(Path(path)), _final_cells(trained))


def test_a_damaged_checkpoint_in_remote_storage_falls_back_to_an_earlier_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import pyarrow.fs
    import ray.tune.trainable.trainable as tune_trainable

    from raygan.engine.checkpoint import CheckpointError, save_checkpoint
    from raygan.engine.controller import Controller
    from raygan.engine.pool import LocalCellPool

    monkeypatch.setattr(tune_trainable, "DEFAULT_STORAGE_PATH", str(tmp_path / "logs"))
    config = tiny_toy_config(**{"training.generations": 3})
    # a trial's checkpoints after generations 1, 2, 3, in a "bucket" only reachable through a
    # pyarrow filesystem (Tune downloads such checkpoints, as from S3)
    trial = tmp_path / "bucket" / "trial"
    controller = Controller(config, LocalCellPool(config))
    first_cells: list[dict[str, Any]] = []
    for index in range(3):
        controller.step()
        cells = copy.deepcopy(controller.pool.state_dicts())  # the pool's live tensors
        first_cells = first_cells or cells
        save_checkpoint(trial / f"checkpoint_{index:06d}" / "checkpoint.pt", config,
                        controller.state_dict(), cells)
    for index in (1, 2):  # the newest two are damaged: the oldest one is the good one
        (trial / f"checkpoint_{index:06d}" / "checkpoint.pt").write_bytes(b"torn")
    bucket = pyarrow.fs.SubTreeFileSystem(str(tmp_path / "bucket"), pyarrow.fs.LocalFileSystem())

    trainable = CoevolutionTrainable(config=trial_config(config))
    try:
        trainable.restore(tune.Checkpoint("trial/checkpoint_000002", filesystem=bucket))
        assert trainable.controller.generation == trainable.iteration == 1
        assert_same_state(trainable.pool.state_dicts(), first_cells)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("raygan:")]
        assert len(lines) == 1 and lines[0].startswith(
            "raygan: trial/checkpoint_000002/checkpoint.pt is truncated or corrupt"), lines
        assert lines[0].endswith(
            "resuming from trial/checkpoint_000000/checkpoint.pt (generation 1)"), lines
        (trial / "checkpoint_000000" / "checkpoint.pt").write_bytes(b"torn")
        with pytest.raises(CheckpointError, match="no earlier good checkpoint in trial$"):
            trainable.restore(tune.Checkpoint("trial/checkpoint_000002", filesystem=bucket))
    finally:
        trainable.stop()


def test_killed_driver_then_resume_gives_the_same_final_metrics(
    trained: Path, tmp_path: Path
) -> None:
    config_file = _write(RESTART_CONFIG, tmp_path / "tiny.yaml")
    storage = tmp_path / "killed"
    experiment = storage / "tiny"
    log = tmp_path / "driver.log"
    env = {**os.environ, "RAY_ADDRESS": "local"}  # the driver starts its own Ray instance
    with log.open("w") as out:
        driver = subprocess.Popen(
            [sys.executable, "-m", "raygan", "train", str(config_file), "--storage",
             str(storage)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        # two generations checkpointed, four to go: kill the driver there
        while not list(experiment.glob("trial_*/checkpoint_000001/checkpoint.pt")):
            assert driver.poll() is None, f"the driver exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no checkpoint in time:\n{log.read_text()}"
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        # what the driver started for its Ray instance lives on in its process group
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (interrupted,) = load_trials(experiment)
    assert interrupted.status != "TERMINATED", "the run finished before the driver was killed"
    assert f"generation {GENERATIONS}/{GENERATIONS}" not in log.read_text()

    assert main(["resume", str(experiment)]) == 0
    (record,) = load_trials(experiment)
    assert record.status == "TERMINATED"
    assert _final_scores(experiment) == _final_scores(trained)
    assert all(math.isfinite(v) for v in _final_scores(experiment).values())
    pd.testing.assert_frame_equal(_history(experiment), _history(trained))
    assert_same_state(_final_cells(experiment), _final_cells(trained))


# -- sweeps -----------------------------------------------------------------------------------
def test_pbt_sweep_exploits_and_the_report_lists_every_trial(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # evaluated at the perturbation (generation 2) and at the end: the scores PBT compares
    config = tiny_toy_config(**{"name": "pbt", "training.generations": 4, "metrics.every": 2})
    sweep = {
        "scheduler": "pbt", "num_samples": 2, "perturbation_interval": 2,
        "quantile_fraction": 0.5, "synch": True,
        "space": {"mixture.sigma": {"loguniform": [0.001, 0.1]},
                  "evolution.lr_mutation_sigma": {"uniform": [0.05, 0.5]},
                  "seed": {"choice": [3, 4]}},
    }
    path = _write(config, tmp_path / "pbt.yaml", {"tune": sweep})
    storage = tmp_path / "results"
    assert main(["tune", str(path), "--storage", str(storage), "--quiet"]) == 0
    experiment = storage / "pbt"
    trials = load_trials(experiment)
    assert len(trials) == 2 and {t.status for t in trials} == {"TERMINATED"}
    assert all(t.last["generation"] == 4 for t in trials)
    assert all(set(t.knobs) == {"mixture.sigma", "evolution.lr_mutation_sigma", "seed"}
               for t in trials)
    exploits = read_exploits(experiment)
    assert exploits, "PBT made no exploit"
    ids = {t.trial_id for t in trials}
    assert all(e.trial != e.donor and {e.trial, e.donor} <= ids for e in exploits)
    assert all(e.generation == e.donor_generation == 2 for e in exploits)
    assert all(0.001 <= e.knobs["mixture.sigma"] <= 0.1 for e in exploits)
    capsys.readouterr()

    assert main(["report", str(experiment)]) == 0
    table = capsys.readouterr().out
    page = (experiment / "report.html").read_text()
    for trial in trials:
        assert trial.trial_id in table and f"id='{trial.trial_id}'" in page
    assert "PBT exploits" in page and page.count("<img") >= 4
    assert page.count("<b>Inherited history.</b>") == len({e.trial for e in exploits})
    assert "best/mode_tvd" in page


def test_a_trials_last_result_is_no_pbt_perturbation_point() -> None:
    from types import SimpleNamespace

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from raygan.tuning.schedulers import PopulationBasedTraining

    pbt = PopulationBasedTraining(time_attr="generation", metric="score", mode="max",
                                  perturbation_interval=1, synch=True,
                                  hyperparam_mutations={"x": [1, 2]})
    trial, other = (Trial("__fake", config={"x": 1}, stub=True) for _ in range(2))
    controller = SimpleNamespace(search_alg=None, get_live_trials=lambda: [trial, other])
    for t in (trial, other):
        pbt.on_trial_add(controller, t)
    final = {"generation": 2, "score": 1.0, "done": True}
    assert pbt.on_trial_result(controller, trial, final) == TrialScheduler.CONTINUE
    assert pbt._trial_state[trial].last_result is None  # recorded for no step
    # the same result before the end is a sync point: the trial waits for the other one
    ongoing = {**final, "done": False}
    assert pbt.on_trial_result(controller, trial, ongoing) == TrialScheduler.PAUSE
    assert pbt._trial_state[trial].last_result == ongoing


def test_synch_pbt_exploit_of_a_trial_still_saving_lets_it_finish(
    ray_session: None, tmp_path: Path
) -> None:
    # defined here so that Ray pickles it by value (workers cannot import this module)
    class _SlowSaveToy(tune.Trainable):
        """4 generations; "bad" saves slowly at 2, "good" arrives at 2 while that save runs."""

        def setup(self, config: dict[str, Any]) -> None:
            self.gen = 0

        def step(self) -> dict[str, Any]:
            self.gen += 1
            if self.config["name"] == "good" and self.gen == 2:
                time.sleep(1.0)
            return {"generation": self.gen, "score": float(self.config["name"] == "good"),
                    "done": self.gen >= 4}

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            if self.config["name"] == "bad" and self.gen == 2:
                time.sleep(3.0)  # PBT's pause-with-checkpoint is still saving at the sync point
            Path(checkpoint_dir, "gen").write_text(str(self.gen))

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            self.gen = int(Path(checkpoint_dir, "gen").read_text())

        def reset_config(self, new_config: dict[str, Any]) -> bool:
            return True

    # Tune 2.60 alone ends the exploited trial TERMINATED after generation 3 (a stale STOP)
    scheduler = make_scheduler(tiny_toy_config(**{
        "tune.scheduler": "pbt", "tune.synch": True, "tune.perturbation_interval": 2,
        "tune.quantile_fraction": 0.5, "tune.metric": "score", "tune.mode": "max",
        "tune.space": {"mixture.sigma": {"uniform": [0.01, 0.1]}},
    }))
    tuner = tune.Tuner(
        _SlowSaveToy,
        param_space={"name": tune.grid_search(["bad", "good"]), "mixture.sigma": 0.05},
        tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=scheduler),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), verbose=0,
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1),
        ),
    )
    results = tuner.fit()
    assert not results.errors
    assert [r.metrics["generation"] for r in results] == [4, 4]


def test_ray_backend_cells_go_into_the_trial_placement_group(
    ray_session: None, tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray")
    config = tiny_toy_config(**{
        "name": "actors", "grid.rows": 1, "training.generations": 2, "metrics.every": 2,
        "resources.backend": "ray", "resources.cpus_per_cell": 0.5,
        "resources.controller_cpus": 0.5,
    })
    before = set(ray.util.placement_group_table())
    path, results = run_experiment(config, sweep=False, storage_path=str(tmp_path), quiet=True)
    assert not results.errors and results[0].metrics["generation"] == 2
    created = {k: v for k, v in ray.util.placement_group_table().items() if k not in before}
    # one group: the trial's (controller + 2 cells); the pool reserved none of its own
    assert [list(v["bundles"].values()) for v in created.values()] == [[{"CPU": 0.5}] * 3]
    (record,) = load_trials(path)
    assert len(read_history(record.path / "history.parquet")) == 2 * 2
