"""bench/coevolution.py: `--quick` produces the documented JSON and continues a results file."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import bench_json

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import coevolution  # noqa: E402


def _run(argv: list[str]) -> dict[str, Any]:
    return bench_json(coevolution.main, argv)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> tuple[dict, Path]:
    path = tmp_path_factory.mktemp("bench") / "runs.jsonl"
    return _run(["--quick", "--jobs", "1", "--results", str(path)]), path


def test_quick_run_has_the_documented_keys(quick: tuple[dict, Path]) -> None:
    result, path = quick
    assert {"bench", "machine", "results_file", "tables", "targets"} <= set(result)
    assert result["machine"]["cores"] >= 1
    assert list(result["tables"]) == ["ring8_2x2", "ring8_3x3", "ring8_wallclock"]
    table = result["tables"]["ring8_2x2"]
    assert {"data", "grid", "steps", "seeds", "settings"} <= set(table)
    assert set(table["settings"]) == {"single", "own", "own_best", "fresh"}
    for name, setting in table["settings"].items():
        run = setting["runs"][0]
        assert "error" not in run, (name, run)
        assert {"mean", "std"} == set(setting["mode_tvd"]), name
        if name != "own_best":
            assert run["gradient_steps"] > 0 and run["steps_per_s"] > 0
            assert run["curve"][-1]["steps_per_network"] == coevolution.BATCHES  # one generation
    # own_best is own's best cell's own generator, scored apart from its mixture
    own = table["settings"]["own"]["runs"][0]
    assert table["settings"]["own_best"]["runs"][0]["mode_tvd"] == own["generator_mode_tvd"]
    # the 3x3 table runs the 2x2 table's best grid settings (at most three) plus own
    grid3 = result["tables"]["ring8_3x3"]["settings"]
    assert "own" in grid3 and "single" not in grid3 and len(grid3) <= 5
    wall = result["tables"]["ring8_wallclock"]["settings"]
    assert set(wall) == {"fresh", "single"}
    grid_run, single_run = wall["fresh"]["runs"][0], wall["single"]["runs"][0]
    assert grid_run["backend"] == "ray" and single_run["threads"] >= 1
    # the single GAN trained for (about) the grid's wall time, not for a step count
    assert single_run["seconds"] >= grid_run["seconds"]
    lines = path.read_text().splitlines()
    assert len(lines) == 3 + len(grid3) - 1 + 2  # own_best is derived, not run


def test_a_second_run_skips_every_finished_run(quick: tuple[dict, Path]) -> None:
    result, path = quick
    before = path.read_text()
    again = _run(["--quick", "--jobs", "1", "--results", str(path)])
    assert path.read_text() == before
    assert again["tables"] == result["tables"]


def test_unknown_table_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        coevolution.main(["--quick", "--tables", "mnist5k_9x9"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "mnist5k_9x9" in err and "ring8_2x2" in err


def test_run_key_follows_what_the_run_trains(tmp_path: Path) -> None:
    base = coevolution.BASES["ring8"]
    over = ["seed=1", "training.generations=2"]
    key = coevolution.run_key("t", "own", 1, over, str(base))
    # the same config spelt another way (an override moved into the YAML) is the same run
    moved = tmp_path / "moved.yaml"
    moved.write_text(base.read_text().replace("seed: 0", "seed: 1"))
    assert coevolution.run_key("t", "own", 1, ["training.generations=2"], str(moved)) == key
    # an edit of the base YAML that changes what trains is a new run
    edited = tmp_path / "edited.yaml"
    edited.write_text(base.read_text().replace("batch_size: 500", "batch_size: 400"))
    assert coevolution.run_key("t", "own", 1, over, str(edited)) != key
    # only what differs from raygan's defaults counts, so a new option at its default (which
    # keeps the old behaviour) leaves every committed run's key alone
    changed = coevolution._changed({"a": {"x": 1, "new": 0}, "b": 2}, {"a": {"x": 0, "new": 0},
                                                                       "b": 2})
    assert changed == {"a.x": 1}


def test_runs_of_an_earlier_table_definition_do_not_count() -> None:
    table = coevolution.Table("ring8", 2, 100, 2, ["own", "live"], one_seed=("live",))
    assert (table.seeds_of("own"), table.seeds_of("live")) == (2, 1)
    base = str(coevolution.BASES["ring8"])

    def record(setting: str, seed: int, t: coevolution.Table) -> dict[str, Any]:
        over = coevolution.overrides(t, setting, seed)
        return {"key": coevolution.run_key("t", setting, seed, over, base),
                "result": {"seed": seed, "steps": t.steps}}

    longer = coevolution.Table("ring8", 2, 200, 2, ["own"])
    done = {r["key"]: r for r in [record("own", 1, table), record("own", 0, longer),
                                  record("live", 0, table), record("live", 1, table)]}
    assert coevolution.finished("t", table, "own", done) == [{"seed": 1, "steps": 100}]
    # live runs seed 0 only here: its seed-1 run is not counted
    assert coevolution.finished("t", table, "live", done) == [{"seed": 0, "steps": 100}]


def test_controller_scale_quick_times_every_size() -> None:
    import controller_scale

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert controller_scale.main(["--quick", "--generations", "2"]) == 0
    result = json.loads(out.getvalue())
    assert [s["cells"] for s in result["sizes"]] == [4, 16, 64, 256, 1024]
    for size in result["sizes"]:
        assert size["no_evaluation"]["median_ms"] > 0
        assert size["evaluated_every_generation"]["median_ms"] > 0


def test_the_committed_results_cover_every_run_of_the_full_tables() -> None:
    # a change to the config schema or a base YAML that changes run keys would orphan the
    # committed results (hours of runs) without a word: re-key them, or rerun, on purpose
    done = coevolution.load_results(BENCH / "results" / "coevolution.jsonl")
    every = coevolution.tables(quick=False)
    for name, table in every.items():
        picked = coevolution.chosen(name, table, done, quick=False)
        assert picked, name
        wall = name.endswith("wallclock")
        for setting in picked + (["single"] if wall else []):
            runs = coevolution.finished(name, table, setting, done, picked[0] if wall else None)
            assert len(runs) == table.seeds_of(setting), (name, setting)


def test_evolve_bench_baselines_are_the_shipped_networks_at_the_sweeps_budget() -> None:
    import evolve

    from raygan.config import load_config

    sweep = load_config(evolve.CONFIGS / "evolve_mnist.yaml")
    for kind in ("dcgan", "mlp"):
        base = evolve.baseline(sweep, kind)
        assert base.networks.kind == kind and base.grid.size == 1
        assert base.tune.scheduler == "none"
        for section in ("data", "losses", "training", "metrics"):
            assert getattr(base, section) == getattr(sweep, section), section
        assert base.seed == sweep.seed


def test_packing_compares_the_same_training_both_ways() -> None:
    import packing

    result = packing.compare(packing.TOY, 2, generations=1, batches=3, device="cpu")
    seq, vec = result["sequential"], result["vectorised"]
    assert seq["g_steps"] == vec["g_steps"] == 2 * 3  # one timed generation of 3 batches, 2 cells
    assert result["speedup_train_steps_per_s"] == pytest.approx(
        vec["train_steps_per_s"] / seq["train_steps_per_s"], rel=1e-2)
    assert packing.gpu(quick=True) == {"skipped": "no CUDA device on this machine"} or (
        packing.torch.cuda.is_available())
