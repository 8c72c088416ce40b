"""Stale adversaries: one plain GAN on the ring of 8 whose adversaries are sometimes old copies.

The grid's `neighbourhood` training rule draws most adversaries from neighbours' networks,
which are snapshots frozen for a whole generation. This script isolates that effect without the
engine: a single G/D pair (the toy configs' networks), where with probability `p` each step's
adversary is a copy taken at most `lag` steps earlier instead of the live network. `p = 0.8`
matches a 3x3 grid (4 of 5 adversaries are neighbours). Prints one JSON object.

    python bench/stale_adversary.py [--steps 3000] [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine  # noqa: E402

from raygan.data.toy import ring_modes  # noqa: E402
from raygan.metrics.toy import toy_metrics  # noqa: E402

STD = 0.01
LATENT = 16
SETTINGS = {"live": (0.0, 1), "stale_p0.8_lag1": (0.8, 1), "stale_p0.8_lag2": (0.8, 2),
            "stale_p0.8_lag20": (0.8, 20)}


def _mlp(inp: int, out: int, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, 64), act, nn.Linear(64, 64), act, nn.Linear(64, out))


def train(p_stale: float, lag: int, steps: int, seed: int) -> dict[str, float]:
    """Non-saturating GAN, Adam 1e-3 (beta1 0.5), batch 100; returns the toy metrics."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    modes = ring_modes()
    g, d = _mlp(LATENT, 2, nn.ReLU()), _mlp(2, 1, nn.LeakyReLU(0.2))
    opt_g = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 1e-3, betas=(0.5, 0.999))
    old_g, old_d = copy.deepcopy(g), copy.deepcopy(d)
    for step in range(steps):
        if step % lag == 0:
            old_g.load_state_dict(g.state_dict())
            old_d.load_state_dict(d.state_dict())
        centres = modes[rng.integers(len(modes), size=100)]
        real = torch.as_tensor(centres + STD * rng.standard_normal((100, 2)), dtype=torch.float32)
        g_adv = old_g if rng.random() < p_stale else g
        with torch.no_grad():
            fake = g_adv(torch.randn(100, LATENT))
        loss_d = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d_adv = old_d if rng.random() < p_stale else d
        loss_g = F.softplus(-d_adv(g(torch.randn(100, LATENT)))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    with torch.no_grad():
        samples = g(torch.randn(2500, LATENT))
    return toy_metrics(samples, modes, STD)


def main() -> None:
    """Train every setting over the seeds and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 seed, 1000 steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps, seeds = (1000, 1) if args.quick else (args.steps, args.seeds)
    result: dict[str, Any] = {"bench": "stale_adversary", "machine": machine(), "steps": steps,
                              "seeds": seeds, "settings": {}}
    for name, (p_stale, lag) in SETTINGS.items():
        runs = [train(p_stale, lag, steps, seed) for seed in range(seeds)]
        result["settings"][name] = {
            "p_stale": p_stale,
            "lag": lag,
            "runs": runs,
            **{k: statistics.fmean(r[k] for r in runs) for k in ("modes_covered", "hq_fraction")},
        }
        print(name, result["settings"][name]["modes_covered"], file=sys.stderr, flush=True)
    emit(result)


if __name__ == "__main__":
    main()
