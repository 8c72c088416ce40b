"""Typed, frozen run configuration loaded from YAML.

Every section is a frozen dataclass. `load_config` reads a YAML file, applies `--set a.b=value`
overrides and builds the dataclasses, rejecting unknown keys and bad values with a
`ConfigError` that names the key and what is allowed. Nothing here imports torch or ray.

* `model` (data, networks, losses: what is trained) and `sections` (grid, evolution, mixture,
  training, metrics, resources, output: how it is trained and run): one dataclass per YAML
  section, each checking its own keys (`tune` is `raygan.config.tune`'s: the search space
  and the scheduler policy);
* `schema`: `RunConfig`, the checks across sections and the settings derived from them;
* `specs`: what the config knows of every rule, network kind, loss, Tune scheduler and data
  source (`RuleSpec`, ... in registries by name, filled by the components' own spec modules);
* `catalog`: every metric's name, family, direction and the data it applies to (`DataKind`);
* `coerce`: plain dicts to dataclasses, key by key and type by type;
* `loader`: YAML files, overrides and configs saved by earlier versions.
"""

from raygan.config.coerce import REMOVED, RENAMED
from raygan.config.loader import config_from_saved, load_config, parse_override, yaml_load
from raygan.config.model import DataConfig, LossesConfig, MultiDName, NetworksConfig
from raygan.config.schema import RunConfig, config_from_dict, inert_options
from raygan.config.sections import (
    EvolutionConfig,
    GridConfig,
    MetricsConfig,
    MixtureConfig,
    OutputConfig,
    ResourcesConfig,
    TrainingConfig,
)
from raygan.config.specs import LossSpec, NetworkSpec, RuleSpec, SchedulerSpec, SourceSpec
from raygan.errors import ConfigError

__all__ = [
    "REMOVED",
    "RENAMED",
    "ConfigError",
    "DataConfig",
    "EvolutionConfig",
    "GridConfig",
    "LossSpec",
    "LossesConfig",
    "MetricsConfig",
    "MixtureConfig",
    "MultiDName",
    "NetworkSpec",
    "NetworksConfig",
    "OutputConfig",
    "ResourcesConfig",
    "RuleSpec",
    "RunConfig",
    "SchedulerSpec",
    "SourceSpec",
    "TrainingConfig",
    "config_from_dict",
    "config_from_saved",
    "inert_options",
    "load_config",
    "parse_override",
    "yaml_load",
]
