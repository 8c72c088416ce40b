"""`networks.kind: custom`: the user's own G and D (raygan/core/custom.py).

The networks live in `tests/custom_nets.py`, named by its absolute file path so the Ray cell
actors load it whatever their `sys.path`; a module on the driver's path alone shows what a
worker that cannot import it says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import (
    assert_same_state,
    check_resume_equals_uninterrupted,
    comparable,
    tiny_toy_config,
)

from raygan.cli import main
from raygan.config import ConfigError, NetworksConfig, RunConfig, config_from_dict
from raygan.core.custom import check_custom_networks
from raygan.core.networks import build_networks
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool

NETS = str(Path(__file__).resolve().parent / "custom_nets.py")


def custom_config(**overrides: object) -> RunConfig:
    """`tiny_toy_config` with the test module's G and D (its MLP widths back at their
    defaults: under kind custom they cannot act)."""
    return tiny_toy_config(**{
        "networks.kind": "custom", "networks.g_hidden": NetworksConfig.g_hidden,
        "networks.d_hidden": NetworksConfig.d_hidden,
        "networks.generator": f"{NETS}:Generator",
        "networks.discriminator": f"{NETS}:make_discriminator",
        "networks.g_kwargs": {"hidden": 24}, "networks.d_kwargs": {"hidden": 16},
        **overrides,
    })


def _run(controller: Controller) -> None:
    while not controller.done:
        controller.step()


def test_custom_networks_train_on_ray_with_two_actors_as_locally(ray_session: None) -> None:
    from raygan.distributed import RayCellPool

    config = custom_config(**{"training.generations": 2, "training.max_batches": 6,
                              "resources.cells_per_actor": 2, "resources.cpus_per_cell": 0.5})
    local = LocalCellPool(config)
    expected = Controller(config, local)
    _run(expected)
    pool = RayCellPool(config)
    try:
        assert len(pool.actors) == 2
        controller = Controller(config, pool)
        _run(controller)
        assert comparable(controller.history) == comparable(expected.history)
        assert_same_state(pool.state_dicts(), local.state_dicts())
        # the cells hold the test module's networks: G's hidden layer is g_kwargs' 24 wide
        weights = pool.state_dicts()[0]["g"]["net"]
        assert weights["net.0.weight"].shape == (24, 8)
    finally:
        pool.close()


def test_a_resumed_custom_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    check_resume_equals_uninterrupted(custom_config(), tmp_path)


def test_weights_are_drawn_from_the_cell_generator_only() -> None:
    nets = custom_config().networks

    def pair(seed: int) -> dict[str, Any]:
        g, d = build_networks(nets, (2,), torch.Generator().manual_seed(seed))
        return {"g": g.state_dict(), "d": d.state_dict()}

    before = torch.get_rng_state()
    torch.manual_seed(123)  # torch's global RNG neither decides the weights nor is consumed
    first = pair(7)
    torch.manual_seed(456)
    assert_same_state(first, pair(7))
    assert not torch.equal(first["g"]["net.0.weight"], pair(8)["g"]["net.0.weight"])
    torch.manual_seed(456)
    pair(7)
    assert torch.equal(torch.get_rng_state(), torch.manual_seed(456).get_state())
    torch.set_rng_state(before)


def test_a_wrong_output_shape_is_one_line_before_ray_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import raygan.distributed
    import raygan.tuning.experiment

    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started before the networks were checked")

    monkeypatch.setattr(raygan.distributed, "RayCellPool", no_ray)
    monkeypatch.setattr(raygan.tuning.experiment, "start_ray", no_ray)
    data = custom_config(**{"networks.generator": f"{NETS}:three_outputs",
                            "networks.g_kwargs": {}}).to_dict()
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    for where in (["--out", str(tmp_path / "run"), "--backend", "ray"],
                  ["--storage", str(tmp_path / "tune")]):
        assert main(["train", str(path), "--quiet", *where]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        errors = [line for line in err if line.startswith("raygan: error:")]
        assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
        assert "networks.generator" in errors[0] and "three_outputs" in errors[0]
        assert "(2, 3)" in errors[0] and "expected (2, 2)" in errors[0], errors[0]


REFUSED: dict[str, tuple[dict[str, object], str]] = {
    "feature matching": ({"losses.feature_matching": True}, "losses.feature_matching"),
    "minibatch discrimination": ({"networks.minibatch_discrimination": True},
                                 "networks.minibatch_discrimination"),
    "local heads": ({"losses.discriminators": "local", "losses.multi_discriminator": "avg"},
                    "losses.discriminators"),
    "virtual batch norm": ({"networks.g_norm": "virtual_batch"}, "networks.g_norm"),
    "an aae prior": ({"networks.aae_prior": "mixture2d", "networks.latent_dim": 2},
                     "networks.aae_prior"),
    "an MLP width": ({"networks.g_hidden": 64}, "networks.g_hidden"),
    "no generator": ({"networks.generator": ""}, "networks.generator"),
    "a malformed generator": ({"networks.discriminator": "nets.D"}, "networks.discriminator"),
    "a keyword raygan passes": ({"networks.g_kwargs": {"latent_dim": 3}},
                                "networks.g_kwargs.latent_dim"),
    "a kwargs value YAML cannot hold": ({"networks.d_kwargs": {"width": {1, 2}}},
                                        "networks.d_kwargs.width"),
    "the networks of another kind": ({"networks.kind": "mlp"}, "networks.generator"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_custom_networks_cannot_do_is_refused_in_one_line(case: str) -> None:
    overrides, key = REFUSED[case]
    with pytest.raises(ConfigError) as caught:
        custom_config(**overrides)
    message = str(caught.value)
    assert message.startswith(key) and "\n" not in message, message


def test_kwargs_take_yaml_values_and_round_trip() -> None:
    config = custom_config(**{"networks.d_kwargs": {"hidden": 16, "extra": [1, 2.5, None]}})
    assert config_from_dict(config.to_dict()) == config
    assert hash(config.networks) == hash(custom_config().networks)  # a cache key still


def test_vectorise_runs_plain_modules_and_refuses_what_vmap_cannot(tmp_path: Path) -> None:
    from raygan.engine.run import train

    config = custom_config(**{"resources.vectorise": True, "resources.cells_per_actor": 2,
                              "training.generations": 1})
    check_custom_networks(config, (2,))
    assert train(config, tmp_path / "run", progress=False).generation == 1
    check_custom_networks(config.replace(**{"networks.discriminator": f"{NETS}:Batch",
                                            "networks.d_kwargs": {}}), (2,))
    for d, rule, fragment in (("Reads", "lipizzaner", "vmap(functional_call)"),
                              ("Batch", "live", "rule 'live'")):
        bad = config.replace(**{"networks.discriminator": f"{NETS}:{d}",
                                "networks.d_kwargs": {}, "training.rule": rule})
        with pytest.raises(ConfigError) as caught:
            check_custom_networks(bad, (2,))
        message = str(caught.value)
        assert message.startswith("resources.vectorise") and fragment in message, message
        assert "\n" not in message


def test_import_and_call_failures_are_one_line() -> None:
    cases = {"no_such_module_xyz:G": "cannot import 'no_such_module_xyz'",
             f"{NETS}:nothing": "no attribute 'nothing'",
             f"{NETS}:broken": "RuntimeError: no network here",
             f"{NETS}:not_a_module": "not a torch.nn.Module"}
    for spec, fragment in cases.items():
        config = custom_config(**{"networks.discriminator": spec, "networks.d_kwargs": {}})
        with pytest.raises(ConfigError) as caught:
            check_custom_networks(config, (2,))
        message = str(caught.value)
        assert message.startswith("networks.discriminator") and fragment in message, message
        assert "\n" not in message


def test_a_module_the_workers_cannot_import_is_one_line_naming_runtime_env(
    ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raygan.distributed import RayCellPool

    # importable here only: Ray gave its workers the driver's sys.path when it started
    (tmp_path / "driver_only_nets.py").write_text(Path(NETS).read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    config = custom_config(**{"networks.generator": "driver_only_nets:Generator",
                              "resources.cells_per_actor": 2, "resources.cpus_per_cell": 0.5})
    check_custom_networks(config, (2,))  # the driver imports it
    with pytest.raises(ConfigError) as caught:
        RayCellPool(config)
    message = str(caught.value)
    assert "\n" not in message and "cannot import 'driver_only_nets'" in message, message
    assert "runtime_env" in message and "ray job submit --working-dir" in message


def test_tune_trials_read_a_relative_network_file_from_the_start_directory() -> None:
    from raygan.tuning.trainable import with_absolute_paths

    config = custom_config(**{"networks.generator": "nets/g.py:G",
                              "networks.discriminator": "pkg.nets:D"})
    moved = with_absolute_paths(config, "/start").networks
    assert moved.generator == "/start/nets/g.py:G" and moved.discriminator == "pkg.nets:D"
