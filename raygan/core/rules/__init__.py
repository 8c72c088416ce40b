"""Training rules: who trains against whom in a generation, and which networks stay.

One rule per file, each a `Rule` (see `base.py`); its spec (what the config knows of it) is in
`specs.py`, its class registered by name in `registry.py`. A new rule is a new file and one
registration line (`raygan.register_rule`); `Cell` only calls `begin`, trains the batches
(`Rule.train`) and calls `end`.

Importing this package imports no torch (`specs` is imported with `raygan`); `RULES`,
`get_rule` and `register_rule` import the rules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raygan.core.rules.registry import RULES, get_rule, register_rule

__all__ = ["RULES", "get_rule", "register_rule"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from raygan.core.rules import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
