"""Take the best mixture away: one TorchScript file that samples it where raygan is not installed.

`load_mixture` rebuilds the best cell of a checkpoint (as `raygan sample` does) and hands its
mixture out as a `MixtureGenerator`: the member generators, their weights and the latent prior in
one `nn.Module` whose `sample(n, seed)` draws exactly what the cell's own sampling
(`Cell.sample`) draws: the same noise from a `torch.Generator` seeded with `seed`, the same
member for each row (`ops.mixture_counts`: largest remainders, consecutive rows). It is written
in TorchScript's subset of Python, so `export_mixture` compiles it whole (each member scripted,
else traced) into a file that `torch.jit.load` opens with torch alone. Where a network can be
neither, `--format state_dict` writes each member's weights as safetensors and the mixture as JSON.
"""

# no `from __future__ import annotations`: TorchScript reads this module's annotations as types
import copy
import json
import math
import re
import warnings
from collections.abc import Sequence
from operator import methodcaller
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from raygan.atomic import atomic_write, atomic_write_text
from raygan.config import ConfigError
from raygan.core.aae import MIXTURE_COMPONENTS, MIXTURE_RADIUS, MIXTURE_STD
from raygan.engine.best import best_cell
from raygan.version import __version__

FORMATS = ("torchscript", "state_dict")
"""What `export_mixture` writes: one TorchScript file, or safetensors per member plus JSON."""
CHECK_SIZES = (1, 37)
"""Sample counts the compiled mixture must reproduce bit for bit before it is written (a traced
member whose graph fixed the batch size fails the second)."""


class ExportError(ConfigError):
    """The mixture cannot be written in the format asked for (one line, exit 2)."""


class MixtureGenerator(nn.Module):
    """A cell's mixture of generators as one module: `sample(n, seed)` draws `n` samples.

    Row k of the noise goes to the member whose share of the `n` rows holds it (shares by
    `ops.mixture_counts`); the noise is drawn on the CPU from `torch.Generator().manual_seed(seed)`
    and moved to the module's device, so a seed means the same noise everywhere. Members keep
    eval mode (batch norm uses its running statistics) and the module keeps no gradients.

    Args:
        members: the generators, each mapping (B, latent_dim) noise to (B, *sample_shape).
        weights: their mixture weights (non-negative, not all 0); members of weight 0 are left
            out, as they never draw a sample.
        latent_dim: size of a noise vector.
        prior: "gaussian" (N(0, I)) or "mixture2d" (the AAE's ring of Gaussians, 2-D).
        sample_shape: shape of one sample.
        cells: the grid cell each member comes from (metadata).
        config_json: the run's config as JSON (metadata).
    """

    weights: list[float]
    cells: list[int]
    sample_shape: list[int]
    anchor: Tensor

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | np.ndarray,
                 latent_dim: int, prior: str = "gaussian", sample_shape: Sequence[int] = (),
                 cells: Sequence[int] = (), config_json: str = "{}") -> None:
        super().__init__()
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(members),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"{len(members)} members need as many finite weights >= 0, not all "
                             f"0; got {w.tolist()}")
        if prior not in ("gaussian", "mixture2d") or (prior == "mixture2d" and latent_dim != 2):
            raise ValueError(f"prior {prior!r} with latent_dim {latent_dim}: allowed are "
                             "'gaussian' and the 2-D 'mixture2d'")
        share = w / w.sum()  # normalised as mixture_counts does, before members are dropped
        keep = [k for k in range(len(w)) if share[k] > 0]
        self.members = nn.ModuleList([members[k] for k in keep])
        self.weights = [float(share[k]) for k in keep]
        self.cells = [int(cells[k]) for k in keep] if cells else []
        self.latent_dim = int(latent_dim)
        self.prior = prior
        # the AAE ring's constants as attributes: TorchScript cannot read imported globals
        self.ring = (MIXTURE_COMPONENTS, float(MIXTURE_RADIUS), float(MIXTURE_STD))
        self.sample_shape = [int(s) for s in sample_shape]
        self.config_json = config_json
        self.raygan_version = __version__
        # follows `.to(device)`, so the noise goes where the members are
        self.register_buffer("anchor", torch.zeros(0), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "MixtureGenerator":
        """Stays in eval mode: a sampler never updates batch statistics."""
        return super().train(False)

    @torch.jit.export
    def counts(self, n: int) -> list[int]:
        """How many of `n` rows each member maps (`ops.mixture_counts`, in float64)."""
        raw = torch.tensor(self.weights, dtype=torch.float64) * n
        floor = torch.floor(raw)
        order = torch.argsort(-(raw - floor), stable=True)
        counts = floor.to(torch.int64)
        short = n - int(counts.sum())
        counts[order[:short]] += 1
        return counts.tolist()

    @torch.jit.export
    def latent(self, n: int, seed: int) -> Tensor:
        """`n` noise vectors from the prior, drawn on the CPU (as `aae.latent` draws them)."""
        gen = torch.Generator()
        gen.manual_seed(seed)
        if self.prior == "mixture2d":
            components, radius, std = self.ring
            component = torch.randint(components, (n,), generator=gen)
            angle = component.to(torch.float32) * (2 * math.pi / components)
            means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
            return means + std * torch.randn(n, 2, generator=gen)
        return torch.randn(n, self.latent_dim, generator=gen)

    def forward(self, z: Tensor) -> Tensor:
        """The mixture on given noise: member k maps its share of consecutive rows of `z`."""
        counts = self.counts(z.shape[0])
        parts: list[Tensor] = []
        start = 0
        for k, member in enumerate(self.members):
            if counts[k] > 0:
                parts.append(member(z[start : start + counts[k]]))
            start += counts[k]
        return torch.cat(parts)

    @torch.jit.export
    def sample(self, n: int, seed: int = 0) -> Tensor:
        """`n` samples, shape (n, *sample_shape), on the module's device; the same `seed` gives
        the same samples (bit for bit on the CPU) as raygan's sampling of the mixture."""
        if n < 1:
            raise ValueError("n must be >= 1")
        with torch.no_grad():
            return self.forward(self.latent(n, seed).to(self.anchor.device))


def load_mixture(path: str | Path) -> MixtureGenerator:
    """The best mixture of a run as a `MixtureGenerator` on the CPU.

    Args:
        path: what `raygan sample` takes: an experiment, trial or plain run directory, or a
            checkpoint file.

    Raises:
        FileNotFoundError: when there is no checkpoint there.
        CheckpointError: when the best mixture is not finite (see `best_cell`).
    """
    from raygan.engine.checkpoint import CheckpointError
    from raygan.tuning.results import find_checkpoint

    checkpoint = find_checkpoint(path)
    config, cell, inputs = best_cell(checkpoint)
    gens, weights = cell.mixture(inputs)
    nets = config.networks
    mixture = MixtureGenerator(
        [copy.deepcopy(g).cpu() for g in gens], weights if weights is not None else [],
        nets.latent_dim, nets.aae_prior if nets.kind == "aae" else "gaussian", cell.sample_shape,
        [cell.index, *cell.neighbours], json.dumps(config.to_dict(), default=str))
    if not bool(torch.isfinite(mixture.sample(max(CHECK_SIZES), 0)).all()):
        raise CheckpointError(f"{checkpoint}: the best mixture (cell {cell.index}) draws "
                              "non-finite samples; refusing to export it")
    return mixture


def _reason(exc: BaseException) -> str:
    """An exception as a short single line."""
    text = re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _compiled(net: nn.Module, example: Tensor) -> nn.Module:
    """`net` scripted, else traced on `example` (checked on a second batch size)."""
    try:
        return torch.jit.script(net)
    except Exception as exc:  # TorchScript raises many kinds for code it cannot compile
        scripting = _reason(exc)
    try:
        traced = torch.jit.trace(net, example[:3], check_trace=False)
        if not torch.equal(traced(example), net(example)):
            raise RuntimeError("its traced graph depends on the batch size")
        return traced
    except Exception as exc:
        raise ExportError(f"cannot script or trace {type(net).__name__}: script: {scripting}; "
                          f"trace: {_reason(exc)}; use --format state_dict") from None


def script_mixture(mixture: MixtureGenerator) -> torch.jit.ScriptModule:
    """`mixture` as TorchScript (on the CPU), checked to sample exactly as it does.

    Raises:
        ExportError: a member can be neither scripted nor traced, or the compiled mixture
            samples differently.
    """
    twin = copy.deepcopy(mixture).cpu()
    example = twin.latent(max(CHECK_SIZES), 0)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notes and tracer warnings
        for k, member in enumerate(twin.members):
            twin.members[k] = _compiled(member, example)
        try:
            scripted = torch.jit.script(twin)
        except Exception as exc:
            raise ExportError(f"cannot script the mixture: {_reason(exc)}; use --format "
                              "state_dict") from None
        for n in CHECK_SIZES:
            if not torch.equal(scripted.sample(n, 0), twin.sample(n, 0)):
                raise ExportError(f"the compiled mixture samples differently from raygan's for "
                                  f"n={n}; use --format state_dict")
    return scripted


def write_state_dict(mixture: MixtureGenerator, out: str | Path) -> Path:
    """The mixture as `<out>.json` plus one `<stem>.member<k>.safetensors` per member.

    Returns:
        The JSON file, which names the member files (written after them).
    """
    from safetensors.torch import save

    out = Path(out).with_suffix(".json")
    members = []
    for k, net in enumerate(mixture.members):
        file = out.with_name(f"{out.stem}.member{k}.safetensors")
        # copies: safetensors refuses tensors that share memory
        tensors = {key: t.detach().cpu().clone() for key, t in net.state_dict().items()}
        kind = f"{type(net).__module__}:{type(net).__qualname__}"
        atomic_write(file, methodcaller("write", save(tensors, {"class": kind})))
        members.append({"file": file.name, "class": kind, "weight": mixture.weights[k],
                        "cell": mixture.cells[k] if mixture.cells else None})
    manifest = {
        "format": "raygan-mixture", "raygan_version": __version__,
        "latent_dim": mixture.latent_dim, "prior": mixture.prior,
        "sample_shape": mixture.sample_shape, "weights": mixture.weights, "members": members,
        "sampling": "noise: torch.Generator().manual_seed(seed), then torch.randn(n, latent_dim) "
                    "(mixture2d: raygan.core.aae.sample_prior); member k maps its share of "
                    "consecutive rows (largest remainders of weights * n, ties by member order)",
        "config": json.loads(mixture.config_json),
    }
    return atomic_write_text(out, json.dumps(manifest, indent=2) + "\n")


def export_mixture(checkpoint_or_dir: str | Path, out: str | Path,
                   format: str = "torchscript") -> Path:
    """Write the best mixture of a run to `out` (see the module docstring).

    Args:
        checkpoint_or_dir: as for `load_mixture`.
        out: the file to write (for "state_dict", the JSON; the members go beside it).
        format: one of `FORMATS`.

    Returns:
        The file written.

    Raises:
        ConfigError: an unknown format.
        ExportError, FileNotFoundError, CheckpointError: see `script_mixture`, `load_mixture`.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format: {format!r} is not one of {', '.join(FORMATS)}")
    mixture = load_mixture(checkpoint_or_dir)
    if format == "state_dict":
        return write_state_dict(mixture, out)
    scripted = script_mixture(mixture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.save's deprecation note
        return atomic_write(out, lambda handle: torch.jit.save(scripted, handle))
