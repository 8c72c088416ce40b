"""A grid cell: one centre GAN, trained for a generation by its training rule.

`Cell` orchestrates and nothing else: it receives the neighbours' snapshots, measures the
start-of-generation fitness, lets its rule (`raygan.core.rules`, chosen by `training.rule`)
say who trains against whom, runs the batches, lets the rule pick the new centres, steps the
mixture-weights ES and reports. A generation is `begin`, one or more `train` rounds (the
`fresh` rule reloads the neighbours' snapshots between them) and `finish`; `run_generation`
does all three with no exchange in between.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from raygan.config import ConfigError, RunConfig
from raygan.core import aae
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
from raygan.core.losses import get_loss
from raygan.core.networks import build_networks, optimizer_specs
from raygan.core.report import CellReport
from raygan.core.rules import get_rule
from raygan.core.rules.base import (
    FitnessBatch,
    Generation,
    Outcome,
    Pairing,
    SideOutcome,
    Tally,
    side_report,
)
from raygan.core.task import PREVIEW_IMAGES, CellTask, Scored, preview_of
from raygan.core.techniques import attach_history

Snapshot = dict[str, Any]
"""What a cell publishes: {"cell", "g", "d", "g_ema" (numpy weights), "g_lr", "d_lr", "g_loss",
and "g_opt", "d_opt" (numpy Adam states) for rules that train neighbours' copies}."""


@dataclass
class Running:
    """A generation between `begin` and `finish`: what the rule trains and the next batch."""

    gen: Generation
    pairing: Pairing
    tally: Tally
    start_time: float
    exchanges: int = 0
    next_batch: int = 0


def cell_seeds(seed: int, n_cells: int) -> list[np.random.SeedSequence]:
    """One independent seed stream per cell, all derived from the run's base seed."""
    return list(np.random.SeedSequence(seed).spawn(n_cells))


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available, else CPU.

    Raises:
        ConfigError: for 'cuda' in a process where torch sees no CUDA device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"training.device: {name!r}, but torch sees no CUDA GPU in this process "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use 'auto' or 'cpu'"
        )
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
        self.rule = get_rule(config.training.rule)
        self.sample_shape = tuple(task.data.shape[1:])
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.torch_rng = torch.Generator().manual_seed(
            int(seed.generate_state(1, np.uint64)[0] >> np.uint64(1))
        )
        self._optimizers = optimizer_specs(config.networks, config.training)
        g_net, d_net = self._new_pair(self.torch_rng)
        losses = config.losses.generator
        self.g = self._individual(g_net, "g", losses[0])
        self.g.ema = self._average_of(g_net)
        self.d = self._individual(d_net, "d", "")
        n_members = 1 + len(self.neighbours)
        self.mixture_weights = np.full(n_members, 1.0 / n_members)
        # read-only networks reloaded from the neighbours' snapshots at every exchange
        spare = torch.Generator().manual_seed(0)
        pairs = [self._new_pair(spare) for _ in self.neighbours]
        self._g_slots = [self._frozen(g) for g, _ in pairs]
        self._d_slots = [self._frozen(d) for _, d in pairs]
        # what the mixture samples: the neighbours' weight averages when they keep one
        self._g_samplers = self._g_slots
        if self._keeps_average:
            self._g_samplers = [self._frozen(copy.deepcopy(g)) for g in self._g_slots]
        self._slot_meta: list[Snapshot] = [{} for _ in self.neighbours]
        self._running: Running | None = None
        self.generation = 0

    # -- construction helpers -------------------------------------------------------------
    def _new_pair(self, generator: torch.Generator) -> tuple[nn.Module, nn.Module]:
        g, d = build_networks(self.config.networks, self.sample_shape, generator)
        if self.config.losses.discriminators == "local":
            d = LocalDiscriminators(self.sample_shape, self.config.losses.k,
                                    self.config.networks.d_hidden,
                                    self.config.networks.hidden_layers, generator)
        if self.config.training.historical_averaging > 0:
            attach_history(g)
            attach_history(d)
        return g.to(self.device), d.to(self.device)

    def _individual(self, net: nn.Module, side: str, loss: str) -> Individual:
        spec = self._optimizers[side]
        return Individual(net, make_optimizer(net, spec.lr, spec.betas, spec.name), spec.lr,
                          self.index, loss)

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
        snap: Snapshot = {
            "cell": self.index,
            "g": module_to_numpy(self.g.net),
            "d": module_to_numpy(self.d.net),
            "g_lr": self.g.lr,
            "d_lr": self.d.lr,
            "g_loss": self.g.loss,
            "g_ema": None if self.g.ema is None else module_to_numpy(self.g.ema),
        }
        if self.rule.needs_optimizer_state:
            snap["g_opt"] = optimizer_to_numpy(self.g.optimizer)
            snap["d_opt"] = optimizer_to_numpy(self.d.optimizer)
        return snap

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

    def _adopt(self, slot: int, side: str) -> Individual:
        """A trainable copy of member `slot`'s network (see `Generation.adopt`)."""
        centre = self.g if side == "g" else self.d
        if slot == 0:
            return centre.clone()
        src = (self._g_slots if side == "g" else self._d_slots)[slot - 1]
        meta = self._slot_meta[slot - 1]
        net = copy.deepcopy(src).requires_grad_(True)
        lr = float(meta[f"{side}_lr"])
        loss = str(meta["g_loss"]) if side == "g" else ""
        spec = self._optimizers[side]
        opt = make_optimizer(net, lr, spec.betas, spec.name)
        ind = Individual(net, opt, lr, int(meta["cell"]), loss)
        if f"{side}_opt" in meta:
            load_optimizer_numpy(ind.optimizer, meta[f"{side}_opt"])
            ops.set_optimizer_lr(ind.optimizer, lr)
        if side == "g" and self._keeps_average:
            ind.ema = copy.deepcopy(self._g_samplers[slot - 1])
        return ind

    # -- one generation ---------------------------------------------------------------------
    @property
    def exchange_every(self) -> int | None:
        """Batches between neighbour refreshes in a generation (None: once per generation)."""
        return self.rule.exchange_every(self.config)

    def run_generation(self, generation: int, snapshots: Sequence[Snapshot]) -> CellReport:
        """A whole generation with the neighbours' snapshots of its start.

        Args:
            generation: index of this generation (for the report).
            snapshots: the neighbours' published centres, in `self.neighbours` order.
        """
        self.begin(generation, snapshots)
        self.train(None, len(self._state().gen.batches))
        return self.finish(generation)

    def begin(self, generation: int, snapshots: Sequence[Snapshot]) -> int:
        """Receive the neighbours, measure fitness, let the rule pair the trainees.

        Returns:
            The number of batches this generation trains on.
        """
        start = time.perf_counter()
        self._receive(snapshots)
        batch = self._fitness_batch()
        g_fit, d_fit = self._fitness(
            [self.g.net, *self._g_slots], [self.d.net, *self._d_slots], batch
        )
        gen = Generation(
            config=self.config,
            members=[self.index, *self.neighbours],
            g=self.g,
            d=self.d,
            g_slots=self._g_slots,
            d_slots=self._d_slots,
            start=batch,
            g_fitness=g_fit,
            d_fitness=d_fit,
            batches=self._batches(),
            data=self.task.data,
            rng=self.rng,
            noise=self._noise,
            torch_rng=self.torch_rng,
            adopt=self._adopt,
            fitness=self._fitness,
            fitness_batch=self._fitness_batch,
        )
        self._running = Running(gen, self.rule.begin(gen), Tally(), start)
        return len(gen.batches)

    def train(self, snapshots: Sequence[Snapshot] | None, batches: int) -> None:
        """Train the next `batches` batches, after reloading the neighbours if given."""
        run = self.reload(snapshots)
        stop = run.next_batch + batches
        self.rule.train(run.gen, run.pairing, run.next_batch, stop, run.tally)
        self.advance(batches)

    def reload(self, snapshots: Sequence[Snapshot] | None) -> Running:
        """The generation in progress, after reloading the neighbours if given (the first
        half of `train`; a worker that trains its cells together calls it for each)."""
        run = self._state()
        if snapshots is not None:
            self._receive(snapshots)
            run.exchanges += 1
        return run

    def advance(self, batches: int) -> None:
        """Count `batches` more batches as trained (the second half of `train`)."""
        run = self._state()
        run.next_batch = min(run.next_batch + batches, len(run.gen.batches))

    def finish(self, generation: int) -> CellReport:
        """Train what is left, let the rule pick the centres, step the mixture ES, report."""
        run = self._state()
        if run.next_batch < len(run.gen.batches):
            self.train(None, len(run.gen.batches) - run.next_batch)
        outcome, reseeded = self._reseed(run.gen, self.rule.end(run.gen, run.pairing))
        self.g, self.d = outcome.g.individual, outcome.d.individual
        self._running = None
        mix_score, accepted = math.nan, False
        gens = [self.g.sampler, *self._g_samplers]
        usable = [ops.all_finite(g) for g in gens] if self.config.mixture.enabled else []
        if any(usable):  # a non-finite generator keeps weight 0 (none finite: no step)
            z_mix = self._noise(self.config.mixture.samples)
            self.mixture_weights, rec = ops.mixture_es_step(
                self.mixture_weights,
                self.config.mixture.sigma,
                self.rng,
                lambda w: self._mixture_objective(ops.mixture_samples(gens, w, z_mix)),
                usable,
            )
            accepted = rec.accepted
            mix_score = rec.new_score if accepted else rec.old_score
        self.generation = generation + 1
        tally = run.tally
        return CellReport(
            generation=generation,
            cell=self.index,
            rule=self.rule.name,
            g=side_report(outcome.g, tally, "g"),
            d=side_report(outcome.d, tally, "d"),
            g_loss=self.g.loss,
            g_loss_counts=dict(tally.loss_counts),
            mixture_members=[self.index, *self.neighbours],
            mixture_weights=[float(w) for w in self.mixture_weights],
            mixture_score=mix_score,
            mixture_accepted=accepted,
            steps=tally.batches,
            exchanges=run.exchanges,
            nonfinite=tally.nonfinite,
            reconstruction=tally.reconstruction_sum / max(tally.g_steps, 1)
            if self.config.networks.kind == "aae" else math.nan,
            seconds=time.perf_counter() - run.start_time,
            broken=self.nonfinite_networks(),
            reseeded=reseeded,
        )

    def _mixture_objective(self, samples: Tensor) -> float:
        """What the mixture ES minimises; +inf (the worst) for non-finite samples, which the
        metrics are not asked to score (image metrics refuse them)."""
        if not bool(torch.isfinite(samples).all()):
            return math.inf
        return self.task.mixture_score(samples)

    # -- non-finite networks ----------------------------------------------------------------
    def nonfinite_networks(self) -> list[str]:
        """Which centre networks hold a non-finite parameter or buffer: "G" (its network or
        its weight average), "D"; empty when the cell is finite."""
        return [name for name, ok in (("G", self._finite_g(self.g.net, self.g.ema)),
                                      ("D", ops.all_finite(self.d.net))) if not ok]

    @staticmethod
    def _finite_g(net: nn.Module, average: nn.Module | None) -> bool:
        return ops.all_finite(net) and (average is None or ops.all_finite(average))

    def _slot_finite(self, slot: int, side: str) -> bool:
        """Whether neighbour slot `slot` (1-based, as in `Generation.members`) is finite."""
        if side == "d":
            return ops.all_finite(self._d_slots[slot - 1])
        average = self._g_samplers[slot - 1] if self._keeps_average else None
        return self._finite_g(self._g_slots[slot - 1], average)

    def _reseed(self, gen: Generation, outcome: Outcome) -> tuple[Outcome, dict[str, int]]:
        """Replace each new centre that is not finite by a trainable copy of the fittest finite
        neighbour's network (as received for this generation, with its fitness of the start),
        so that a NaN neither stays in the grid nor spreads through the neighbours' training.
        A centre with no finite neighbour stays as it is (`nonfinite_networks` says so).

        Returns:
            The outcome to adopt and what was re-seeded: "G" / "D" -> the neighbour's cell.
        """
        sides = {"g": outcome.g, "d": outcome.d}
        reseeded: dict[str, int] = {}
        for side, kept in sides.items():
            ind = kept.individual
            finite = (self._finite_g(ind.net, ind.ema) if side == "g"
                      else ops.all_finite(ind.net))
            donors = [k for k in range(1, len(gen.members)) if self._slot_finite(k, side)]
            if finite or not donors:
                continue
            fitness = gen.g_fitness if side == "g" else gen.d_fitness
            slot = min(donors, key=lambda k: (ops.finite_or_inf(fitness[k]), k))
            donor = self._adopt(slot, side)
            donor.fitness = fitness[slot]
            sides[side] = SideOutcome(donor, gen.members[slot], replaced=True, discarded=True,
                                      lr_mutated=False)
            reseeded[side.upper()] = gen.members[slot]
        return Outcome(sides["g"], sides["d"]), reseeded

    def _state(self) -> Running:
        if self._running is None:
            raise RuntimeError(f"cell {self.index}: no generation begun (call begin first)")
        return self._running

    def _batches(self) -> list[Tensor]:
        """This generation's batches: a fresh permutation of the shard."""
        n, size = len(self.task.data), self.config.training.batch_size
        perm = torch.from_numpy(self.rng.permutation(n))
        batches = [perm[i : i + size] for i in range(0, n, size)]
        batches = [b for b in batches if len(b) >= 2]  # batch norm needs two samples
        cap = self.config.training.max_batches
        return batches if cap is None else batches[:cap]

    def _noise(self, n: int) -> Tensor:
        return aae.latent(self.config.networks, n, self.torch_rng).to(self.device)

    def _fitness_batch(self) -> FitnessBatch:
        data = self.task.data
        n = min(self.config.evolution.fitness_sample_size, len(data))
        idx = self.rng.choice(len(data), size=n, replace=False)
        return data[torch.from_numpy(idx)].to(self.device), self._noise(n)

    def _fitness(
        self, gs: Sequence[nn.Module], ds: Sequence[nn.Module], batch: FitnessBatch
    ) -> tuple[list[float], list[float]]:
        nets = [*gs, *ds]
        evo = self.config.evolution
        if self.config.networks.kind == "aae":  # encoders' codes of the data against prior codes
            gs, batch = [aae.encoder_of(g) for g in gs], (batch[1], batch[0])
        with ops.eval_mode(nets):
            return ops.all_vs_all_fitness(
                list(gs), list(ds), *batch, get_loss(evo.fitness_loss), evo.fitness_aggregation
            )

    # -- mixture ----------------------------------------------------------------------------
    def sample(
        self, snapshots: Sequence[Snapshot], n: int, seed: int, centre_only: bool = False
    ) -> Tensor:
        """Draw `n` samples from this cell's mixture over its current neighbourhood.

        Uses its own RNG (seeded by `seed`), so sampling never perturbs the training stream.

        Args:
            snapshots: the neighbours' current centres, in `self.neighbours` order.
            n: number of samples.
            seed: sampling seed.
            centre_only: sample the cell's own generator instead of the mixture (always so
                when `mixture.enabled` is false: there is no mixture to sample).
        """
        gens, usable = self.mixture(snapshots, centre_only)
        gen = torch.Generator().manual_seed(seed)
        z = aae.latent(self.config.networks, n, gen).to(self.device)
        if usable is None:  # nothing finite to draw from: samples that score as the worst
            return torch.full((n, *self.sample_shape), math.nan)
        return ops.mixture_samples(gens, usable, z)

    def mixture(
        self, snapshots: Sequence[Snapshot], centre_only: bool = False
    ) -> tuple[list[nn.Module], np.ndarray | None]:
        """What `sample` draws from (`raygan.export` takes it away): the generators of this
        cell's mixture, its own first, and their weights restricted to the finite ones
        (`ops.usable_mixture`; None when none is); arguments as for `sample`."""
        self._receive(snapshots)
        gens = [self.g.sampler, *self._g_samplers]
        weights, members = self.mixture_weights, len(gens)
        if centre_only or not self.config.mixture.enabled:
            weights, members = np.eye(len(weights))[0], 1
        # a non-finite generator never feeds the mixture: its share goes to the finite members
        return gens, ops.usable_mixture(
            weights, [k < members and ops.all_finite(g) for k, g in enumerate(gens)])

    def evaluate(self, snapshots: Sequence[Snapshot], n: int, seed: int) -> Scored:
        """Metrics of this cell's mixture (see `CellTask.evaluate`) and a preview of the samples
        they were computed on, for figures (all toy points; `PREVIEW_IMAGES` images)."""
        samples = self.sample(snapshots, n, seed)
        keep = len(samples) if samples.ndim == 2 else PREVIEW_IMAGES  # points: all
        if not bool(torch.isfinite(samples).all()):  # no valid score: never ranked
            scores = {name: math.nan for name in self.config.metric_names}
            return Scored(scores, preview_of(samples, keep))
        return Scored(self.task.evaluate(samples), preview_of(samples, keep))

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
        self._running = None
        self.generation = int(state["generation"])
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        ops.set_optimizer_lr(self.g.optimizer, self.g.lr)
        ops.set_optimizer_lr(self.d.optimizer, self.d.lr)
        self.mixture_weights = np.asarray(state["mixture_weights"], dtype=np.float64)
        self.rng.bit_generator.state = state["rng"]
        self.torch_rng.set_state(state["torch_rng"])
