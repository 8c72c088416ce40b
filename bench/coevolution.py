"""The evidence: coupled grids against independent GANs, at equal gradient steps per network.

Tables (each setting x seed is one run; `SETTINGS` says what each setting is):

- `mnist5k_2x2`: every setting on MNIST-5k, 2x2 grids, 2,000 steps of batch 100, seeds 0-2.
- `mnist5k_3x3`: the three best grid settings of `mnist5k_2x2` and `own`, 3x3, seed 0.
- `mnist5k_curve`: `single`, `own`, `lipizzaner`, `fresh` to 6,000 steps, seed 0 (the
  learning curve: where, if anywhere, coupling overtakes).
- `grid25_2x2`, `ring8_2x2`: every setting on the toy mixtures (3,000 steps of the grid of 25's
  short recipe, 6,000 of the ring's; `live`, the costliest, seed 0 only).
- `grid25_3x3`: the three best grid settings of `grid25_2x2`, `own` and `single` on the grid of
  25's shipped sharp recipe for 12,000 steps, seed 0 (25 of 25 modes, >= 80 % high quality?).
- `mnist5k_wallclock`: the best `mnist5k_2x2` grid on the Ray pool (cores split between the
  cells) against the single GAN given every core (`torch.set_num_threads`) for the same wall
  time, seeds 0-2.

Every setting starts from the data set's shipped config (`BASES`) with its networks and
learning rates; every cell sees all the data (`data.sharding=replicate`), generations are 50
batches, evaluations every 10 generations (500 steps). Each finished run is appended to
`--results` (JSON lines, keyed by table, setting, seed, steps and a hash of its overrides) and
skipped when the script runs again, so a run can be stopped and continued. Progress goes to
stderr; stdout gets one JSON object: every table's runs and mean +- std, and the targets.

    python bench/coevolution.py [--tables NAME ...] [--jobs 2] [--results PATH] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CONFIGS, RULES, SINGLE, cpu_share, finish, log, machine, mean_std  # noqa: E402

from raygan.config import RunConfig, load_config  # noqa: E402
from raygan.config.catalog import (  # noqa: E402
    best_scores,
    builtin_kind,
    default_rank_by,
    lower_is_better,
)
from raygan.engine.controller import Controller  # noqa: E402
from raygan.engine.pool import LocalCellPool  # noqa: E402

BASES = {
    "mnist5k": CONFIGS / "default.yaml",
    "ring8": CONFIGS / "toy_ring8_mustangs.yaml",
    "grid25": CONFIGS / "toy_grid25_mustangs.yaml",
}
METRICS = {
    "mnist5k": ["fid", "fid_floor", "tvd", "tvd_floor", "inception_score"],
    "toy": ["modes_covered", "hq_fraction", "reverse_kl", "mode_tvd"],
}
TIMES = ["seconds", "gradient_steps", "steps_per_s", "seconds_per_generation"]
BATCHES = 50  # batches per generation
EVERY = 10  # generations between evaluations

FIXED = ["losses.generator=[heuristic]", "evolution.lr_mutation=none"]
LOSS_MUTATION = ["losses.generator=[minimax,heuristic,least_squares]", "losses.mutation=generation"]
MUSTANGS = [  # the reference code's Mustangs MNIST run (mnist5k_mustangs_reference.yaml)
    "training.rule=lipizzaner-selection", "losses.generator=[heuristic,least_squares]",
    "losses.mutation=batch", "losses.discriminator=bce", "training.d_every=2",
    "evolution.tournament_size=2", "evolution.lr_mutation=additive",
    "evolution.lr_mutation_probability=0.5", "evolution.lr_additive_sigma=0.0001",
]
MNIST_LR = ("networks.kind=mlp", "networks.dcgan_width=64",
            "training.lr_g=0.0005", "training.lr_d=0.0005")
"""The MLP networks of the default job when these tables ran (it has since moved to a small
DCGAN: `bench/operators.py` compares on those) and Adam's rate for G and D on MNIST-5k, the
same for every setting (the tables compare rules at one rate)."""
GRID25_SHORT = ("networks.g_activation=leaky_relu", "training.batch_size=100",
                "training.lr_g=0.0005", "training.lr_d=0.0005", "training.g_ema=0.0")
"""The grid of 25's short recipe for the 2x2 table (LeakyReLU G, batches of 100, no weight
average): 3,000 steps of it show mode coverage at 1/20 of the sharp recipe's samples, while
the sharp recipe (`toy_grid25_mustangs.yaml`) needs 12,000 steps of batch 500 to put most
samples on the modes, too long for every setting and seed."""
SETTINGS: dict[str, list[str]] = {
    "single": SINGLE,
    "own": RULES["own"] + FIXED,
    "lipizzaner": RULES["lipizzaner"] + FIXED,
    "lipizzaner_selection": RULES["lipizzaner_selection"] + FIXED,
    "mustangs": MUSTANGS,
    "fresh": RULES["fresh"] + FIXED,
    "fresh_mustangs": RULES["fresh"] + LOSS_MUTATION + ["evolution.lr_mutation=none"],
    "live": RULES["live"] + FIXED,
}
"""Grid overrides of every setting (`single` is a 1x1 grid). `own` is N independent GANs: its
mixture is the "mixture of N independent GANs", its best cell's own generator (`own_best` in
the tables) the "best of N". `mustangs` runs the reference's rule and losses (selected clones,
generator loss drawn per batch, BCE discriminator stepped every other batch, additive lr
mutation); `fresh_mustangs` is `fresh` with the loss mutation of `mnist5k_mustangs.yaml`."""


@dataclass(frozen=True)
class Table:
    """Runs of some settings on one data set, grid and budget."""

    data: str
    grid: int
    steps: int
    seeds: int
    settings: list[str] = field(default_factory=list)  # empty: the best of `top_of`
    top_of: str | None = None  # the table whose three best grid settings (and `own`) run here
    stage: int = 0  # stages run in order, each after the one before has finished (top_of's)
    extra: tuple[str, ...] = ()  # overrides of every run of the table, after the setting's
    single: bool = False  # also run `single` (chosen tables: beside their picked settings)
    one_seed: tuple[str, ...] = ()  # settings run with seed 0 only (the costliest; unranked)

    def seeds_of(self, setting: str) -> int:
        """How many seeds (0, 1, ...) `setting` runs with in this table."""
        return 1 if setting in self.one_seed else self.seeds


def tables(quick: bool) -> dict[str, Table]:
    """The tables of a full run, or of `--quick` (ring8 only, one generation of 50 steps)."""
    if quick:
        # a smoke test of every table kind: the fewest steps a run takes (one generation of
        # `BATCHES`), and the wall-clock grid in two actors (each actor's start is seconds)
        return {
            "ring8_2x2": Table("ring8", 2, BATCHES, 1, ["single", "own", "fresh"]),
            "ring8_3x3": Table("ring8", 3, BATCHES, 1, top_of="ring8_2x2", stage=1),
            "ring8_wallclock": Table("ring8", 2, BATCHES, 1, top_of="ring8_2x2", stage=2,
                                     extra=("resources.cells_per_actor=2",)),
        }
    return {
        "mnist5k_2x2": Table("mnist5k", 2, 2000, 3, list(SETTINGS), extra=MNIST_LR),
        "grid25_2x2": Table("grid25", 2, 3000, 3, list(SETTINGS), extra=GRID25_SHORT,
                            one_seed=("live",)),
        "mnist5k_curve": Table("mnist5k", 2, 6000, 1, ["single", "own", "lipizzaner", "fresh"],
                               extra=MNIST_LR),
        "mnist5k_3x3": Table("mnist5k", 3, 2000, 1, top_of="mnist5k_2x2", stage=1,
                             extra=MNIST_LR),
        # the shipped sharp recipe, long enough to sharpen its modes; the single GAN beside it
        "grid25_3x3": Table("grid25", 3, 12000, 1, top_of="grid25_2x2", stage=1, single=True),
        # the toy least in question last (every setting reached 8/8 modes here before)
        "ring8_2x2": Table("ring8", 2, 6000, 3, list(SETTINGS), stage=1, one_seed=("live",)),
        # alone on the machine at the end: it times the Ray pool against 2 threads
        "mnist5k_wallclock": Table("mnist5k", 2, 2000, 3, top_of="mnist5k_2x2", stage=2,
                                   extra=MNIST_LR),
    }


def overrides(table: Table, setting: str, seed: int,
              settings: dict[str, list[str]] | None = None) -> list[str]:
    """Everything a run sets on top of its base config: the setting (from `settings`, by
    default `SETTINGS`), the table's `extra` recipe, the grid and the budget."""
    over = (SETTINGS if settings is None else settings)[setting]
    size = [] if setting == "single" else [f"grid.rows={table.grid}", f"grid.cols={table.grid}"]
    # the MNIST base (default.yaml) runs `fresh`; only that rule takes exchange_every
    rounds = [] if "training.rule=fresh" in over else ["training.exchange_every=null"]
    return [
        *over, *table.extra, *size, *rounds, "data.sharding=replicate",
        f"training.max_batches={BATCHES}",
        f"training.generations={max(1, table.steps // BATCHES)}", f"metrics.every={EVERY}",
        "resources.torch_threads=1", f"seed={seed}",
    ]


def run_key(name: str, setting: str, seed: int, over: list[str], base: str) -> str:
    """Identity of a run in the results file: the hash of the settings its resolved config
    changes from raygan's defaults, so that any change to what it trains (an override, or an
    edit of the base YAML) is a new run, while an edit that trains the same thing is not, nor
    a new option whose default keeps the old behaviour. Where results go (`output`) and sweeps
    (`tune`) train nothing and are left out."""
    changed = _changed(load_config(base, over).to_dict(), RunConfig().to_dict())
    changed = {k: v for k, v in changed.items() if k.split(".")[0] not in ("output", "tune")}
    digest = hashlib.sha1(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
    return f"{name}/{setting}/seed{seed}/{digest}"


def _changed(config: dict[str, Any], defaults: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The dotted keys of `config` whose values differ from `defaults`."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        default = defaults.get(key)
        if isinstance(value, dict) and isinstance(default, dict):
            out.update(_changed(value, default, f"{prefix}{key}."))
        elif value != default:
            out[prefix + key] = value
    return out


def train(config: RunConfig, threads: int = 1, seconds: float | None = None) -> dict[str, Any]:
    """Train `config` locally with `threads` torch threads; stop after its generations or, if
    `seconds` is given, once that much wall time has passed. Returns the best mixture's final
    scores, the best cell's own generator's (`generator_*`), the curve, steps and time."""
    import torch

    was = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(config, LocalCellPool(config), seconds)
    finally:
        torch.set_num_threads(was)


def _train(config: RunConfig, pool: Any, seconds: float | None = None) -> dict[str, Any]:
    controller = Controller(config, pool)
    curve, start, steps = [], time.perf_counter(), 0
    plain: list[float] = []  # wall time of each generation that did not evaluate
    generations = 0
    while not controller.done and (seconds is None or time.perf_counter() - start < seconds):
        began = time.perf_counter()
        summary = controller.step()
        generations += 1
        if not summary.evaluated:
            plain.append(time.perf_counter() - began)
        steps += summary.reports[0].steps  # cell 0's: every network makes the same number
        if summary.evaluated:
            curve.append({"steps_per_network": steps, **best_scores(summary.to_dict())})
    wall = time.perf_counter() - start
    if not curve or curve[-1]["steps_per_network"] != steps:  # stopped by the clock
        mixture = controller.evaluate()[controller.best_cell].scores
        curve.append({"steps_per_network": steps, **{k: float(v) for k, v in mixture.items()}})
    gradient = int(sum(r["g_steps"] for r in controller.history))
    return {
        **curve[-1], **own_generators(config, controller), **genealogy(controller.history),
        "seconds": wall, "gradient_steps": gradient, "steps_per_s": gradient / wall,
        "generations": generations,
        "seconds_per_generation": sum(plain) / len(plain) if plain else None,
        "best_cell": controller.best_cell, "curve": curve,
    }


def genealogy(history: list[dict[str, Any]]) -> dict[str, Any]:
    """What the operators did over a run: the share of cell-generations whose G centre gave
    way to another network (selection, replacement, exploit), the cells' lowest and highest
    final learning rates per side, the exploit copies, and each G loss's share of the G steps
    (loss mutation)."""
    losses: dict[str, int] = {}
    for row in history:
        for name, count in row.get("g_loss_counts", {}).items():
            losses[name] = losses.get(name, 0) + int(count)
    total = sum(losses.values()) or 1
    final = max(r["generation"] for r in history)
    last = [r for r in history if r["generation"] == final]
    return {"g_replaced_share": sum(bool(r["g_replaced"]) for r in history) / max(len(history), 1),
            "final_lrs": {side: [min(r[f"{side}_lr"] for r in last),
                                 max(r[f"{side}_lr"] for r in last)] for side in ("g", "d")},
            "exploits": sum(r.get("exploited", -1) >= 0 for r in history),
            "g_loss_shares": {k: v / total for k, v in sorted(losses.items())}}


def own_generators(config: RunConfig, controller: Controller) -> dict[str, float]:
    """Scores of the best cell's own generator alone (best of the N centres), `generator_*`."""
    pool = controller.pool
    if not isinstance(pool, LocalCellPool):
        return {}
    inputs = controller.route(pool.publish())
    seed = config.seed * 7 + 3
    scores = [pool.cells[i].task.evaluate(pool.sample(i, inputs[i], config.eval_samples, seed,
                                                      centre_only=True)) for i in range(pool.size)]
    key = config.rank_by
    best = min(scores, key=lambda s: s[key] if lower_is_better(key) else -s[key])
    return {f"generator_{k}": float(v) for k, v in best.items()}


def _task(job: tuple[str, str, int, list[str], str]) -> tuple[str, dict[str, Any]]:
    key, setting, seed, over, base = job
    try:
        result = train(load_config(base, over))
    except Exception as exc:  # a benchmark reports failures, it does not stop
        result = {"error": f"{type(exc).__name__}: {exc}"}
    return key, result


def wallclock(table: Table, setting: str, seed: int, base: str) -> dict[str, dict[str, Any]]:
    """`setting` on the Ray pool (the cores split between its cells), then the single GAN with
    every core for the grid's training wall time (pool start-up excluded, reported)."""
    from raygan.distributed import RayCellPool

    cpus = os.cpu_count() or 1
    cells = table.grid * table.grid
    config = load_config(base, [*overrides(table, setting, seed),
                                f"resources.cpus_per_cell={cpu_share(cpus, cells)}",
                                "resources.placement_timeout_s=120"])
    start = time.perf_counter()
    pool = RayCellPool(config)
    startup = time.perf_counter() - start
    try:
        grid = {**_train(config, pool), "startup_s": startup, "backend": "ray", "cores": cpus}
    finally:
        pool.close()
    # more generations than the clock allows
    longer = Table(table.data, 1, table.steps * 20, 1, extra=table.extra)
    single = load_config(base, [*overrides(longer, "single", seed),
                                f"resources.torch_threads={cpus}"])
    alone = {**train(single, cpus, grid["seconds"]), "backend": "local", "threads": cpus}
    return {setting: grid, "single": alone}


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """Finished runs in the results file, by key (the last record of a key wins)."""
    if not path.exists():
        return {}
    records = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {r["key"]: r for r in records}


def append_result(path: Path, record: dict[str, Any]) -> None:
    """Add one finished run to the results file (one JSON line, flushed at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record, default=float) + "\n")


def chosen(name: str, table: Table, done: dict[str, dict[str, Any]], quick: bool) -> list[str]:
    """A table's settings; for one built on another table, its best grid settings by the mean
    ranking metric (three, plus `own`; one for the wall-clock table, the best coupled)."""
    if table.settings:
        return table.settings
    single = ["single"] if table.single else []
    source = tables(quick)[str(table.top_of)]
    kind = builtin_kind(source.data)
    assert kind is not None, source.data
    key = default_rank_by(kind)
    sign = 1.0 if lower_is_better(key) else -1.0
    means = {}
    for setting in source.settings:
        values = [r[key] for r in finished(str(table.top_of), source, setting, done) if key in r]
        if setting != "single" and len(values) == source.seeds_of(setting) == source.seeds:
            means[setting] = sign * sum(values) / len(values)
    ranked = sorted(means, key=lambda s: means[s])
    if name.endswith("wallclock"):
        return [s for s in ranked if s != "own"][:1]
    own = [] if "own" in ranked[:3] or "own" not in ranked else ["own"]
    return single + ranked[:3] + own


def cost(table: Table, setting: str) -> float:
    """Rough relative run time, so that a pool starts the longest runs first."""
    cells = 1 if setting == "single" else table.grid**2
    short = table.extra == GRID25_SHORT
    per_step = {"mnist5k": 1.0, "ring8": 0.9, "grid25": 0.4 if short else 1.2}[table.data]
    return table.steps * cells * per_step * (3 if setting == "live" else 1)


def finished(name: str, table: Table, setting: str, done: dict[str, dict[str, Any]],
             trained: str | None = None,
             settings: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """The results of `setting`'s finished runs in table `name` as it is defined now, in seed
    order; runs of an earlier definition stay in the file but do not count. `trained`: the
    setting whose overrides the runs are keyed by (a wall-clock table keys both runs of a seed
    by its grid's). `settings`: the overrides by setting (default `SETTINGS`)."""
    base = str(BASES[table.data])
    keys = [run_key(name, setting, seed, overrides(table, trained or setting, seed, settings), base)
            for seed in range(table.seeds_of(setting))]
    return [done[k]["result"] for k in keys if k in done]


def summarise(name: str, table: Table, settings: list[str],
              done: dict[str, dict[str, Any]],
              defined: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A table's runs by setting (seed order) with mean +- std; `own_best` from `own`'s runs.
    `defined`: the overrides by setting (default `SETTINGS`)."""
    defined = SETTINGS if defined is None else defined
    metrics = METRICS["mnist5k" if table.data == "mnist5k" else "toy"]
    keys = metrics + [f"generator_{k}" for k in metrics] + TIMES
    out: dict[str, Any] = {**table.__dict__, "settings": {}}
    wall = name.endswith("wallclock")
    for setting in settings + (["single"] if wall else []):
        runs = finished(name, table, setting, done, settings[0] if wall else None, defined)
        out["settings"][setting] = {"overrides": defined[setting], "runs": runs,
                                    **mean_std(runs, keys)}
        if setting == "own" and not wall:
            best = [{k[len("generator_"):]: v for k, v in r.items() if k.startswith("generator_")}
                    for r in runs]
            out["settings"]["own_best"] = {"overrides": SETTINGS["own"], "runs": best,
                                           "from": "own: the best cell's own generator alone",
                                           **mean_std(best, metrics)}
    return out


def _mean(summary: dict[str, Any], table: str, setting: str, key: str) -> float | None:
    got = summary.get(table, {}).get("settings", {}).get(setting, {}).get(key)
    return None if got is None else float(got["mean"])


def targets(summary: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, from whichever tables have run."""
    out: dict[str, Any] = {}
    for name in ("mnist5k_2x2", "mnist5k_3x3"):
        coupled = [s for s in summary.get(name, {}).get("settings", {})
                   if s not in ("single", "own", "own_best") and _mean(summary, name, s, "fid")]
        if not coupled or _mean(summary, name, "own", "fid") is None:
            continue
        best = min(coupled, key=lambda s: _mean(summary, name, s, "fid") or 0.0)
        fid, own = _mean(summary, name, best, "fid"), _mean(summary, name, "own", "fid")
        single = _mean(summary, "mnist5k_2x2", "single", "fid")
        tvd, own_tvd = _mean(summary, name, best, "tvd"), _mean(summary, name, "own", "tvd")
        assert fid is not None and own is not None
        entry: dict[str, Any] = {"best_coupled": best, "fid_vs_own": fid / own,
                                 "fid_vs_own_target": 0.8, "tvd": tvd, "own_tvd": own_tvd}
        if single:
            entry.update(fid_vs_single=fid / single, fid_vs_single_target=0.5)
        entry["met"] = (fid / own <= 0.8 and (not single or fid / single <= 0.5)
                        and tvd is not None and own_tvd is not None and tvd <= own_tvd)
        out[name] = entry
    def sharp(setting: str) -> bool:  # 25 of 25 modes, >= 80 % of samples within 3 std
        modes = _mean(summary, "grid25_3x3", setting, "modes_covered")
        hq = _mean(summary, "grid25_3x3", setting, "hq_fraction")
        return modes == 25 and hq is not None and hq >= 0.8

    grid = summary.get("grid25_3x3", {}).get("settings", {})
    single_sharp = "single" in grid and sharp("single")
    for setting in [s for s in grid if s not in ("single", "own", "own_best")]:
        out.setdefault("grid25_3x3", {})[setting] = {
            "modes": _mean(summary, "grid25_3x3", setting, "modes_covered"),
            "hq_fraction": _mean(summary, "grid25_3x3", setting, "hq_fraction"),
            "single_reaches_it": single_sharp, "met": sharp(setting) and not single_sharp}
    wall = summary.get("mnist5k_wallclock", {}).get("settings", {})
    if len(wall) == 2:
        grid_name = next(s for s in wall if s != "single")
        g, s = (_mean(summary, "mnist5k_wallclock", n, "fid") for n in (grid_name, "single"))
        if g is not None and s is not None:
            out["mnist5k_wallclock"] = {"grid": grid_name, "fid_grid": g, "fid_single": s,
                                        "fid_ratio": g / s, "met": g < s}
    return out


def _record(key: str, name: str, setting: str, seed: int, over: list[str], base: str,
            result: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "table": name,
            "setting": setting, "seed": seed, "overrides": over, "base": base,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "result": result}


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return result["error"]
    keys = ["fid", "tvd", "generator_fid", "modes_covered", "hq_fraction", "seconds"]
    return ", ".join(f"{k}={result[k]:.4g}" for k in keys if k in result)


def main(argv: list[str] | None = None) -> int:
    """Run the tables' missing runs, then print every table and the targets."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="*", help="run only these tables (default: all)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--results", type=Path, help="JSON-lines file of finished runs (default: "
                   "bench/results/coevolution.jsonl; with --quick a fresh temporary file)")
    p.add_argument("--quick", action="store_true", help="ring8 only, 50 steps per network")
    args = p.parse_args(argv)
    every = tables(args.quick)
    names = args.tables or list(every)
    unknown = [n for n in names if n not in every]
    if unknown:
        p.error(f"unknown table(s) {', '.join(unknown)}; tables: {', '.join(every)}")
    path = args.results
    if path is None:
        path = (Path(os.environ.get("TMPDIR", "/tmp")) / f"coevolution_quick_{os.getpid()}.jsonl"
                if args.quick else Path(__file__).parent / "results" / "coevolution.jsonl")
    done = load_results(path)
    start = time.perf_counter()
    result: dict[str, Any] = {"bench": "coevolution", "quick": args.quick, "machine": machine(),
                              "results_file": str(path), "batches_per_generation": BATCHES,
                              "evaluate_every_generations": EVERY, "tables": {}}
    stages = sorted({every[n].stage for n in names})
    for stage in [[n for n in names if every[n].stage == k and not n.endswith("wallclock")]
                  for k in stages]:
        jobs = []
        for name in stage:
            table, base = every[name], str(BASES[every[name].data])
            for setting in chosen(name, table, done, args.quick):
                for seed in range(table.seeds_of(setting)):
                    over = overrides(table, setting, seed)
                    key = run_key(name, setting, seed, over, base)  # a config load: once a run
                    if key not in done:
                        jobs.append((cost(table, setting), key, name, setting, seed, over, base))
        run_jobs(jobs, stage, args.jobs, done, path, start)
    for name in [n for n in names if n.endswith("wallclock")]:
        _wallclock_table(name, every[name], done, path, args.quick)
    for name in names:
        result["tables"][name] = summarise(name, every[name],
                                           chosen(name, every[name], done, args.quick), done)
    result["targets"] = targets(result["tables"])
    finish(result, start)
    return 0


def run_jobs(jobs: list[tuple[Any, ...]], names: list[str], parallel: int,
             done: dict[str, dict[str, Any]], path: Path, start: float) -> None:
    """Train `jobs` ((cost, key, table, setting, seed, overrides, base) each), tables in the
    order of `names` and the longest runs first, `parallel` at a time; record each (`_collect`)."""
    jobs = sorted(jobs, key=lambda j: (names.index(j[2]), -j[0]))
    log(f"{len(jobs)} runs to do in {', '.join(names) or 'no table'}")
    tasks = [(key, s, seed, o, b) for _, key, _, s, seed, o, b in jobs]
    by_key = {j[1]: j for j in jobs}
    if parallel > 1 and len(tasks) > 1:
        context = multiprocessing.get_context("spawn")  # a clean torch in every worker
        with context.Pool(parallel) as workers:
            _collect(workers.imap_unordered(_task, tasks), by_key, done, path, start)
    else:
        _collect(map(_task, tasks), by_key, done, path, start)


def _collect(results: Any, by_key: dict[str, Any], done: dict[str, dict[str, Any]],
             path: Path, start: float) -> None:
    """Record each run as it finishes: into `done` and the results file, with a progress line."""
    for i, (key, res) in enumerate(results, 1):
        _, _, name, setting, seed, over, base = by_key[key]
        done[key] = record = _record(key, name, setting, seed, over, base, res)
        append_result(path, record)
        log(f"[{i}/{len(by_key)}, {time.perf_counter() - start:.0f} s] {name} {setting} "
            f"seed {seed}: {_brief(res)}")


def _wallclock_table(name: str, table: Table, done: dict[str, dict[str, Any]], path: Path,
                     quick: bool) -> None:
    import ray

    from raygan.distributed.pool import ensure_ray

    picked = chosen(name, table, done, quick)
    if not picked:
        log(f"{name}: no finished {table.top_of} to pick the grid from; skipped")
        return
    base = str(BASES[table.data])
    todo = [seed for seed in range(table.seeds) if not all(
        run_key(name, s, seed, overrides(table, picked[0], seed), base) in done
        for s in (picked[0], "single"))]
    if not todo:  # everything finished: no Ray start-up
        return
    started = not ray.is_initialized()
    ensure_ray(num_cpus=os.cpu_count(), log_to_driver=False)
    try:
        for seed in todo:
            over = overrides(table, picked[0], seed)
            try:
                runs = wallclock(table, picked[0], seed, base)
            except Exception as exc:  # a benchmark reports failures, it does not stop
                runs = {s: {"error": f"{type(exc).__name__}: {exc}"} for s in (picked[0], "single")}
            for setting, res in runs.items():
                key = run_key(name, setting, seed, over, base)
                done[key] = record = _record(key, name, setting, seed, over, base, res)
                append_result(path, record)
                log(f"{name} {setting} seed {seed}: {_brief(res)}")
    finally:
        if started:
            ray.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
