"""The report's evolution figures (`raygan.reporting.lineage`, `raygan.reporting.figures`) on
synthetic histories with planted replacements, losses, mixtures and scores; no Ray.

Histories go through `write_history` / `read_history`, so the columns have the types a real
`history.parquet` gives (maps as lists of pairs, lists as arrays).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from raygan.engine.history import read_history, write_history
from raygan.reporting.figures import evolution_panels
from raygan.reporting.lineage import (
    Edge,
    founders,
    loss_shares,
    metric_curves,
    mixture_at_end,
    replacement_edges,
)

# planted replacements of a 2x2 grid over 4 generations: (generation, cell) -> parent
G_PLANT = {(0, 1): 0, (1, 2): 1, (1, 3): 1, (3, 0): 3}
D_PLANT = {(2, 2): 3}
LOSSES = {0: {"minimax": 4}, 1: {"heuristic": 3, "minimax": 1}, 2: {"least_squares": 2}, 3: {}}


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    """The panels' figures are the report's to close; here no one saves them."""
    yield
    plt.close("all")


def _rows(cells: int = 4, generations: int = 4, *, scored: bool = True, floor: bool = True,
          plant: bool = True) -> list[dict[str, Any]]:
    rows = []
    for gen in range(generations):
        for cell in range(cells):
            g_parent = G_PLANT.get((gen, cell), cell) if plant else cell
            d_parent = D_PLANT.get((gen, cell), cell) if plant else cell
            members = [cell, *[(cell + k) % cells for k in range(1, min(cells, 3))]]
            weights = [1.0 / len(members)] * len(members)
            if gen == generations - 1:
                weights = list(np.arange(1, len(members) + 1) / sum(range(1, len(members) + 1)))
            scores = {}
            if scored and gen % 2 == 1:
                scores = {"fid": 10.0 * (cell + 1) / (gen + 1)}
                if floor:
                    scores["fid_floor"] = 3.0
            rows.append({
                "generation": gen, "cell": cell, "rule": "own", "g_lr": 1e-3 * (gen + 1),
                "d_lr": 2e-3, "g_loss": "minimax", "g_loss_counts": LOSSES[gen % 4],
                "g_replaced": g_parent != cell, "d_replaced": d_parent != cell,
                "g_parent": g_parent, "d_parent": d_parent,
                "g_lr_mutated": gen == 2, "d_lr_mutated": False,
                "mixture_members": members, "mixture_weights": weights, "scores": scores,
            })
    return rows


def _history(tmp_path: Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    write_history(tmp_path / "history.parquet", rows)
    return read_history(tmp_path / "history.parquet")


def test_genealogy_edges_are_the_planted_replacements(tmp_path: Path) -> None:
    history = _history(tmp_path, _rows())
    assert replacement_edges(history, "g") == [
        Edge(gen + 1, parent, cell) for (gen, cell), parent in sorted(G_PLANT.items())]
    assert replacement_edges(history, "d") == [Edge(3, 3, 2)]


def test_founders_follow_the_parents_back_to_the_initial_networks(tmp_path: Path) -> None:
    found = founders(_history(tmp_path, _rows()), "g")
    # step 1: cell 1 took cell 0's; step 2: cells 2 and 3 took cell 1's (founded by 0);
    # step 4: cell 0 took cell 3's (founded by 0 too): the whole grid descends from cell 0
    assert found.loc[0].tolist() == [0, 1, 2, 3]
    assert found.loc[1].tolist() == [0, 0, 2, 3]
    assert found.loc[2].tolist() == [0, 0, 0, 0]
    assert found.loc[4].tolist() == [0, 0, 0, 0]
    assert founders(_history(tmp_path, _rows()), "d").loc[4].tolist() == [0, 1, 3, 3]


def test_a_rerun_generation_counts_as_its_last_record(tmp_path: Path) -> None:
    rows = _rows()
    rerun = [dict(r, g_replaced=False, g_parent=r["cell"]) for r in rows if r["generation"] == 0]
    history = _history(tmp_path, rows + rerun)
    assert Edge(1, 0, 1) not in replacement_edges(history, "g")


def test_loss_shares_sum_to_one_per_generation(tmp_path: Path) -> None:
    shares = loss_shares(_history(tmp_path, _rows()))
    assert list(shares.columns) == ["heuristic", "least_squares", "minimax"]
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert shares.loc[1, "minimax"] == 1.0
    assert shares.loc[2].tolist() == [0.75, 0.0, 0.25]
    # no steps counted in generation 3: each centre's loss counts once
    assert shares.loc[4, "minimax"] == 1.0


def test_metric_curves_best_cell_and_floor(tmp_path: Path) -> None:
    curves = metric_curves(_history(tmp_path, _rows()), "fid")
    assert curves is not None and curves.floor == 3.0
    assert curves.cells.index.tolist() == [2, 4]  # evaluated after generations 2 and 4
    assert curves.best.tolist() == [5.0, 2.5]  # cell 0 is the best (lowest FID)
    assert metric_curves(_history(tmp_path, _rows(floor=False)), "fid").floor is None
    assert metric_curves(_history(tmp_path, _rows(scored=False)), "fid") is None


def test_mixture_at_end_is_the_last_generation_own_cell_first(tmp_path: Path) -> None:
    end = mixture_at_end(_history(tmp_path, _rows()))
    assert [cell for cell, _, _ in end] == [0, 1, 2, 3]
    assert end[1][1] == [1, 2, 3] and math.isclose(sum(end[1][2]), 1.0)
    assert end[1][2] == pytest.approx([1 / 6, 2 / 6, 3 / 6])


def test_every_panel_draws_for_a_full_history(tmp_path: Path) -> None:
    panels = evolution_panels(_history(tmp_path, _rows()), cols=2, metric="fid")
    assert [p.title for p in panels] == ["Learning rates", "Generator losses", "Genealogy",
                                         "Mixture weights", "Ranking metric (fid)"]
    assert all(p.figure is not None and p.caption for p in panels)
    assert "floor" in panels[-1].caption and "3" in panels[-1].caption


@pytest.mark.parametrize("case", ["single_cell", "no_replacements", "no_evaluation", "no_floor"])
def test_panels_cope_with_sparse_histories(tmp_path: Path, case: str) -> None:
    rows = {
        "single_cell": lambda: _rows(cells=1, plant=False),
        "no_replacements": lambda: _rows(plant=False),
        "no_evaluation": lambda: _rows(scored=False),
        "no_floor": lambda: _rows(floor=False),
    }[case]()
    panels = {p.title: p for p in evolution_panels(_history(tmp_path, rows), 2, "fid")}
    metric = panels["Ranking metric (fid)"]
    assert (metric.figure is None) == (case == "no_evaluation")
    if case == "no_evaluation":
        assert "no evaluation" in metric.caption
    if case == "no_floor":
        assert "no real-data floor" in metric.caption
    if case in ("single_cell", "no_replacements"):
        assert "replaced no centre" in panels["Genealogy"].caption
    assert all(p.figure is not None for t, p in panels.items() if t != metric.title)


def test_a_history_without_a_column_leaves_its_panel_out(tmp_path: Path) -> None:
    history = _history(tmp_path, _rows()).drop(columns=["g_parent"])
    panels = {p.title: p for p in evolution_panels(history, 2, "fid")}
    assert panels["Genealogy"].figure is None
    assert "g_parent" in panels["Genealogy"].caption
    assert evolution_panels(history.iloc[:0], 2, "fid")[0].figure is None
