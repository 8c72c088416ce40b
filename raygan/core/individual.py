"""An individual (network + optimizer + hyperparameters + lineage) and weight snapshots.

Snapshots are dicts of numpy arrays: they are what cells publish to their neighbours, and numpy
arrays travel through Ray's object store zero-copy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

Weights = dict[str, np.ndarray]


def module_to_numpy(module: nn.Module) -> Weights:
    """Copy of a module's state (parameters and buffers) as numpy arrays."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_numpy(module: nn.Module, weights: Weights) -> None:
    """Load numpy weights (from `module_to_numpy`) into a module of the same architecture."""
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
    module.load_state_dict(state)


def tensors_to_numpy(tree: Any) -> Any:
    """A nested state (dicts, lists, tuples) with every tensor as a numpy copy: what Ray
    serialises fast and reads zero-copy (a state of tensors took 5x longer to store)."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu().numpy().copy()
    if isinstance(tree, dict):
        return {k: tensors_to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tensors_to_numpy(v) for v in tree)
    return tree


def numpy_to_tensors(tree: Any) -> Any:
    """The inverse of `tensors_to_numpy`: every numpy array as a tensor of its own (arrays read
    from the object store are read-only views)."""
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(np.array(tree, copy=True))
    if isinstance(tree, dict):
        return {k: numpy_to_tensors(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(numpy_to_tensors(v) for v in tree)
    return tree


def optimizer_to_numpy(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """An optimizer's state dict with its tensors as numpy arrays (for snapshots)."""
    state = optimizer.state_dict()
    return {
        "state": {int(k): tensors_to_numpy(entry) for k, entry in state["state"].items()},
        "param_groups": copy.deepcopy(state["param_groups"]),
    }


def load_optimizer_numpy(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load `optimizer_to_numpy` output (learning rates come from `saved`'s param groups)."""
    state = {int(k): numpy_to_tensors(entry) for k, entry in saved["state"].items()}
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def make_optimizer(
    net: nn.Module, lr: float, betas: tuple[float, float], name: str = "adam"
) -> torch.optim.Optimizer:
    """An individual's optimizer: Adam with `betas` (every network but an architecture genome's),
    or RMSprop or SGD with momentum `betas[0]` (genomes choose theirs, `raygan.arch`)."""
    if name == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr, betas=betas)
    if name == "rmsprop":
        return torch.optim.RMSprop(net.parameters(), lr=lr, momentum=betas[0])
    if name == "sgd":
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=betas[0])
    raise ValueError(f"unknown optimizer {name!r}; known: adam, rmsprop, sgd")


@dataclass
class Individual:
    """One network with its own optimizer state, learning rate, loss and lineage.

    Attributes:
        net: generator or discriminator (with `training.historical_averaging` its buffers
            also hold the running mean of its parameters: `raygan.core.techniques`).
        optimizer: its optimizer (`make_optimizer`); `lr` is kept in its param groups.
        lr: current learning rate.
        source: index of the cell whose networks this individual descends from.
        loss: generator loss name (empty for discriminators).
        fitness: last measured fitness, lower is better.
        ema: exponential moving average of `net`'s weights (generators with
            `training.g_ema > 0`), the network the cell samples from; None when off.
    """

    net: nn.Module
    optimizer: torch.optim.Optimizer
    lr: float
    source: int
    loss: str = ""
    fitness: float = math.inf
    ema: nn.Module | None = None

    @property
    def sampler(self) -> nn.Module:
        """The network to draw samples from: the moving average when kept, else `net`."""
        return self.net if self.ema is None else self.ema

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """Move the average towards the current weights (buffers are copied, not averaged)."""
        if self.ema is None:
            return
        for avg, cur in zip(self.ema.parameters(), self.net.parameters()):
            avg.lerp_(cur, 1.0 - decay)
        for buf, live in zip(self.ema.buffers(), self.net.buffers()):
            buf.copy_(live)

    def clone(self) -> Individual:
        """Deep copy with an independent optimizer of the same kind carrying the same state."""
        net = copy.deepcopy(self.net)
        opt = type(self.optimizer)(net.parameters(), **self.optimizer.defaults)
        opt.load_state_dict(copy.deepcopy(self.optimizer.state_dict()))
        ema = None if self.ema is None else copy.deepcopy(self.ema)
        return Individual(net, opt, self.lr, self.source, self.loss, self.fitness, ema)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this individual (loads with weights_only=True)."""
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr": self.lr,
            "source": self.source,
            "loss": self.loss,
            "fitness": self.fitness,
            "ema": None if self.ema is None else self.ema.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict` output into this individual's network and optimizer."""
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr = float(state["lr"])
        self.source = int(state["source"])
        self.loss = str(state["loss"])
        self.fitness = float(state["fitness"])
        ema = state.get("ema")
        if (ema is None) != (self.ema is None):
            raise ValueError("checkpoint and config disagree on training.g_ema (moving average)")
        if self.ema is not None and ema is not None:
            self.ema.load_state_dict(ema)
