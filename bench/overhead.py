"""Where a generation's time goes: cell compute vs exchange/control, local vs Ray, and the limit.

Prints one JSON object on stdout (progress on stderr):
- `grids`: for each (config, grid, backend), pool start-up time and per-generation wall time of
  `Controller.step` (publish, routing, the cells' generations, bookkeeping; no evaluation) split
  into compute (sum and max of the cells' `report.seconds`) and exchange/control overhead. The
  overhead is wall minus max compute for Ray (cells run in parallel) and wall minus sum compute
  for the local pool (cells run one after another). Generation 0 is reported apart as warm-up.
  Ray entries add `state_fetch_all_cells_s`: what pulling every cell's state to the driver would
  cost per generation; the pool avoids it by keeping the states (returned by the generation
  task itself) in the object store as restart points.
- `cell_vs_plain`: training throughput of one cell against a plain PyTorch loop training the
  same G and D (same initial weights, data, batch size, Adam settings, heuristic loss, number of
  steps, one thread): `Cell.begin` + `GenerationInProgress.train` alone, and a whole 1x1
  `Controller.step` (lr mutation and mixture off; fitness and publishing still run). The
  ratio cell/plain is in steps per second; 1.0 is the limit.
- `mixture_es`: the cost of the mixture-weights ES in `mnist5k_mustangs.yaml`'s generation (the
  default run until 2026-12-02; local pool,
  the shipped settings): seconds per generation spent in `mixture_es_step` (both scores of
  every cell, timed by wrapping the operator) against the generation's wall time. Generation
  0 (which may train the metric classifier) is left out.
- `fresh_exchange`: what refreshing neighbour snapshots costs. The `fresh` rule runs a
  generation as synchronous rounds of `training.exchange_every` batches, each round publishing
  every cell's networks (through the object store on Ray); on 2x2 grids of both configs and both
  pools, the wall time per generation of `lipizzaner` (one exchange per generation) against
  `fresh` with k = 5 and k = 1, and the extra seconds per additional round.
- `machine`: cores, load average, versions, device.

Configs: `ring8` (small 64-unit networks, batches of 100) and `mnist5k_mlp`
(the MNIST configs' MLP on MNIST-5k), with fewer batches per generation so a generation stays short
on 2 cores. The controller's own bookkeeping on large simulated grids is bench/controller_scale.py.

Timings are wall-clock and noisy on a shared machine; the script never asserts.

Usage: python bench/overhead.py [--quick] [--generations N] [--repeats N] [--only SECTION ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import CONFIGS, ROOT, cpu_share, finish, log, machine  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from raygan.config import RunConfig, config_from_dict, load_config  # noqa: E402
from raygan.core import operators as ops  # noqa: E402
from raygan.core.cell import Cell  # noqa: E402
from raygan.core.networks import build_networks  # noqa: E402
from raygan.engine.controller import Controller  # noqa: E402
from raygan.engine.pool import LocalCellPool, rounds_of  # noqa: E402

# Small ring-of-8 settings (64-unit networks, batches of 100) and the MNIST configs' MLP, with
# fewer batches per generation so a benchmark generation stays short on 2 cores.
TOY: dict[str, Any] = {
    "name": "bench_ring8", "seed": 0,
    "data": {"name": "ring8", "samples": 18000},
    "networks": {"kind": "mlp", "latent_dim": 16, "g_hidden": 64, "d_hidden": 64,
                 "hidden_layers": 2},
    "evolution": {"fitness_sample_size": 500},
    "mixture": {"sigma": 0.01, "samples": 1000},
    "training": {"batch_size": 100, "lr_g": 1e-3, "lr_d": 1e-3, "device": "cpu",
                 "max_batches": 20},
    "metrics": {"every": 1_000_000},
    "output": {"plot_every": 1_000_000},
}
# the mixture ES is off for MNIST: its FID needs a trained classifier in every process, which
# would measure classifier training (once per process) rather than the exchange
MNIST: dict[str, Any] = {
    "name": "bench_mnist5k", "seed": 0,
    "data": {"name": "mnist5k"},
    "networks": {"kind": "mlp", "latent_dim": 64, "g_hidden": 256, "d_hidden": 256,
                 "hidden_layers": 2},
    "evolution": {"fitness_sample_size": 500},
    "mixture": {"enabled": False},
    "training": {"batch_size": 50, "lr_g": 5e-4, "lr_d": 5e-4, "device": "cpu",
                 "max_batches": 10},
    "metrics": {"every": 1_000_000},
    "output": {"plot_every": 1_000_000},
}
# one cell training alone: a 1x1 grid with every evolutionary operator off and a fixed loss
PLAIN_CELL: dict[str, Any] = {
    "grid": {"rows": 1, "cols": 1},
    "losses": {"generator": ["heuristic"]},
    "evolution": {"selection": False, "replacement": False, "lr_mutation": "none"},
    "mixture": {"enabled": False},
    "training": {"rule": "lipizzaner"},  # centre in place; with no neighbours, a plain GAN
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep copy of `base` with `extra`'s sections merged in (one level deep)."""
    data = json.loads(json.dumps(base))
    for section, values in extra.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return data


def make_config(base: dict[str, Any], rows: int, generations: int, cpus: int) -> RunConfig:
    """`base` on a rows x rows grid; each cell's CPU share is the machine split evenly."""
    n = rows * rows
    share = cpu_share(cpus, n)
    return config_from_dict(_merge(base, {
        "grid": {"rows": rows, "cols": rows},
        "training": {"generations": generations},
        "resources": {"cpus_per_cell": share, "torch_threads": 1, "placement_timeout_s": 120.0},
    }))


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def time_pool(
    config: RunConfig, backend: str, factory: Callable[[RunConfig], Any], generations: int
) -> dict[str, Any]:
    """Start a pool, run `generations` controller steps without evaluation, split the time.

    `config.training.generations` must exceed `generations`, so that no step is the last one
    (which evaluates).
    """
    start = time.perf_counter()
    pool = factory(config)
    startup = time.perf_counter() - start
    controller = Controller(config, pool)
    rows: list[dict[str, float]] = []
    state_fetch: float | None = None
    try:
        for _ in range(generations):
            t0 = time.perf_counter()
            reports = controller.step().reports
            wall = time.perf_counter() - t0
            secs = [r.seconds for r in reports]
            compute = max(_worker_seconds(config, secs)) if backend == "ray" else sum(secs)
            rows.append({"wall_s": wall, "compute_sum_s": sum(secs),
                         "compute_max_s": max(secs), "overhead_s": wall - compute})
        if backend == "ray":
            import ray

            t0 = time.perf_counter()
            ray.get([a.state_dict.remote() for a in pool.actors])
            state_fetch = time.perf_counter() - t0
    finally:
        pool.close()
    steady = rows[1:] or rows
    out: dict[str, Any] = {
        "startup_s": round(startup, 3),
        "warmup_generation": {k: round(v, 4) for k, v in rows[0].items()},
        "generations_timed": len(steady),
        **{f"mean_{k}": _mean([r[k] for r in steady]) for k in rows[0]},
    }
    wall = out["mean_wall_s"]
    if wall:
        out["overhead_fraction"] = round(out["mean_overhead_s"] / wall, 3)
    if state_fetch is not None:
        out["state_fetch_all_cells_s"] = round(state_fetch, 4)
    return out


def _worker_seconds(config: RunConfig, secs: list[float]) -> list[float]:
    """Each worker's compute: its cells' times one after another, or (vectorised cells, which
    each report the whole group's time) the group's."""
    res = config.resources
    merge = max if res.vectorise else sum
    return [merge(secs[c] for c in cells) for cells in res.workers(len(secs))]


def speedups(grids: list[dict[str, Any]]) -> dict[str, float]:
    """Local wall time over Ray wall time per generation, for each (config, grid)."""
    walls = {(g["config"], g["grid"], g["backend"]): g.get("mean_wall_s") for g in grids}
    out: dict[str, float] = {}
    for (config, grid, backend), wall in walls.items():
        ray_wall = walls.get((config, grid, "ray"))
        if backend == "local" and wall and ray_wall:
            out[f"{config} {grid}"] = round(wall / ray_wall, 3)
    return out


def plain_loop(
    g: nn.Module,
    d: nn.Module,
    data: Tensor,
    config: RunConfig,
    steps: int,
    generator: torch.Generator,
) -> None:
    """The limit: alternating D and G Adam steps (heuristic loss) in a plain PyTorch loop.

    One pass over a random permutation of `data`, `steps` batches of `training.batch_size`.
    """
    tr = config.training
    betas = (tr.beta1, tr.beta2)
    opt_g = torch.optim.Adam(g.parameters(), lr=tr.lr_g, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=tr.lr_d, betas=betas)
    latent, batch = config.networks.latent_dim, tr.batch_size
    device = next(g.parameters()).device
    perm = torch.randperm(len(data), generator=generator)
    for i in range(steps):
        real = data[perm[i * batch : (i + 1) * batch]].to(device)
        with torch.no_grad():
            fake = g(torch.randn(len(real), latent, generator=generator).to(device))
        # BCE on logits: -log sigmoid(real) - log(1 - sigmoid(fake)), then -log sigmoid(G's)
        d_loss = -(F.logsigmoid(d(real)).mean() + F.logsigmoid(-d(fake)).mean())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        z = torch.randn(len(real), latent, generator=generator).to(device)
        g_loss = -F.logsigmoid(d(g(z))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()


def cell_vs_plain(base: dict[str, Any], steps: int, repeats: int) -> dict[str, Any]:
    """Steps per second of one cell (its training, and a whole 1x1 step) vs `plain_loop`.

    The three are timed in turn (the order rotating every round), `repeats` times after one
    untimed round; the medians of the time per step are reported.
    """
    data = _merge(_merge(base, PLAIN_CELL), {
        "training": {"max_batches": steps, "generations": repeats + 2},
        "resources": {"torch_threads": 1},
    })
    config = config_from_dict(data)
    pool = LocalCellPool(config)  # sets one torch thread
    torch.set_num_threads(1)
    controller = Controller(config, pool)
    cell: Cell = pool.cells[0]
    # the plain loop holds its data as one float tensor, as a PyTorch script would
    shard = cell.task.data[torch.arange(len(cell.task.data))]
    batches = min(steps, len(shard) // config.training.batch_size)
    g, d = build_networks(config.networks, cell.sample_shape, torch.Generator().manual_seed(0))
    g.load_state_dict(cell.g.net.state_dict())  # the cell's initial weights
    d.load_state_dict(cell.d.net.state_dict())
    g, d = g.to(cell.device), d.to(cell.device)
    rng = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {"cell_train": [], "generation_1x1": [], "plain": []}
    cell_steps: dict[str, int] = {}

    def run_cell_train() -> int:
        # the batches alone: begin's fitness batch is a few forward passes
        current = cell.begin(0, [])
        current.train(current.left)
        return int(current.tally.batches)  # left unfinished: only the batch loop is timed

    def run_generation() -> int:
        return int(controller.step().reports[0].steps)

    def run_plain() -> int:
        plain_loop(g, d, shard, config, batches, rng)
        return batches

    runs = [("cell_train", run_cell_train), ("generation_1x1", run_generation),
            ("plain", run_plain)]
    for r in range(repeats + 1):
        # rotate the order each round, so no variant always runs first or last
        for name, fn in runs[r % 3 :] + runs[: r % 3]:
            t0 = time.perf_counter()
            n = fn()
            if cell.device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - t0
            cell_steps[name] = n
            if r > 0:  # round 0 warms up
                times[name].append(elapsed / n)
    pool.close()
    per_step = {k: statistics.median(v) for k, v in times.items()}
    out: dict[str, Any] = {
        "batch_size": config.training.batch_size,
        "steps_per_run": cell_steps,
        "repeats": repeats,
        **{f"{k}_steps_per_s": round(1.0 / v, 1) for k, v in per_step.items()},
        **{f"{k}_ms_per_step": round(v * 1e3, 3) for k, v in per_step.items()},
    }
    for name in ("cell_train", "generation_1x1"):
        out[f"ratio_{name}_vs_plain"] = round(per_step["plain"] / per_step[name], 3)
    return out


def mixture_es_cost(generations: int) -> dict[str, Any]:
    """Seconds per generation the mixture ES takes in `mnist5k_mustangs.yaml`'s run, and its share.

    `ops.mixture_es_step` is wrapped with a timer (the cell calls it through the module), so
    what is timed is exactly the ES: sampling both weight vectors' mixtures and scoring them.
    """
    config = load_config(
        CONFIGS / "mnist5k_mustangs.yaml",
        [f"training.generations={generations + 2}", "metrics.every=1000000",
         "output.plot_every=1000000"],
    )
    spent: list[float] = []
    original = ops.mixture_es_step

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t0)

    ops.mixture_es_step = timed  # type: ignore[assignment]
    try:
        pool = LocalCellPool(config)
        controller = Controller(config, pool)
        controller.step()  # warm-up: may train and cache the metric classifier
        walls, es = [], []
        for _ in range(generations):
            spent.clear()
            t0 = time.perf_counter()
            controller.step()
            walls.append(time.perf_counter() - t0)
            es.append(sum(spent))
        pool.close()
    finally:
        ops.mixture_es_step = original  # type: ignore[assignment]
    wall, cost = statistics.fmean(walls), statistics.fmean(es)
    return {
        "config": "tune_configs/mnist5k_mustangs.yaml",
        "generations_timed": generations,
        "mixture_samples": config.mixture.samples,
        "mixture_objective": "fid",
        "mean_generation_s": round(wall, 4),
        "mean_es_s": round(cost, 4),
        "es_fraction": round(cost / wall, 4),
    }


def fresh_exchange(
    bases: list[tuple[str, dict[str, Any]]], generations: int, cpus: int,
    factories: dict[str, Callable[[RunConfig], Any]],
) -> list[dict[str, Any]]:
    """Per-generation wall time of `lipizzaner` vs `fresh` (k = 5, 1) on 2x2 grids, both pools.

    `extra_per_round_s` is (fresh wall - lipizzaner wall) / (rounds - 1): the cost of one more
    synchronous exchange round, since lipizzaner's generation is one round.
    """
    out = []
    for name, base in bases:
        batches = base["training"]["max_batches"]
        for backend, factory in factories.items():
            walls: dict[str, float] = {}
            for rule, every in (("lipizzaner", None), ("fresh", 5), ("fresh", 1)):
                label = rule if every is None else f"fresh_k{every}"
                training: dict[str, Any] = {"rule": rule}
                if every is not None:
                    training["exchange_every"] = every
                config = make_config(_merge(base, {"training": training}), 2, generations + 1,
                                     cpus)
                log(f"fresh exchange: {name} 2x2 {backend} {label}")
                entry: dict[str, Any] = {"config": name, "grid": "2x2", "backend": backend,
                                         "rule": label, "batches": batches,
                                         "rounds": rounds_of([batches], every or batches)}
                try:
                    entry.update(time_pool(config, backend, factory, generations))
                    walls[label] = entry["mean_wall_s"]
                    if every is not None and "lipizzaner" in walls and entry["rounds"] > 1:
                        entry["extra_per_round_s"] = round(
                            (entry["mean_wall_s"] - walls["lipizzaner"]) / (entry["rounds"] - 1),
                            5)
                except Exception as exc:  # a benchmark reports failures, it does not stop
                    entry["error"] = f"{type(exc).__name__}: {exc}"
                out.append(entry)
    return out


SECTIONS = ("grids", "cell_vs_plain", "mixture_es", "fresh_exchange")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2x2 ring8 grids and a short throughput run"
    )
    parser.add_argument("--generations", type=int, help="generations per case (incl. warm-up)")
    parser.add_argument("--repeats", type=int, help="timed rounds of cell vs plain (default 6)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args(argv)
    only = set(args.only or SECTIONS)
    import ray

    from raygan.distributed import RayCellPool

    cpus = os.cpu_count() or 1
    gens = args.generations or (2 if args.quick else 4)
    repeats = args.repeats or (3 if args.quick else 6)
    sizes = [2] if args.quick else [2, 3]
    images = (ROOT / "raygan" / "data" / "images.py").exists()
    bases = [("ring8", TOY)] + ([("mnist5k_mlp", MNIST)] if images and not args.quick else [])
    notes = [
        "timings are wall-clock on a shared machine (other CPU-heavy jobs may run): noisy",
        "ray overhead = wall - max cell compute; local overhead = wall - sum of cell compute",
        "each cell gets cpus/cells of the machine and 1 torch thread in both backends",
        "cell_vs_plain: 1 torch thread; steps = one pass over the 1x1 shard (ring8: 180 "
        "batches of 100, mnist5k: 100 of 50), or fewer with --quick",
    ]
    if not images:
        notes.append("raygan/data/images.py missing: ring8 only")
    if args.quick:
        notes.append("--quick: 2x2 ring8 grids, 2 generations, 3 throughput rounds of 40 steps")
    start = time.perf_counter()
    result: dict[str, Any] = {
        "bench": "overhead", "machine": machine(), "quick": args.quick,
        "grids": [], "cell_vs_plain": {}, "notes": notes,
    }
    if only & {"grids", "fresh_exchange"}:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        for name, base in bases if "grids" in only else []:
            for rows in sizes:
                config = make_config(base, rows, gens + 1, cpus)
                for backend, factory in (("local", LocalCellPool), ("ray", RayCellPool)):
                    log(f"{name} {rows}x{rows} {backend}")
                    entry = {"config": name, "grid": f"{rows}x{rows}", "backend": backend}
                    try:
                        entry.update(time_pool(config, backend, factory, gens))
                    except Exception as exc:  # a benchmark reports failures, it does not stop
                        entry["error"] = f"{type(exc).__name__}: {exc}"
                    result["grids"].append(entry)
        if "fresh_exchange" in only:
            factories: dict[str, Callable[[RunConfig], Any]] = {
                "local": LocalCellPool, "ray": RayCellPool}
            result["fresh_exchange"] = fresh_exchange(bases, gens, cpus, factories)
    finally:
        ray.shutdown()
    result["ray_speedup_vs_local"] = speedups(result["grids"])
    for name, base in bases if "cell_vs_plain" in only else []:
        log(f"{name}: one cell vs a plain PyTorch loop")
        steps = 40 if args.quick else 1_000_000  # capped at one pass over the shard
        result["cell_vs_plain"][name] = cell_vs_plain(base, steps, repeats)
    if "mixture_es" in only and images:
        log("mixture ES cost in mnist5k_mustangs.yaml's generation")
        result["mixture_es"] = mixture_es_cost(2 if args.quick else 5)
    finish(result, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
