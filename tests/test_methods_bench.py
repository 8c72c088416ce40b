"""bench/methods.py: `--quick` runs methods and reports the documented keys; every setting's
config loads."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import bench_json

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import methods  # noqa: E402


def _run(argv: list[str]) -> dict[str, Any]:
    return bench_json(methods.main, argv)


RUN = ["single", "fresh", "gman"]
"""The settings the quick run trains: the two baselines and one method (each method's training
is tested in its own module; `test_every_setting_is_a_valid_config` loads every setting)."""


def test_every_setting_is_a_valid_config() -> None:
    import coevolution

    from raygan.config import load_config

    for table in [*methods.tables(quick=True).values(), *methods.tables(quick=False).values()]:
        for setting in methods.SETTINGS:
            over = coevolution.overrides(table, setting, 0, methods.SETTINGS)
            load_config(coevolution.BASES[table.data], over)  # raises on a refused setting


def test_quick_run_reports_each_method_with_its_cost_ratio(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    result = _run(["--quick", "--jobs", "1", "--results", str(path), "--settings", *RUN])
    assert result["bench"] == "methods" and result["quick"] is True
    assert result["plain"] == "fresh" and result["multi_discriminator_rule"] == "fresh"
    assert result["pending"] == {} and result["config_errors"] == {}
    for key in ("machine", "results_file", "batches_per_generation",
                "evaluate_every_generations", "total_s"):
        assert key in result
    table = result["tables"]["ring8_2x2"]
    assert list(table["settings"]) == RUN
    for setting, entry in table["settings"].items():
        assert entry["overrides"] == methods.SETTINGS[setting]
        (run,) = entry["runs"]
        assert "error" not in run, (setting, run)
        assert run["generations"] == 2 and run["seconds_per_generation"] > 0
        for key in ("modes_covered", "hq_fraction", "seconds_per_generation"):
            assert set(entry[key]) == {"mean", "std"}, (setting, key)
        assert entry["cost_ratio"] > 0
    assert table["settings"]["fresh"]["cost_ratio"] == 1.0
    assert table["cost_measure"] == "seconds_per_generation"
    rows = result["bench_table"]["ring8_2x2"]
    assert list(rows) == RUN
    for row in rows.values():
        assert {"modes_covered", "hq_fraction", "cost_ratio", "seeds_done", "errors",
                "modes_covered_vs_plain", "modes_covered_vs_single"} <= set(row)
    assert len(path.read_text().splitlines()) == len(RUN)  # every run recorded
    again = _run(["--quick", "--jobs", "1", "--results", str(path), "--settings", *RUN])
    assert again["tables"]["ring8_2x2"]["settings"]["gman"]["runs"] == (  # nothing rerun
        table["settings"]["gman"]["runs"])


def test_unknown_setting_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        methods.main(["--quick", "--settings", "wgan"])
    assert "unknown table(s) or setting(s) wgan" in capsys.readouterr().err


def test_the_plain_grid_and_single_gan_are_coevolution_runs() -> None:
    # the same keys as coevolution.py's tables of the same names: their committed runs count
    import coevolution

    done = coevolution.load_results(BENCH / "results" / "coevolution.jsonl")
    for name, table in methods.tables(quick=False).items():
        for setting in ("single", methods.PLAIN):
            runs = coevolution.finished(name, table, setting, done, settings=methods.SETTINGS)
            assert len(runs) == table.seeds, (name, setting)
