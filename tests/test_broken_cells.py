"""Non-finite cells and damaged checkpoints: a NaN never ranks best, feeds a mixture or reaches
`raygan sample`, the run says what it did, and a flipped checkpoint byte is a one-line error
with the fallback to the previous checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_toy_config

from raygan.cli import main
from raygan.config.catalog import lower_is_better
from raygan.core.operators import usable_mixture
from raygan.engine.checkpoint import (
    CheckpointError,
    load_checkpoint,
    previous_of,
    save_checkpoint,
)
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool
from raygan.engine.run import train
from raygan.metrics.toy import toy_metrics
from raygan.tuning.results import sample_best_mixture


def _poison(state: dict[str, Any]) -> None:
    """NaN into every floating-point tensor of a network's state dict."""
    for tensor in state.values():
        if tensor.is_floating_point():
            tensor.fill_(math.nan)


def _plant_nan(checkpoint: Path, cells: list[int]) -> int:
    """Rewrite `checkpoint` (with a valid checksum) with NaN G weights in `cells`; returns the
    checkpoint's best cell."""
    config, controller, states = load_checkpoint(checkpoint)
    for cell in cells:
        _poison(states[cell]["g"]["net"])
    save_checkpoint(checkpoint, config, controller, states)
    return int(controller["best_cell"])


def _finite_cells(checkpoint: Path) -> list[bool]:
    _, _, states = load_checkpoint(checkpoint)
    return [all(bool(torch.isfinite(t).all()) for side in "gd"
                for t in s[side]["net"].values() if t.is_floating_point()) for s in states]


def test_toy_metrics_score_non_finite_samples_worst() -> None:
    modes = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    nan = torch.full((40, 2), math.nan)
    # data.std=.inf once made every non-finite sample "high quality"
    for std in (0.05, math.inf):
        scores = toy_metrics(nan, modes, std)
        assert scores["hq_fraction"] == 0.0 and scores["modes_covered"] == 0.0
        assert scores["mode_tvd"] == scores["coverage_score"] == 1.0
        assert scores["reverse_kl"] == pytest.approx(math.log(4))
    half = torch.cat([torch.tensor(modes).float().repeat(5, 1), nan[:20]])
    assert toy_metrics(half, modes, math.inf)["hq_fraction"] == 0.5


def test_a_mixture_gives_no_weight_to_a_non_finite_generator() -> None:
    w = np.array([0.5, 0.3, 0.2])
    assert usable_mixture(w, [True, True, True]) is w  # finite runs stay bit-identical
    assert np.allclose(np.asarray(usable_mixture(w, [True, False, True])), [5 / 7, 0, 2 / 7])
    # the weight sat on the broken member: the finite ones share it
    assert np.allclose(np.asarray(usable_mixture(np.array([1.0, 0, 0]), [False, True, True])),
                       [0, 0.5, 0.5])
    assert usable_mixture(w, [False, False, False]) is None

    cfg = tiny_toy_config()
    pool = LocalCellPool(cfg)
    controller = Controller(cfg, pool)
    with torch.no_grad():
        _poison(pool.cells[1].g.net.state_dict())
    assert pool.cells[1].nonfinite_networks() == ["G"]
    rows = controller.route(pool.publish())
    assert 1 in controller.neighbourhoods[0]
    # cell 0's mixture draws on cell 1's NaN generator no more, nor does cell 1's own
    for cell in (0, 1):
        samples = pool.cells[cell].sample(rows[cell], 300, seed=5)
        assert bool(torch.isfinite(samples).all()), cell
        assert all(math.isfinite(v) for v in pool.cells[cell].evaluate(
            rows[cell], 300, seed=5).scores.values())


def test_nan_planted_in_a_checkpoint_is_refused_by_sample_then_reseeded_by_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_toy_config(**{"training.generations": 2, "output.checkpoint_every": 1})
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    ckpt = run / "checkpoint.pt"
    best = _plant_nan(ckpt, [0])
    if best != 0:
        _plant_nan(ckpt, [best])
    capsys.readouterr()
    # the best cell is broken: sample refuses in one line instead of writing NaN rows
    assert main(["sample", str(run), "--out", str(tmp_path / "s.npy")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"the best cell, {best}, has non-finite G weights" in lines[0]
    assert not (tmp_path / "s.npy").exists()

    assert main(["resume", str(run), "--generations", "3", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "raygan: cell 0 went non-finite at generation 3 (G parameters); re-seeded its G " \
           "from cell" in err, err
    assert "Traceback" not in err
    assert all(_finite_cells(ckpt))  # and no neighbour caught the NaN
    _, controller, _ = load_checkpoint(ckpt)
    row = next(r for r in controller["history"] if (r["generation"], r["cell"]) == (2, 0))
    assert set(row["reseeded"]) == {"G"} and row["g_replaced"] and row["broken"] == []
    assert main(["sample", str(run), "--out", str(tmp_path / "s.npy")]) == 0
    assert np.isfinite(np.load(tmp_path / "s.npy")).all()


def test_a_cell_with_no_finite_neighbour_never_ranks_best_nor_feeds_a_mixture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_toy_config(**{"training.generations": 2})
    pool = LocalCellPool(cfg)
    controller = Controller(cfg, pool)
    assert sorted(controller.neighbourhoods[0]) == [0, 1, 2]  # 1 and 2 also neighbour 3
    with torch.no_grad():
        for cell in (0, 1, 2):
            _poison(pool.cells[cell].g.net.state_dict())
    # cell 0's mixture would score best of all: only its NaN must keep it from ranking
    best_value = -1e9 if lower_is_better(cfg.rank_by) else 1e9
    real = pool.cells[0].task.evaluate
    monkeypatch.setattr(pool.cells[0].task, "evaluate",
                        lambda samples: {**real(samples), cfg.rank_by: best_value})
    capsys.readouterr()
    summary = controller.step()
    err = capsys.readouterr().err
    assert summary.evaluated and summary.best_cell != 0
    assert controller.broken.get(0, [])[:1] == ["G"], controller.broken
    assert "raygan: cell 0 went non-finite at generation 1 (G" in err, err
    assert "no finite neighbour to re-seed its G from: excluded from ranking and mixtures" in err
    for cell in (1, 2):
        assert f"raygan: cell {cell} went non-finite at generation 1 (G" in err
        assert "re-seeded its G from cell 3" in err
    reports = {r.cell: r for r in summary.reports}
    assert reports[0].broken[:1] == ["G"]
    # the neighbours' mixtures gave cell 0's generator no weight
    for cell in (1, 2):
        members = reports[cell].mixture_members
        assert reports[cell].mixture_weights[members.index(0)] == 0.0

    save_checkpoint(tmp_path / "ckpt.pt", cfg, {**controller.state_dict(), "best_cell": 0},
                    pool.state_dicts())
    with pytest.raises(CheckpointError, match="the best cell, 0, has non-finite G"):
        sample_best_mixture(tmp_path / "ckpt.pt", 100)
    for cell in range(4):
        with torch.no_grad():
            _poison(pool.cells[cell].g.net.state_dict())
    save_checkpoint(tmp_path / "ckpt.pt", cfg, controller.state_dict(), pool.state_dicts())
    with pytest.raises(CheckpointError, match="every cell is non-finite"):
        sample_best_mixture(tmp_path / "ckpt.pt", 100)


def _flip_in_adam_state(checkpoint: Path) -> None:
    """Flip one byte inside cell 0's G Adam first moment, where it lies in the file."""
    _, _, states = load_checkpoint(checkpoint)
    moment = states[0]["g"]["optimizer"]["state"][0]["exp_avg"].numpy().tobytes()
    raw = bytearray(checkpoint.read_bytes())
    at = raw.find(moment)
    assert at > 0
    raw[at + len(moment) // 2] ^= 0x40
    checkpoint.write_bytes(raw)


def test_a_flipped_byte_in_the_optimizer_state_is_one_line_and_the_previous_one_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_toy_config(**{"training.generations": 3, "output.checkpoint_every": 1})
    run = tmp_path / "run"
    train(cfg, run, stop_after=2, progress=False)
    ckpt = run / "checkpoint.pt"
    assert previous_of(ckpt).is_file()
    _flip_in_adam_state(ckpt)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{ckpt} is truncated or corrupt")
    assert "SHA-256" in message
    capsys.readouterr()
    assert main(["resume", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"resuming from {previous_of(ckpt)} (generation 1)" in err and "SHA-256" in err
    assert load_checkpoint(ckpt)[1]["generation"] == 3
    # no previous checkpoint: the same one line, exit 2
    previous_of(ckpt).unlink()
    _flip_in_adam_state(ckpt)
    assert main(["resume", str(run), "--generations", "4"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "SHA-256" in err_lines[0], err_lines


def test_checkpoints_carry_a_checksum_line_and_pre_checksum_ones_still_load(
    tmp_path: Path,
) -> None:
    from raygan.engine.checkpoint import FORMAT, make_checkpoint

    cfg = tiny_toy_config(**{"training.generations": 1})
    pool = LocalCellPool(cfg)
    controller = Controller(cfg, pool)
    ckpt = tmp_path / "checkpoint.pt"
    save_checkpoint(ckpt, cfg, controller.state_dict(), pool.state_dicts())
    raw = ckpt.read_bytes()
    assert raw[-80:].startswith(b"\nraygan-sha256:") and raw.endswith(b"\n")
    assert torch.load(ckpt, weights_only=True)["format"] == FORMAT  # still a torch file
    for at in (30, len(raw) // 2, len(raw) - 3):  # the zip's records, its data, the digest
        flipped = bytearray(raw)
        flipped[at] ^= 0x01
        ckpt.write_bytes(flipped)
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_checkpoint(ckpt)
    ckpt.write_bytes(raw[:-80])  # the checksum line lost
    with pytest.raises(CheckpointError, match="SHA-256 line is missing"):
        load_checkpoint(ckpt)
    # format 1, written before checksums, loads as it is
    old = {**make_checkpoint(cfg, controller.state_dict(), pool.state_dicts()),
           "format_version": 1}
    torch.save(old, ckpt)
    assert load_checkpoint(ckpt)[0] == cfg
