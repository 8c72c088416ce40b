"""The report's architecture-evolution section, from an `evolve` sweep's `evolve.jsonl`.

Each elitist step is one table: every genome of the population (best first) with its fitness,
parameter counts and whether it survived, then the genome each replaced trial got and the elite
it came from (its lineage). A figure shows the best and median fitness per step, and the
final population's (the trials' last results) after the last step.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raygan.tuning.evolve import LOG_NAME
from raygan.tuning.records import TrialRecord
from raygan.tuning.results import rank_key


def evolve_steps(experiment: Path) -> list[dict[str, Any]]:
    """The recorded elitist steps, in order (empty when the sweep was not `evolve`)."""
    path = experiment / LOG_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _final_fitness(trials: list[TrialRecord]) -> list[float]:
    return [t.score for t in trials if math.isfinite(t.score)]


def fitness_figure(steps: list[dict[str, Any]], trials: list[TrialRecord], metric: str) -> Any:
    """Best and median fitness of the population at each step and at the end."""
    import matplotlib.pyplot as plt

    rows = [[r["fitness"] for r in s["trials"] if isinstance(r["fitness"], (int, float))
             and math.isfinite(r["fitness"])] for s in steps]
    labels = [f"step {s['step']}\n(gen {s['generation']})" for s in steps]
    final = _final_fitness(trials)
    if final:
        rows.append(final)
        labels.append("final")
    lower = trials[0].config.tune_mode == "min" if trials else True
    best = [(min(r) if lower else max(r)) if r else math.nan for r in rows]
    median = [sorted(r)[len(r) // 2] if r else math.nan for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(range(len(rows)), best, "o-", label="best")
    ax.plot(range(len(rows)), median, "s--", label="median", alpha=0.7)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title("Population fitness per elitist step")
    ax.legend()
    fig.tight_layout()
    return fig


def evolve_html(
    experiment: Path,
    trials: list[TrialRecord],
    png: Callable[[Any], str],
    img: Callable[[str, str], str],
    table: Callable[[list[str], list[list[str]]], str],
) -> str:
    """The section (empty when there are no steps); `png`, `img` and `table` are the report's
    figure and table writers."""
    steps = evolve_steps(experiment)
    if not steps:
        return ""
    metric = trials[0].metric if trials else "fitness"
    parts = [f"<h2>Architecture evolution ({len(steps)} elitist step(s))</h2>",
             img(png(fitness_figure(steps, trials, metric)), "population fitness per step")]
    for step in steps:
        parts.append(f"<h3>Step {step['step']} (generation {step['generation']})</h3>")
        parts.append(table(
            ["rank", "trial", metric, "G params", "D params", "kept", "genome"],
            [[str(r["rank"] + 1), r["trial"], _number(r["fitness"]), str(r["g_params"]),
              str(r["d_params"]), "elite" if r["elite"] else "replaced", r["genome"]]
             for r in step["trials"]]))
        refilled = [r for r in step["trials"] if r.get("new_genome")]
        if refilled:
            parts.append(table(
                ["trial", "from elite", "variation", "new genome"],
                [[r["trial"], r["parent"] or "(random genome)", r["variation"] or "-",
                  r["new_genome"]] for r in refilled]))
    final = sorted(trials, key=rank_key)
    parts.append("<h3>Final population</h3>")
    parts.append(table(
        ["trial", metric, "G params", "D params", "genome"],
        [[t.trial_id, _number(t.last.get(t.metric)), _number(t.last.get("g_params")),
          _number(t.last.get("d_params")), t.config.networks.genome] for t in final]))
    parts.append(f"<p class='note'>Fitness is {html.escape(metric)}; replaced trials "
                 "restart from their elite's checkpoint (generation count and history) with "
                 "the new genome.</p>")
    return "\n".join(parts)
