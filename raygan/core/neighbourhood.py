"""A cell's neighbourhood: its centre G and D, and its neighbours' networks as last received.

Members are numbered by slot: slot 0 is the cell's own centre, slot k the k-th neighbour
(`members[k]`). A cell publishes its centre (`publish`); its neighbours' snapshots are loaded in
place into read-only networks (`receive`), once a generation or, for rule `fresh`, before every
round. A rule that trains a member's network asks for a trainable copy (`adopt`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from raygan.config import RunConfig
from raygan.core import operators as ops
from raygan.core.individual import (
    Individual,
    load_numpy,
    load_optimizer_numpy,
    make_optimizer,
    module_to_numpy,
    optimizer_to_numpy,
)
from raygan.core.local_d import LocalDiscriminators
from raygan.core.networks import build_networks, optimizer_specs
from raygan.core.techniques import attach_history

Snapshot = dict[str, Any]
"""What a cell publishes: {"cell", "g", "d", "g_ema" (numpy weights), "g_lr", "d_lr", "g_loss",
and "g_opt", "d_opt" (numpy Adam states) for rules that train neighbours' copies}."""


def new_pair(
    config: RunConfig, sample_shape: tuple[int, ...], generator: torch.Generator,
    device: torch.device,
) -> tuple[nn.Module, nn.Module]:
    """A G and D of the configured networks, initialised from `generator`, on `device` (local
    Ds with `losses.discriminators: local`, parameter histories with historical averaging)."""
    g, d = build_networks(config.networks, sample_shape, generator)
    if config.losses.discriminators == "local":
        d = LocalDiscriminators(sample_shape, config.losses.k, config.networks.d_hidden,
                                config.networks.hidden_layers, generator)
    if config.training.historical_averaging > 0:
        attach_history(g)
        attach_history(d)
    return g.to(device), d.to(device)


def _frozen(net: nn.Module) -> nn.Module:
    net.requires_grad_(False)
    return net


def _finite_g(net: nn.Module, average: nn.Module | None) -> bool:
    return ops.all_finite(net) and (average is None or ops.all_finite(average))


class Neighbourhood:
    """A cell's centre and its neighbours' networks.

    Args:
        config: the run configuration.
        members: cell indices of the neighbourhood, the cell itself first.
        sample_shape: shape of one data sample.
        torch_rng: the cell's torch generator, which initialises the centre.
        device: where the networks live.
        publish_optimizers: snapshots carry the centre's Adam states (rule `live`).

    Attributes:
        g, d: the centre individuals (a generation's end may replace them).
        g_slots, d_slots: the neighbours' networks, read-only, in `members[1:]` order.
        g_samplers: what the mixture draws from each neighbour: its weight average when
            `training.g_ema` keeps one, else its G (the same modules as `g_slots`).
    """

    def __init__(
        self,
        config: RunConfig,
        members: Sequence[int],
        sample_shape: tuple[int, ...],
        torch_rng: torch.Generator,
        device: torch.device,
        publish_optimizers: bool = False,
    ) -> None:
        self.config = config
        self.members = list(members)
        self.device = device
        self.publish_optimizers = publish_optimizers
        self._optimizers = optimizer_specs(config.networks, config.training)
        g_net, d_net = new_pair(config, sample_shape, torch_rng, device)
        self.g = self._individual(g_net, "g", config.losses.generator[0])
        self.g.ema = _frozen(copy.deepcopy(g_net)) if self._keeps_average else None
        self.d = self._individual(d_net, "d", "")
        # neighbours' networks, overwritten at every `receive`: their initial weights never count
        spare = torch.Generator().manual_seed(0)
        pairs = [new_pair(config, sample_shape, spare, device) for _ in self.neighbours]
        self.g_slots = [_frozen(g) for g, _ in pairs]
        self.d_slots = [_frozen(d) for _, d in pairs]
        self.g_samplers = self.g_slots
        if self._keeps_average:
            self.g_samplers = [_frozen(copy.deepcopy(g)) for g in self.g_slots]
        self._received: list[Snapshot] = [{} for _ in self.neighbours]

    @property
    def cell(self) -> int:
        """The cell's own index."""
        return self.members[0]

    @property
    def neighbours(self) -> list[int]:
        """The other members' indices, in slot order (slots 1, 2, ...)."""
        return self.members[1:]

    @property
    def _keeps_average(self) -> bool:
        return self.config.training.g_ema > 0

    def _individual(self, net: nn.Module, side: str, loss: str) -> Individual:
        spec = self._optimizers[side]
        return Individual(net, make_optimizer(net, spec.lr, spec.betas, spec.name), spec.lr,
                          self.cell, loss)

    def publish(self) -> Snapshot:
        """The centre's networks and hyperparameters, as sent to the neighbours."""
        snap: Snapshot = {
            "cell": self.cell,
            "g": module_to_numpy(self.g.net),
            "d": module_to_numpy(self.d.net),
            "g_lr": self.g.lr,
            "d_lr": self.d.lr,
            "g_loss": self.g.loss,
            "g_ema": None if self.g.ema is None else module_to_numpy(self.g.ema),
        }
        if self.publish_optimizers:
            snap["g_opt"] = optimizer_to_numpy(self.g.optimizer)
            snap["d_opt"] = optimizer_to_numpy(self.d.optimizer)
        return snap

    def receive(self, snapshots: Sequence[Snapshot]) -> None:
        """Load the neighbours' snapshots, given in `neighbours` order, into their slots.

        Raises:
            ValueError: the snapshots are not of this cell's neighbours, in order.
        """
        got = [s["cell"] for s in snapshots]
        if got != self.neighbours:
            raise ValueError(f"cell {self.cell} expects neighbours {self.neighbours}, got {got}")
        for k, snap in enumerate(snapshots):
            load_numpy(self.g_slots[k], snap["g"])
            load_numpy(self.d_slots[k], snap["d"])
            if self._keeps_average:
                load_numpy(self.g_samplers[k], snap["g_ema"])
            self._received[k] = snap

    def adopt(self, slot: int, side: str) -> Individual:
        """A trainable copy of member `slot`'s G or D (`side` "g" or "d") with its learning rate
        and loss: slot 0 a clone of the centre with its Adam state; a neighbour's copy carries
        its Adam state only if the snapshots do (`publish_optimizers`), its weight average
        when `training.g_ema` keeps one."""
        if slot == 0:
            return (self.g if side == "g" else self.d).clone()
        meta = self._received[slot - 1]
        src = (self.g_slots if side == "g" else self.d_slots)[slot - 1]
        net = copy.deepcopy(src).requires_grad_(True)
        lr = float(meta[f"{side}_lr"])
        spec = self._optimizers[side]
        loss = str(meta["g_loss"]) if side == "g" else ""
        ind = Individual(net, make_optimizer(net, lr, spec.betas, spec.name), lr,
                         int(meta["cell"]), loss)
        if f"{side}_opt" in meta:
            load_optimizer_numpy(ind.optimizer, meta[f"{side}_opt"])
            ops.set_optimizer_lr(ind.optimizer, lr)
        if side == "g" and self._keeps_average:
            ind.ema = copy.deepcopy(self.g_samplers[slot - 1])
        return ind

    def generators(self) -> list[nn.Module]:
        """What a mixture over the neighbourhood draws from, by slot: the centre's sampler
        (its weight average or its G), then each neighbour's (`g_samplers`)."""
        return [self.g.sampler, *self.g_samplers]

    def broken(self) -> list[str]:
        """Which centre networks hold a non-finite parameter or buffer: "G" (its network or
        its weight average), "D"; empty when the centre is finite."""
        return [name for name, ok in (("G", _finite_g(self.g.net, self.g.ema)),
                                      ("D", ops.all_finite(self.d.net))) if not ok]

    def donor(self, ind: Individual, side: str, fitness: Sequence[float]) -> int | None:
        """The slot of the neighbour whose network should replace `ind` (a new centre G or
        D): None when `ind` is finite or no neighbour's network is; else the finite one of the
        lowest `fitness` (by slot; ties to the first)."""
        if side == "g":
            if _finite_g(ind.net, ind.ema):
                return None
            averages = self.g_samplers if self._keeps_average else [None] * len(self.g_slots)
            finite = [_finite_g(g, a) for g, a in zip(self.g_slots, averages)]
        else:
            if ops.all_finite(ind.net):
                return None
            finite = [ops.all_finite(d) for d in self.d_slots]
        donors = [k + 1 for k, ok in enumerate(finite) if ok]
        if not donors:
            return None
        return min(donors, key=lambda k: (ops.finite_or_inf(fitness[k]), k))
