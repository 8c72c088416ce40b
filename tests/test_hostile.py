"""Hostile input and faults: a user's mistake is one line on stderr and exit 2, nothing is
written, no setting is silently changed, and a full or read-only disk loses nothing."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray  # noqa: F401  (imported here, Ray's log handler writes to the session's stderr, not
import yaml  # to the stream of the first test that happened to import it, closed after it)
from conftest import tiny_toy_config

from raygan.cli import main
from raygan.engine.checkpoint import load_checkpoint, load_checkpoint_or_previous
from raygan.engine.run import train

TINY = tiny_toy_config().to_dict()


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _one_line(capsys: pytest.CaptureFixture[str], *fragments: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("raygan: error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


# (case, extra CLI arguments, fragments of the one error line)
HOSTILE_SETTINGS = [
    ("rate above the bound", ["--set", "training.lr_g=0.02"],
     ["training.lr_g", "outside", "0.01"]),
    ("rate below the bound", ["--set", "training.lr_d=1e-8"],
     ["training.lr_d", "outside", "1e-06"]),
    ("infinite bound", ["--set", "evolution.lr_max=.inf", "--set",
                        "evolution.lr_mutation_sigma=.inf"], ["finite", "inf"]),
    ("NaN rate", ["--set", "training.lr_g=.nan"], ["training.lr_g", "finite number, got nan"]),
    ("infinite data std", ["--set", "data.std=.inf"], ["data.std", "finite"]),
    ("infinite data radius", ["--set", "data.radius=.inf"], ["data.radius", "finite"]),
    ("infinite mixture sigma", ["--set", "mixture.sigma=.inf"], ["mixture.sigma", "finite"]),
    ("name outside the storage", ["--storage", "{out}", "--name", "../x"],
     ["--name", "'../x'", "plain folder name"]),
    ("config name outside the storage", ["--storage", "{out}", "--set", "name=../../x"],
     ["name", "plain folder"]),
    ("batch larger than a shard", ["--set", "training.batch_size=500"],
     ["training.batch_size", "500", "400 samples", "at most 400"]),
]


@pytest.mark.parametrize("case,args,fragments", HOSTILE_SETTINGS,
                         ids=[case[0] for case in HOSTILE_SETTINGS])
def test_a_nonsensical_setting_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, args: list[str],
    fragments: list[str],
) -> None:
    cfg = _write(tmp_path / "c.yaml", TINY)
    out = tmp_path / "out"
    where = [] if "--storage" in args else ["--out", "{out}"]
    argv = [a.format(out=out) for a in ["train", str(cfg), "--quiet", *where, *args]]
    assert main(argv) == 2
    _one_line(capsys, *fragments)
    assert not out.exists()


def test_a_bad_config_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases: list[tuple[Path, list[str]]] = []
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    cases.append((latin, ["not UTF-8", "0xe9"]))
    cases.append((tmp_path, ["is a directory"]))
    for text in ("", "# only a comment\n", "{}\n"):
        empty = tmp_path / f"empty{len(cases)}.yaml"
        empty.write_text(text)
        cases.append((empty, ["the config is empty"]))
    for path, fragments in cases:
        assert main(["train", str(path), "--out", str(tmp_path / "out")]) == 2, path
        _one_line(capsys, str(path), *fragments)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(bool(__import__("torch").cuda.is_available()), reason="a GPU is here")
def test_cuda_without_a_gpu_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path / "c.yaml", TINY)
    assert main(["train", str(cfg), "--out", str(tmp_path / "o"), "--set",
                 "training.device=cuda"]) == 2
    _one_line(capsys, "training.device", "no CUDA GPU")
    # Tune trials and Ray workers see a GPU only if they reserve one: refused in the driver
    assert main(["train", str(cfg), "--storage", str(tmp_path / "s"), "--set",
                 "training.device=cuda"]) == 2
    _one_line(capsys, "training.device", "gpus_per_cell > 0")
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def test_an_unwritable_output_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _write(tmp_path / "c.yaml", TINY)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["train", str(cfg), "--out", str(blocker / "run")]) == 2
    _one_line(capsys, str(blocker / "run"), "Not a directory")
    # a read-only file system (root writes through chmod, so the OS's answer is simulated)
    real_open = os.open

    def read_only(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if "write-probe" in str(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", read_only)
    for args in (["train", str(cfg), "--out", str(tmp_path / "run")],
                 ["train", str(cfg), "--storage", str(tmp_path / "store")]):
        assert main(args) == 2
        _one_line(capsys, "Read-only file system")
    assert not (tmp_path / "run").exists() and not (tmp_path / "store").exists()


def test_a_full_disk_mid_run_keeps_the_last_checkpoint_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import raygan.engine.checkpoint as checkpoint

    config = tiny_toy_config(**{"training.generations": 3})
    cfg = _write(tmp_path / "c.yaml", config.to_dict())
    out = tmp_path / "run"
    real_save = checkpoint.torch.save
    saves = {"n": 0}

    def full_disk(payload: object, handle: object) -> None:
        saves["n"] += 1
        if saves["n"] == 2:  # generation 2's checkpoint: the disk fills half way through
            handle.write(b"\0" * 1000)  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(payload, handle)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 2
    _one_line(capsys, "No space left on device")
    (_, state, _), _ = load_checkpoint_or_previous(out / "checkpoint.pt")
    assert state["generation"] == 1
    assert not [p.name for p in out.iterdir() if p.name.startswith(".checkpoint")]
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert main(["resume", str(out), "--quiet"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")[1]["generation"] == 3


def test_resume_says_what_it_cannot_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resume", str(tmp_path / "nowhere")]) == 2
    _one_line(capsys, "nowhere does not exist")
    out = tmp_path / "run"
    train(tiny_toy_config(**{"training.generations": 2}), out, progress=False)
    capsys.readouterr()
    assert main(["resume", str(out), "--generations", "1", "--quiet"]) == 2
    _one_line(capsys, "--generations 1", "already trained 2 generations")
    assert main(["resume", str(out), "--quiet"]) == 0  # finished: says so, trains nothing
    assert "nothing to resume" in capsys.readouterr().err
    assert load_checkpoint(out / "checkpoint.pt")[1]["generation"] == 2


def test_plain_run_files_are_as_readable_as_tunes(tmp_path: Path) -> None:
    from raygan.atomic import atomic_write_text

    previous = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "x.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1.6 MB tmpfs (root only; skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(disk)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_a_full_disk_under_tune_stops_in_one_line_and_resumes(
    ray_session: None, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from raygan.tuning.results import latest_checkpoint

    # one restart of the failed trial (each takes a trial process start): it meets the full
    # disk again, and still nothing is torn
    cfg = _write(small_disk.parent / "c.yaml",
                 tiny_toy_config(**{"training.generations": 5, "tune.max_failures": 1}).to_dict())
    assert main(["train", str(cfg), "--storage", str(small_disk), "--quiet"]) == 2
    line = _one_line(capsys, "No space left on device", "raygan resume")
    experiment = small_disk / "tiny"
    # nothing torn: the experiment state parses, every checkpoint loads, the last one is short
    # of the end
    for state in experiment.glob("experiment_state-*.json"):
        json.loads(state.read_text())
    trial = next(experiment.glob("trial_*"))
    for ckpt in trial.glob("checkpoint_*/checkpoint.pt"):
        load_checkpoint(ckpt)
    last = latest_checkpoint(trial)
    assert last is not None and 1 <= load_checkpoint(last)[1]["generation"] < 5, line
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    assert main(["resume", str(experiment)]) == 0
    last = latest_checkpoint(trial)
    assert last is not None and load_checkpoint(last)[1]["generation"] == 5


def test_sample_of_a_file_that_is_no_checkpoint_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "file.txt"
    text.write_text("hello\n")
    assert main(["sample", str(text)]) == 2
    line = _one_line(capsys, str(text), "not a readable raygan checkpoint")
    assert "resumed" not in line


def test_a_read_only_results_folder_is_one_line_for_every_command(
    small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = small_disk / "run"
    train(tiny_toy_config(**{"training.generations": 1}), run, progress=False)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    capsys.readouterr()
    for argv in (["report", str(run)], ["sample", str(run), "-n", "10"],
                 ["resume", str(run), "--generations", "2"],
                 ["train", "--out", str(small_disk / "new")]):
        assert main(argv) == 2, argv
        _one_line(capsys, "Read-only file system")
