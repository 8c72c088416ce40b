"""The batch loop of `rules.base.train_batches`, for the cells of a worker all at once.

Every network that trains or is trained against sits in one of two banks (generators,
discriminators; `bank.Bank`), trainees first. A batch is planned cell by cell by the
sequential loop's own planner (`rules.base.plan_batch`: every draw, from each cell's streams,
in its order); then all D steps of the plans run as one vmapped step and all G steps as
another, with `adam.update` for the optimisers. Per-cell choices are data: a step's trainee
and adversary are rows of a bank, its loss a one-hot weight over the configured losses. So
the result equals `train_batches` run cell by cell, up to floating-point rounding.

What it runs is what `RunConfig` accepts with `resources.vectorise` (`vectorise_blockers`):
every rule that uses the shared loop (all but `egan`), MLP and DCGAN networks, the losses
without a gradient penalty, `training.g_ema`, `losses.real_label`, `training.d_every`, loss
mutation per generation or per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from raygan.core.individual import Individual
from raygan.core.losses import get_loss
from raygan.core.packed import adam
from raygan.core.packed.bank import Bank, Rows, apply_each
from raygan.core.rules.base import Generation, Pairing, d_loss_name, plan_batch
from raygan.core.steps import DStep, GStep, Tally

CellTraining = tuple[Generation, Pairing, Tally]
"""One cell's generation in progress: what `Rule.train` receives."""


@dataclass(frozen=True)
class _Placed:
    """A planned step placed in the banks: its trainee's and adversary's rows."""

    tally: Tally  # the tally of the step's cell
    row: int  # the trainee's row in its bank
    adversary: int  # the adversary's row in the other bank
    cell: int  # the adversary's cell
    loss: int  # index into the bank's losses (`PackedTrainer.g_losses` or `d_losses`)
    step: DStep | GStep


class PackedTrainer:
    """The trainees and adversaries of several cells' generations, stacked.

    Args:
        trainings: the cells' generations, each with its rule's pairing and tally.
    """

    def __init__(self, trainings: Sequence[CellTraining]) -> None:
        self.trainings = list(trainings)
        cfg = self.trainings[0][0].config
        self.config = cfg
        self.g_losses: list[str] = list(cfg.losses.generator)
        self.d_losses = list(dict.fromkeys(d_loss_name(cfg, n) for n in self.g_losses))
        pairings = [pairing for _, pairing, _ in self.trainings]
        self.g_trainees = [g for p in pairings for g in p.gs]
        self.d_trainees = [d for p in pairings for d in p.ds]
        self.g_bank, self.g_rows = _bank(self.g_trainees, [p.d_adversaries for p in pairings])
        self.d_bank, self.d_rows = _bank(self.d_trainees, [p.g_adversaries for p in pairings])
        self.g_adam = adam.load(self.g_trainees, self.g_bank)
        self.d_adam = adam.load(self.d_trainees, self.d_bank)
        self.ema: Bank | None = None
        if cfg.training.g_ema > 0:
            self.ema = Bank([_ema_of(g) for g in self.g_trainees])
        self.device = self.g_bank.flat.device
        label = cfg.losses.real_label
        self._g_loss = _weighted([get_loss(n).generator for n in self.g_losses])
        self._d_loss = _weighted([_labelled(get_loss(n).discriminator_loss, label)
                                  for n in self.d_losses])

    def train(self, start: int, stop: int) -> None:
        """Train batches `start..stop-1` of every cell (each stops at its own last batch or
        first non-finite loss), then write the networks back (`sync`)."""
        for b in range(start, stop):
            self._batch(b)
        self.sync()

    def sync(self) -> None:
        """Write the banks back into the networks they were stacked from (what a cell
        publishes between rounds); the optimizers wait for `close`."""
        self.g_bank.store(len(self.g_trainees))
        self.d_bank.store(len(self.d_trainees))
        if self.ema is not None:
            self.ema.store(len(self.ema))

    def refresh(self) -> None:
        """Read the adversaries back in after the cells reloaded their neighbours (the next
        round of rule `fresh`); the trainees' rows and optimizer states carry on."""
        self.g_bank.reload(len(self.g_trainees))
        self.d_bank.reload(len(self.d_trainees))

    def close(self) -> None:
        """`sync`, and the optimizer states back into the individuals' optimizers."""
        self.sync()
        adam.store(self.g_trainees, self.g_bank, self.g_adam)
        adam.store(self.d_trainees, self.d_bank, self.d_adam)

    # -- one batch ---------------------------------------------------------------------------
    def _batch(self, b: int) -> None:
        """Plan batch `b` of every cell still training, then run all its D steps and all its
        G steps, each as one stacked step per batch size."""
        d_steps: list[_Placed] = []
        g_steps: list[_Placed] = []
        tallies: list[Tally] = []
        g_first = d_first = 0  # the cell's first trainee row in each bank
        for gen, pairing, tally in self.trainings:
            if b < len(gen.batches) and not tally.nonfinite:
                plan = plan_batch(gen, pairing, tally, b)
                d_steps += [self._place_d(tally, d_first, s) for s in plan.d_steps]
                g_steps += [self._place_g(tally, g_first, s) for s in plan.g_steps]
                tallies.append(tally)
            g_first, d_first = g_first + len(pairing.gs), d_first + len(pairing.ds)
        for group in _by_size(d_steps):
            self._d_step(group)
        for group in _by_size(g_steps):
            self._g_step(group)
        for tally in tallies:
            tally.batches += 1

    def _place_d(self, tally: Tally, first: int, step: DStep) -> _Placed:
        if step.gp is not None:
            raise RuntimeError("vectorised training has no gradient penalty (vectorise_blockers)")
        cell, net = step.adversary
        return _Placed(tally, first + step.trainee, self.g_rows[id(net)], cell,
                       self.d_losses.index(step.loss), step)

    def _place_g(self, tally: Tally, first: int, step: GStep) -> _Placed:
        if len(step.adversaries) != 1:
            raise RuntimeError("vectorised training steps a G against one D (vectorise_blockers)")
        ((cell, net),) = step.adversaries
        return _Placed(tally, first + step.trainee, self.d_rows[id(net)], cell,
                       self.g_losses.index(step.loss), step)

    def _d_step(self, steps: list[_Placed]) -> None:
        rows = _rows([s.row for s in steps])
        adversaries = _rows([s.adversary for s in steps], self.g_bank)
        z, real = self._stack(s.step.noise for s in steps), self._stack(s.step.real for s in steps)
        with torch.no_grad():
            fake = self.g_bank.forward(adversaries, z)
        params = self.d_bank.leaves(rows)
        on_real, on_fake = self.d_bank.forward_many(rows, [real, fake], params)
        losses = apply_each(self._d_loss, self._weights(steps, self.d_losses), on_real, on_fake)
        self._optimise(self.d_bank, self.d_adam, params, losses, rows)
        for s, value in zip(steps, losses.detach().tolist()):
            s.tally.record("d", [s.cell], value)

    def _g_step(self, steps: list[_Placed]) -> None:
        rows = _rows([s.row for s in steps])
        adversaries = _rows([s.adversary for s in steps], self.d_bank)
        params = self.g_bank.leaves(rows)
        fake = self.g_bank.forward(rows, self._stack(s.step.noise for s in steps), params)
        logits = self.d_bank.forward(adversaries, fake)
        losses = apply_each(self._g_loss, self._weights(steps, self.g_losses), logits)
        self._optimise(self.g_bank, self.g_adam, params, losses, rows)
        if self.ema is not None:
            _follow(self.ema, self.g_bank, rows, self.config.training.g_ema)
        for s, value in zip(steps, losses.detach().tolist()):
            s.tally.record("g", [s.cell], value)

    @staticmethod
    def _optimise(bank: Bank, state: adam.AdamState, params: dict[str, Tensor], losses: Tensor,
                  rows: Rows) -> None:
        # each network's loss depends on its own parameters only, so the gradient of the
        # sum is every network's own gradient
        grad = bank.joined(torch.autograd.grad(losses.sum(), list(params.values())))
        adam.update(bank.flat[: len(state.steps)], grad, state, rows)

    def _weights(self, steps: list[_Placed], losses: list[str]) -> Tensor:
        """Each step's loss as a one-hot row over `losses`."""
        w = torch.zeros(len(steps), len(losses))
        w[torch.arange(len(steps)), torch.tensor([s.loss for s in steps])] = 1.0
        return w.to(self.device)

    def _stack(self, tensors: object) -> Tensor:
        return torch.stack(list(tensors)).to(self.device)  # type: ignore[call-overload]


def _bank(
    trainees: list[Individual], pools: list[list[tuple[int, torch.nn.Module]]]
) -> tuple[Bank, dict[int, int]]:
    """A bank of the trainees (first) and every other network the pools hold, and the row of
    each network (by `id`)."""
    nets = [t.net for t in trainees]
    row = {id(net): i for i, net in enumerate(nets)}
    for pool in pools:
        for _, net in pool:
            if id(net) not in row:
                row[id(net)] = len(nets)
                nets.append(net)
    return Bank(nets), row


def _ema_of(ind: Individual) -> torch.nn.Module:
    if ind.ema is None:
        raise ValueError("training.g_ema is on but a generator keeps no moving average")
    return ind.ema


def _rows(rows: list[int], bank: Bank | None = None) -> Rows:
    """Rows as a slice when they are 0..n-1 in order (views, no copies), else an index.

    Raises:
        RuntimeError: rows repeat in a bank with buffers: two steps would update one network's
            running statistics at once, which the sequential loop does one after the other.
    """
    if rows == list(range(len(rows))):
        return slice(0, len(rows))
    if bank is not None and bank.buffers and len(set(rows)) < len(rows):
        raise RuntimeError("vectorised training cannot run two steps against one network with "
                           "running statistics in the same batch (rule 'live' with batch norm)")
    return torch.tensor(rows)


def _by_size(steps: list[_Placed]) -> list[list[_Placed]]:
    """Steps grouped by batch size (cells with shards of different sizes), in order."""
    sizes: dict[int, list[_Placed]] = {}
    for s in steps:
        sizes.setdefault(len(s.step.real), []).append(s)
    return list(sizes.values())


def _weighted(fns: list[Callable[..., Tensor]]) -> Callable[..., Tensor]:
    """`w, *args -> sum_l w[l] * fns[l](*args)`: with a one-hot `w`, exactly the chosen loss
    and its gradient (the others are multiplied by zero)."""

    def total(w: Tensor, *args: Tensor) -> Tensor:
        out = w[0] * fns[0](*args)
        for i in range(1, len(fns)):
            out = out + w[i] * fns[i](*args)
        return out

    return total


def _labelled(fn: Callable[[Tensor, Tensor, float], Tensor], label: float
              ) -> Callable[[Tensor, Tensor], Tensor]:
    return lambda real, fake: fn(real, fake, label)


@torch.no_grad()
def _follow(ema: Bank, bank: Bank, rows: Rows, decay: float) -> None:
    """`Individual.update_ema` for the rows: parameters averaged, buffers copied."""
    if isinstance(rows, slice):
        ema.flat[rows].lerp_(bank.flat[rows], 1.0 - decay)
    else:
        ema.flat[rows] = ema.flat[rows].lerp_(bank.flat[rows], 1.0 - decay)
    for k, buf in ema.buffers.items():
        buf[rows] = bank.buffers[k][rows]
