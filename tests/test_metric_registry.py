"""The metric registry chosen by name, floors beside every FID, and Inception FID end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_toy_config, write_fake_cifar10

from raygan.cli import main
from raygan.config import catalog, load_config
from raygan.data import Dataset, load_dataset
from raygan.engine.run import train
from raygan.metrics.registry import FAMILIES, MetricContext, evaluate, objective_fn


def test_every_catalog_family_is_registered_and_produces_its_names(tmp_path: Path) -> None:
    assert set(FAMILIES) == {spec.family for spec in catalog.METRICS.values()}
    toy_cfg = tiny_toy_config()
    ctx = MetricContext(load_dataset(toy_cfg.data, 0), tmp_path)
    toy_names = [n for n, s in catalog.METRICS.items() if s.family == "toy"]
    scores = evaluate(ctx, ctx.dataset.head(300), toy_names)
    assert list(scores) == toy_names  # toy metrics have no floor
    assert set(FAMILIES["toy"](ctx, ctx.dataset.head(300))) == set(toy_names)


def test_evaluate_returns_the_named_metrics_and_their_floors(tmp_path: Path) -> None:
    cfg = load_config(None, ["data.name=digits8x8", f"metrics.cache_dir={tmp_path}"])
    ctx = MetricContext(load_dataset(cfg.data, 0), tmp_path, eval_samples=300)
    real = ctx.dataset.take(np.arange(len(ctx.dataset) - 300, len(ctx.dataset)))
    scores = evaluate(ctx, real, ["tvd", "fid_lenet"])
    assert list(scores) == ["tvd", "fid_lenet", "tvd_floor", "fid_lenet_floor"]
    assert all(math.isfinite(v) and v >= 0 for v in scores.values())
    # the floors are the same protocol's real-vs-real values, close to these real samples'
    assert scores["fid_lenet"] < 5 * scores["fid_lenet_floor"] + 1.0
    with pytest.raises(KeyError, match="unknown metric 'fidd'"):
        evaluate(ctx, real, ["fidd"])


def test_objective_minimises_and_flips_higher_is_better_metrics(tmp_path: Path) -> None:
    ctx = MetricContext(load_dataset(tiny_toy_config().data, 0), tmp_path)
    samples = ctx.dataset.head(400)
    covered = evaluate(ctx, samples, ["modes_covered", "coverage_score"])
    assert objective_fn(ctx, "modes_covered")(samples) == -covered["modes_covered"]
    assert objective_fn(ctx, "coverage_score")(samples) == covered["coverage_score"]


def test_distance_families_score_through_evaluate_without_a_float_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import raygan.metrics.classifier as classifier_module

    def no_copy(*args: object) -> None:
        raise AssertionError("the distance families must not build the classifier's float set")

    monkeypatch.setattr(classifier_module, "classifier_data", no_copy)
    cfg = load_config(None, ["data.name=digits8x8"])
    ctx = MetricContext(load_dataset(cfg.data, 0), tmp_path, eval_samples=300)
    real = ctx.dataset.take(np.arange(300, 600))
    scores = evaluate(ctx, real, ["swd", "kid"])
    assert list(scores) == ["swd", "kid", "swd_floor", "kid_floor"]
    assert all(math.isfinite(v) for v in scores.values())
    assert scores["swd"] < 2 * scores["swd_floor"]
    noise = torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert evaluate(ctx, noise, ["swd"])["swd"] > 5 * scores["swd_floor"]
    # the ES minimises the very value evaluate reports (seeded patches: same samples, same value)
    assert objective_fn(ctx, "swd")(real) == scores["swd"]
    assert objective_fn(ctx, "kid")(real) == scores["kid"]
    assert not list(tmp_path.iterdir())  # nothing trained, nothing cached


def test_classifier_float_copy_is_dropped_once_the_scorer_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import weakref

    import raygan.metrics.classifier as classifier_module

    made: list[weakref.ref[object]] = []
    build = classifier_module.classifier_data

    def recorded(ds: Dataset) -> object:
        data = build(ds)
        made.append(weakref.ref(data.images))
        return data

    monkeypatch.setattr(classifier_module, "classifier_data", recorded)
    cfg = load_config(None, ["data.name=digits8x8"])
    ctx = MetricContext(load_dataset(cfg.data, 0), tmp_path, eval_samples=300)
    assert ctx.scorer("lenet").extractor.accuracy > 0.5
    gc.collect()
    assert len(made) == 1 and made[0]() is None  # the context kept no float images


def test_scores_are_shown_with_their_floor_and_result_keys_come_from_one_place() -> None:
    scores = {"fid": 41.234, "tvd": 0.12, "inception_score": 7.0, "fid_floor": 3.1,
              "tvd_floor": 0.02}
    assert catalog.format_scores(scores) == (
        "fid=41.23 (real data: 3.1) tvd=0.12 (real data: 0.02) inception_score=7"
    )
    result = {catalog.result_key(k): v for k, v in scores.items()}
    result.update({"best/x": math.nan, "best_cell": 2, "evaluated": True})
    assert catalog.best_scores(result) == scores


@pytest.mark.usefixtures("skip_md5")
def test_cifar_shaped_run_scores_and_ranks_with_inception_fid(tmp_path: Path) -> None:
    from torchvision.models import inception_v3

    # Inception runs on every image scored (resized to 299x299): 30 training images give a
    # 15-image reference set, and each evaluation, floor and mixture draw scores 10
    write_fake_cifar10(tmp_path / "data", per_batch=6)
    weights = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    # random weights: the test checks the wiring, not the values
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(),
               weights)
    overrides = [
        "data.name=cifar10", f"data.root={tmp_path / 'data'}", "grid.rows=1", "grid.cols=1",
        "networks.latent_dim=8", "networks.g_hidden=16", "networks.d_hidden=16",
        "training.generations=1", "training.batch_size=10", "training.device=cpu",
        "evolution.fitness_sample_size=10", "mixture.samples=10", "metrics.samples=10",
        f"metrics.cache_dir={tmp_path / 'cache'}", "output.figures=false",
        f"metrics.inception_weights={weights}",
    ]
    config = load_config(None, overrides)
    assert config.rank_by == "fid_inception" and config.mixture_objective == "fid_inception"
    controller = train(config, tmp_path / "run", progress=False)
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["metric"] == "fid_inception"
    assert final["best/fid_inception"] > 0 and final["best/fid_inception_floor"] >= 0
    assert "(real data: " in final["summary"]
    assert math.isfinite(controller.history[0]["mixture_score"])
    assert list((tmp_path / "cache").glob("real-stats-cifar10-*.npz"))

    # the same config without the file fails before anything trains: one line, exit 2
    missing = [*overrides[:-1], f"metrics.inception_weights={tmp_path / 'nope.pth'}"]
    args = ["train", "--out", str(tmp_path / "run2")] + [x for o in missing for x in ("--set", o)]
    assert main(args) == 2
    assert not (tmp_path / "run2").exists()


def test_missing_inception_weights_message_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--out", str(tmp_path / "run"), "--set", "data.name=cifar10",
            "--set", f"metrics.inception_weights={tmp_path / 'missing.pth'}"]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "".join(lines)
    errors = [line for line in lines if line.startswith("raygan: error:")]
    assert errors == lines[-1:], lines  # one error line, the last thing printed
    assert "missing.pth does not exist" in errors[0] and catalog.INCEPTION_URL in errors[0]


def test_report_shows_the_floor_beside_the_score(tmp_path: Path) -> None:
    import pandas as pd

    from raygan.reporting.report import curve_figures, trial_rows
    from raygan.tuning.records import TrialRecord

    config = load_config(None, ["data.name=mnist5k"])
    curves = pd.DataFrame({"generation": [1, 2], "evaluated": [True, True],
                           "best/fid": [80.0, 41.0], "best/fid_floor": [3.0, 3.0]})
    trial = TrialRecord("t1", tmp_path, "TERMINATED", config, {},
                        {"best/fid": 41.0, "best/fid_floor": 3.0}, curves, None)
    header, rows = trial_rows([trial])
    assert header[4] == "best/fid" and rows[0][4] == "41 (real data: 3)"
    assert [name for name, _ in curve_figures([trial])] == ["best/fid"]
