"""bench/operators.py: each setting switches on what it says on the default run, and the
verdicts follow the issue's rule (no worse than off within the spread; >= 10 % better)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import coevolution  # noqa: E402
import operators  # noqa: E402

from raygan.config import load_config  # noqa: E402


def _config(setting: str):  # type: ignore[no-untyped-def]
    table = operators.table(quick=False, seeds=3)
    over = coevolution.overrides(table, setting, 0, operators.SETTINGS)
    return load_config(coevolution.BASES["mnist5k"], over)


def test_each_setting_is_the_default_with_its_operator_on() -> None:
    default = load_config(coevolution.BASES["mnist5k"])
    off = _config("off")
    assert off.training.generations == default.training.generations  # the default's budget
    assert off.networks == default.networks and off.training.rule == "fresh"
    assert off.evolution.lr_mutation == "none" and off.evolution.exploit_probability == 0
    assert off.losses.generator == ("heuristic",)
    assert _config("lr_mutation").evolution.lr_mutation == "multiplicative"
    assert _config("exploit").evolution.exploit_probability > 0
    assert "minimax" in _config("mustangs").losses.generator
    assert "minimax" not in _config("mustangs_no_minimax").losses.generator
    assert _config("selection").training.rule == "lipizzaner-selection"
    both = _config("all")
    assert both.evolution.lr_mutation == "multiplicative"
    assert both.evolution.exploit_probability > 0 and len(both.losses.generator) == 2
    assert (_config("single").grid.rows, _config("own").training.rule) == (1, "own")


def test_verdicts_apply_the_spread_and_the_ten_percent_rule() -> None:
    def fid(mean: float, std: float) -> dict[str, dict[str, float]]:
        return {"fid": {"mean": mean, "std": std}}

    got = operators.verdicts({"off": fid(50, 4), "lr_mutation": fid(53, 2),
                              "exploit": fid(44, 1), "mustangs": fid(70, 5),
                              "mustangs_no_minimax": fid(60, 6)})
    assert got["lr_mutation"]["no_worse_within_spread"]  # 3 worse, within off's std 4
    assert not got["lr_mutation"]["better_by_10pct"]
    assert got["exploit"]["better_by_10pct"] and got["exploit"]["fid_ratio"] == 44 / 50
    assert got["loss_mutation"]["best"] == "mustangs_no_minimax"
    assert not got["loss_mutation"]["no_worse_within_spread"]  # 10 worse, spread 6
    assert "selection" not in got  # not run: no verdict
