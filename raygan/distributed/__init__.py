"""Ray backend: cells as actors in one placement group (the only package that imports ray).

`RayCellPool` implements the engine's `CellPool` protocol. The resource helpers are pure
functions; importing them (or this package) does not import ray, which is loaded only when
`RayCellPool`, `ensure_ray` or `MAX_RETRIES` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raygan.distributed.resources import (
    actor_options,
    cell_bundle,
    describe_request,
    memory_fraction,
    trial_bundles,
    validate_gpus,
)

if TYPE_CHECKING:
    from raygan.distributed.pool import MAX_RETRIES, RayCellPool, ensure_ray

_LAZY = ("MAX_RETRIES", "RayCellPool", "ensure_ray")

__all__ = [
    "MAX_RETRIES",
    "RayCellPool",
    "actor_options",
    "cell_bundle",
    "describe_request",
    "ensure_ray",
    "memory_fraction",
    "trial_bundles",
    "validate_gpus",
]


def __getattr__(name: str) -> Any:
    # importing ray costs about a second, so only the pool's users pay for it
    if name in _LAZY:
        from raygan.distributed import pool

        return getattr(pool, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
