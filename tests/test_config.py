from __future__ import annotations

from pathlib import Path

import pytest
from conftest import config_error

from raygan.config import ConfigError, RunConfig, config_from_dict, load_config

CONFIGS = sorted((Path(__file__).parent.parent / "tune_configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)


def test_round_trip_and_overrides() -> None:
    cfg = load_config(None, ["grid.rows=3", "losses.generator=[heuristic]", "training.lr_g=1e-3"])
    assert cfg.grid.rows == 3 and cfg.losses.generator == ("heuristic",)
    assert cfg.training.lr_g == 1e-3
    assert config_from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(**{"seed": 7}).seed == 7


MALFORMED = [
    ("grid:\n  rowz: 3\n", ["unknown key 'grid.rowz'", "did you mean 'rows'", "allowed keys"]),
    ("gird:\n  rows: 3\n", ["unknown key 'gird'", "did you mean 'grid'"]),
    ("grid:\n  rows: 0\n", ["grid.rows", ">= 1"]),
    ("grid:\n  rows: three\n", ["grid.rows", "expected an integer"]),
    (
        "losses:\n  generator: [minimax, wgan]\n",
        ["losses.generator[1]", "'wgan'", "allowed values", "'least_squares'"],
    ),
    ("grid:\n  neighbourhood: hex\n", ["grid.neighbourhood", "'von_neumann'", "'moore'"]),
    (
        "evolution:\n  lr_mutation_probability: 1.5\n",
        ["evolution.lr_mutation_probability", "[0, 1]"],
    ),
    ("data:\n  name: imagenet\n", ["data.name", "'imagenet'", "mnist5k", "folder"]),
    ("training:\n  batch_size: 1\n", ["training.batch_size", ">= 2"]),
    ("mixture:\n  enabled: maybe\n", ["mixture.enabled", "true or false"]),
    ("resources:\n  gpus_per_cell: 1.5\n", ["resources.gpus_per_cell", "fraction"]),
    ("- just\n- a list\n", ["top level must be a mapping"]),
    ("grid: [1, 2]\n", ["grid", "expected a mapping"]),
    ("grid: {rows: 2\n", ["not valid YAML"]),
    ("networks: {kind: dcgan}\ndata: {name: ring8}\n", ["networks.kind", "needs image data"]),
    ("evolution: {lr_min: 0.1, lr_max: 0.01}\n", ["evolution.lr_min", "lr_min <= lr_max"]),
    ("training: {g_ema: 1.0}\n", ["training.g_ema", "[0, 1)"]),
    ("networks: {g_activation: tanh}\n", ["networks.g_activation", "'relu'", "'leaky_relu'"]),
    (
        "data: {name: mnist5k}\nmetrics: {names: [fid, tvdd]}\n",
        ["metrics.names[1]", "unknown metric 'tvdd'", "did you mean 'tvd'",
         "allowed: fid, tvd, inception_score, fid_lenet, fid_inception"],
    ),
    (
        "data: {name: ring8}\nmetrics: {names: [fid]}\n",
        ["metrics.names[0]", "'fid' needs images, but 'ring8' holds toy", "mode_tvd"],
    ),
    (
        "data: {name: celeba}\nmetrics: {names: [tvd], inception_weights: w.pt}\n",
        ["metrics.names[0]", "'tvd' trains a classifier on class labels, which 'celeba' does",
         "fid_inception"],
    ),
    (
        "data: {name: mnist5k}\nmetrics: {names: [tvd], rank_by: fid}\n",
        ["metrics.rank_by", "'fid' is not among the reported metrics.names (tvd)"],
    ),
    ("data: {name: mnist5k}\nmixture: {objective: fdi}\n", ["mixture.objective", "'fid'"]),
    (
        "data: {name: cifar10}\nnetworks: {kind: dcgan}\n",
        ["metrics.inception_weights", "fid_inception", "inception_v3_google-0cc3c7bd.pth",
         "inception-2015-12-05.pt"],
    ),
    ("metrics: {names: [mode_tvd, mode_tvd]}\n", ["metrics.names", "duplicates"]),
]


@pytest.mark.parametrize("text,fragments", MALFORMED, ids=[m[1][0] for m in MALFORMED])
def test_malformed_configs_give_clear_errors(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    config_error(lambda: load_config(path), *fragments)


def test_bad_override() -> None:
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["gridrows"])
    with pytest.raises(ConfigError, match="seed: expected an integer"):
        load_config(None, ["seed.x=1"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(None, ["seed=1", "seed.x=1"])
    with pytest.raises(ConfigError, match="unknown key 'grid.size'"):
        load_config(None, ["grid.size=4"])


def test_metric_defaults_follow_the_data_set() -> None:
    toy = load_config(None)
    assert toy.metric_names[0] == "mode_tvd" and toy.rank_by == "mode_tvd"
    assert toy.mixture_objective == "coverage_score" and toy.eval_samples == 2500
    digits = load_config(None, ["data.name=mnist5k"])
    assert digits.metric_names == ("fid", "tvd", "inception_score")
    assert (digits.rank_by, digits.mixture_objective, digits.eval_samples) == ("fid", "fid", 1000)
    assert (digits.tune_metric, digits.tune_mode) == ("best/fid", "min")
    ranked = load_config(None, ["data.name=mnist5k", "metrics.rank_by=inception_score"])
    assert (ranked.tune_metric, ranked.tune_mode) == ("best/inception_score", "max")
    natural = load_config(None, ["data.name=cifar10", "metrics.inception_weights=w.pth"])
    assert natural.metric_names == ("fid_inception",) and natural.rank_by == "fid_inception"
    # names without the data's default ranker: the first name ranks and drives the ES
    own = load_config(None, ["data.name=mnist5k", "metrics.names=[swd, tvd]"])
    assert (own.rank_by, own.mixture_objective) == ("swd", "swd")


def test_metrics_of_data_known_only_once_loaded_are_written_out_for_it() -> None:
    from raygan.config.catalog import DataKind

    array = load_config(None, ["data.name=array", "data.path=x.npy"])
    assert array.metric_names == ("swd",)  # the one metric of images and vectors alike
    labelled = array.for_data(DataKind("array", "images", True))
    assert labelled.metrics.names == ("fid", "tvd", "inception_score")
    assert (labelled.rank_by, labelled.mixture_objective) == ("fid", "fid")
    vectors = array.for_data(DataKind("array", "vectors", False))
    assert vectors.metric_names == ("swd", "energy") and vectors.rank_by == "swd"
    with pytest.raises(ConfigError, match="networks.kind: 'dcgan' needs image data"):
        array.replace(**{"networks.kind": "dcgan"}).for_data(DataKind("array", "vectors", False))
    chosen = array.replace(**{"metrics.names": ["fid"]})
    with pytest.raises(ConfigError, match="metrics.names\\[0\\]: 'fid' trains a classifier"):
        chosen.for_data(DataKind("array", "images", False))


def test_a_removed_key_is_refused_when_written_and_dropped_when_saved() -> None:
    from raygan.config import config_from_saved

    with pytest.raises(ConfigError, match="output.dir was removed.*--out"):
        config_from_dict({"output": {"dir": "runs"}})
    saved = config_from_saved({"output": {"dir": "runs", "checkpoint_every": 3}})
    assert saved.output.checkpoint_every == 3
