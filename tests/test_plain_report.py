"""`raygan report` of a plain run (`raygan train CONFIG --out DIR`): an experiment of one
trial, with the same table and curves as a Tune trial's, and a one-line error for a folder
that is neither."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import tiny_toy_config

from raygan.cli import main
from raygan.engine.run import train
from raygan.reporting.report import REPORT_FILE, _fmt
from raygan.tuning.results import load_trials


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-generation plain run."""
    out = tmp_path_factory.mktemp("plain") / "run"
    train(tiny_toy_config(**{"training.generations": 2, "output.figures": True}), out,
          progress=False)
    return out


def test_report_of_a_plain_run_shows_its_trial(
    plain_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(plain_run, run)
    assert main(["report", str(run)]) == 0
    table = capsys.readouterr().out
    final = json.loads((run / "final.json").read_text())
    score = _fmt(float(final["best/mode_tvd"]))
    header, _, row = table.splitlines()
    assert header.split()[4] == "best/mode_tvd"
    assert row.split() == ["run", "TERMINATED", "0", "2/2", score, "0"]
    page = (run / REPORT_FILE).read_text()
    assert "1 trial(s), best run (best/mode_tvd = " + score + ")" in page
    assert "<td>TERMINATED</td><td>0</td><td>2/<wbr>2</td><td>" + score + "</td>" in page
    # every score's curve, the run's own figures and its evolution, as for a Tune trial
    assert all(f'alt="best/{name}"' in page for name in ("mode_tvd", "reverse_kl"))
    assert 'alt="samples.png"' in page and "<h3>Evolution of run</h3>" in page

    (trial,) = load_trials(run)  # rows shaped as the trial's Tune results
    assert trial.last["generation"] == 2 and trial.last["done"] is True
    assert trial.score == final["best/mode_tvd"] and trial.knobs == {}
    assert list(trial.curves["generation"]) == [1, 2]
    assert {"generations", "evaluated", "best_cell", "seconds"} <= set(trial.curves.columns)


def test_an_interrupted_plain_run_reads_as_running(plain_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(plain_run, run)
    log = run / "generations.jsonl"
    first = log.read_text().splitlines()[0]
    log.write_text(first + "\n" + first[:25])  # a crash while the second row was appended
    (trial,) = load_trials(run)
    assert trial.status == "RUNNING" and trial.last["generation"] == 1
    assert not trial.last["done"] and len(trial.curves) == 1


def test_report_of_a_damaged_log_or_an_unknown_folder_is_one_line(
    plain_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(plain_run, run)
    log = run / "generations.jsonl"
    log.write_text('["not", "a", "summary"]\n' + log.read_text())
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raygan: error: ") and "\n" not in err
    assert "generations.jsonl: line 1 is not a generation summary" in err

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a run")
    assert main(["report", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raygan: error: ") and "\n" not in err
    assert "is not a Tune experiment" in err and "or a plain run" in err
    assert not (tmp_path / "other" / REPORT_FILE).exists()
