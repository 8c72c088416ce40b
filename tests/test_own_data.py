"""A user's own data end to end: an image folder trains on the Ray pool and is scored with the
classifier FID (its folder labels) and SWD, and resumes exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from conftest import RULE_OVERRIDES, check_resume_equals_uninterrupted, tiny_toy_config

from raygan.config import RunConfig

SIDE = 16


def write_shapes(root: Path, per_class: int = 150, seed: int = 0) -> None:
    """Grey 16x16 PNGs of discs and of squares, each shape in its own sub-folder."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for shape in ("disc", "square"):
        (root / shape).mkdir(parents=True)
        for i in range(per_class):
            image = Image.new("L", (SIDE, SIDE), 0)
            draw = ImageDraw.Draw(image)
            r = int(rng.integers(3, 6))
            x, y = (int(v) for v in rng.integers(r, SIDE - r, size=2))
            box = (x - r, y - r, x + r, y + r)
            (draw.ellipse if shape == "disc" else draw.rectangle)(box, fill=255)
            image.save(root / shape / f"{i:04d}.png")


def folder_config(tmp_path: Path, **overrides: object) -> RunConfig:
    """A 1x2 MLP grid on the shapes folder, scored with the classifier FID and SWD."""
    root = tmp_path / "shapes"
    if not root.exists():
        write_shapes(root)
    return tiny_toy_config(**{
        "data.name": "folder", "data.root": str(root), "data.labels": "folders",
        "data.cache_dir": str(tmp_path / "data-cache"),
        "metrics.cache_dir": str(tmp_path / "metric-cache"), "metrics.names": ["fid", "swd"],
        "grid.rows": 1, "grid.cols": 2, "training.generations": 2, "mixture.samples": 100,
        "metrics.samples": 150, "evolution.fitness_sample_size": 100, **overrides,
    })


def test_an_image_folder_trains_on_two_ray_actors_and_is_scored(
    tmp_path: Path, ray_session: None
) -> None:
    from raygan.distributed import RayCellPool
    from raygan.engine.run import train

    config = folder_config(tmp_path, **{"resources.backend": "ray"})
    controller = train(config, tmp_path / "run", pool_factory=RayCellPool, progress=False)
    assert controller.generation == 2
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    scores = {k: v for k, v in final.items() if k.startswith("best/")}
    for name in ("fid", "swd", "fid_floor", "swd_floor"):
        assert math.isfinite(scores[f"best/{name}"]), (name, scores)
    # two generations of a tiny MLP are far from the real shapes; real data is near its floor
    assert scores["best/swd"] > scores["best/swd_floor"]
    assert scores["best/fid"] > scores["best/fid_floor"]


def test_resume_equals_uninterrupted_on_folder_data(tmp_path: Path) -> None:
    config = folder_config(tmp_path, **RULE_OVERRIDES["fresh"], **{
        "training.generations": 3, "output.checkpoint_every": 1, "metrics.names": ["swd"]})
    _, rows = check_resume_equals_uninterrupted(config, tmp_path)
    assert [(r["generation"], r["cell"]) for r in rows] == [(g, c) for g in range(3)
                                                           for c in range(2)]
