"""raygan.arch: building, variation, encoding, elitism and weight inheritance of genomes."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Literal

import numpy as np
import pytest
import torch
import yaml

from raygan.arch.bounds import Bounds, check
from raygan.arch.build import build, infeasibility, parameter_count
from raygan.arch.elitism import Refill, elite_count, refill, select
from raygan.arch.genome import Block, Genome, Optimizer
from raygan.arch.variation import Variation, inherit_state, mutate, random_genome

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
LATENT = 16
BOUNDS = Bounds()


def _tg(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _genome() -> Genome:
    conv = Block("conv", 16, 4, 2, 0.1, "leaky_relu")
    return Genome(
        g_channels=32,
        g_blocks=(Block("conv", 16, 4, 2, 0.1, "relu"), Block("conv", 8, 3, 1, None, "prelu")),
        d_blocks=(conv, dataclasses.replace(conv, width=32), Block("linear", 64, bn=0.1)),
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_random_genomes_build_valid_networks(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    for i in range(6):
        genome, _ = random_genome(rng, shape, BOUNDS, LATENT)
        g, d = build(genome, LATENT, shape, _tg(i))
        z = torch.randn(5, LATENT, generator=_tg(100 + i))
        with torch.no_grad():
            x = g(z)
            assert x.shape == (5, *shape)
            assert x.min() >= -1 and x.max() <= 1
            assert d(x).shape == (5,)
            features = d.features(x)
        assert features.ndim == 2 and features.shape[0] == 5
        counts = parameter_count(genome, LATENT, shape)
        built = tuple(sum(p.numel() for p in net.parameters()) for net in (g, d))
        assert counts == built
        assert max(counts) <= BOUNDS.max_params


def test_build_uses_only_the_given_generator() -> None:
    shape = (1, 28, 28)
    before = torch.random.get_rng_state()
    g1, d1 = build(_genome(), LATENT, shape, _tg(5))
    g2, d2 = build(_genome(), LATENT, shape, _tg(5))
    assert torch.equal(torch.random.get_rng_state(), before)
    for a, b in ((g1, g2), (d1, d2)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
            assert torch.isfinite(x.float()).all(), name


def test_infeasible_genome_is_refused_in_one_line() -> None:
    up = Block("conv", 8, 4, 2)
    genome = dataclasses.replace(_genome(), g_blocks=(up, up, up))  # 28 / 8 is no integer
    assert infeasibility(genome, (1, 32, 32)) is None
    assert infeasibility(genome, (1, 28, 28)) is not None
    with pytest.raises(ValueError, match="2\\*\\*3") as err:
        build(genome, LATENT, (1, 28, 28), _tg(0))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="square"):
        parameter_count(genome, LATENT, (1, 28, 32))


def test_check_names_what_is_out_of_bounds() -> None:
    genome = _genome()
    check(genome, (1, 28, 28), BOUNDS, LATENT)
    cases = {
        "G base channels": dataclasses.replace(genome, g_channels=7),
        "kernel": dataclasses.replace(genome, g_blocks=(Block("conv", 16, 7, 2),)),
        "G lr": dataclasses.replace(genome, g_opt=Optimizer(lr=0.5)),
        "D conv blocks": dataclasses.replace(genome, d_blocks=genome.d_linears),
        "parameters": genome,
    }
    for what, bad in cases.items():
        bounds = Bounds(max_params=1000) if what == "parameters" else BOUNDS
        with pytest.raises(ValueError, match=what) as err:
            check(bad, (1, 28, 28), bounds, LATENT)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("shape", SHAPES)
def test_variation_is_deterministic_and_stays_in_bounds(shape: tuple[int, int, int]) -> None:
    def run(seed: int, steps: int) -> list[tuple[Genome, Variation]]:
        rng = np.random.default_rng(seed)
        genome, record = random_genome(rng, shape, BOUNDS, LATENT)
        out = [(genome, record)]
        for _ in range(steps):
            genome, record = mutate(genome, rng, shape, BOUNDS, LATENT)
            check(genome, shape, BOUNDS, LATENT)
            assert infeasibility(genome, shape) is None
            out.append((genome, record))
        return out

    long = run(1, 200)
    assert long[:11] == run(1, 10)
    assert run(2, 10) != long[:11]
    ops = {record.op for _, record in long[1:]}
    assert ops == {"add", "remove", "change", "lr"}


def test_encode_decode_round_trips() -> None:
    rng = np.random.default_rng(7)
    for i in range(60):
        genome, _ = random_genome(rng, SHAPES[i % 3], BOUNDS, LATENT)
        text = genome.encode()
        assert Genome.decode(text) == genome
        assert yaml.safe_load(f"genome: {text}")["genome"] == text
        assert " " not in text
        assert Genome.from_dict(json.loads(json.dumps(genome.to_dict()))) == genome


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        "G64=c16k4s2.prelu/D=c8k4s2.relu/Gopt=adam.lr0.1.m0.5",
        "G64=c16k4s2.prelu/D=c8k4s2.relu/Gopt=adam.lrnan.m0.5/Dopt=adam.lr0.1.m0.5",
        "G64=c16k4s2.bogus/D=c8k4s2.relu/Gopt=adam.lr0.1.m0.5/Dopt=adam.lr0.1.m0.5",
        "G64=l16.prelu/D=c8k4s2.relu/Gopt=adam.lr0.1.m0.5/Dopt=adam.lr0.1.m0.5",
        "G64=c16k4s2.elu/D=l8.relu+c8k4s2.relu/Gopt=adam.lr0.1.m0.5/Dopt=adam.lr0.1.m0.5",
        "G64=c16k4s3.elu/D=c8k4s2.relu/Gopt=adam.lr0.1.m0.5/Dopt=adam.lr0.1.m0.5",
        "G64=c16k4s2.elu/D=c8.relu/Gopt=adam.lr0.1.m0.5/Dopt=adam.lr0.1.m0.5",
        "line one\nline two" * 20,
    ],
)
def test_decode_rejects_garbage_in_one_line(garbage: str) -> None:
    with pytest.raises(ValueError, match="malformed genome") as err:
        Genome.decode(garbage)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("min_g_blocks", 0),
        ("min_d_blocks", 5),
        ("max_d_linear", -1),
        ("channels", ()),
        ("kernels", (0, 3)),
        ("linear_widths", (-4,)),
        ("bn_momenta", (2.0,)),
        ("optimizers", ("adamw",)),
        ("momenta", (1.0,)),
        ("lr_min", 0.0),
        ("lr_max", math.inf),
        ("max_params", 0),
    ],
)
def test_bad_bounds_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"Bounds.{field}"):
        Bounds(**{field: value})  # type: ignore[arg-type]


def test_select_keeps_exactly_the_best_fraction() -> None:
    order = np.random.default_rng(0).permutation(10)
    fitness = {f"t{i}": float(i) for i in order}
    assert select(fitness, 0.3) == (["t0", "t1", "t2"], [f"t{i}" for i in range(3, 10)])
    assert select(fitness, 0.3, lower_is_better=False)[0] == ["t9", "t8", "t7"]
    assert len(select(fitness, 0.25)[0]) == 3  # ceil(2.5)
    assert select(fitness, 0.001)[0] == ["t0"]  # at least one
    assert elite_count(10, 1.0) == 10
    for bad in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="elite_fraction"):
            select(fitness, bad)


def test_select_ranks_non_finite_last_and_breaks_ties_by_id() -> None:
    fitness = {"a": math.nan, "b": 1.0, "c": math.inf, "d": -math.inf, "e": 0.5, "f": 0.5}
    assert select(fitness, 0.5) == (["e", "f", "b"], ["a", "c", "d"])
    assert select(fitness, 0.5, lower_is_better=False) == (["b", "e", "f"], ["a", "c", "d"])
    assert select({"z": 1.0, "y": 1.0, "x": 1.0}, 0.34) == (["x", "y"], ["z"])


@pytest.mark.parametrize("mode", ["mutate", "random"])
def test_refill_names_the_parent(mode: Literal["mutate", "random"]) -> None:
    shape = (1, 8, 8)
    rng = np.random.default_rng(3)
    genomes = {f"t{i}": random_genome(rng, shape, BOUNDS, LATENT)[0] for i in range(6)}
    elites, replaced = select({t: float(i) for i, t in enumerate(genomes)}, 0.5)

    def run(seed: int) -> dict[str, tuple[Genome, Refill]]:
        rng = np.random.default_rng(seed)
        return refill(replaced, elites, genomes, rng, mode, shape, BOUNDS, LATENT)

    new = run(4)
    assert new == run(4) and new != run(5)
    assert sorted(new) == sorted(replaced)
    for genome, record in new.values():
        check(genome, shape, BOUNDS, LATENT)
        if mode == "mutate":
            assert record.parent in elites and record.variation.op != "random"
        else:
            assert record.parent is None and record.variation.op == "random"


def test_inherit_state_copies_everything_for_an_unchanged_genome() -> None:
    shape = (1, 28, 28)
    parent = build(_genome(), LATENT, shape, _tg(0))
    child = build(_genome(), LATENT, shape, _tg(1))
    z = torch.randn(4, LATENT, generator=_tg(2))
    for p, c in zip(parent, child):
        assert inherit_state(c.state_dict(), p.state_dict()) == len(p.state_dict())
        p.eval()
        c.eval()
    with torch.no_grad():
        assert torch.equal(child[0](z), parent[0](z))
        x = parent[0](z)
        assert torch.equal(child[1](x), parent[1](x))


def test_inherit_state_copies_only_matching_shapes_after_a_mutation() -> None:
    shape = (1, 28, 28)
    genome = _genome()
    widened = dataclasses.replace(genome.d_blocks[1], width=64)
    d_blocks = (genome.d_blocks[0], widened, genome.d_blocks[2])
    mutated = dataclasses.replace(genome, d_blocks=d_blocks)
    parent = build(genome, LATENT, shape, _tg(0))[1]
    child = build(mutated, LATENT, shape, _tg(1))[1]
    fresh = {k: v.clone() for k, v in child.state_dict().items()}
    before = parent.state_dict()
    copied = inherit_state(child.state_dict(), parent.state_dict())
    after = child.state_dict()
    matching = [k for k in after if k in before and before[k].shape == after[k].shape]
    assert copied == len(matching)
    for name, tensor in after.items():
        expected = before[name] if name in matching else fresh[name]
        assert torch.equal(tensor, expected), name
    assert "blocks.0.layer.weight" in matching  # the block before the change keeps its weights
    assert "blocks.1.layer.weight" not in matching  # the widened block starts afresh
    assert "head.0.layer.weight" not in matching  # its input grew with the widened map
