"""The reference classifiers shipped with raygan: loaded instead of trained, checked against
their manifest, and bypassed (trained as before) for any other data or settings."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
import torch

import raygan.metrics.classifier as classifier_module
import raygan.metrics.shipped as shipped
from raygan.config import load_config
from raygan.config.catalog import families
from raygan.data import Dataset, load_dataset
from raygan.errors import ShippedFileError
from raygan.metrics.classifier import (
    CLASSIFIER_VERSION,
    DEFAULT_SETTINGS,
    architecture_for,
    classifier_cache_key,
    classifier_data,
    data_fingerprint,
    load_or_train_classifier,
)
from raygan.metrics.registry import MetricContext

SHIPPED_SETS = ("mnist5k", "digits8x8")


def _dataset(name: str) -> Dataset:
    return load_dataset(load_config(None, [f"data.name={name}"]).data, 0)


def _entry(name: str) -> dict[str, Any]:
    (entry,) = [e for e in shipped.read_manifest()["classifiers"] if e["dataset"] == name]
    return dict(entry)


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the shipped classifier should have been loaded, not trained")

    monkeypatch.setattr(classifier_module, "train_classifier", refuse)


@pytest.mark.parametrize("name", SHIPPED_SETS)
def test_the_manifest_matches_the_files_and_the_classifier_a_run_would_train(name: str) -> None:
    # a change of CLASSIFIER_VERSION, the settings, the default metrics or the data loading
    # silently stops the shipped classifier from being used: rerun scripts/ship_classifiers.py
    cfg = load_config(None, [f"data.name={name}"])
    needed = [f for f in families(cfg.metric_names) if f in ("reference", "lenet")]
    ds = _dataset(name)
    entry = _entry(name)
    assert [entry["family"]] == needed
    arch = architecture_for(entry["family"], ds.sample_shape)
    data = classifier_data(ds)
    assert (entry["arch"], entry["version"]) == (arch, CLASSIFIER_VERSION)
    assert entry["settings"] == asdict(DEFAULT_SETTINGS[arch])
    assert entry["data_fingerprint"] == data_fingerprint(data)
    assert entry["cache_key"] == classifier_cache_key(data, DEFAULT_SETTINGS[arch], arch)
    for file, digest in [(entry["file"], entry["sha256"]),
                         *((s["file"], s["sha256"]) for s in entry["real_stats"])]:
        assert shipped.sha256_of((shipped.SHIPPED_DIR / file).read_bytes()) == digest, file
    assert [s["eval_samples"] for s in entry["real_stats"]] == [cfg.eval_samples]


@pytest.mark.parametrize("name", SHIPPED_SETS)
def test_the_shipped_classifier_is_loaded_with_its_recorded_floor(
    name: str, tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = _entry(name)
    ctx = MetricContext(_dataset(name), tmp_path, eval_samples=entry["real_stats"][0]
                        ["eval_samples"])
    scorer = ctx.scorer("reference")
    assert scorer.floors == entry["real_stats"][0]["floors"]
    assert ctx.scorer("reference").extractor.accuracy == entry["accuracy"]
    assert not scorer.extractor.model.training
    assert not list(tmp_path.iterdir())  # nothing trained, nothing cached
    err = capsys.readouterr().err
    assert "the shipped reference classifier" in err and "trained on this machine" not in err
    assert f"held-out accuracy {100 * entry['accuracy']:.1f} %" in err


def test_another_evaluation_size_scores_with_the_shipped_classifier(
    tmp_path: Path, no_training: None
) -> None:
    entry = _entry("digits8x8")
    ctx = MetricContext(_dataset("digits8x8"), tmp_path, eval_samples=300)
    floors = ctx.scorer("reference").floors
    assert set(floors) == {"fid", "tvd"} and floors != entry["real_stats"][0]["floors"]
    # the statistics are computed and cached; the classifier is not
    assert [p.name.split("-")[:2] for p in tmp_path.iterdir()] == [["real", "stats"]]


def _damaged_copy(tmp_path: Path, which: str) -> tuple[Path, str]:
    folder = tmp_path / "shipped"
    skip = shutil.ignore_patterns("*.py", "__pycache__")
    shutil.copytree(shipped.SHIPPED_DIR, folder, ignore=skip)
    entry = _entry("digits8x8")
    names = {"weights": entry["file"], "stats": entry["real_stats"][0]["file"],
             "manifest": shipped.MANIFEST}
    name = names[which.split()[0]]
    path = folder / name
    if which.endswith("missing"):
        path.unlink()
    elif which == "manifest":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut off
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01  # one flipped bit in the middle
        path.write_bytes(bytes(data))
    return folder, name


@pytest.mark.parametrize("which", ["weights", "stats", "weights missing", "manifest"])
def test_a_damaged_shipped_file_is_refused_in_one_line(
    which: str, tmp_path: Path, no_training: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, name = _damaged_copy(tmp_path, which)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", folder)
    ctx = MetricContext(_dataset("digits8x8"), tmp_path / "cache", eval_samples=1000)
    with pytest.raises(ShippedFileError) as info:
        ctx.scorer("reference")
    message = str(info.value)
    assert "\n" not in message and str(folder / name) in message
    expected = {"weights": "sha256", "stats": "sha256", "weights missing": "missing",
                "manifest": "not valid JSON"}
    assert expected[which] in message
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_the_cli_reports_a_damaged_shipped_file_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from raygan.cli import main

    folder, name = _damaged_copy(tmp_path, "weights")
    monkeypatch.setattr(shipped, "SHIPPED_DIR", folder)
    overrides = ["data.name=digits8x8", "training.generations=1", "training.max_batches=1",
                 f"metrics.cache_dir={tmp_path / 'cache'}", "grid.cols=1", "grid.rows=1"]
    args = ["train", "--out", str(tmp_path / "run"), "--quiet"]
    assert main([*args, *[a for o in overrides for a in ("--set", o)]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("raygan: error: ") and str(folder / name) in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.fixture
def one_thread() -> Iterator[None]:
    # a run's cells train with one thread too: on busy cores two made this test 20x slower
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_other_data_or_settings_train_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    one_thread: None,
) -> None:
    trained: list[str] = []
    train = classifier_module.train_classifier

    def counted(*args: Any, **kwargs: Any) -> Any:
        trained.append(args[0].name)
        return train(*args, **kwargs)

    monkeypatch.setattr(classifier_module, "train_classifier", counted)
    full = _dataset("digits8x8")
    assert full.labels is not None
    # the same name, other content: 200 of its images have another fingerprint
    part = Dataset.from_pixels("digits8x8", full.store[:200], full.labels[:200], max_value=16.0)
    ctx = MetricContext(part, tmp_path, eval_samples=100)
    assert ctx.scorer("reference").extractor.accuracy > 0.5
    assert trained == ["digits8x8"]
    assert len(list(tmp_path.glob("classifier-reference-digits8x8-*.pt"))) == 1
    err = capsys.readouterr().err
    assert "trained on this machine" in err and "FID scale is this machine's" in err
    assert "shipped" not in err
    # the full set with one setting changed is another classifier too
    changed = replace(DEFAULT_SETTINGS["reference"], epochs=1, holdout_fraction=0.9)
    load_or_train_classifier(classifier_data(full), changed, tmp_path, arch="reference")
    assert trained == ["digits8x8", "digits8x8"]
