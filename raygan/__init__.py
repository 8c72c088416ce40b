"""raygan: population-based GAN training (spatial coevolution) on Ray.

The Python API (`raygan.api`, `raygan.result`)::

    import raygan

    config = raygan.load_config("tune_configs/default.yaml", ["grid.rows=3"])
    result = raygan.train(config, data=images, generator=G, discriminator=D, backend="ray")
    result.metrics                      # {"fid": ..., "fid_floor": ...}
    result.generator().sample(16, seed=0)
    result.export("mixture.pt")         # torch.jit.load it anywhere, no raygan needed

The names below are imported on first use, so `import raygan` (and every `raygan.*` module)
stays free of torch and Ray until they are needed. Importing it registers the built-in
components' specs (`raygan.components`); `register_rule`, `register_network` and
`register_loss` add one of your own (docs/components.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from raygan import components as _components  # noqa: F401  (the built-in specs)
from raygan.version import __version__

if TYPE_CHECKING:
    from raygan.api import load, load_config, resume, train, tune
    from raygan.config import (
        ConfigError,
        DataConfig,
        EvolutionConfig,
        GridConfig,
        LossesConfig,
        MetricsConfig,
        MixtureConfig,
        NetworksConfig,
        OutputConfig,
        ResourcesConfig,
        RunConfig,
        TrainingConfig,
    )
    from raygan.config.specs import LossSpec, NetworkSpec, RuleSpec
    from raygan.config.tune import TuneSection
    from raygan.core.losses import register_loss
    from raygan.core.networks import register_network
    from raygan.core.rules import register_rule
    from raygan.data import Dataset
    from raygan.errors import DataError
    from raygan.export import MixtureGenerator
    from raygan.result import Result

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataError",
    "Dataset",
    "EvolutionConfig",
    "GridConfig",
    "LossSpec",
    "LossesConfig",
    "MetricsConfig",
    "MixtureConfig",
    "MixtureGenerator",
    "NetworkSpec",
    "NetworksConfig",
    "OutputConfig",
    "ResourcesConfig",
    "Result",
    "RuleSpec",
    "RunConfig",
    "TrainingConfig",
    "TuneSection",
    "__version__",
    "load",
    "load_config",
    "register_loss",
    "register_network",
    "register_rule",
    "resume",
    "train",
    "tune",
]

_HOMES = {
    "raygan.api": ("load", "load_config", "resume", "train", "tune"),
    "raygan.config": ("ConfigError", "DataConfig", "EvolutionConfig", "GridConfig",
                      "LossesConfig", "MetricsConfig", "MixtureConfig", "NetworksConfig",
                      "OutputConfig", "ResourcesConfig", "RunConfig", "TrainingConfig"),
    "raygan.data": ("Dataset",),
    "raygan.errors": ("DataError",),
    "raygan.export": ("MixtureGenerator",),
    "raygan.result": ("Result",),
    "raygan.config.tune": ("TuneSection",),
    "raygan.config.specs": ("LossSpec", "NetworkSpec", "RuleSpec"),
    "raygan.core.losses": ("register_loss",),
    "raygan.core.networks": ("register_network",),
    "raygan.core.rules": ("register_rule",),
}
_LAZY = {name: module for module, names in _HOMES.items() for name in names}
"""Public name -> the module it lives in."""


def __getattr__(name: str) -> Any:
    """Import a public name on first use (see the module docstring)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'raygan' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
