"""Figures of a grid's evolution for the report: learning rates, losses, genealogy, mixtures,
the ranking metric against its real-data floor.

Pure functions from a trial's population history (`history.parquet` as a DataFrame) and its
grid shape to matplotlib figures; no Ray. `evolution_panels` gives them all, each with a
caption saying how to read it, or a sentence saying why it is left out (no evaluation yet, no
mixture, a history without the columns). A trial that PBT/PB2 exploited holds its donor's
history up to the donor's checkpoint: every figure over the generations marks where it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from raygan.config.catalog import lower_is_better  # noqa: E402
from raygan.reporting.lineage import (  # noqa: E402
    Exploit,
    MetricCurves,
    Side,
    cell_label,
    founders,
    latest_rows,
    loss_shares,
    metric_curves,
    mixture_at_end,
    own_weight,
    replacement_edges,
)

_SIDES: tuple[tuple[Side, str], ...] = (("g", "generator"), ("d", "discriminator"))


@dataclass(frozen=True)
class Panel:
    """One item of a trial's evolution section.

    Attributes:
        title: a short heading.
        caption: how to read the figure, or why there is none.
        figure: the figure, None when it is left out.
    """

    title: str
    caption: str
    figure: Figure | None


def cell_colour(cell: int, cells: int) -> Any:
    """A cell's colour, the same in every figure (tab10 up to 10 cells, else a spread map)."""
    if cells <= 10:
        return plt.get_cmap("tab10")(cell % 10)
    return plt.get_cmap("turbo")(cell / max(cells - 1, 1))


def handover_label(exploit: Exploit, own: bool) -> str:
    """The words at a donor boundary: `exploit` handed over the history left of it; `own`
    when the trial it went to is the one whose history is drawn."""
    who = "" if own else f"{exploit.trial} "
    return f"{who}exploited from {exploit.donor} at generation {exploit.donor_generation}"


def _mark_inherited(ax: Any, inherited: Sequence[Exploit]) -> None:
    """Shade the generations the trial inherited, and a dashed line with its label after the
    last generation each donor ran (latest exploit first, as `lineage.inherited` gives)."""
    if not inherited:
        return
    left, right = ax.get_xlim()
    ax.axvspan(left, inherited[0].donor_generation + 0.5, color="0.5", alpha=0.1, linewidth=0)
    for i, exploit in enumerate(inherited):
        x = exploit.donor_generation + 0.5  # step g was the donor's, g + 1 the trial's own
        ax.axvline(x, color="0.2", linestyle="--", linewidth=0.9)
        # beside the line, on the side with more room; older hops lower, so labels never meet
        towards = -1 if x > (left + right) / 2 else 1
        ax.annotate(handover_label(exploit, i == 0), (x, 0.97 - 0.14 * i),
                    xycoords=ax.get_xaxis_transform(), xytext=(3 * towards, 0),
                    textcoords="offset points", ha="right" if towards < 0 else "left",
                    va="top", fontsize=6, color="0.2", annotation_clip=False, clip_on=True,
                    bbox={"facecolor": "white", "alpha": 0.75, "linewidth": 0, "pad": 1})
    ax.set_xlim(left, right)


def _cell_axis(ax: Any, cells: list[int], cols: int) -> None:
    ax.set_yticks(cells)
    ax.set_yticklabels([cell_label(c, cols) for c in cells], fontsize=7)
    ax.set_ylim(max(cells) + 0.6, min(cells) - 0.6)  # cell 0 on top, as on the grid
    ax.set_ylabel("cell (row,col)")


def learning_rate_figure(history: pd.DataFrame, inherited: Sequence[Exploit] = ()) -> Figure:
    """Each cell's G and D learning rate per step (log scale); rings mark mutations."""
    rows = latest_rows(history)
    cells = sorted(int(c) for c in rows["cell"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharex=True)
    for ax, (side, name) in zip(axes, _SIDES):
        for cell in cells:
            own = rows[rows["cell"] == cell]
            colour = cell_colour(cell, len(cells))
            ax.plot(own["step"], own[f"{side}_lr"], color=colour, linewidth=1.2,
                    label=f"cell {cell}")
            if f"{side}_lr_mutated" in own:
                hit = own[own[f"{side}_lr_mutated"].astype(bool)]
                ax.scatter(hit["step"], hit[f"{side}_lr"], s=24, facecolors="none",
                           edgecolors=[colour], linewidths=1.1)
        ax.set_yscale("log")
        ax.set_title(f"{name} learning rate", fontsize=9)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3, which="both")
        _mark_inherited(ax, inherited)
    if len(cells) <= 16:
        axes[1].legend(fontsize=6, ncol=2 if len(cells) > 8 else 1, loc="best")
    fig.tight_layout()
    return fig


def loss_share_figure(history: pd.DataFrame, inherited: Sequence[Exploit] = ()) -> Figure:
    """Stacked shares of the G steps taken with each loss per step (all cells)."""
    shares = loss_shares(history)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    colours = plt.get_cmap("Set2")
    ax.stackplot(shares.index, *[shares[c] for c in shares.columns], labels=list(shares.columns),
                 colors=[colours(i) for i in range(len(shares.columns))], step=None)
    ax.set_ylim(0, 1)
    ax.set_xlim(shares.index.min() - 0.5, shares.index.max() + 0.5)
    ax.set_xlabel("generation")
    ax.set_ylabel("share of G steps")
    _mark_inherited(ax, inherited)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def genealogy_figure(history: pd.DataFrame, cols: int,
                     inherited: Sequence[Exploit] = ()) -> Figure:
    """Lineages of the G and D centres over the grid: steps across, cells down.

    Every centre is a dot at (step, cell), coloured by its founder (the cell whose initial
    network it descends from); a line joins it to the centre it descends from one step
    earlier: level when the cell kept its own, slanted (and bolder) from the parent cell when
    another cell's network replaced it, with the parent's number beside the dot. Rings mark
    learning-rate mutations.
    """
    rows = latest_rows(history)
    cells = sorted(int(c) for c in rows["cell"].unique())
    height = 1.2 + 0.28 * len(cells)
    fig, axes = plt.subplots(2, 1, figsize=(11, 2 * height), sharex=True)
    for ax, (side, name) in zip(axes, _SIDES):
        found = founders(history, side)
        edges = {(e.step, e.cell): e.parent for e in replacement_edges(history, side)}
        # by "replaced?": the segments from each centre's parent one step earlier, and colours
        segments: dict[bool, list[list[tuple[int, int]]]] = {False: [], True: []}
        colours: dict[bool, list[Any]] = {False: [], True: []}
        for step in found.index[1:]:
            for cell in cells:
                parent = edges.get((int(step), cell), cell)
                segments[parent != cell].append([(step - 1, parent), (step, cell)])
                colours[parent != cell].append(cell_colour(int(found.at[step, cell]), len(cells)))
        for replaced, width, alpha in ((False, 1.0, 0.55), (True, 1.6, 0.9)):
            ax.add_collection(LineCollection(segments[replaced], colors=colours[replaced],
                                             linewidths=width, alpha=alpha))
        steps, ys = np.meshgrid(found.index, cells, indexing="ij")
        dots = [cell_colour(int(f), len(cells)) for f in found.to_numpy().ravel()]
        ax.scatter(steps.ravel(), ys.ravel(), c=dots, s=12, zorder=3)
        if len(cells) <= 16 and len(found) <= 80:  # beyond that the numbers would overlap
            for (step, cell), parent in edges.items():  # the parent's number, to read exactly
                ax.annotate(str(parent), (step, cell), xytext=(-3, 3),
                            textcoords="offset points", ha="right", va="bottom", fontsize=5.5)
        mutated = rows[rows[f"{side}_lr_mutated"].astype(bool)] if (
            f"{side}_lr_mutated" in rows) else rows.iloc[:0]
        ax.scatter(mutated["step"], mutated["cell"], s=42, facecolors="none", edgecolors="k",
                   linewidths=0.7, zorder=4, label="lr mutated")
        _cell_axis(ax, cells, cols)
        ax.set_xlim(-0.5, found.index.max() + 0.5)
        _mark_inherited(ax, inherited)
        alive = found.iloc[-1].value_counts()
        lines = ", ".join(f"{cell_label(int(c), cols)}: {n}" for c, n in alive.items())
        ax.set_title(f"{name} lineages ({len(edges)} replacements; founders of the final "
                     f"centres, with how many: {lines})", fontsize=8)
        if len(mutated):
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[1].set_xlabel("generation (0: the initial networks)")
    fig.tight_layout()
    return fig


def mixture_figure(history: pd.DataFrame, cols: int,
                   inherited: Sequence[Exploit] = ()) -> Figure:
    """Left: each cell's mixture weights at the last step (member cells named in the boxes);
    right: the weight of each cell's own generator over the steps."""
    end = mixture_at_end(history)
    width = max(len(members) for _, members, _ in end)
    weights = np.full((len(end), width), np.nan)
    cells = [cell for cell, _, _ in end]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11, 1.4 + 0.34 * len(end)), gridspec_kw={"width_ratios": [1, 1.4]})
    for i, (_, _, values) in enumerate(end):
        weights[i, : len(values)] = values
    top = max(float(np.nanmax(weights)), 1e-9)
    image = left.imshow(weights, cmap="Blues", vmin=0, vmax=top, aspect="auto")
    for i, (_, members, values) in enumerate(end):
        for j, (member, value) in enumerate(zip(members, values)):
            if len(end) <= 25:  # beyond that the boxes are too small to read
                left.text(j, i, f"{member}\n{value:.2f}", ha="center", va="center", fontsize=6,
                          color="w" if value > 0.6 * top else "k")
    fig.colorbar(image, ax=left, fraction=0.05, label="weight")
    left.set_xticks(range(width))
    left.set_xticklabels(["own", *[f"nbr {j}" for j in range(1, width)]], fontsize=7)
    left.set_yticks(range(len(end)))
    left.set_yticklabels([cell_label(c, cols) for c in cells], fontsize=7)
    left.set_title("mixture at the last generation (member cell, weight)", fontsize=8)
    own = own_weight(history)
    for cell in own.columns:
        right.plot(own.index, own[cell], color=cell_colour(int(cell), len(own.columns)),
                   linewidth=1.1, label=f"cell {cell}")
    right.axhline(1 / width, color="k", linestyle="--", linewidth=0.8, label="uniform")
    right.set_xlabel("generation")
    right.set_ylabel("own generator's weight")
    right.grid(alpha=0.3)
    _mark_inherited(right, inherited)
    if len(own.columns) <= 16:
        right.legend(fontsize=6, ncol=2 if len(own.columns) > 8 else 1, loc="upper left",
                     bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def metric_figure(curves: MetricCurves, inherited: Sequence[Exploit] = ()) -> Figure:
    """Every cell's metric over the evaluated steps, the best cell's, and the real-data floor."""
    name = curves.name
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for cell in curves.cells.columns:
        ax.plot(curves.cells.index, curves.cells[cell], marker=".", linewidth=0.9, alpha=0.6,
                color=cell_colour(int(cell), len(curves.cells.columns)), label=f"cell {cell}")
    ax.plot(curves.best.index, curves.best, color="k", linewidth=2, marker="o", markersize=3,
            label="best cell")
    if curves.floor is not None:
        ax.axhline(curves.floor, color="k", linestyle="--", linewidth=1,
                   label=f"real data ({curves.floor:.3g})")
    values = curves.cells.to_numpy()
    values = values[np.isfinite(values)]
    # FID falls by orders of magnitude towards its floor: a log scale keeps both in view
    if len(values) and values.min() > 0 and values.max() / values.min() > 30:
        ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"{name} ({'lower' if lower_is_better(name) else 'higher'} is better)")
    ax.grid(alpha=0.3)
    _mark_inherited(ax, inherited)
    if len(curves.cells.columns) <= 16:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def _missing(history: pd.DataFrame, *columns: str) -> str | None:
    gone = [c for c in columns if c not in history.columns]
    return f"left out: the history has no column {', '.join(gone)}" if gone else None


def inherited_note(inherited: Sequence[Exploit]) -> str:
    """How much of the history donors ran (`lineage.inherited`'s chain, latest first)."""
    first = inherited[0]
    text = (f"Generations 1-{first.donor_generation} of this history are {first.donor}'s: at "
            f"its generation {first.generation} this trial was exploited from {first.donor}, "
            f"restarting from its checkpoint of generation {first.donor_generation} (history "
            "included) with new knobs. Every figure below shades them, left of the dashed "
            "line; the generations after it are this trial's own.")
    for exploit in inherited[1:]:
        text += (f" Of those, generations 1-{exploit.donor_generation} are {exploit.donor}'s "
                 f"({exploit.trial} was exploited from it).")
    return text


def evolution_panels(history: pd.DataFrame, cols: int, metric: str,
                     inherited: Sequence[Exploit] = ()) -> list[Panel]:
    """The evolution section of one trial: every figure with its caption, in report order.

    Args:
        history: the trial's population history (`read_history`).
        cols: the grid's columns (cells are labelled with their row and column).
        metric: the ranking metric (`metrics.rank_by`).
        inherited: the exploits that handed the trial the start of its history, latest first
            (`raygan.reporting.lineage.inherited`); the figures mark where each donor's ends.
    """
    if history.empty:
        return [Panel("Evolution", "no generation recorded yet", None)]
    rule = ", ".join(sorted(str(r) for r in history["rule"].unique())) if (
        "rule" in history) else "?"
    panels = [Panel("Inherited history", inherited_note(inherited), None)] if inherited else []

    title = "Learning rates"
    gone = _missing(history, "g_lr", "d_lr")
    panels.append(Panel(title, gone, None) if gone else Panel(
        title, "Each line is one cell's centre after each generation (generator left, "
        "discriminator right, log scale). Rings mark a mutated rate; a jump without a ring "
        "is a replacement: the new centre brought its parent cell's rate.",
        learning_rate_figure(history, inherited)))

    title = "Generator losses"
    gone = _missing(history, "g_loss")
    if gone:
        panels.append(Panel(title, gone, None))
    else:
        shares = loss_shares(history)
        only = (f" Only {shares.columns[0]} was used." if len(shares.columns) == 1 else "")
        panels.append(Panel(
            title, "Share of the generators' gradient steps taken with each loss in each "
            "generation, over all cells (each column sums to 1): a widening band is a loss "
            "that selection and mutation favour." + only, loss_share_figure(history, inherited)))

    title = "Genealogy"
    gone = _missing(history, "g_parent", "d_parent", "g_replaced", "d_replaced")
    if gone:
        panels.append(Panel(title, gone, None))
    else:
        none = not (history["g_replaced"].any() or history["d_replaced"].any())
        panels.append(Panel(
            title, "Where each centre's networks came from. Cells down (row, column on the "
            "grid), generations across; a dot is a cell's centre after that generation, "
            "coloured by its founder (the cell whose initial network it descends from). A "
            "level line: the cell kept its own centre; a bold slanted line from another row, "
            "and that row's number beside the dot: that cell's network replaced the "
            "centre. Rings: mutated learning rate. A colour "
            "spreading over the rows is a lineage taking over the grid."
            + (f" Rule {rule} replaced no centre: every cell kept its own lineage."
               if none else ""),
            genealogy_figure(history, cols, inherited)))

    title = "Mixture weights"
    gone = _missing(history, "mixture_members", "mixture_weights")
    if gone or not all(len(w) for w in history["mixture_weights"]):
        panels.append(Panel(title, gone or "left out: no mixture weights recorded", None))
    else:
        panels.append(Panel(
            title, "Left: each cell's mixture of generators at the last generation, its own "
            "first, then its neighbours (the number in a box is the member's cell, below it "
            "the weight). Right: the weight of the cell's own generator over the generations; "
            "the dashed line is the uniform mixture it starts from.",
            mixture_figure(history, cols, inherited)))

    title = f"Ranking metric ({metric})"
    curves = metric_curves(history, metric)
    if curves is None:
        panels.append(Panel(title, f"no evaluation of {metric} yet (every metrics.every "
                            "generations and after the last)", None))
    else:
        floor = (f"the dashed line is the real-data floor (real images against real images, "
                 f"{curves.floor:.3g})" if curves.floor is not None
                 else f"{metric} has no real-data floor")
        panels.append(Panel(
            title, f"Each cell's mixture scored at every evaluation (thin lines), the best "
            f"cell's (black); {floor}.", metric_figure(curves, inherited)))
    return panels
