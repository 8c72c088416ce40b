"""Variation of architecture genomes: random draws, mutations and weight inheritance.

Every function that needs randomness takes an explicit ``numpy.random.Generator`` and returns
the new genome together with a :class:`Variation` record, so the same RNG state always gives
the same genome and record, and every decision can be logged. Results are always within the
given :class:`~raygan.arch.bounds.Bounds` and buildable for the data shape: a candidate that
is not is redrawn, up to a fixed number of attempts, after which a ValueError says why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from raygan.arch.bounds import Bounds, check
from raygan.arch.genome import ACTIVATIONS, Block, Genome, Optimizer

T = TypeVar("T")
Side = Literal["G", "D"]
MUTATIONS: tuple[str, ...] = ("add", "remove", "change", "lr")


@dataclass(frozen=True)
class Variation:
    """What a variation operator did.

    Args:
        op: ``"random"`` (a fresh draw) or one of :data:`MUTATIONS`.
        side: ``"G"`` or ``"D"``; empty for ``"random"``.
        index: Position of the block on that side (in ``g_blocks`` or ``d_blocks``), or None.
        detail: One human-readable line, e.g. ``"kernel 3 -> 5"``.
    """

    op: str
    side: str = ""
    index: int | None = None
    detail: str = ""


def _choice(rng: np.random.Generator, options: Sequence[T]) -> T:
    # indexing keeps Python types (rng.choice would turn a tuple with None into numpy objects)
    return options[int(rng.integers(len(options)))]


def _violation(
    genome: Genome, data_shape: tuple[int, ...], bounds: Bounds, latent_dim: int
) -> str | None:
    try:
        check(genome, data_shape, bounds, latent_dim)
    except ValueError as err:
        return str(err)
    return None


def _random_block(
    rng: np.random.Generator, bounds: Bounds, kind: Literal["conv", "linear"], stride: int
) -> Block:
    conv = kind == "conv"
    return Block(
        kind=kind,
        width=_choice(rng, bounds.channels if conv else bounds.linear_widths),
        kernel=_choice(rng, bounds.kernels) if conv else 0,
        stride=stride if conv else 0,
        bn=_choice(rng, bounds.bn_momenta),
        activation=_choice(rng, ACTIVATIONS),
    )


def _tidy_lr(lr: float, bounds: Bounds) -> float:
    # three significant digits keep encoded genomes short; clamping last keeps them in bounds
    return min(max(float(f"{lr:.3g}"), bounds.lr_min), bounds.lr_max)


def _random_optimizer(rng: np.random.Generator, bounds: Bounds) -> Optimizer:
    log_lr = rng.uniform(math.log(bounds.lr_min), math.log(bounds.lr_max))
    lr = _tidy_lr(math.exp(log_lr), bounds)
    return Optimizer(_choice(rng, bounds.optimizers), lr, _choice(rng, bounds.momenta))


def _draw(rng: np.random.Generator, side: int, bounds: Bounds) -> Genome:
    n_g = int(rng.integers(bounds.min_g_blocks, bounds.max_g_blocks + 1))
    # only as many upsamplings as the side's factors of 2 allow, so G is always buildable
    max_ups = max(u for u in range(n_g + 1) if side % 2**u == 0)
    ups = {int(i) for i in rng.permutation(n_g)[: int(rng.integers(max_ups + 1))]}
    g_blocks = tuple(_random_block(rng, bounds, "conv", 2 if i in ups else 1) for i in range(n_g))
    n_d = int(rng.integers(bounds.min_d_blocks, bounds.max_d_blocks + 1))
    n_lin = int(rng.integers(bounds.max_d_linear + 1))
    d_blocks = tuple(_random_block(rng, bounds, "conv", _choice(rng, (1, 2))) for _ in range(n_d))
    d_blocks += tuple(_random_block(rng, bounds, "linear", 0) for _ in range(n_lin))
    return Genome(
        g_channels=_choice(rng, bounds.channels),
        g_blocks=g_blocks,
        d_blocks=d_blocks,
        g_opt=_random_optimizer(rng, bounds),
        d_opt=_random_optimizer(rng, bounds),
    )


def random_genome(
    rng: np.random.Generator,
    data_shape: tuple[int, ...],
    bounds: Bounds,
    latent_dim: int,
    max_attempts: int = 1000,
) -> tuple[Genome, Variation]:
    """Draw a genome within ``bounds`` that builds for ``data_shape``.

    Args:
        rng: Source of every random choice.
        data_shape: ``(C, H, H)`` of one image.
        bounds: Limits the genome must respect.
        latent_dim: G's input size (it counts towards G's parameters).
        max_attempts: Draws before giving up.

    Returns:
        The genome and a ``Variation("random", detail="attempt <n>")``.

    Raises:
        ValueError: No draw was valid within ``max_attempts`` (with the last reason).
    """
    reason = "no attempt made"
    for attempt in range(1, max_attempts + 1):
        genome = _draw(rng, data_shape[-1], bounds)
        problem = _violation(genome, data_shape, bounds, latent_dim)
        if problem is None:
            return genome, Variation("random", detail=f"attempt {attempt}")
        reason = problem
    raise ValueError(
        f"random_genome: no genome for {data_shape} within bounds in {max_attempts} attempts "
        f"(last: {reason})"
    )


def _blocks(genome: Genome, side: Side) -> tuple[Block, ...]:
    return genome.g_blocks if side == "G" else genome.d_blocks


def _with_blocks(genome: Genome, side: Side, blocks: tuple[Block, ...]) -> Genome:
    if side == "G":
        return dataclasses.replace(genome, g_blocks=blocks)
    return dataclasses.replace(genome, d_blocks=blocks)


def _add(
    genome: Genome, side: Side, rng: np.random.Generator, bounds: Bounds, lr_sigma: float
) -> tuple[Genome, Variation] | None:
    blocks = _blocks(genome, side)
    kind: Literal["conv", "linear"] = "conv" if side == "G" else _choice(rng, ("conv", "linear"))
    n_conv = sum(b.kind == "conv" for b in blocks)
    # convs go among the convs, linear blocks among the linear head: D's order stays valid
    lo, hi = (0, n_conv) if kind == "conv" else (n_conv, len(blocks))
    i = int(rng.integers(lo, hi + 1))
    new = _random_block(rng, bounds, kind, _choice(rng, (1, 2)))
    child = _with_blocks(genome, side, blocks[:i] + (new,) + blocks[i:])
    return child, Variation("add", side, i, f"insert {new.encode()}")


def _remove(
    genome: Genome, side: Side, rng: np.random.Generator, bounds: Bounds, lr_sigma: float
) -> tuple[Genome, Variation] | None:
    blocks = _blocks(genome, side)
    if not blocks:
        return None
    i = int(rng.integers(len(blocks)))
    child = _with_blocks(genome, side, blocks[:i] + blocks[i + 1 :])
    return child, Variation("remove", side, i, f"remove {blocks[i].encode()}")


def _change(
    genome: Genome, side: Side, rng: np.random.Generator, bounds: Bounds, lr_sigma: float
) -> tuple[Genome, Variation] | None:
    blocks = _blocks(genome, side)
    if not blocks:
        return None
    i = int(rng.integers(len(blocks)))
    block = blocks[i]
    conv = block.kind == "conv"
    options: dict[str, Sequence[object]] = {
        "width": bounds.channels if conv else bounds.linear_widths,
        "activation": ACTIVATIONS,
        "bn": bounds.bn_momenta,
    }
    if conv:
        options["kernel"] = bounds.kernels
    field = _choice(rng, sorted(options))
    old = getattr(block, field)
    values = [v for v in options[field] if v != old]
    if not values:
        return None
    new = _choice(rng, values)
    change: dict[str, Any] = {field: new}  # the field is drawn, so its type is only known here
    changed = dataclasses.replace(block, **change)
    child = _with_blocks(genome, side, blocks[:i] + (changed,) + blocks[i + 1 :])
    return child, Variation("change", side, i, f"{field} {old} -> {new}")


def _lr(
    genome: Genome, side: Side, rng: np.random.Generator, bounds: Bounds, lr_sigma: float
) -> tuple[Genome, Variation] | None:
    opt = genome.g_opt if side == "G" else genome.d_opt
    lr = opt.lr * math.exp(lr_sigma * float(rng.standard_normal()))
    new = dataclasses.replace(opt, lr=_tidy_lr(lr, bounds))
    if side == "G":
        child = dataclasses.replace(genome, g_opt=new)
    else:
        child = dataclasses.replace(genome, d_opt=new)
    return child, Variation("lr", side, None, f"lr {opt.lr:.3g} -> {new.lr:.3g}")


_OPS = {"add": _add, "remove": _remove, "change": _change, "lr": _lr}


def mutate(
    genome: Genome,
    rng: np.random.Generator,
    data_shape: tuple[int, ...],
    bounds: Bounds,
    latent_dim: int,
    lr_sigma: float = 0.5,
    max_attempts: int = 100,
) -> tuple[Genome, Variation]:
    """One random mutation of ``genome`` on its G or D side.

    The side and the operation (:data:`MUTATIONS`: add a block, remove a block, change one
    block's width, kernel, activation or batch norm, or scale the side's learning rate by
    ``exp(lr_sigma * N(0, 1))``, rounded to three significant digits and clamped to the
    bounds) are drawn uniformly; a draw whose
    result is out of bounds or unbuildable is redrawn.

    Args:
        genome: The parent; must itself be within bounds and buildable.
        rng: Source of every random choice.
        data_shape: ``(C, H, H)`` of one image.
        bounds: Limits the child must respect.
        latent_dim: G's input size (it counts towards G's parameters).
        lr_sigma: Standard deviation of the log learning-rate step.
        max_attempts: Draws before giving up.

    Returns:
        The child and the record of the mutation.

    Raises:
        ValueError: The parent is out of bounds, or no draw was valid within ``max_attempts``.
    """
    problem = _violation(genome, data_shape, bounds, latent_dim)
    if problem is not None:
        raise ValueError(f"mutate: the parent genome is out of bounds: {problem}")
    reason = "no attempt made"
    for _ in range(max_attempts):
        side: Side = _choice(rng, ("G", "D"))
        result = _OPS[_choice(rng, MUTATIONS)](genome, side, rng, bounds, lr_sigma)
        if result is None:
            continue
        problem = _violation(result[0], data_shape, bounds, latent_dim)
        if problem is None:
            return result
        reason = problem
    raise ValueError(f"mutate: no valid mutation in {max_attempts} attempts (last: {reason})")


def inherit_state(child: Mapping[str, Tensor], parent: Mapping[str, Tensor]) -> int:
    """Copy (in place) every tensor of `parent` into the tensor of `child` with the same name
    and shape; returns how many were copied.

    With :mod:`raygan.arch.build`'s position-based names, the blocks before a mutated position
    keep their weights; see that module for the naming rule. A module's `state_dict()` shares
    storage with it, so passing one writes into the network itself.
    """
    copied = 0
    with torch.no_grad():
        for name, tensor in child.items():
            source = parent.get(name)
            if source is not None and source.shape == tensor.shape:
                tensor.copy_(source)
                copied += 1
    return copied
