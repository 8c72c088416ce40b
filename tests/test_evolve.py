"""Architecture evolution in raygan: genome networks in cells, the `evolve` scheduler's elitist
step, a trial taking an elite's checkpoint with a new genome, and a small evolve sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import config_error

from raygan.arch.bounds import Bounds
from raygan.arch.build import build
from raygan.arch.genome import Genome
from raygan.arch.variation import mutate, random_genome
from raygan.config import RunConfig, config_from_dict, load_config
from raygan.config.coerce import set_dotted

pytest.importorskip("ray")


from raygan.tuning.evolve import GENOME_KEY, LOG_NAME, ElitistEvolution, neurales_fitness  # noqa: E402
from raygan.tuning.trainable import CoevolutionTrainable, trial_config  # noqa: E402

SHAPE = (1, 8, 8)
BOUNDS = Bounds(max_params=20_000)


def _genome(seed: int) -> Genome:
    return random_genome(np.random.default_rng(seed), SHAPE, BOUNDS, 16)[0]


def _config(genome: Genome | None, **overrides: object) -> RunConfig:
    """A 1x1 grid of one genome on digits8x8: a generation takes well under a second."""
    base: dict[str, Any] = {
        "name": "evolve", "seed": 1,
        "data": {"name": "digits8x8"},
        "networks": {"kind": "genome", "latent_dim": 16,
                     "genome": genome.encode() if genome else ""},
        "grid": {"rows": 1, "cols": 1},
        "evolution": {"fitness_sample_size": 64, "lr_mutation": "none"},
        "mixture": {"enabled": False},
        "training": {"generations": 4, "max_batches": 2, "batch_size": 32, "device": "cpu"},
        "metrics": {"every": 1, "samples": 100},
        "output": {"figures": False},  # most of a generation's time; no test here reads them
    }
    for key, value in overrides.items():
        set_dotted(base, key, value)
    return config_from_dict(base)


@pytest.mark.parametrize(("overrides", "fragments"), [
    (["networks.kind=genome", "data.name=digits8x8"], ["networks.genome", "needs a genome"]),
    (["networks.kind=genome", "data.name=digits8x8", "networks.genome=G8=zz"],
     ["networks.genome"]),
    (["networks.genome=" + "G8=c8k3s2.relu/D=c8k3s2.relu/Gopt=adam.lr0.001.m0.5/"
      "Dopt=adam.lr0.001.m0.5"], ["networks.genome", "cannot act", "'genome'"]),
    (["tune.scheduler=evolve", "tune.num_samples=4"], ["tune.scheduler", "networks.kind: genome"]),
    (["tune.elite_fraction=0.5"], ["tune.elite_fraction", "only tune.scheduler 'evolve'"]),
    (["networks.kind=genome", "tune.scheduler=evolve", "tune.num_samples=4",
      "data.name=digits8x8", "tune.max_concurrent_trials=2"],
     ["tune.max_concurrent_trials", "at least tune.num_samples (4)"]),
    (["networks.kind=genome", "tune.scheduler=evolve", "tune.num_samples=4",
      "data.name=digits8x8", "tune.elite_fraction=1.0"], ["tune.elite_fraction", "(0, 1)"]),
    (["networks.kind=genome", "tune.scheduler=evolve", "tune.num_samples=4",
      "data.name=digits8x8", "training.lr_g=0.01"], ["training.lr_g", "the genome sets"]),
    (["networks.kind=genome", "tune.scheduler=evolve", "tune.num_samples=4",
      "data.name=digits8x8", "training.rule=egan"], ["training.rule", "'genome'"]),
    (["networks.kind=genome", "tune.scheduler=evolve", "tune.num_samples=4"],
     ["networks.kind", "image data"]),
])
def test_genome_options_refuse_bad_values_in_one_line(
    overrides: list[str], fragments: list[str]
) -> None:
    config_error(lambda: load_config(None, overrides), *fragments)


def test_cells_train_the_genome_with_its_optimizers() -> None:
    from raygan.engine.controller import Controller
    from raygan.engine.pool import LocalCellPool

    genome = _genome(2)
    config = _config(genome, **{"training.generations": 2})
    pool = LocalCellPool(config)
    controller = Controller(config, pool)
    controller.step()
    cell = pool.cells[0]
    g, d = build(genome, 16, SHAPE, torch.Generator().manual_seed(0))
    assert [p.shape for p in cell.g.net.parameters()] == [p.shape for p in g.parameters()]
    assert [p.shape for p in cell.d.net.parameters()] == [p.shape for p in d.parameters()]
    for ind, opt in ((cell.g, genome.g_opt), (cell.d, genome.d_opt)):
        kind = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[opt.name]
        assert isinstance(ind.optimizer, kind) and ind.lr == opt.lr
    assert math.isfinite(controller.history[-1]["g_train_loss"])


class _Trial:
    """What the scheduler reads of a Tune trial."""

    def __init__(self, trial_id: str, genome: Genome, path: Path) -> None:
        self.trial_id, self.local_experiment_path = trial_id, str(path)
        self.config = {GENOME_KEY: genome.encode()}

    def is_finished(self) -> bool:
        return False


class _State:
    def __init__(self, score: float, fid: float) -> None:
        self.last_score, self.last_result, self.last_train_time = score, {"best/fid": fid}, 2


@pytest.mark.parametrize("mode", ["mutate", "random"])
def test_the_elitist_step_keeps_exactly_the_planted_best(tmp_path: Path, mode: str) -> None:
    scheduler = ElitistEvolution(elite_fraction=0.25, mode=mode, data_shape=SHAPE,  # type: ignore[arg-type]
                                 bounds=BOUNDS, latent_dim=16, seed=0, perturbation_interval=2)
    scheduler._metric = "best/fid"
    fids = [90.0, 40.0, math.nan, 70.0, 30.0, 80.0, 60.0, 50.0]  # the best two: t4, t1
    trials = [_Trial(f"t{i}", _genome(i), tmp_path) for i in range(len(fids))]
    scheduler._trial_state = {t: _State(-fid, fid) for t, fid in zip(trials, fids)}  # type: ignore[assignment]
    replaced, elites = scheduler._quantiles()
    assert [t.trial_id for t in elites] == ["t4", "t1"]
    assert {t.trial_id for t in replaced} == {f"t{i}" for i in (0, 2, 3, 5, 6, 7)}
    assert replaced[-1].trial_id == "t2"  # NaN ranks last
    (step,) = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    rows = {row["trial"]: row for row in step["trials"]}
    assert [row["trial"] for row in step["trials"]][:2] == ["t4", "t1"]
    for trial in replaced:
        source, genome, record = scheduler._plan[trial]  # type: ignore[index]
        assert source in elites and rows[trial.trial_id]["new_genome"] == genome.encode()
        new_config, _ = scheduler._get_new_config(trial, source)  # type: ignore[arg-type]
        assert new_config[GENOME_KEY] == genome.encode()
        if mode == "mutate":
            assert record.parent == source.trial_id == rows[trial.trial_id]["parent"]
        else:
            assert record.parent is None and rows[trial.trial_id]["parent"] is None
    assert all(rows[t.trial_id]["elite"] and rows[t.trial_id]["parent"] is None for t in elites)


def _trainable(config: RunConfig) -> CoevolutionTrainable:
    return CoevolutionTrainable(config=trial_config(config))


@pytest.mark.parametrize("mode", ["mutate", "random"])
def test_a_replaced_trial_continues_an_elite_checkpoint_with_its_new_genome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import ray.tune.trainable.trainable as tune_trainable

    monkeypatch.setattr(tune_trainable, "DEFAULT_STORAGE_PATH", str(tmp_path / "logs"))
    parent = _genome(3)
    child = parent
    rng = np.random.default_rng(0)
    while child.g_blocks == parent.g_blocks:  # a change of G's architecture, not its rate
        child = mutate(parent, rng, SHAPE, BOUNDS, 16)[0]
    over = {"tune.scheduler": "evolve", "tune.num_samples": 4, "tune.refill": mode}
    elite = _trainable(_config(parent, **over))
    try:
        elite.train()
        elite.train()
        checkpoint = elite.save(str(tmp_path / "elite"))
        saved_g = {k: v.clone() for k, v in elite.pool.state_dicts()[0]["g"]["net"].items()}
        uninterrupted = elite.train()
    finally:
        elite.stop()
    # the same genome resumes exactly; a new genome keeps the generation count
    again = _trainable(_config(parent, **over))
    replaced = _trainable(_config(child, **over))
    try:
        again.restore(checkpoint)
        assert again.train()["best/fid"] == uninterrupted["best/fid"]
        replaced.restore(checkpoint)
        assert replaced.controller.generation == 2
        new_g = replaced.pool.state_dicts()[0]["g"]["net"]
        kept = [k for k, v in new_g.items() if k in saved_g and saved_g[k].shape == v.shape
                and torch.equal(saved_g[k], v)]
        matching = [k for k, v in new_g.items() if k in saved_g and saved_g[k].shape == v.shape
                    and v.dtype.is_floating_point and saved_g[k].abs().sum() > 0]
        if mode == "mutate":
            assert kept and set(matching) <= set(kept)
        else:
            assert not set(matching) & set(kept)
        result = replaced.train()
        assert result["generation"] == 3 and result["g_params"] > 0
    finally:
        again.stop()
        replaced.stop()


def test_neurales_fitness_penalises_parameters() -> None:
    assert neurales_fitness([1.0, 3.0], 2_000_000, 0.5) == pytest.approx(3.0)
    assert neurales_fitness([1.0, math.nan], 10, 0.5) == math.inf


def test_an_evolve_sweep_of_two_tiny_genomes_runs_checkpoints_and_reports(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from raygan.cli import main
    from raygan.tuning.results import load_trials

    # two generations of 2 batches: one elitist step between them, which keeps the better
    # genome and replaces the other (each trial is a process start; the step's ranking of a
    # larger population is test_the_elitist_step_keeps_exactly_the_planted_best's)
    config = _config(None, **{"training.generations": 2, "tune.scheduler": "evolve",
                              "tune.num_samples": 2, "tune.perturbation_interval": 1,
                              "tune.elite_fraction": 0.5, "tune.max_parameters": 20_000})
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    storage = tmp_path / "results"
    assert main(["tune", str(path), "--storage", str(storage), "--quiet"]) == 0
    experiment = storage / "evolve"
    trials = load_trials(experiment)
    assert len(trials) == 2 and {t.status for t in trials} == {"TERMINATED"}
    assert all(t.last["generation"] == 2 for t in trials)
    assert all(any(p.name.startswith("checkpoint_") for p in Path(t.path).iterdir())
               for t in trials)
    (step,) = [json.loads(line) for line in (experiment / LOG_NAME).read_text().splitlines()]
    ranked = step["trials"]
    fids = [row["fitness"] for row in ranked]
    assert fids == sorted(fids) and [r["elite"] for r in ranked] == [True, False]
    for row in ranked[1:]:  # the replaced trial ran its new genome
        trial = next(t for t in trials if t.trial_id == row["trial"])
        assert trial.config.networks.genome == row["new_genome"]
    capsys.readouterr()
    assert main(["report", str(experiment)]) == 0
    page = (experiment / "report.html").read_text().replace("<wbr>", "")  # wrap points
    assert "Architecture evolution" in page
    for row in ranked:
        assert row["genome"] in page
