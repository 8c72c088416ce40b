"""The default run (`tune_configs/default.yaml`): embedded MNIST digits, one generation."""

from __future__ import annotations

import json
import math
from pathlib import Path

from raygan.cli import DEFAULT_CONFIG
from raygan.config import load_config
from raygan.engine.run import train


def test_default_config_runs_one_generation_offline(tmp_path: Path) -> None:
    # the real default config, shortened to one generation, with a fresh cache, as on a new
    # machine with no internet: the metrics classifier is the one shipped in the package
    config = load_config(
        DEFAULT_CONFIG,
        [
            "training.generations=1",
            f"metrics.cache_dir={tmp_path / 'cache'}",
            "training.device=cpu",
        ],
    )
    assert config.data.name == "mnist5k" and (config.grid.rows, config.grid.cols) == (2, 2)
    assert config.training.rule == "fresh"  # the coupled rule that beat independent GANs
    controller = train(config, tmp_path / "run", progress=False)
    assert controller.generation == 1 and len(controller.history) == 4
    assert all(r["steps"] > 0 and math.isfinite(r["mixture_score"]) for r in controller.history)
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    scores = {k.split("/")[-1]: v for k, v in final.items() if isinstance(v, float)}
    assert scores["fid"] > scores["fid_floor"] > 0 and 1.0 <= scores["inception_score"] <= 10.0
    assert 0 <= scores["tvd_floor"] < scores["tvd"] <= 1
    assert f"(real data: {scores['fid_floor']:.3g})" in final["summary"]
    for name in ("samples.png", "cells.png", "fid_heatmap.png", "checkpoint.pt"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    assert not list((tmp_path / "cache").glob("classifier-*.pt"))  # loaded, not trained
