"""raygan's other methods against the plain grid and the single GAN, at equal steps per network.

Settings (`SETTINGS`; each setting x seed is one run):

- `single`, `fresh`: the single GAN and the plain grid (raygan's default rule, neighbours
  refreshed every batch), exactly as in `coevolution.py`, so their runs are the same runs.
- `avg`, `gman`, `hv`, `mgd`: the plain grid whose G steps face every discriminator of the
  neighbourhood at once (`losses.multi_discriminator`), under `fresh` (see `MULTI_D_RULE`).
- `egan`: E-GAN (`training.rule: egan`): one offspring per loss (minimax, non-saturating,
  least squares) each step, the fittest survives, D trains in place.
- `improved`: the plain grid with one-sided label smoothing (real target 0.9), minibatch
  discrimination and historical averaging (`HISTORICAL_AVERAGING`).
- `feature_matching`: the plain grid with feature matching, apart from `improved` because it
  replaces G's loss.
- adversarial autoencoders (`aae`: `networks.kind: aae` on the plain grid).

Tables: `mnist5k_2x2` and `grid25_2x2`, the same data, grids, budgets and recipes as
`coevolution.py`'s tables of the same names (MNIST-5k 2,000 steps at `MNIST_LR`; the grid of
25's short recipe `GRID25_SHORT`, 3,000 steps), seeds 0-2. Runs are keyed as in
`coevolution.py`, so the `single` and `fresh` runs already in `results/coevolution.jsonl` are
read from there (never written); every other run is appended to `--results`
(`results/methods.jsonl`) and skipped when the script runs again.

Each setting reports its scores (mean +- std over seeds: FID/TVD on MNIST-5k, modes/high
quality on the grid of 25, and the rest of `coevolution.py`'s scores) and `cost_ratio`: its
wall seconds per generation (generations that did not evaluate) over the plain grid's, same
table and seeds. `--generations N --seeds 1` shrinks every table to N generations, e.g. to
measure the cost ratios alone (`results/methods_cost.json`).

    python bench/methods.py [--tables NAME ...] [--jobs 2] [--results PATH] [--quick]
                            [--generations N] [--seeds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import coevolution  # noqa: E402
from coevolution import (  # noqa: E402
    BASES,
    BATCHES,
    EVERY,
    GRID25_SHORT,
    MNIST_LR,
    Table,
    load_results,
    overrides,
    run_jobs,
    run_key,
    summarise,
)
from common import finish, machine  # noqa: E402

PLAIN = "fresh"
"""The plain grid every method is compared with (raygan's default rule)."""
MULTI_D_RULE = "fresh"
"""The rule under which G faces the neighbourhood's discriminators. `fresh`, not `live`: it is
the plain grid's rule, so a multi-D setting differs from `fresh` only in G's objective (the
same discriminators, refreshed every batch), and `live` costs 4-5 times a cell's work and was
worse than `fresh` on every data set in `coevolution.py`."""
HISTORICAL_AVERAGING = 0.01
"""`improved`'s historical-averaging weight (not tuned; the penalty sums over every parameter)."""
_BASE = coevolution.SETTINGS[PLAIN]  # RULES["fresh"] + the fixed heuristic loss, no lr mutation
SETTINGS: dict[str, list[str]] = {
    "single": coevolution.SETTINGS["single"],
    PLAIN: _BASE,
    **{name: [*coevolution.SETTINGS[MULTI_D_RULE], f"losses.multi_discriminator={name}"]
       for name in ("avg", "gman", "hv", "mgd")},
    "egan": ["training.rule=egan", "losses.generator=[minimax,heuristic,least_squares]",
             "evolution.lr_mutation=none"],
    "improved": [*_BASE, "losses.real_label=0.9", "networks.minibatch_discrimination=true",
                 f"training.historical_averaging={HISTORICAL_AVERAGING}"],
    "feature_matching": [*_BASE, "losses.feature_matching=true"],
    "aae": [*_BASE, "networks.kind=aae"],  # autoencoders + latent Ds on the plain grid
}
"""Overrides of every setting on top of the data set's base config (`coevolution.BASES`)."""
PENDING: dict[str, str] = {}
"""Methods of the issue this bench does not run yet, reported as such in the JSON."""
SCORES = {"mnist5k": ["fid", "tvd"], "grid25": ["modes_covered", "hq_fraction"],
          "ring8": ["modes_covered", "hq_fraction"]}
"""The headline scores per data set (every score of `coevolution.METRICS` is reported)."""


def tables(quick: bool) -> dict[str, Table]:
    """The full tables, or `--quick`'s (the ring of 8, two generations of batches of 50, one
    seed)."""
    if quick:
        # batches and fitness samples of 50, not the ring's 500: minibatch discrimination
        # compares every pair of a batch
        return {"ring8_2x2": Table("ring8", 2, 2 * BATCHES, 1, list(SETTINGS), extra=(
            "training.batch_size=50", "evolution.fitness_sample_size=50"))}
    return {
        "mnist5k_2x2": Table("mnist5k", 2, 2000, 3, list(SETTINGS), extra=MNIST_LR),
        "grid25_2x2": Table("grid25", 2, 3000, 3, list(SETTINGS), extra=GRID25_SHORT),
    }


def cost_ratios(table: dict[str, Any]) -> tuple[dict[str, float | None], str]:
    """Each setting's mean seconds per generation over the plain grid's (None where either has
    no run), and how a generation was timed: the generations that did not evaluate where every
    run timed them, else (runs read from `coevolution.jsonl`, which predate the timing) every
    run's whole wall time over its generations, evaluations included."""
    runs = {s: [r for r in e["runs"] if "seconds" in r] for s, e in table["settings"].items()}
    exact = all(r.get("seconds_per_generation") for rs in runs.values() for r in rs)

    def per_generation(setting: str) -> float | None:
        times = [r["seconds_per_generation"] if exact else r["seconds"] / (
            r.get("generations") or r["curve"][-1]["steps_per_network"] / BATCHES)
            for r in runs.get(setting, [])]
        return sum(times) / len(times) if times else None

    plain = per_generation(PLAIN)
    ratios = {s: (None if plain is None or (t := per_generation(s)) is None else t / plain)
              for s in table["settings"]}
    return ratios, ("seconds_per_generation" if exact else "seconds / generations")


def rows(name: str, table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The bench table: headline scores (mean, std), cost ratio and the ratio of the main score
    to the plain grid's and the single GAN's."""
    data = table["data"]
    main = SCORES[data][0]
    settings = table["settings"]

    def mean(setting: str) -> float | None:
        got = settings.get(setting, {}).get(main)
        return None if got is None else float(got["mean"])

    out = {}
    for setting, entry in settings.items():
        row: dict[str, Any] = {k: entry[k] for k in SCORES[data] if k in entry}
        row["seeds_done"] = len(entry["runs"])
        row["errors"] = [r["error"] for r in entry["runs"] if "error" in r]
        row["cost_ratio"] = entry.get("cost_ratio")
        here = mean(setting)
        for ref, label in ((PLAIN, "vs_plain"), ("single", "vs_single")):
            other = mean(ref)
            row[f"{main}_{label}"] = None if here is None or not other else here / other
        out[setting] = row
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the tables' missing runs, then print every table with its cost ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="*", help="run only these tables (default: all)")
    p.add_argument("--settings", nargs="*", help="run only these settings (default: all)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--results", type=Path, help="JSON-lines file of finished runs (default: "
                   "bench/results/methods.jsonl; with --quick a fresh temporary file)")
    p.add_argument("--quick", action="store_true", help="ring8 only, two generations, one seed")
    p.add_argument("--generations", type=int, help="every table this many generations (a "
                   "reduced budget: cost ratios, or a first look at quality)")
    p.add_argument("--seeds", type=int, help="every table this many seeds (0, 1, ...)")
    args = p.parse_args(argv)
    every = tables(args.quick)
    names = args.tables or list(every)
    unknown = [n for n in names if n not in every] + [
        s for s in args.settings or [] if s not in SETTINGS]
    if unknown:
        p.error(f"unknown table(s) or setting(s) {', '.join(unknown)}; tables: "
                f"{', '.join(every)}; settings: {', '.join(SETTINGS)}")
    for name in names:
        table = every[name]
        if args.generations:
            table = replace(table, steps=args.generations * BATCHES)
        if args.seeds:
            table = replace(table, seeds=args.seeds)
        if args.settings:
            table = replace(table, settings=[s for s in table.settings if s in args.settings])
        every[name] = table
    path = args.results
    if path is None:
        path = (Path(os.environ.get("TMPDIR", "/tmp")) / f"methods_quick_{os.getpid()}.jsonl"
                if args.quick else Path(__file__).parent / "results" / "methods.jsonl")
    shared = Path(__file__).parent / "results" / "coevolution.jsonl"  # read only
    done = {**({} if args.quick else load_results(shared)), **load_results(path)}
    start = time.perf_counter()
    result: dict[str, Any] = {
        "bench": "methods", "quick": args.quick, "machine": machine(),
        "results_file": str(path), "shared_results_file": None if args.quick else str(shared),
        "batches_per_generation": BATCHES, "evaluate_every_generations": EVERY,
        "plain": PLAIN, "multi_discriminator_rule": MULTI_D_RULE, "pending": PENDING,
        "tables": {}, "bench_table": {}}
    jobs, errors = [], {}
    for name in names:
        table, base = every[name], str(BASES[every[name].data])
        for setting in table.settings:
            for seed in range(table.seeds):
                over = overrides(table, setting, seed, SETTINGS)
                try:
                    key = run_key(name, setting, seed, over, base)
                except Exception as exc:  # a config the schema refuses: reported, not run
                    errors[f"{name}/{setting}/seed{seed}"] = f"{type(exc).__name__}: {exc}"
                    continue
                if key not in done:
                    jobs.append((coevolution.cost(table, setting), key, name, setting, seed,
                                 over, base))
    run_jobs(jobs, names, args.jobs, done, path, start)
    for name in names:
        summary = summarise(name, every[name], every[name].settings, done, SETTINGS)
        ratios, summary["cost_measure"] = cost_ratios(summary)
        for setting, ratio in ratios.items():
            summary["settings"][setting]["cost_ratio"] = ratio
        result["tables"][name] = summary
        result["bench_table"][name] = rows(name, summary)
    result["config_errors"] = errors
    finish(result, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
