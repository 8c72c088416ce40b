from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    RULE_OVERRIDES,
    assert_same_state,
    check_resume_equals_uninterrupted,
    comparable,
    config_error,
    tiny_toy_config,
)

from raygan.cli import main
from raygan.engine.checkpoint import CheckpointError, load_checkpoint
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool
from raygan.engine.run import train


def test_2x2_grid_runs_three_generations_in_seconds(tiny_config) -> None:
    start = time.perf_counter()
    pool = LocalCellPool(tiny_config)
    controller = Controller(tiny_config, pool)
    summaries = [controller.step() for _ in range(3)]
    elapsed = time.perf_counter() - start
    assert controller.done and controller.generation == 3
    assert len(controller.history) == 3 * 4
    assert {(r["generation"], r["cell"]) for r in controller.history} == {
        (g, c) for g in range(3) for c in range(4)
    }
    for report in summaries[-1].reports:
        assert len(report.mixture_members) == 3 and report.steps == 8
        assert (
            sum(report.mixture_weights) == np.float64(1.0)
            or abs(sum(report.mixture_weights) - 1) < 1e-9
        )
        assert report.g_loss in ("minimax", "heuristic", "least_squares")
        assert np.isfinite(report.g.fitness) and np.isfinite(report.d.fitness)
        assert {"modes_covered", "hq_fraction", "reverse_kl", "mode_tvd"} <= report.scores.keys()
    assert elapsed < 30


def test_cells_start_different_and_runs_reproduce(tiny_config) -> None:
    a = LocalCellPool(tiny_config)
    w0 = a.cells[0].g.net.state_dict()
    w1 = a.cells[1].g.net.state_dict()
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)
    b = LocalCellPool(tiny_config)
    ca, cb = Controller(tiny_config, a), Controller(tiny_config, b)
    for _ in range(2):
        ca.step()
        cb.step()
    assert_same_state(a.state_dicts(), b.state_dicts())
    other = LocalCellPool(tiny_config.replace(seed=4))
    assert not torch.equal(
        other.cells[0].g.net.state_dict()["net.0.weight"],
        a.cells[0].g.net.state_dict()["net.0.weight"],
    )


@pytest.mark.parametrize(
    ("rule", "g_ema"), [("lipizzaner", 0.0), *((rule, 0.9) for rule in RULE_OVERRIDES)]
)
def test_resume_equals_uninterrupted(tmp_path: Path, rule: str, g_ema: float) -> None:
    # 3 generations: stopped after 2, the resumed run trains one from the checkpoint
    cfg = tiny_toy_config(
        **{
            "training.generations": 3,
            "losses.mutation": "batch",
            "output.checkpoint_every": 1,
            "training.g_ema": g_ema,
            **RULE_OVERRIDES[rule],
        }
    )
    _, rows = check_resume_equals_uninterrupted(cfg, tmp_path)
    assert [(r["generation"], r["cell"]) for r in rows] == [
        (g, c) for g in range(3) for c in range(4)
    ]


def test_checkpoint_embeds_config_and_loads_weights_only(tmp_path: Path) -> None:
    cfg = tiny_toy_config(**{"training.generations": 1})
    train(cfg, tmp_path, progress=False)
    data = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert data["format"] == "raygan-checkpoint" and data["raygan_version"]
    saved, controller, cells = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved == cfg and controller["generation"] == 1 and len(cells) == 4
    assert not list(tmp_path.glob("*.tmp"))


def test_selection_off_single_cell_is_plain_gan(tmp_path: Path) -> None:
    cfg = tiny_toy_config(
        **{
            "grid.rows": 1,
            "grid.cols": 1,
            "evolution.selection": False,
            "evolution.replacement": False,
            "evolution.lr_mutation": "none",
            "losses.generator": ["heuristic"],
            "mixture.enabled": False,
        }
    )
    controller = Controller(cfg, LocalCellPool(cfg))
    reports = [controller.step().reports[0] for _ in range(3)]
    assert all(r.g.lr == cfg.training.lr_g and r.g_loss == "heuristic" for r in reports)
    assert all(r.mixture_members == [0] and r.g.parent == 0 for r in reports)


@pytest.mark.parametrize("rule", ["own", "lipizzaner"])
def test_own_pairs_ignore_neighbours_in_training(rule: str) -> None:
    # with selection, replacement and the mixture off, neighbours can only act as adversaries:
    # the trained centre must not depend on them exactly when training uses the own pair only
    cfg = tiny_toy_config(**{"training.rule": rule, "mixture.enabled": False})
    centres = []
    for neighbour_seed in (1, 2):
        other = LocalCellPool(cfg.replace(seed=neighbour_seed))
        snapshots = [other.cells[j].publish() for j in LocalCellPool(cfg).cells[0].neighbours]
        cell = LocalCellPool(cfg).cells[0]
        cell.run_generation(0, snapshots)
        centres.append(torch.cat([p.flatten() for p in cell.g.net.parameters()]))
    assert torch.equal(centres[0], centres[1]) == (rule == "own")


def test_cells_sample_and_share_the_generator_average() -> None:
    cfg = tiny_toy_config(**{"training.g_ema": 0.9, "networks.g_activation": "relu"})
    pool = LocalCellPool(cfg)
    assert any(isinstance(m, torch.nn.ReLU) for m in pool.cells[0].g.net.modules())
    controller = Controller(cfg, pool)
    controller.step()
    inputs = controller.route(pool.publish())
    cell = pool.cells[0]
    live = torch.cat([p.flatten() for p in cell.g.net.parameters()])
    average = torch.cat([p.flatten() for p in cell.g.sampler.parameters()])
    assert cell.g.sampler is cell.g.ema and not torch.equal(live, average)
    # the cell's samples come from its average
    z = torch.randn(5, cfg.networks.latent_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = cell.g.ema.eval()(z)
    assert torch.allclose(pool.sample(0, inputs[0], 5, 3, centre_only=True), expected)
    # ... and so do its neighbours' slots in its mixture
    k, neighbour = 0, pool.cells[cell.neighbours[0]]
    cell.mix.weights = np.eye(len(cell.mix.weights))[k + 1]
    with torch.no_grad():
        expected = neighbour.g.ema.eval()(z)
    assert torch.allclose(pool.sample(0, inputs[0], 5, 3), expected)


def test_generator_average_update_and_checkpoint_guard() -> None:
    cfg = tiny_toy_config(**{"training.g_ema": 0.75})
    ind = LocalCellPool(cfg).cells[0].g
    assert ind.ema is not None
    before = [p.clone() for p in ind.ema.parameters()]
    with torch.no_grad():
        for p in ind.net.parameters():
            p.add_(1.0)
    ind.update_ema(0.75)
    for old, avg, cur in zip(before, ind.ema.parameters(), ind.net.parameters()):
        assert torch.allclose(avg, 0.75 * old + 0.25 * cur)
    plain = LocalCellPool(tiny_toy_config()).cells[0].g
    with pytest.raises(ValueError, match="training.g_ema"):
        plain.load_state_dict(ind.state_dict())


def test_nonfinite_centre_is_replaced_by_a_neighbour() -> None:
    config = tiny_toy_config(**{"training.rule": "own", "evolution.selection": True,
                                "evolution.replacement": True})
    pool = LocalCellPool(config)
    controller = Controller(config, pool)
    cell = pool.cells[0]
    with torch.no_grad():
        for p in cell.g.net.parameters():
            p.fill_(float("nan"))
        for p in cell.d.net.parameters():
            p.fill_(float("nan"))
    report = controller.step().reports[0]
    assert np.isfinite(report.g.fitness) and np.isfinite(report.d.fitness)
    assert all(torch.isfinite(p).all() for p in cell.g.net.parameters())
    assert all(torch.isfinite(p).all() for p in cell.d.net.parameters())


def test_cli_train_writes_outputs(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "data: {name: grid25, samples: 1000}\ngrid: {rows: 1, cols: 2}\n"
        "networks: {latent_dim: 4, g_hidden: 16, d_hidden: 16}\n"
        "training: {generations: 2, batch_size: 100, device: cpu}\n"
        "evolution: {fitness_sample_size: 100}\nmixture: {samples: 100}\n"
        "metrics: {samples: 200}\n"
    )
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--set", "seed=5"]) == 0
    for name in (
        "config.yaml",
        "generations.jsonl",
        "cells.jsonl",
        "checkpoint.pt",
        "samples.png",
        "final.json",
        "mode_tvd_heatmap.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "samples.png").read_bytes()[:4] == b"\x89PNG"
    final = json.loads((out / "final.json").read_text())
    assert final["generations_completed"] == 2 and "best/modes_covered" in final
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 2  # refuses to overwrite
    assert "already holds a run" in capsys.readouterr().err
    assert main(["resume", str(out), "--generations", "3", "--quiet"]) == 0
    assert len((out / "generations.jsonl").read_text().splitlines()) == 3
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2


def test_pure_layers_do_not_import_ray() -> None:
    code = (
        "import sys, raygan.config, raygan.core.cell, raygan.engine.run, raygan.data, "
        "raygan.metrics, raygan.engine.pool, raygan.engine.controller; "
        "bad = [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    # the config (and the tune section it builds on) loads without torch too, from either end
    for first in ("raygan.config", "raygan.config.tune"):
        code = (
            f"import sys, {first}, raygan.config; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'torch')]; "
            "assert not bad, bad"
        )
        subprocess.run([sys.executable, "-c", code], check=True)


def test_without_a_mixture_a_cell_is_scored_on_its_own_generator() -> None:
    cfg = tiny_toy_config(**{"mixture.enabled": False, "training.generations": 1})
    pool = LocalCellPool(cfg)
    controller = Controller(cfg, pool)
    controller.step()
    inputs = controller.route(pool.publish())
    for cell in range(pool.size):
        drawn = pool.sample(cell, inputs[cell], 64, 7)
        assert torch.equal(drawn, pool.sample(cell, inputs[cell], 64, 7, centre_only=True))
    # with the mixture on, the same call draws from the neighbours' generators too
    mixed_cfg = cfg.replace(**{"mixture.enabled": True})
    mixed = LocalCellPool(mixed_cfg)
    inputs = Controller(mixed_cfg, mixed).route(mixed.publish())
    assert not torch.equal(mixed.sample(0, inputs[0], 64, 7),
                           mixed.sample(0, inputs[0], 64, 7, centre_only=True))


def test_an_option_that_cannot_act_is_a_one_line_error() -> None:
    from raygan.config import ConfigError

    with pytest.raises(ConfigError, match="evolution.tournament_size.*holds no tournaments"):
        tiny_toy_config(**{"training.rule": "fresh", "training.exchange_every": 1,
                           "evolution.tournament_size": 3})
    with pytest.raises(ConfigError, match="evolution.lr_additive_sigma.*'multiplicative'"):
        tiny_toy_config(**{"evolution.lr_mutation": "multiplicative",
                           "evolution.lr_additive_sigma": 0.01})
    # where it acts, the same value is accepted
    tiny_toy_config(**{"training.rule": "lipizzaner-selection", "evolution.tournament_size": 3})


def test_a_damaged_checkpoint_resumes_from_the_previous_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_toy_config(**{"training.generations": 3, "output.checkpoint_every": 1})
    train(cfg, tmp_path / "full", progress=False)
    train(cfg, tmp_path / "part", stop_after=2, progress=False)
    ckpt = tmp_path / "part" / "checkpoint.pt"
    assert (tmp_path / "part" / "checkpoint.prev.pt").is_file()
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # torn by a crash
    with pytest.raises(CheckpointError, match="checkpoint.pt is truncated or corrupt"):
        load_checkpoint(ckpt)
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "part"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "checkpoint.pt is truncated or corrupt" in err and "(generation 1)" in err
    assert "Traceback" not in err
    # generation 2 ran again from generation 1's checkpoint: the same end as uninterrupted
    _, ctl_full, cells_full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    _, ctl_res, cells_res = load_checkpoint(ckpt)
    assert_same_state(cells_full, cells_res)
    assert ctl_res["generation"] == ctl_full["generation"] == 3


def test_a_damaged_checkpoint_without_a_previous_one_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_toy_config(**{"training.generations": 1})
    train(cfg, tmp_path / "run", progress=False)
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["resume", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.pt is truncated or corrupt" in err[0]


def test_the_history_table_follows_the_report_dataclass() -> None:
    from raygan.core.report import SideReport, report_fields
    from raygan.engine.history import history_table

    cfg = tiny_toy_config(**{"training.generations": 1})
    controller = Controller(cfg, LocalCellPool(cfg))
    report = controller.step().reports[0]
    table = history_table(controller.history)
    scores = sorted(c for c in table.column_names if c.startswith("score/"))
    assert table.column_names == [*report_fields(), *scores]
    assert table.num_rows == 4 and table.column("g_steps").to_pylist() == [
        r["g_steps"] for r in controller.history]
    # the flat rows carry exactly these columns, and each side's every field under its prefix
    assert set(controller.history[0]) == {*report_fields(), "scores"}
    sides = {f.name for f in dataclasses.fields(SideReport)}
    assert {f"{s}_{name}" for s in "gd" for name in sides} <= set(report_fields())
    assert report.to_dict()["d_parent"] == report.d.parent


def test_figures_show_the_samples_that_were_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raygan.core.task import preview_of

    # an evaluation's preview is the scored set, spread evenly (members in their shares)
    cfg = tiny_toy_config(**{"training.generations": 1, "output.figures": True})
    pool = LocalCellPool(cfg)
    controller = Controller(cfg, pool)
    snaps = controller.route(pool.publish())[1]
    scored = pool.cells[1].evaluate(snaps, 300, seed=11)
    samples = pool.cells[1].sample(snaps, 300, seed=11)
    assert torch.equal(scored.preview, samples)  # toy data: every point goes on the scatter
    assert scored.scores == pool.cells[1].task.evaluate(samples)
    spread = preview_of(samples, 7)
    assert torch.equal(spread, samples[[0, 50, 100, 150, 199, 249, 299]])

    # the run's figures come from the evaluation alone: nothing is sampled again for them
    def no_sampling(*args: object, **kwargs: object) -> None:
        raise AssertionError("figures must not draw new samples")

    monkeypatch.setattr(LocalCellPool, "sample", no_sampling)
    train(cfg, tmp_path / "run", progress=False)
    assert {p.name for p in (tmp_path / "run").glob("*.png")} == {
        "samples.png", "mode_tvd_heatmap.png"}


def test_output_figures_false_draws_no_figure_and_changes_nothing_else(tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    runs = {}
    for figures in (True, False):
        cfg = tiny_toy_config(**{"training.generations": 1, "output.figures": figures})
        runs[figures] = train(cfg, tmp_path / str(figures), progress=False)
        acc = event_accumulator.EventAccumulator(str(tmp_path / str(figures) / "tensorboard"),
                                                 size_guidance={"images": 0})
        acc.Reload()
        pngs = list((tmp_path / str(figures)).rglob("*.png"))
        assert bool(pngs) == figures and bool(acc.Tags()["images"]) == figures, figures
        assert "run/mode_tvd" in acc.Tags()["scalars"]
    assert comparable(runs[True].history) == comparable(runs[False].history)
    config_error(lambda: tiny_toy_config(**{"output.plot_every": 1}), "output.plot_every",
                 "output.figures is false")
