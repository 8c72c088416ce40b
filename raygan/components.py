"""The built-in components' specs, registered into the config when `raygan` is imported.

Each spec lives beside its component, in a module that imports neither torch nor Ray, and
registers itself into `raygan.config.specs` on import; this module imports them all, so a
config is never validated before they are known, while the config itself imports nothing
above it. It also lets a Ray worker fetch the components its driver registered through
`raygan.register_rule` (`_network`, `_loss`): `raygan.objects.fetch_registrations`.
"""

from __future__ import annotations

import raygan.arch.spec
import raygan.core.loss_specs
import raygan.core.network_specs
import raygan.core.rules.specs
import raygan.tuning.evolve_spec
import raygan.tuning.scheduler_specs  # noqa: F401  (each registers its specs on import)
from raygan import objects
from raygan.config import specs


def _sources() -> None:
    """Register the data sources: their modules (`raygan.data.sources.MODULES`) import numpy,
    so they are imported when the first config is read, not with `raygan`."""
    from raygan.data.sources import source_names

    source_names()


specs.SOURCES.defer(_sources)
specs.on_unknown(objects.fetch_registrations)
