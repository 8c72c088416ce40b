"""The evolutionary operators, each switched on alone and all together, on the default run.

Settings (`SETTINGS`; each setting x seed is one run of `tune_configs/default.yaml` with its
networks, rates and budget, the operators off unless the setting switches one on):

- `off`: the default as shipped (rule `fresh`, the fixed non-saturating loss, no lr mutation,
  no exploit).
- `lr_mutation`: log-normal learning-rate mutation each generation (p 0.5, sigma 0.2: the
  engine's defaults).
- `exploit`: PBT-style exploit/explore inside the grid (`evolution.exploit_probability` 0.1:
  a cell rarely copies a neighbour whose generator scores 20 % better and perturbs its rates
  by 0.8 or 1.2; `raygan.core.exploit`).
- `mustangs`: Mustangs' loss mutation, the G loss drawn per generation from minimax,
  non-saturating and least squares.
- `mustangs_no_minimax`: the same without the saturating minimax loss.
- `selection`: today's selection and replacement, rule `lipizzaner-selection` (tournament-
  selected clones trained against each other, kept only if fitter).
- `all`: every operator in its best form here (`BEST`).
- `own`, `single`: the coevolution check on the default's networks (bench/coevolution.py's
  settings): four independent pairs mixed by the same ES, and one GAN, at equal steps.

Runs are keyed as in `coevolution.py` (the hash of what the resolved config changes), appended
to `--results` (`results/operators.jsonl`) and skipped when the script runs again. stdout gets
one JSON object: each setting's runs and mean +- std, its FID ratio to `off`, and for each
operator whether its best form is within the seeds' spread of `off` and whether one is >= 10 %
better.

    python bench/operators.py [--settings NAME ...] [--seeds 3] [--jobs 2] [--results PATH]
                              [--quick]
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
from coevolution import BASES, BATCHES, Table, load_results, overrides, run_jobs, run_key  # noqa: E402
from common import RULES, finish, machine  # noqa: E402

from raygan.config import load_config  # noqa: E402

OFF = RULES["fresh"]  # the default's rule, spelled out (`overrides` reads it)
SETTINGS: dict[str, list[str]] = {
    "off": OFF,
    "lr_mutation": [*OFF, "evolution.lr_mutation=multiplicative"],
    "exploit": [*OFF, "evolution.exploit_probability=0.1"],
    "mustangs": [*OFF, "losses.generator=[minimax,heuristic,least_squares]",
                 "losses.mutation=generation"],
    "mustangs_no_minimax": [*OFF, "losses.generator=[heuristic,least_squares]",
                            "losses.mutation=generation"],
    "selection": RULES["lipizzaner_selection"],
    "own": RULES["own"],
    "single": coevolution.SETTINGS["single"],
}
"""Overrides of every setting on top of `default.yaml` (`own` and `single` as in
`coevolution.py`)."""
OPERATORS: dict[str, list[str]] = {
    "lr_mutation": ["lr_mutation"],
    "exploit": ["exploit"],
    "loss_mutation": ["mustangs", "mustangs_no_minimax"],
    "selection": ["selection"],
}
"""Each operator's forms, for the verdicts."""
BEST: list[str] = ["lr_mutation", "exploit", "mustangs_no_minimax"]
"""The forms `all` combines: every operator but selection (a selecting rule replaces `fresh`),
the loss mutation without the saturating minimax loss."""
SETTINGS["all"] = [*OFF, *(o for name in BEST for o in SETTINGS[name] if o not in OFF)]


def table(quick: bool, seeds: int) -> Table:
    """The default run's budget (its generations of `BATCHES` batches), or `--quick`'s two
    generations."""
    config = load_config(BASES["mnist5k"])
    assert config.training.max_batches == BATCHES, "default.yaml runs 50 batches a generation"
    steps = 2 * BATCHES if quick else config.training.generations * BATCHES
    return Table("mnist5k", 2, steps, 1 if quick else seeds, list(SETTINGS))


def verdicts(settings: dict[str, Any]) -> dict[str, Any]:
    """Per operator: its forms' FID ratios to `off`, the best form, whether that is no worse
    than `off` within the seeds' spread (mean difference <= the larger std) and whether it is
    >= 10 % better (FID ratio <= 0.9)."""
    def fid(name: str) -> dict[str, float] | None:
        return settings.get(name, {}).get("fid")

    off = fid("off")
    out: dict[str, Any] = {}
    if off is None:
        return out
    for operator, forms in OPERATORS.items():
        done = [f for f in forms if fid(f) is not None]
        if not done:
            continue
        best = min(done, key=lambda f: fid(f)["mean"])  # type: ignore[index]
        got = fid(best)
        assert got is not None
        spread = max(got["std"], off["std"])
        out[operator] = {
            "forms": {f: fid(f)["mean"] / off["mean"] for f in done},  # type: ignore[index]
            "best": best, "fid_ratio": got["mean"] / off["mean"],
            "no_worse_within_spread": got["mean"] - off["mean"] <= spread,
            "better_by_10pct": got["mean"] <= 0.9 * off["mean"]}
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the missing runs, then print the table and the verdicts."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", nargs="*", help="run only these settings (default: all)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--results", type=Path, help="JSON-lines file of finished runs (default: "
                   "bench/results/operators.jsonl; with --quick a fresh temporary file)")
    p.add_argument("--quick", action="store_true", help="two generations, one seed")
    args = p.parse_args(argv)
    unknown = [s for s in args.settings or [] if s not in SETTINGS]
    if unknown:
        p.error(f"unknown setting(s) {', '.join(unknown)}; settings: {', '.join(SETTINGS)}")
    name, tab = "mnist5k_default", table(args.quick, args.seeds)
    if args.settings:
        tab = replace(tab, settings=[s for s in tab.settings if s in args.settings])
    path = args.results or (
        Path(os.environ.get("TMPDIR", "/tmp")) / f"operators_quick_{os.getpid()}.jsonl"
        if args.quick else Path(__file__).parent / "results" / "operators.jsonl")
    done = load_results(path)
    start = time.perf_counter()
    base = str(BASES["mnist5k"])
    jobs = []
    for setting in tab.settings:
        for seed in range(tab.seeds):
            over = overrides(tab, setting, seed, SETTINGS)
            key = run_key(name, setting, seed, over, base)
            if key not in done:
                jobs.append((coevolution.cost(tab, setting), key, name, setting, seed, over,
                             base))
    run_jobs(jobs, [name], args.jobs, done, path, start)
    summary = coevolution.summarise(name, tab, tab.settings, done, SETTINGS)
    off = summary["settings"].get("off", {}).get("fid")
    for entry in summary["settings"].values():
        got = entry.get("fid")
        entry["fid_vs_off"] = None if off is None or got is None else got["mean"] / off["mean"]
    result = {"bench": "operators", "quick": args.quick, "machine": machine(),
              "results_file": str(path), "config": base, "best_forms_in_all": BEST,
              "table": summary, "verdicts": verdicts(summary["settings"])}
    finish(result, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
