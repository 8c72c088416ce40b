"""`raygan export`: the best mixture as one TorchScript file that samples, where raygan cannot be
imported, exactly what raygan's own sampling draws; the state-dict export where a network can be
neither scripted nor traced; one-line refusals."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_toy_config
from torch import Tensor, nn

from raygan.cli import main
from raygan.core import aae
from raygan.core.operators import mixture_counts
from raygan.engine.checkpoint import load_checkpoint, save_checkpoint
from raygan.engine.run import train
from raygan.export import ExportError, MixtureGenerator, load_mixture, script_mixture
from raygan.tuning.results import sample_best_mixture

RUNS = {
    # the toy MLP scripts; the DCGAN (an `X | None` buffer annotation) is traced
    "toy": ({}, [0.55, 0.0, 0.45]),
    "digits": ({"data.name": "digits8x8", "networks.kind": "dcgan", "networks.dcgan_width": 8,
                "training.max_batches": 2, "metrics.samples": 200}, [0.2, 0.3, 0.5]),
}

# torch and nothing of raygan: a meta-path finder that hides it comes first, even where raygan is
# installed (editable: its folder is on sys.path); the loader must not need it
LOADER = r"""
import importlib.abc, json, sys, warnings

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "raygan" or name.startswith("raygan."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Hide())
try:
    import raygan
    hidden = False
except ImportError:
    hidden = True
warnings.simplefilter("ignore")
import torch

exported, reference, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = torch.jit.load(exported)
s = m.sample(n, seed)
print(json.dumps({
    "hidden": hidden, "loaded": sorted(k for k in sys.modules if k.startswith("raygan")),
    "shape": list(s.shape), "min": float(s.min()), "max": float(s.max()),
    "equal": bool(torch.equal(s, torch.load(reference, weights_only=True))),
    "again": bool(torch.equal(s, m.sample(n, seed))),
    "other": bool(torch.equal(s, m.sample(n, seed + 1))),
    "sample_shape": list(m.sample_shape), "latent_dim": m.latent_dim, "weights": list(m.weights),
    "version": m.raygan_version, "config": json.loads(m.config_json)["name"],
}))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished 2-generation plain run of each kind, its best cell's mixture weights set to
    uneven ones (one of them 0 for the toy run) in the checkpoint."""
    out = {}
    for name, (overrides, weights) in RUNS.items():
        run = tmp_path_factory.mktemp(name) / "run"
        train(tiny_toy_config(**{"training.generations": 2, **overrides}), run, progress=False)
        config, controller, states = load_checkpoint(run / "checkpoint.pt")
        states[int(controller["best_cell"])]["mixture_weights"] = weights
        save_checkpoint(run / "checkpoint.pt", config, controller, states)
        out[name] = run
    return out


@pytest.mark.parametrize("name", RUNS)
def test_the_mixture_generator_samples_what_raygan_sample_draws(
    runs: dict[str, Path], name: str
) -> None:
    mixture = load_mixture(runs[name])
    for n, seed in ((1, 0), (37, 5), (300, 11)):
        expected, _ = sample_best_mixture(runs[name] / "checkpoint.pt", n, seed)
        assert torch.equal(mixture.sample(n, seed), expected), (n, seed)
    # the member of weight 0 is left out: it never draws
    assert len(mixture.members) == (2 if name == "toy" else 3)


@pytest.mark.parametrize("name", RUNS)
def test_the_exported_file_samples_the_same_where_raygan_cannot_be_imported(
    runs: dict[str, Path], name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported, reference, n, seed = tmp_path / "m.pt", tmp_path / "ref.pt", 300, 7
    assert main(["export", str(runs[name]), "--out", str(exported)]) == 0
    assert f"-> {exported}" in capsys.readouterr().out
    torch.save(load_mixture(runs[name]).sample(n, seed), reference)
    done = subprocess.run([sys.executable, "-I", "-c", LOADER, str(exported), str(reference),
                           str(n), str(seed)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["hidden"] and got["loaded"] == []
    shape = [2] if name == "toy" else [1, 8, 8]
    assert got["shape"] == [n, *shape] and got["sample_shape"] == shape
    assert got["equal"] and got["again"] and not got["other"]
    assert all(map(math.isfinite, (got["min"], got["max"])))
    if name == "digits":  # the data's range
        assert -1 <= got["min"] < got["max"] <= 1
    assert got["latent_dim"] == 8 and got["version"] and got["config"] == "tiny"
    assert math.isclose(sum(got["weights"]), 1.0) and len(got["weights"]) in (2, 3)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.script's deprecation note
def test_mixture_shares_and_noise_are_raygans() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        weights = rng.dirichlet(np.ones(5)) * (rng.random(5) > 0.3)
        if weights.sum() == 0:
            continue
        mixture = MixtureGenerator([nn.Identity() for _ in weights], weights, 2)
        scripted = torch.jit.script(mixture)
        for n in (1, 7, 100, 1001):
            expected = mixture_counts(weights, n)
            assert not expected[weights == 0].any()  # so leaving those members out is exact
            assert mixture.counts(n) == scripted.counts(n) == expected[weights > 0].tolist()
    for kind, prior in (("mlp", "gaussian"), ("aae", "mixture2d")):
        nets = tiny_toy_config(**{"networks.kind": kind, "networks.latent_dim": 2,
                                  "networks.aae_prior": prior}).networks
        mixture = MixtureGenerator([nn.Identity()], [1.0], 2, prior)
        noise = aae.latent(nets, 50, torch.Generator().manual_seed(3))
        assert torch.equal(mixture.latent(50, 3), noise)
        assert torch.equal(torch.jit.script(mixture).latent(50, 3), noise)


class Unexportable(nn.Module):
    """A generator TorchScript cannot compile (`map`) and whose trace fixes the batch size."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, z: Tensor) -> Tensor:
        return torch.stack(list(map(self.linear, z)))


def test_a_network_neither_scripted_nor_traced_is_one_line_and_the_state_dict_export_works(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    mixture = MixtureGenerator([Unexportable(), nn.Linear(2, 2)], [0.5, 0.5], 2)
    with pytest.raises(ExportError) as caught:
        script_mixture(mixture)
    message = str(caught.value)
    assert message.startswith("cannot script or trace Unexportable: ") and "\n" not in message
    assert message.endswith("; use --format state_dict")

    from safetensors.torch import load_file

    out = tmp_path / "mixture.json"
    assert main(["export", str(runs["toy"]), "--format", "state_dict", "--out", str(out)]) == 0
    manifest = json.loads(out.read_text())
    exported = load_mixture(runs["toy"])
    assert manifest["weights"] == exported.weights and manifest["latent_dim"] == 8
    assert manifest["config"]["name"] == "tiny" and len(manifest["members"]) == 2
    for member, net in zip(manifest["members"], exported.members):
        tensors = load_file(tmp_path / member["file"])
        assert tensors.keys() == net.state_dict().keys()
        assert all(torch.equal(tensors[k], v) for k, v in net.state_dict().items())


def test_export_errors_are_one_line(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path / "missing")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raygan: error: ") and "missing" in lines[0]

    run = tmp_path / "run"
    shutil.copytree(runs["toy"], run)
    config, controller, states = load_checkpoint(run / "checkpoint.pt")
    best = int(controller["best_cell"])
    for tensor in states[best]["g"]["net"].values():
        tensor.fill_(math.nan)
    save_checkpoint(run / "checkpoint.pt", config, controller, states)
    assert main(["export", str(run), "--out", str(tmp_path / "m.pt")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"the best cell, {best}, has non-finite G weights" in lines[0]
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_mixture_samples_on_the_gpu(runs: dict[str, Path], tmp_path: Path) -> None:
    mixture = load_mixture(runs["digits"])
    on_cpu, path = mixture.sample(64, 2), tmp_path / "m.pt"
    torch.jit.save(script_mixture(mixture), str(path))
    assert torch.allclose(mixture.to("cuda").sample(64, 2).cpu(), on_cpu, atol=1e-4)
    exported = torch.jit.load(str(path), map_location="cuda")
    assert torch.allclose(exported.sample(64, 2).cpu(), on_cpu, atol=1e-4)
