"""Your own networks: `networks.kind: custom`.

`networks.generator` and `networks.discriminator` name a class or a factory function,
`"package.module:Name"` or `"path/to/file.py:Name"` (`raygan.imports`). raygan calls each with
`networks.g_kwargs` / `d_kwargs` as keywords, and also passes `latent_dim` (G:
`networks.latent_dim`) and `data_shape` (G and D: one sample's shape, a tuple such as
`(2,)` or `(1, 28, 28)`) to a callable whose signature has a parameter of that name, so a
network can size itself from the run. The call must return an `nn.Module`:

- G maps noise of shape (N, latent_dim) to samples of shape (N, *data_shape), in the data's
  range ([-1, 1] for images: end with tanh);
- D maps samples of shape (N, *data_shape) to logits of shape (N,) or (N, 1) (no sigmoid;
  the losses apply it where they need it).

Weights are reproducible without raygan drawing them: each network is built with torch's global
RNG forked and seeded from the cell's generator, so whatever initialisation the module does
(PyTorch's defaults, its own `reset_parameters`) draws the same weights in every run of the
seed, and torch's global RNG is left as it was. Build on the CPU: raygan moves the networks.

`check_custom_networks` is the driver's dry run before anything starts: one line naming the
expected and the actual shape, or the import or call that failed.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from raygan.config import ConfigError, NetworksConfig, RunConfig
from raygan.config.model import SUPPLIED
from raygan.imports import one_line, resolve_callable

WORKER_HINT = (
    "the driver imported it, but every cell actor imports it again: make it importable on the "
    "workers with ray.init(runtime_env={'working_dir': '.'}) or 'ray job submit --working-dir "
    ". -- python -m raygan train ...' (the current directory), or runtime_env={'py_modules': "
    "[...]} (a package)")
"""What to do when a Ray worker cannot import the networks (`worker_import_problem`)."""


class Logits(nn.Module):
    """A custom discriminator with its (N, 1) logits flattened to the (N,) raygan's losses take.

    Args:
        module: the user's discriminator.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        """(N, *data_shape) samples -> (N,) logits."""
        out = self.module(x)
        return out.squeeze(-1) if out.dim() == 2 else out


def _what(cfg: NetworksConfig, side: str) -> str:
    return f"networks.{side} {getattr(cfg, side)!r}"


def _make(cfg: NetworksConfig, side: str, supplied: dict[str, Any]) -> nn.Module:
    """Call the user's callable for `side` ("generator" or "discriminator").

    Raises:
        ConfigError: one line for an import that fails, a call that raises, or a result that
            is not an `nn.Module`.
    """
    what = _what(cfg, side)
    factory = resolve_callable(getattr(cfg, side), what, "Class")
    kwargs = dict(cfg.g_kwargs if side == "generator" else cfg.d_kwargs)
    named: Mapping[str, inspect.Parameter] = {}
    try:
        named = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable: pass only what the user gave
        pass
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    kwargs.update({k: v for k, v in supplied.items() if k in named and named[k].kind in kinds})
    try:
        net = factory(**kwargs)
    except Exception as exc:  # the user's constructor failed
        raise ConfigError(f"{what}: calling it with {kwargs} raised {one_line(exc)}") from exc
    if not isinstance(net, nn.Module):
        raise ConfigError(f"{what}: returned a {type(net).__name__}, not a torch.nn.Module")
    return net


def build_custom(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    """The user's (generator, discriminator), their weights drawn from `generator` (see the
    module docstring); D wrapped in `Logits`.

    Raises:
        ConfigError: as `_make`.
    """
    seeds = torch.randint(0, 2**62, (2,), generator=generator).tolist()
    shape = tuple(int(s) for s in data_shape)
    values = {"latent_dim": cfg.latent_dim, "data_shape": shape}
    nets = []
    for seed, side in zip(seeds, ("generator", "discriminator")):
        supplied = {k: values[k] for k in SUPPLIED[side[0]]}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            nets.append(_make(cfg, side, supplied))
    return nets[0], Logits(nets[1])


def _run(what: str, call: Callable[[], Tensor], on: str) -> Tensor:
    try:
        return call()
    except Exception as exc:  # the user's forward failed
        raise ConfigError(f"{what}: its forward pass on {on} raised {one_line(exc)}") from exc


def _shape(out: object) -> str:
    return str(tuple(out.shape)) if isinstance(out, Tensor) else f"a {type(out).__name__}"


def check_custom_networks(config: RunConfig, data_shape: tuple[int, ...]) -> None:
    """The driver's dry run of `networks.kind: custom`: build G and D as a cell does, run a
    batch of 2 through both and back (and, with `resources.vectorise`, through the stacked
    bank the cells would use).

    Args:
        config: the run configuration (`networks.kind` 'custom').
        data_shape: one sample's shape (the loaded data's).

    Raises:
        ConfigError: one line naming the option and the expected and actual shape, or the
            import, call or forward pass that failed.
    """
    nets = config.networks
    g, d = build_custom(nets, data_shape, torch.Generator().manual_seed(config.seed))
    z = torch.randn(2, nets.latent_dim, generator=torch.Generator().manual_seed(0))
    noise = f"noise of shape {tuple(z.shape)}"
    expected = (2, *data_shape)
    x = _run(_what(nets, "generator"), lambda: g(z), noise)
    if not isinstance(x, Tensor) or tuple(x.shape) != expected:
        raise ConfigError(f"{_what(nets, 'generator')}: maps {noise} to {_shape(x)}; expected "
                          f"{expected} (N, *data shape)")
    what = _what(nets, "discriminator")
    user_d = d.module if isinstance(d, Logits) else d
    logits = _run(what, lambda: user_d(x), f"samples of shape {expected}")
    if not isinstance(logits, Tensor) or tuple(logits.shape) not in ((2,), (2, 1)):
        raise ConfigError(f"{what}: maps samples of shape {expected} to {_shape(logits)}; "
                          "expected (2,) or (2, 1) logits")
    if not logits.requires_grad:
        raise ConfigError(f"{what}: its logits carry no gradient back to G's samples (detached "
                          "or computed without autograd); G cannot learn from it")
    if config.resources.vectorise:
        _check_stacked(config, [g, d], [z, x.detach()])


def _check_stacked(config: RunConfig, nets: list[nn.Module], inputs: list[Tensor]) -> None:
    """`resources.vectorise` runs each network as a row of a `Bank`: refuse in one line what
    `vmap(functional_call)` cannot run, or runs to other outputs than the module itself."""
    from raygan.core.packed.bank import Bank

    key = "resources.vectorise"
    for side, net, x in zip(("generator", "discriminator"), nets, inputs):
        what = _what(config.networks, side)
        if config.training.rule == "live" and any(True for _ in net.buffers()):
            raise ConfigError(f"{key}: rule 'live' trains several networks against one "
                              f"adversary's buffers (batch norm statistics) in the same batch, "
                              f"and {what} has buffers; set resources.vectorise: false")
        pair = [net, copy.deepcopy(net)]
        try:
            reference = torch.stack([n(x) for n in copy.deepcopy(pair)])
            bank = Bank(pair)
            out = bank.forward(slice(0, 2), torch.stack([x, x]), bank.leaves(slice(0, 2)))
            out.sum().backward()
        except Exception as exc:  # vmap or functional_call cannot run the user's module
            raise ConfigError(f"{key}: {what} cannot run stacked with vmap(functional_call) "
                              f"({one_line(exc)}); set resources.vectorise: false") from exc
        if out.shape != reference.shape or not torch.allclose(out, reference, atol=1e-4):
            raise ConfigError(f"{key}: {what} computes other outputs when stacked with "
                              "vmap(functional_call) than alone (does it read a layer's weight "
                              "directly?); set resources.vectorise: false")


_IMPORT_FAILURE = re.compile(r"(networks\.(?:generator|discriminator) '[^']*': "
                             r"(?:cannot import|no such file|importing) [^\n]*)")


def worker_import_problem(text: str) -> str | None:
    """One line for a Ray cell actor that could not import the custom networks, from the
    text of its error (`RayCellPool`); None when the error is something else."""
    found = _IMPORT_FAILURE.search(text)
    if found is None:
        return None
    return f"{found.group(1)} on a Ray worker; {WORKER_HINT}"
