"""A grid cell: one centre GAN, trained for a generation by its training rule.

A cell is its neighbourhood (`raygan.core.neighbourhood`: its centre G and D, and its
neighbours' networks as received), its mixture (`raygan.core.mixture`: weights over the
neighbourhood's generators) and its seeded streams. A generation reads top to bottom:

1. `begin` receives the neighbours' snapshots, measures every member's fitness on a shared
   batch and lets the rule (`raygan.core.rules`, chosen by `training.rule`) say who trains
   against whom; it returns the `GenerationInProgress`.
2. Its `train` runs the batches with the rule's loop (`CellGroup` may run several cells'
   batches as one stacked step instead); rule `fresh` reloads the neighbours between rounds
   (`GenerationInProgress.refresh`).
3. `finish` installs the new centres (`GenerationInProgress.end`: the rule's pick, a
   non-finite one re-seeded from a neighbour), steps the mixture ES and reports.

`run_generation` does all three with no exchange in between.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from raygan.config import ConfigError, RunConfig
from raygan.core import operators as ops
from raygan.core.exploit import exploit
from raygan.core.fitness import all_vs_all, shared_batch
from raygan.core.individual import Individual
from raygan.core.mixture import Mixture
from raygan.core.neighbourhood import Neighbourhood, Snapshot
from raygan.core.progress import GenerationInProgress
from raygan.core.report import CellReport
from raygan.core.rules import get_rule
from raygan.core.rules.base import Generation, side_report
from raygan.core.steps import Tally
from raygan.core.task import PREVIEW_IMAGES, CellTask, Scored, preview_of


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
    """One cell of the grid: its neighbourhood, its mixture and its streams.

    Args:
        config: the run configuration.
        index: this cell's index on the grid.
        neighbours: indices of the other members of its neighbourhood (self excluded), in the
            order their snapshots will be passed to `begin`.
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
        self.neighbourhood = Neighbourhood(config, [index, *self.neighbours], self.sample_shape,
                                           self.torch_rng, self.device,
                                           self.rule.needs_optimizer_state)
        self.mix = Mixture(config, 1 + len(self.neighbours), self.device)
        self.generation = 0

    @property
    def g(self) -> Individual:
        """The centre generator."""
        return self.neighbourhood.g

    @property
    def d(self) -> Individual:
        """The centre discriminator."""
        return self.neighbourhood.d

    def publish(self) -> Snapshot:
        """The centre, as sent to the neighbours (`Neighbourhood.publish`)."""
        return self.neighbourhood.publish()

    def nonfinite_networks(self) -> list[str]:
        """Which centre networks are not finite (`Neighbourhood.broken`)."""
        return self.neighbourhood.broken()

    # -- one generation ---------------------------------------------------------------------
    def run_generation(self, generation: int, snapshots: Sequence[Snapshot]) -> CellReport:
        """A whole generation with the neighbours' snapshots of its start (in `neighbours`
        order); `generation` is its index, for the report."""
        current = self.begin(generation, snapshots)
        current.train(current.left)
        return self.finish(current)

    def begin(self, generation: int, snapshots: Sequence[Snapshot]) -> GenerationInProgress:
        """Receive the neighbours, measure every member's fitness, let the rule pair the
        trainees; the batches are the generation's to train."""
        start = time.perf_counter()
        nbh = self.neighbourhood
        nbh.receive(snapshots)
        batch = shared_batch(self.config, self.task.data, self.rng, self.torch_rng, self.device)
        g_fit, d_fit = all_vs_all(
            self.config, [nbh.g.net, *nbh.g_slots], [nbh.d.net, *nbh.d_slots], batch
        )
        gen = Generation(self.config, nbh, batch, g_fit, d_fit, self._batches(), self.task.data,
                         self.rng, self.torch_rng)
        return GenerationInProgress(generation, self.rule, gen, self.rule.begin(gen), Tally(),
                                    start)

    def finish(self, current: GenerationInProgress) -> CellReport:
        """Install the generation's new centres (`GenerationInProgress.end`: the rule's pick,
        re-seeded where not finite; `exploit`: a much better neighbour's copy), step the
        mixture ES, report."""
        gen, tally = current.gen, current.tally
        outcome, reseeded = current.end()
        self.neighbourhood.g, self.neighbourhood.d = outcome.g.individual, outcome.d.individual
        outcome, exploited = exploit(gen, outcome, self.task.mixture_score)
        self.neighbourhood.g, self.neighbourhood.d = outcome.g.individual, outcome.d.individual
        mix_score, accepted = self.mix.step(self.neighbourhood.generators(), self.rng,
                                            self.torch_rng, self.task.mixture_score)
        self.generation = current.generation + 1
        return CellReport(
            generation=current.generation,
            cell=self.index,
            rule=self.rule.name,
            g=side_report(outcome.g, tally, "g"),
            d=side_report(outcome.d, tally, "d"),
            g_loss=self.g.loss,
            g_loss_counts=dict(tally.loss_counts),
            mixture_members=list(gen.members),
            mixture_weights=[float(w) for w in self.mix.weights],
            mixture_score=mix_score,
            mixture_accepted=accepted,
            steps=tally.batches,
            exchanges=current.exchanges,
            nonfinite=tally.nonfinite,
            reconstruction=tally.reconstruction_sum / max(tally.g_steps, 1)
            if self.config.networks.kind == "aae" else math.nan,
            seconds=time.perf_counter() - current.start_time,
            broken=self.nonfinite_networks(),
            reseeded=reseeded,
            exploited=-1 if exploited.donor is None else gen.members[exploited.donor],
        )

    def _batches(self) -> list[Tensor]:
        """This generation's batches: a fresh permutation of the shard."""
        n, size = len(self.task.data), self.config.training.batch_size
        perm = torch.from_numpy(self.rng.permutation(n))
        batches = [perm[i : i + size] for i in range(0, n, size)]
        batches = [b for b in batches if len(b) >= 2]  # batch norm needs two samples
        cap = self.config.training.max_batches
        return batches if cap is None else batches[:cap]

    # -- the mixture ------------------------------------------------------------------------
    def mixture(
        self, snapshots: Sequence[Snapshot], centre_only: bool = False
    ) -> tuple[list[nn.Module], np.ndarray | None]:
        """The generators of this cell's mixture, its own first, the neighbours' current
        centres being `snapshots`, and their weights restricted to the finite ones (None when
        none is; `Mixture.usable`): what `sample` draws from and `raygan.export` takes away."""
        self.neighbourhood.receive(snapshots)
        gens = self.neighbourhood.generators()
        return gens, self.mix.usable(gens, centre_only)

    def sample(
        self, snapshots: Sequence[Snapshot], n: int, seed: int, centre_only: bool = False
    ) -> Tensor:
        """`n` samples of the mixture (`Mixture.sample`, on a generator seeded by `seed`, so
        sampling never perturbs the training streams); arguments as for `mixture`."""
        gens, weights = self.mixture(snapshots, centre_only)
        return self.mix.sample(gens, weights, n, seed, self.sample_shape)

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
            "mixture_weights": [float(w) for w in self.mix.weights],
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
        self.mix.weights = np.asarray(state["mixture_weights"], dtype=np.float64)
        self.rng.bit_generator.state = state["rng"]
        self.torch_rng.set_state(state["torch_rng"])
