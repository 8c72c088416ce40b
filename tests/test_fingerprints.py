"""Numeric fingerprints of short seeded runs: a refactor that must not change numbers keeps them.

Each case is a tiny seeded run through the plain-run path (`raygan.api.run_plain`, as
`raygan train --out`); its fingerprint is a few named numbers: per generation each cell's G and
D training losses, at the end each cell's sum and sum of squares of every G and D tensor, its
mixture weights and learning rates. They are compared to `fingerprints.json` with `RTOL` and
`ATOL`: a change of draw order or arithmetic moves them by far more, another CPU's float
rounding does not.

Regenerate (after a change that is meant to move the numbers):
`RAYGAN_UPDATE_FINGERPRINTS=1 python -m pytest tests/test_fingerprints.py`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import RULE_OVERRIDES, tiny_toy_config

from raygan.api import run_plain
from raygan.config import RunConfig
from raygan.engine.checkpoint import load_checkpoint

STORE = Path(__file__).with_name("fingerprints.json")
UPDATE = "RAYGAN_UPDATE_FINGERPRINTS"
REGENERATE = f"{UPDATE}=1 python -m pytest tests/test_fingerprints.py"
RTOL, ATOL = 1e-4, 1e-6

Fingerprint = dict[str, float]
"""Label (`gen1.cell2.g_train_loss`, `cell0.d_sumsq`, ...) -> number (NaN allowed)."""

SHORT: dict[str, object] = {
    "training.generations": 3, "training.max_batches": 3, "training.batch_size": 32,
    "metrics.every": 3, "metrics.samples": 200, "mixture.samples": 200,
    "evolution.fitness_sample_size": 100, "output.checkpoint_every": 3,
}
"""3 generations of 3 batches of 32 on ring-8 (toy metrics only: no classifier is trained),
evaluated and checkpointed once, at the end."""

LOSSES = ["heuristic", "minimax", "least_squares"]
MUTATING: dict[str, object] = {"losses.generator": LOSSES, "losses.mutation": "batch",
                               "evolution.lr_mutation_probability": 1.0}
"""A loss drawn per batch and a rate mutation every generation: every per-cell draw happens."""

FRESH: dict[str, object] = {**RULE_OVERRIDES["fresh"], "training.exchange_every": 2, **MUTATING}
CASES: dict[str, dict[str, object]] = {
    "fresh": FRESH,
    "lipizzaner-selection": {**RULE_OVERRIDES["lipizzaner-selection"], **MUTATING},
    "egan": {**RULE_OVERRIDES["egan"], "losses.generator": LOSSES,
             "evolution.lr_mutation_probability": 1.0},
    "lipizzaner-mgd": {"training.rule": "lipizzaner", "losses.multi_discriminator": "mgd",
                       **MUTATING},
    # two actors of two cells, each pair one stacked step (raygan.core.packed)
    "fresh-ray-vectorised": {**FRESH, "resources.backend": "ray", "resources.cpus_per_cell": 0.5,
                             "resources.cells_per_actor": 2, "resources.vectorise": True},
}
"""Case name -> overrides of `tiny_toy_config` (with `SHORT`)."""

LOCAL = [name for name, extra in CASES.items() if extra.get("resources.backend") != "ray"]
RAY = [name for name in CASES if name not in LOCAL]


def case_config(name: str) -> RunConfig:
    """The config of case `name`."""
    return tiny_toy_config(**{"name": name, **SHORT, **CASES[name]})


def fingerprint(config: RunConfig, out: Path) -> Fingerprint:
    """Train `config` into `out` and read its fingerprint back from the run's checkpoint."""
    run_plain(config, out, progress=False)
    _, controller, cells = load_checkpoint(out / "checkpoint.pt")
    numbers: Fingerprint = {}
    for row in sorted(controller["history"], key=lambda r: (r["generation"], r["cell"])):
        for side in "gd":
            numbers[f"gen{row['generation']}.cell{row['cell']}.{side}_train_loss"] = float(
                row[f"{side}_train_loss"])
    for i, cell in enumerate(cells):
        for side in "gd":
            # float64 sums: the order torch adds float32 elements in is no part of the numbers
            tensors = [t.double() for t in cell[side]["net"].values() if t.is_floating_point()]
            numbers[f"cell{i}.{side}_sum"] = float(sum(float(t.sum()) for t in tensors))
            numbers[f"cell{i}.{side}_sumsq"] = float(sum(float((t * t).sum()) for t in tensors))
            numbers[f"cell{i}.{side}_lr"] = float(cell[side]["lr"])
        for j, weight in enumerate(cell["mixture_weights"]):
            numbers[f"cell{i}.mixture_weight{j}"] = float(weight)
    return numbers


def digest(numbers: Fingerprint) -> str:
    """SHA-256 of the numbers rounded to 4 significant digits, by label (for notes and logs)."""
    text = "\n".join(f"{label}={numbers[label]:.4g}" for label in sorted(numbers))
    return hashlib.sha256(text.encode()).hexdigest()


def moved(stored: Fingerprint, now: Fingerprint) -> list[str]:
    """What differs beyond `RTOL`/`ATOL` (NaN equals NaN), one line per label in the stored
    order (the earliest generation's first: where a run first parted is what explains it)."""
    lines = []
    for label, a in stored.items():
        b = now.get(label)
        if b is None:
            lines.append(f"{label}: missing now")
        elif not (math.isnan(a) and math.isnan(b)) and not abs(b - a) <= ATOL + RTOL * abs(a):
            lines.append(f"{label}: stored {a!r}, now {b!r}")
    return lines + [f"{label}: new (not stored)" for label in now if label not in stored]


def _read_store() -> dict[str, Any]:
    return json.loads(STORE.read_text()) if STORE.exists() else {"cases": {}}


def _from_json(numbers: dict[str, float | None]) -> Fingerprint:
    return {k: math.nan if v is None else float(v) for k, v in numbers.items()}


def check_case(name: str, numbers: Fingerprint) -> None:
    """Compare case `name` to the stored fingerprint, or store it under `RAYGAN_UPDATE_...`."""
    store = _read_store()
    if os.environ.get(UPDATE) == "1":
        # JSON has no NaN: a loss no step produced is stored as null
        plain = {k: None if math.isnan(v) else v for k, v in numbers.items()}
        store["cases"][name] = {"sha256_4g": digest(numbers), "numbers": plain}
        store = {"about": f"written by tests/test_fingerprints.py; regenerate with `{REGENERATE}`",
                 "cases": dict(sorted(store["cases"].items()))}
        STORE.write_text(json.dumps(store, indent=1) + "\n")
    entry = _read_store()["cases"].get(name)
    if entry is None:
        pytest.fail(f"no fingerprint of case {name!r} in {STORE.name}; regenerate with "
                    f"`{REGENERATE}`")
    lines = moved(_from_json(entry["numbers"]), numbers)
    assert not lines, (
        f"case {name!r}: {len(lines)} of {len(numbers)} numbers moved beyond rtol={RTOL}, "
        f"atol={ATOL} (sha256 of 4 digits: stored {entry['sha256_4g'][:12]}, now "
        f"{digest(numbers)[:12]}); if the change is meant, regenerate with `{REGENERATE}`:\n"
        + "\n".join(lines[:20]))


@pytest.mark.parametrize("name", LOCAL)
def test_local_run_keeps_its_fingerprint(name: str, tmp_path: Path) -> None:
    check_case(name, fingerprint(case_config(name), tmp_path / name))


@pytest.mark.parametrize("name", RAY)
def test_ray_run_keeps_its_fingerprint(ray_session: None, name: str, tmp_path: Path) -> None:
    config = case_config(name)
    assert config.resources.workers(4) == [[0, 1], [2, 3]]  # two actors of two stacked cells
    check_case(name, fingerprint(config, tmp_path / name))


def test_stored_digests_are_those_of_the_stored_numbers() -> None:
    cases = _read_store()["cases"]
    for name, entry in cases.items():
        assert entry["sha256_4g"] == digest(_from_json(entry["numbers"])), name
    assert set(cases) <= set(CASES), f"stored cases no test runs: {set(cases) - set(CASES)}"


def test_a_moved_number_is_caught_and_float_noise_is_not() -> None:
    stored: Fingerprint = {"gen0.cell0.g_train_loss": 0.6931, "cell0.g_sum": -1.25,
                           "cell0.d_sum": 0.0, "gen0.cell1.d_train_loss": math.nan}
    noise = {k: v * (1 + 1e-6) + 1e-8 for k, v in stored.items()}
    assert moved(stored, noise) == []
    shifted = {**stored, "cell0.g_sum": -1.2513}  # 1e-3 relative: beyond RTOL and 4 digits
    assert moved(stored, shifted) == ["cell0.g_sum: stored -1.25, now -1.2513"]
    assert moved(stored, {**stored, "gen0.cell1.d_train_loss": 1.0}) != []
    assert moved(stored, {k: v for k, v in stored.items() if k != "cell0.d_sum"}) == [
        "cell0.d_sum: missing now"]
    # 4 significant digits absorb relative noise
    assert digest(stored) == digest({k: v * (1 + 1e-6) for k, v in stored.items()})
    assert digest(stored) != digest(shifted)


def test_a_case_missing_from_the_store_says_how_to_regenerate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UPDATE, raising=False)
    monkeypatch.setattr(sys.modules[__name__], "STORE", tmp_path / "fingerprints.json")
    with pytest.raises(pytest.fail.Exception, match="no fingerprint of case 'new'") as info:
        check_case("new", {"cell0.g_sum": 1.0})
    assert REGENERATE in str(info.value)
