"""Shared test set-up: quiet, offline Ray settings and tiny configs."""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from raygan.config import RunConfig, config_from_dict  # noqa: E402


def tiny_toy_config(**overrides: object) -> RunConfig:
    """A 2x2 ring-8 grid that runs a generation in well under a second.

    It draws no figures (`output.figures: false`): drawing them is most of a tiny generation's
    time, and only the tests that look at them turn them on.
    """
    base = {
        "name": "tiny",
        "seed": 3,
        "data": {"name": "ring8", "samples": 1600},
        "networks": {"latent_dim": 8, "g_hidden": 32, "d_hidden": 32, "hidden_layers": 2},
        "grid": {"rows": 2, "cols": 2},
        "evolution": {"fitness_sample_size": 200},
        "mixture": {"samples": 200},
        "training": {"generations": 3, "batch_size": 50, "lr_g": 1e-3, "lr_d": 1e-3,
                     "device": "cpu"},
        "metrics": {"every": 1, "samples": 300},
        "output": {"figures": False},
    }
    if overrides.get("data.name", "ring8") not in ("ring8", "grid25"):
        del base["data"]["samples"]  # type: ignore[attr-defined]  # toy only
    return config_from_dict(base).replace(**overrides)


RULE_OVERRIDES: dict[str, dict[str, object]] = {
    "lipizzaner": {"training.rule": "lipizzaner", "training.d_every": 2},
    "lipizzaner-selection": {"training.rule": "lipizzaner-selection"},
    "own": {"training.rule": "own", "evolution.selection": True, "evolution.replacement": True},
    "fresh": {"training.rule": "fresh", "training.exchange_every": 3},
    "live": {"training.rule": "live"},
    # mu 2: two parents per step after the first (6 offspring), the D step split between them
    "egan": {"training.rule": "egan", "evolution.egan_mu": 2, "losses.mutation": "generation"},
}
"""Every training rule, with the options that make it do all it can (tests run each)."""


@pytest.fixture
def tiny_config() -> RunConfig:
    """See `tiny_toy_config`."""
    return tiny_toy_config()


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of the session's Ray instance (`ray_session`) in one xdist group: they run one
    after another on one worker, which holds the one Ray instance, while the other worker runs
    the rest. They wait on process starts for about half their time, which the other fills.
    (Tests that start a Ray of their own in another process need no group.)"""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One private Ray instance (4 logical CPUs) for every test that needs a cluster."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield
        return
    # address="local": never join a cluster someone started with `ray start` on this machine
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    """Exact equality of nested states (tensors bit for bit and same dtype, NaN equal to NaN)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b) or (
            a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
            and torch.equal(a.nan_to_num(), b.nan_to_num())
        ), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History rows as two identical runs share them: without the wall times, and NaN (a field
    that does not apply, such as `reconstruction` of a GAN) as None, since NaN != NaN."""
    def value(v: Any) -> Any:
        return None if isinstance(v, float) and math.isnan(v) else v

    return [{k: value(v) for k, v in row.items() if k != "seconds"} for row in rows]


def check_resume_equals_uninterrupted(
    config: RunConfig, root: Path
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Train `config` whole and again stopped after 2 generations then resumed (under `root`);
    assert both end in the same cell states and history.

    The runs draw no figures (`output.figures: false`): drawing them (matplotlib, most of a
    tiny generation's time) at every evaluation of three runs would dominate the check, and
    nothing here reads them (tests/test_engine.py and tests/test_tuning.py check the figures).

    Returns:
        The resumed run's final cell states and its `cells.jsonl` rows.
    """
    import json

    from raygan.engine.checkpoint import load_checkpoint
    from raygan.engine.run import train

    config = config.replace(**{"output.figures": False})
    train(config, root / "full", progress=False)
    part = train(config, root / "part", stop_after=2, progress=False)
    assert part.generation == 2 and not (root / "part" / "final.json").exists()
    resumed = train(config, root / "part", resume=True, progress=False)
    assert resumed.generation == config.training.generations
    _, ctl_full, cells_full = load_checkpoint(root / "full" / "checkpoint.pt")
    _, ctl_res, cells_res = load_checkpoint(root / "part" / "checkpoint.pt")
    assert_same_state(cells_full, cells_res)
    assert comparable(ctl_full["history"]) == comparable(ctl_res["history"])
    text = (root / "part" / "cells.jsonl").read_text()
    return cells_res, [json.loads(line) for line in text.splitlines()]


def _exists_only(path: str, md5: str | None = None) -> bool:
    # Stand-in for torchvision's md5 check: fake files cannot match the real checksums.
    return os.path.isfile(path)


@pytest.fixture
def skip_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torchvision accept fake CIFAR-10 and CelebA files."""
    import torchvision.datasets.celeba as celeba
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", _exists_only)
    monkeypatch.setattr(celeba, "check_integrity", _exists_only)


def write_fake_cifar10(root: Path, per_batch: int) -> None:
    """CIFAR-10 in torchvision's pickled format: 5 training batches and a test batch.

    Pixels are random; the red channel of each image's first pixel holds its batch number and
    image j of batch k has label (k + j) % 10.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        data = rng.integers(0, 256, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)
        data[:, 0] = k
        entry = {"data": data, "labels": [(k + j) % 10 for j in range(per_batch)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(entry, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, handle)


def bench_json(main: Callable[[list[str]], int], argv: list[str]) -> dict[str, Any]:
    """Run a bench script's `main` and return the one JSON object it prints on stdout."""
    import contextlib
    import io
    import json

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


def config_error(build: Callable[[], object], *fragments: str) -> str:
    """Call `build`, expect a one-line `ConfigError` holding every fragment, return its message."""
    from raygan.config import ConfigError

    with pytest.raises(ConfigError) as info:
        build()
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message
