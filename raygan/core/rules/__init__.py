"""Training rules: who trains against whom in a generation, and which networks stay.

One rule per file, each a `Rule` (see `base.py`) registered here by its `training.rule` name.
A new rule is a new file and one line in `RULES`; `Cell` only calls `begin`, trains the
batches (`Rule.train`) and calls `end`.
"""

from __future__ import annotations

from raygan.core.rules.base import Rule
from raygan.core.rules.egan import Egan
from raygan.core.rules.fresh import Fresh
from raygan.core.rules.lipizzaner import Lipizzaner
from raygan.core.rules.live import Live
from raygan.core.rules.own import Own
from raygan.core.rules.selection import LipizzanerSelection

RULES: dict[str, type[Rule]] = {
    rule.name: rule for rule in (Lipizzaner, LipizzanerSelection, Own, Fresh, Live, Egan)
}


def get_rule(name: str) -> Rule:
    """A rule by its `training.rule` name.

    Raises:
        KeyError: naming the registered rules.
    """
    try:
        return RULES[name]()
    except KeyError:
        raise KeyError(f"unknown training rule {name!r}; registered: {', '.join(RULES)}") from None
