"""The Python API (raygan/api.py, raygan/result.py, raygan/objects.py): `raygan.load_config`,
`raygan.train` with data and networks given as Python objects (on Ray too), `raygan.load`,
`raygan.resume` and `Result`."""

from __future__ import annotations

import functools
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import config_error, tiny_toy_config
from torch import nn

import raygan
from raygan import objects
from raygan.config import NetworksConfig, RunConfig
from raygan.config.catalog import best_scores
from raygan.engine.history import read_history

SIZES = {"training.generations": 2, "metrics.samples": 200}
CUSTOM = {"networks.g_hidden": NetworksConfig.g_hidden,
          "networks.d_hidden": NetworksConfig.d_hidden}
"""The tiny config's MLP widths back at their defaults: with networks of one's own they cannot
act (and are refused if set)."""


def vectors(n: int = 800, dim: int = 8) -> np.ndarray:
    """`n` 8-D float vectors around two centres."""
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, dim)) * 0.1 + rng.choice([-0.5, 0.5], size=(n, 1))).astype(
        np.float32)


def final_json(run: Path) -> dict[str, float]:
    return best_scores(json.loads((run / "final.json").read_text()))


def test_train_with_an_array_and_networks_defined_here_runs_on_ray(
    ray_session: None, tmp_path: Path
) -> None:
    from ray.experimental import internal_kv

    class Generator(nn.Module):
        def __init__(self, latent_dim: int, data_shape: tuple[int, ...], hidden: int = 16):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(hidden, data_shape[0]))

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.net(z)

    def discriminator(data_shape: tuple[int, ...]) -> nn.Module:
        return nn.Sequential(nn.Linear(data_shape[0], 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    config = tiny_toy_config(**SIZES, **CUSTOM, **{
        "resources.cells_per_actor": 2, "resources.cpus_per_cell": 0.5})
    x = vectors()
    on_ray = raygan.train(config, storage=tmp_path, name="ray", backend="ray", data=x,
                          generator=Generator, discriminator=discriminator)
    here = raygan.train(config, storage=tmp_path, name="local", data=x, generator=Generator,
                        discriminator=discriminator)
    assert on_ray.done and on_ray.generations == 2 and on_ray.config.resources.backend == "ray"
    assert on_ray.config.resources.workers(4) == [[0, 1], [2, 3]]  # two actors of two cells
    # the config names the objects by tokens and stays plain YAML
    saved = yaml.safe_load((on_ray.path / "config.yaml").read_text())
    assert saved["data"]["name"] == "python"
    assert saved["networks"]["kind"] == "custom"
    for spec in (saved["data"]["source"], saved["networks"]["generator"],
                 saved["networks"]["discriminator"]):
        assert objects.token_of(spec), spec
        # the networks were in Ray's store for the actors only while the run lasted
        key = f"objects/{objects.token_of(spec)}".encode()
        assert internal_kv._internal_kv_get(key, namespace=b"raygan") is None
    assert saved["networks"]["generator"].startswith("raygan.objects:Generator_")
    # the actors built the test's own networks and trained as the local pool does
    assert on_ray.metrics == here.metrics and set(on_ray.metrics) >= {"swd", "swd_floor"}
    pd.testing.assert_frame_equal(on_ray.history.drop(columns="seconds"),
                                  here.history.drop(columns="seconds"))
    assert on_ray.generator().sample(5, 1).shape == (5, 8)


def test_tune_trains_python_objects_and_load_reads_the_experiment_and_its_trial(
    ray_session: None, tmp_path: Path
) -> None:
    def generator(latent_dim: int) -> nn.Module:
        return nn.Linear(latent_dim, 8)

    def discriminator() -> nn.Module:
        return nn.Sequential(nn.Linear(8, 1))

    config = tiny_toy_config(**CUSTOM, **{"training.generations": 1, "metrics.samples": 200})
    grid = raygan.tune(config, storage=str(tmp_path), name="sweep", num_samples=1, quiet=True,
                       data=vectors(), generator=generator, discriminator=discriminator)
    assert len(grid) == 1 and not grid.errors
    experiment = raygan.load(tmp_path / "sweep")
    trial = raygan.load(experiment.run_path)
    assert experiment.run_path != experiment.path and trial.run_path == experiment.run_path
    assert experiment.metrics == trial.metrics == final_json(experiment.run_path)
    assert experiment.checkpoint is not None and experiment.checkpoint.is_file()
    assert experiment.generator().sample(3, 0).shape == (3, 8)


def test_load_gives_final_json_and_the_generator_samples_what_the_export_does(
    tmp_path: Path
) -> None:
    result = raygan.train(tiny_toy_config(**SIZES), storage=tmp_path, name="toy")
    loaded = raygan.load(tmp_path / "toy")
    assert loaded.metrics == final_json(tmp_path / "toy") == result.metrics
    assert loaded.metrics and all(math.isfinite(v) for v in loaded.metrics.values())
    assert loaded.config == tiny_toy_config(**SIZES).for_data(loaded.config.data.kind)
    assert loaded.status == "TERMINATED" and loaded.generations == 2
    assert loaded.checkpoint == (tmp_path / "toy" / "checkpoint.pt").resolve()
    assert loaded.history.equals(read_history(tmp_path / "toy" / "history.parquet"))
    assert len(loaded.history) == 2 * 4  # a row per cell per generation
    exported = loaded.export(tmp_path / "mixture.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation note
        module = torch.jit.load(str(exported))
    for n, seed in ((64, 0), (7, 3)):
        assert torch.equal(loaded.generator().sample(n, seed), module.sample(n, seed))
    with pytest.raises(FileExistsError, match="already holds a run.*raygan.load"):
        raygan.train(tiny_toy_config(**SIZES), storage=tmp_path, name="toy")


def test_an_interrupted_run_loads_and_resumes_equal_to_an_uninterrupted_one(
    tmp_path: Path
) -> None:
    from raygan.engine.run import train as engine_train

    def generator(latent_dim: int, hidden: int = 16) -> nn.Module:
        return nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 8))

    def discriminator() -> nn.Module:
        return nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    config = tiny_toy_config(**CUSTOM, **{"training.generations": 3, "metrics.samples": 200})
    x = vectors()
    full = raygan.train(config, storage=tmp_path, name="full", data=x, generator=generator,
                        discriminator=discriminator)
    part = objects.with_objects(config, data=x, generator=generator, discriminator=discriminator)
    engine_train(part, tmp_path / "part", stop_after=1, progress=False)
    stopped = raygan.load(tmp_path / "part")
    assert stopped.status == "RUNNING" and stopped.generations == 1 and stopped.metrics
    assert not (tmp_path / "part" / "final.json").exists()
    resumed = raygan.resume(tmp_path / "part")
    assert resumed.done and resumed.generations == 3
    assert resumed.metrics == full.metrics


def test_a_run_on_python_objects_reopens_elsewhere_only_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Generator(nn.Module):
        def __init__(self, latent_dim: int) -> None:
            super().__init__()
            self.fc = nn.Linear(latent_dim, 8)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.fc(z)

    def discriminator() -> nn.Module:
        return nn.Sequential(nn.Linear(8, 1))

    x = vectors()
    result = raygan.train(tiny_toy_config(**SIZES, **CUSTOM), storage=tmp_path, name="run",
                          data=x, generator=Generator, discriminator=discriminator)
    expected = result.generator().sample(20, 4)
    monkeypatch.setattr(objects, "_objects", {})  # another process: nothing registered
    plain = raygan.load(tmp_path / "run")  # its files read without the objects
    assert plain.metrics == final_json(tmp_path / "run")
    with pytest.raises(raygan.ConfigError, match="pass the same object again") as info:
        plain.generator()
    assert "\n" not in str(info.value)
    again = raygan.load(tmp_path / "run", data=x, generator=Generator,
                        discriminator=discriminator)
    assert torch.equal(again.generator().sample(20, 4), expected)
    config_error(lambda: raygan.load(tmp_path / "run", data="not data"), "data argument")
    toy = raygan.train(tiny_toy_config(**SIZES), storage=tmp_path, name="toy")
    config_error(lambda: raygan.load(toy.path, generator=Generator), "networks.generator",
                 "leave generator= out")


class ModuleLevel(nn.Module):
    """A network in this test module, which a Ray worker elsewhere could not import."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(latent_dim, 8)


def test_a_network_of_a_module_outside_site_packages_is_pickled_by_value(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    from ray import cloudpickle

    with objects._by_value(ModuleLevel):
        payload = cloudpickle.dumps(ModuleLevel)
    assert __name__ not in cloudpickle.list_registry_pickle_by_value()  # registered only inside
    here = str(Path(__file__).parent)
    monkeypatch.delitem(sys.modules, __name__)  # a process where this module cannot import
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p).resolve() != Path(here)])
    rebuilt = pickle.loads(payload)  # noqa: S301
    assert rebuilt(latent_dim=4).fc.in_features == 4
    # an installed package's class goes by reference
    assert b"torch.nn.modules.linear" in cloudpickle.dumps(nn.Linear)


def test_load_config_takes_yaml_dicts_dataclasses_and_overrides(tmp_path: Path) -> None:
    assert raygan.load_config() == RunConfig()
    from_dict = raygan.load_config({"grid": {"rows": 3}, "training.generations": 4},
                                   ["grid.cols=2", "losses.generator=[hinge]"])
    assert (from_dict.grid.rows, from_dict.grid.cols) == (3, 2)
    assert from_dict.training.generations == 4 and from_dict.losses.generator == ("hinge",)
    built = RunConfig(grid=raygan.GridConfig(rows=1, cols=2),
                      training=raygan.TrainingConfig(generations=2))
    assert raygan.load_config({"grid": raygan.GridConfig(rows=1, cols=2),
                               "training": {"generations": 2}}) == built
    assert raygan.load_config(built, ["seed=7"]) == built.replace(seed=7)
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(built.to_dict()))
    assert raygan.load_config(file, ["grid.rows=2"]) == built.replace(**{"grid.rows": 2})
    assert raygan.load_config(str(file)) == built
    config_error(lambda: raygan.load_config({"grid": {"rowz": 3}}), "grid.rowz")
    config_error(lambda: raygan.load_config(None, ["grid.rows"]), "section.key=value")
    config_error(lambda: raygan.load_config(3), "a int is not a config")  # type: ignore[arg-type]


def test_arrays_tensors_pairs_and_datasets_become_the_training_set() -> None:
    ds = objects.as_dataset(np.zeros((4, 8, 8, 3), np.uint8))  # channels last
    assert ds.store.shape == (4, 3, 8, 8) and ds.store.dtype == np.uint8
    pair = objects.as_dataset((torch.ones(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])))
    assert pair.num_classes == 3 and pair.store.dtype == np.float32
    assert objects.as_dataset(pair) is pair

    class Points(torch.utils.data.Dataset[torch.Tensor]):
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.full((2,), float(i))

    stacked = objects.as_dataset(Points())
    assert stacked.store.shape == (5, 2) and stacked.store[4, 1] == 4.0


BAD_DATA: dict[str, tuple[Any, str]] = {
    "a dict": ({"x": 1}, "a dict is not training data"),
    "1-D": (np.zeros(10, np.float32), "x has shape (10,) float32; allowed"),
    "strings": (["a", "b"], "not an (x, y) pair"),
    "NaN": (np.full((10, 2), np.nan, np.float32), "NaN or infinite"),
    "not square": (np.zeros((4, 1, 8, 6), np.float32), "must be square"),
    "labels": ((np.zeros((4, 2), np.float32), np.zeros(3, np.int64)), "y has shape (3,)"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_one_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    data, fragment = BAD_DATA[case]
    config_error(lambda: raygan.train(tiny_toy_config(), storage=tmp_path, data=data),
                 "data argument: ", fragment)
    assert not list(tmp_path.iterdir())


def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    config = tiny_toy_config(**CUSTOM)
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({"generator": nn.Linear(2, 2), "discriminator": nn.Linear}, ("not a built Linear",)),
        ({"generator": nn.Linear}, ("discriminator: pass it too",)),
        ({"generator": 3, "discriminator": nn.Linear}, ("generator: a int",)),
        ({"backend": "gpu"}, ("backend: 'gpu'",)),
        ({"name": "../up"}, ("name: '../up'",)),
        ({"storage": "s3://bucket"}, ("a plain run writes to a local folder",)),
    ]
    for kwargs, fragments in cases:
        config_error(functools.partial(raygan.train, config, **{"storage": tmp_path, **kwargs}),
                     *fragments)
    # a network of the wrong shape: the dry forward pass, before anything trains
    config_error(lambda: raygan.train(config, storage=tmp_path, data=vectors(),
                                      generator=lambda latent_dim: nn.Linear(latent_dim, 3),
                                      discriminator=lambda: nn.Linear(8, 1)),
                 "expected (2, 8)")
    assert not list(tmp_path.iterdir())
