"""The examples run (examples/README.md), on the tiny settings CI uses.

`own_images.py` runs as a user runs it, in a process of its own that starts its own Ray: a
folder of images written, the script's networks trained on the Ray pool, the export loaded with
`torch.jit.load` and sampled. `own_images.yaml` runs through the CLI (`raygan train --out`,
`raygan export`) on the local backend: the Ray path is the script's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from raygan.cli import main
from raygan.imports import import_module

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "own_images.py"


def _example() -> ModuleType:
    return import_module(str(SCRIPT), "examples/own_images.py")


@pytest.mark.slow
def test_own_images_script_trains_on_ray_exports_and_samples(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", MPLBACKEND="Agg")
    images, out = tmp_path / "images", tmp_path / "runs" / "own"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(images), "--out", str(out), "--tiny",
         "--set", f"data.cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(images.glob("*.png"))) == 2048  # the folder it wrote
    assert "(64, 3, 16, 16)" in done.stdout, done.stdout
    assert (out / "exported_samples.png").is_file()
    samples = torch.jit.load(str(out / "mixture.pt")).sample(5, 0)
    assert samples.shape == (5, 3, 16, 16) and samples.abs().max() <= 1


def test_own_images_yaml_trains_and_exports_from_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = _example()
    images, out = tmp_path / "images", tmp_path / "run"
    example.write_images(images, n=256)
    monkeypatch.chdir(REPO)  # the YAML names the networks by a path from the repository root
    sets = [*example.TINY, f"data.root={images}", f"data.cache_dir={tmp_path / 'cache'}"]
    argv = ["train", "examples/own_images.yaml", "--backend", "local", "--quiet",
            "--out", str(out)]
    assert main([*argv, *(a for s in sets for a in ("--set", s))]) == 0
    assert main(["export", str(out), "--out", str(tmp_path / "mixture.pt")]) == 0
    mixture = torch.jit.load(str(tmp_path / "mixture.pt"))
    assert mixture.sample(7, 1).shape == (7, 3, 16, 16)
    assert torch.equal(mixture.sample(7, 1), mixture.sample(7, 1))
