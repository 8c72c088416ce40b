"""A grid cell: one centre GAN trained for one generation against its neighbourhood.

`Cell.run_generation` follows ALGORITHM.md step by step: exchange, all-vs-all fitness,
tournament selection, lr and loss mutation, training against randomly drawn adversaries,
elitist replacement and the mixture-weights (1+1)-ES. The cell's own slot in the adversary pools
is its live offspring (so a 1x1 grid is ordinary GAN training); neighbours are read-only copies.
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from raygan.config import RunConfig
from raygan.core import operators as ops
from raygan.core.individual import Individual, load_numpy, make_optimizer, module_to_numpy
from raygan.core.losses import get_loss, gradient_penalty
from raygan.core.networks import build_networks

Snapshot = dict[str, Any]
"""What a cell publishes: {"cell", "g", "d" (numpy weights), "g_lr", "d_lr", "g_loss"}."""


@dataclass
class CellTask:
    """What a cell needs from the data and metrics layers, injected so `core` stays pure.

    Attributes:
        data: the cell's shard, shape (N, *sample_shape), on the CPU.
        mixture_score: samples -> score minimised by the mixture ES (FID, mode TVD).
        evaluate: samples -> named metrics for reports.
    """

    data: Tensor
    mixture_score: Callable[[Tensor], float]
    evaluate: Callable[[Tensor], dict[str, float]]


@dataclass
class CellReport:
    """What one cell did in one generation (one row of the population history)."""

    generation: int
    cell: int
    g_lr: float
    d_lr: float
    g_loss: str
    g_loss_counts: dict[str, int]
    g_fitness: float
    d_fitness: float
    g_replaced: bool
    d_replaced: bool
    g_parent: int
    d_parent: int
    g_lr_mutated: bool
    d_lr_mutated: bool
    mixture_members: list[int]
    mixture_weights: list[float]
    mixture_score: float
    mixture_accepted: bool
    train_g_loss: float
    train_d_loss: float
    steps: int
    nonfinite: bool
    seconds: float
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for logs and tables."""
        # fields are scalars or flat lists/dicts: copying the containers equals asdict, 10x faster
        row = dict(vars(self))
        for key, value in row.items():
            if isinstance(value, (list, dict)):
                row[key] = value.copy()
        return row


def cell_seeds(seed: int, n_cells: int) -> list[np.random.SeedSequence]:
    """One independent seed stream per cell, all derived from the run's base seed."""
    return list(np.random.SeedSequence(seed).spawn(n_cells))


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Cell:
    """One cell of the grid; owns a centre generator/discriminator and its mixture weights.

    Args:
        config: the run configuration.
        index: this cell's index on the grid.
        neighbours: indices of the other members of its neighbourhood (self excluded), in the
            order their snapshots will be passed to `run_generation`.
        task: data shard and scoring functions.
        seed: this cell's seed stream (from `cell_seeds`).
        device: torch device for training.
    """

    def __init__(
        self,
        config: RunConfig,
        index: int,
        neighbours: Sequence[int],
        task: CellTask,
        seed: np.random.SeedSequence,
        device: torch.device | str = "cpu",
    ) -> None:
        self.config = config
        self.index = index
        self.neighbours = list(neighbours)
        self.task = task
        self.device = torch.device(device)
        self.sample_shape = tuple(task.data.shape[1:])
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.torch_rng = torch.Generator().manual_seed(
            int(seed.generate_state(1, np.uint64)[0] >> np.uint64(1))
        )
        self._betas = (config.training.beta1, config.training.beta2)
        g_net, d_net = self._new_pair(self.torch_rng)
        losses = config.losses.generator
        self.g = self._individual(g_net, config.training.lr_g, losses[0])
        self.g.ema = self._average_of(g_net)
        self.d = self._individual(d_net, config.training.lr_d, "")
        n_members = 1 + len(self.neighbours)
        self.mixture_weights = np.full(n_members, 1.0 / n_members)
        # read-only networks rebuilt from neighbours' snapshots every generation
        spare = torch.Generator().manual_seed(0)
        pairs = [self._new_pair(spare) for _ in self.neighbours]
        self._g_slots = [self._frozen(g) for g, _ in pairs]
        self._d_slots = [self._frozen(d) for _, d in pairs]
        # what the mixture samples: the neighbours' weight averages when they keep one
        self._g_samplers = self._g_slots
        if self._keeps_average:
            self._g_samplers = [self._frozen(copy.deepcopy(g)) for g in self._g_slots]
        self._slot_meta: list[Snapshot] = [{} for _ in self.neighbours]
        self.generation = 0

    # -- construction helpers -------------------------------------------------------------
    def _new_pair(self, generator: torch.Generator) -> tuple[nn.Module, nn.Module]:
        g, d = build_networks(self.config.networks, self.sample_shape, generator)
        return g.to(self.device), d.to(self.device)

    def _individual(self, net: nn.Module, lr: float, loss: str) -> Individual:
        return Individual(net, make_optimizer(net, lr, self._betas), lr, self.index, loss)

    @staticmethod
    def _frozen(net: nn.Module) -> nn.Module:
        net.requires_grad_(False)
        return net

    @property
    def _keeps_average(self) -> bool:
        return self.config.training.g_ema > 0

    def _average_of(self, net: nn.Module) -> nn.Module | None:
        """A frozen copy of a generator to hold its weight average (None when g_ema is off)."""
        return self._frozen(copy.deepcopy(net)) if self._keeps_average else None

    # -- exchange ---------------------------------------------------------------------------
    def publish(self) -> Snapshot:
        """The centre's networks and hyperparameters, as sent to neighbours."""
        return {
            "cell": self.index,
            "g": module_to_numpy(self.g.net),
            "d": module_to_numpy(self.d.net),
            "g_lr": self.g.lr,
            "d_lr": self.d.lr,
            "g_loss": self.g.loss,
            "g_ema": None if self.g.ema is None else module_to_numpy(self.g.ema),
        }

    def _receive(self, snapshots: Sequence[Snapshot]) -> None:
        if [s["cell"] for s in snapshots] != self.neighbours:
            got = [s["cell"] for s in snapshots]
            raise ValueError(f"cell {self.index} expects neighbours {self.neighbours}, got {got}")
        for k, snap in enumerate(snapshots):
            load_numpy(self._g_slots[k], snap["g"])
            load_numpy(self._d_slots[k], snap["d"])
            if self._keeps_average:
                load_numpy(self._g_samplers[k], snap["g_ema"])
            self._slot_meta[k] = snap

    # -- one generation ---------------------------------------------------------------------
    def run_generation(self, generation: int, snapshots: Sequence[Snapshot]) -> CellReport:
        """Run one generation (ALGORITHM.md steps 1-8) and return what happened.

        Args:
            generation: index of this generation (for the report).
            snapshots: the neighbours' published centres, in `self.neighbours` order.
        """
        start = time.perf_counter()
        cfg, evo = self.config, self.config.evolution
        self._receive(snapshots)
        members = [self.index] + self.neighbours
        fit_loss = get_loss(evo.fitness_loss)

        # 2. fitness of the sub-populations on one shared batch
        gs = [self.g.net, *self._g_slots]
        ds = [self.d.net, *self._d_slots]
        real, z = self._fitness_batch()
        g_fit, d_fit = self._fitness(gs, ds, real, z, fit_loss)

        # 3. selection
        gi = di = 0
        if evo.selection:
            gi, _ = ops.tournament_select(g_fit, evo.tournament_size, self.rng)
            di, _ = ops.tournament_select(d_fit, evo.tournament_size, self.rng)
        g_off = self._offspring(self.g, gi, "g")
        d_off = self._offspring(self.d, di, "d")

        # 4. mutation (the new rate is written into the optimizer's param groups)
        g_mut = self._mutate_lr(g_off)
        d_mut = self._mutate_lr(d_off)
        if cfg.losses.mutation == "generation":
            g_off.loss = ops.draw_loss(cfg.losses.generator, self.rng)

        # 5. training over the shard
        train_g, train_d, counts, steps, nonfinite = self._train(g_off, d_off)

        # 6. elitist replacement, re-evaluated on a fresh shared batch
        real, z = self._fitness_batch()
        g_eval, d_eval = self._fitness(gs + [g_off.net], ds + [d_off.net], real, z, fit_loss)
        g_off.fitness, d_off.fitness = g_eval[-1], d_eval[-1]
        self.g, g_parent, g_replaced = self._replace(self.g, g_off, g_eval, gi, members, "g")
        self.d, d_parent, d_replaced = self._replace(self.d, d_off, d_eval, di, members, "d")

        # 7. mixture weights
        mix_score, accepted = math.nan, False
        if cfg.mixture.enabled:
            gens = [self.g.sampler, *self._g_samplers]
            z_mix = self._noise(cfg.mixture.samples)
            self.mixture_weights, rec = ops.mixture_es_step(
                self.mixture_weights,
                cfg.mixture.sigma,
                self.rng,
                lambda w: self.task.mixture_score(self._mixture_samples(gens, w, z_mix)),
            )
            accepted = rec.accepted
            mix_score = rec.new_score if accepted else rec.old_score

        self.generation = generation + 1
        return CellReport(
            generation=generation,
            cell=self.index,
            g_lr=self.g.lr,
            d_lr=self.d.lr,
            g_loss=self.g.loss,
            g_loss_counts=dict(counts),
            g_fitness=self.g.fitness,
            d_fitness=self.d.fitness,
            g_replaced=g_replaced,
            d_replaced=d_replaced,
            g_parent=g_parent,
            d_parent=d_parent,
            g_lr_mutated=g_mut,
            d_lr_mutated=d_mut,
            mixture_members=members,
            mixture_weights=[float(w) for w in self.mixture_weights],
            mixture_score=mix_score,
            mixture_accepted=accepted,
            train_g_loss=train_g,
            train_d_loss=train_d,
            steps=steps,
            nonfinite=nonfinite,
            seconds=time.perf_counter() - start,
        )

    def _noise(self, n: int) -> Tensor:
        z = torch.randn(n, self.config.networks.latent_dim, generator=self.torch_rng)
        return z.to(self.device)

    def _fitness_batch(self) -> tuple[Tensor, Tensor]:
        data = self.task.data
        n = min(self.config.evolution.fitness_sample_size, len(data))
        idx = self.rng.choice(len(data), size=n, replace=False)
        return data[torch.from_numpy(idx)].to(self.device), self._noise(n)

    def _fitness(
        self, gs: list[nn.Module], ds: list[nn.Module], real: Tensor, z: Tensor, loss: Any
    ) -> tuple[list[float], list[float]]:
        nets = gs + ds
        modes = [n.training for n in nets]
        for n in nets:
            n.eval()
        try:
            return ops.all_vs_all_fitness(
                gs, ds, real, z, loss, self.config.evolution.fitness_aggregation
            )
        finally:
            for n, mode in zip(nets, modes):
                n.train(mode)

    def _offspring(self, centre: Individual, slot: int, side: str) -> Individual:
        """Copy of the selected member; own centre keeps its optimizer state, others start fresh."""
        if slot == 0:
            return centre.clone(self._betas)
        src = (self._g_slots if side == "g" else self._d_slots)[slot - 1]
        meta = self._slot_meta[slot - 1]
        net = copy.deepcopy(src).requires_grad_(True)
        lr = float(meta[f"{side}_lr"])
        loss = str(meta["g_loss"]) if side == "g" else ""
        ind = Individual(net, make_optimizer(net, lr, self._betas), lr, int(meta["cell"]), loss)
        if side == "g" and self._keeps_average:
            ind.ema = copy.deepcopy(self._g_samplers[slot - 1])
        return ind

    def _mutate_lr(self, ind: Individual) -> bool:
        evo = self.config.evolution
        ind.lr, record = ops.mutate_lr(
            ind.lr,
            self.rng,
            rule=evo.lr_mutation,
            probability=evo.lr_mutation_probability,
            sigma=evo.lr_mutation_sigma,
            additive_sigma=evo.lr_additive_sigma,
            lr_min=evo.lr_min,
            lr_max=evo.lr_max,
        )
        ops.set_optimizer_lr(ind.optimizer, ind.lr)
        return record.mutated

    def _train(
        self, g_off: Individual, d_off: Individual
    ) -> tuple[float, float, Counter[str], int, bool]:
        """Train the offspring over the shard; returns mean losses, loss counts, steps, NaN flag."""
        cfg = self.config
        data = self.task.data
        gs, ds = [g_off.net], [d_off.net]
        if cfg.training.adversaries == "neighbourhood":
            gs += self._g_slots
            ds += self._d_slots
        for net in gs + ds:
            net.train()
        perm = torch.from_numpy(self.rng.permutation(len(data)))
        batches = [
            perm[i : i + cfg.training.batch_size]
            for i in range(0, len(data), cfg.training.batch_size)
        ]
        batches = [b for b in batches if len(b) >= 2]  # batch norm needs two samples
        if cfg.training.max_batches is not None:
            batches = batches[: cfg.training.max_batches]
        counts: Counter[str] = Counter()
        sum_g = sum_d = 0.0
        steps = 0
        nonfinite = False
        for idx in batches:
            if cfg.losses.mutation == "batch":
                g_off.loss = ops.draw_loss(cfg.losses.generator, self.rng)
            loss = get_loss(g_off.loss)
            counts[g_off.loss] += 1
            real = data[idx].to(self.device)
            # discriminator step against a generator drawn from the neighbourhood
            g_adv = gs[int(self.rng.integers(len(gs)))]
            with torch.no_grad():
                fake = g_adv(self._noise(len(idx)))
            d_loss = loss.discriminator(d_off.net(real), d_off.net(fake))
            if loss.gradient_penalty:
                gp = gradient_penalty(d_off.net, real, fake, self.torch_rng)
                d_loss = d_loss + cfg.losses.gradient_penalty * gp
            d_off.optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            d_off.optimizer.step()
            # generator step against a discriminator drawn from the neighbourhood
            d_adv = ds[int(self.rng.integers(len(ds)))]
            g_loss = loss.generator(d_adv(g_off.net(self._noise(len(idx)))))
            g_off.optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            g_off.optimizer.step()
            g_off.update_ema(cfg.training.g_ema)
            steps += 1
            dl, gl = float(d_loss.detach()), float(g_loss.detach())
            if not (math.isfinite(dl) and math.isfinite(gl)):
                nonfinite = True
                break
            sum_g += gl
            sum_d += dl
        d_off.optimizer.zero_grad(set_to_none=True)
        n = max(steps, 1)
        return sum_g / n, sum_d / n, counts, steps, nonfinite

    def _replace(
        self,
        centre: Individual,
        offspring: Individual,
        fitness: list[float],
        selected: int,
        members: list[int],
        side: str,
    ) -> tuple[Individual, int, bool]:
        """New centre after elitist replacement: (individual, parent cell, offspring entered?)."""
        population = fitness[:-1]
        if not self.config.evolution.replacement:
            return offspring, members[selected], True
        record = ops.elitist_replacement(population, fitness[-1])
        if record.replaced is not None and record.centre == record.replaced:
            return offspring, members[selected], True
        replaced = record.replaced is not None
        if record.centre == 0:
            centre.fitness = population[0]
            return centre, members[0], replaced
        k = record.centre
        winner = self._offspring(centre, k, side)  # adopt a neighbour's networks
        winner.fitness = population[k]
        return winner, members[k], replaced

    # -- mixture ----------------------------------------------------------------------------
    @torch.no_grad()
    def _mixture_samples(self, gens: Sequence[nn.Module], weights: np.ndarray, z: Tensor) -> Tensor:
        counts = ops.mixture_counts(weights, len(z))
        parts, start = [], 0
        for g, c in zip(gens, counts):
            if c > 0:
                was = g.training
                g.eval()
                parts.append(g(z[start : start + int(c)]))
                g.train(was)
            start += int(c)
        return torch.cat(parts).cpu()

    def sample(
        self, snapshots: Sequence[Snapshot], n: int, seed: int, centre_only: bool = False
    ) -> Tensor:
        """Draw `n` samples from this cell's mixture over its current neighbourhood.

        Uses its own RNG (seeded by `seed`), so sampling never perturbs the training stream.

        Args:
            snapshots: the neighbours' current centres, in `self.neighbours` order.
            n: number of samples.
            seed: sampling seed.
            centre_only: sample the cell's own generator instead of the mixture.
        """
        self._receive(snapshots)
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.config.networks.latent_dim, generator=gen).to(self.device)
        weights = self.mixture_weights
        if centre_only:
            weights = np.eye(len(weights))[0]
        return self._mixture_samples([self.g.sampler, *self._g_samplers], weights, z)

    def evaluate(self, snapshots: Sequence[Snapshot], n: int, seed: int) -> dict[str, float]:
        """Metrics of this cell's mixture (see `CellTask.evaluate`)."""
        return self.task.evaluate(self.sample(snapshots, n, seed))

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Full cell state: centre individuals, mixture weights and RNG states."""
        return {
            "index": self.index,
            "generation": self.generation,
            "g": self.g.state_dict(),
            "d": self.d.state_dict(),
            "mixture_weights": [float(w) for w in self.mixture_weights],
            "rng": self.rng.bit_generator.state,
            "torch_rng": self.torch_rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict` (the cell must have the same index and config)."""
        if int(state["index"]) != self.index:
            raise ValueError(f"state of cell {state['index']} loaded into cell {self.index}")
        self.generation = int(state["generation"])
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        ops.set_optimizer_lr(self.g.optimizer, self.g.lr)
        ops.set_optimizer_lr(self.d.optimizer, self.d.lr)
        self.mixture_weights = np.asarray(state["mixture_weights"], dtype=np.float64)
        self.rng.bit_generator.state = state["rng"]
        self.torch_rng.set_state(state["torch_rng"])
