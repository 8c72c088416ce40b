"""The rules' implementations by `training.rule` name, and how a new one is registered.

The config knows a rule by its spec (`raygan.config.specs.RULES`, the built-ins' in
`raygan.core.rules.specs`); the class that trains it is registered here, under the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, overload

from raygan.config.specs import RULES as SPECS
from raygan.config.specs import RuleSpec, implementation, remember
from raygan.core.rules.base import Rule
from raygan.core.rules.egan import Egan
from raygan.core.rules.fresh import Fresh
from raygan.core.rules.lipizzaner import Lipizzaner
from raygan.core.rules.live import Live
from raygan.core.rules.own import Own
from raygan.core.rules.selection import LipizzanerSelection

R = TypeVar("R", bound=Rule)
RULES: dict[str, type[Rule]] = {
    rule.name: rule for rule in (Lipizzaner, LipizzanerSelection, Own, Fresh, Live, Egan)
}


@overload
def register_rule(spec: RuleSpec | str) -> Callable[[type[R]], type[R]]: ...


@overload
def register_rule(spec: RuleSpec | str, rule: type[R]) -> type[R]: ...


def register_rule(
    spec: RuleSpec | str, rule: type[R] | None = None
) -> type[R] | Callable[[type[R]], type[R]]:
    """Register a training rule: its spec in the config, so `training.rule: <name>` selects
    it, and its class under the same name. `register_rule(spec, MyRule)`, or `@register_rule(
    spec)` above the class.

    Args:
        spec: what the config knows of it (`raygan.RuleSpec`; a name: a spec without traits).
        rule: a `Rule` subclass (`raygan.core.rules.base`); its `name` becomes `spec.name`.

    Raises:
        ValueError: a class that names itself another rule.
    """
    if rule is None:
        return lambda cls: register_rule(spec, cls)
    spec = RuleSpec(spec) if isinstance(spec, str) else spec
    own = vars(rule).get("name")
    if own not in (None, "", spec.name):
        raise ValueError(f"rule {rule.__qualname__}: its name {own!r} is not its spec's "
                         f"{spec.name!r}")
    rule.name = spec.name
    SPECS.add(spec)
    RULES[spec.name] = rule
    remember(register_rule, spec, rule)
    return rule


def get_rule(name: str) -> Rule:
    """A rule by its `training.rule` name.

    Raises:
        KeyError: naming the registered rules.
    """
    return implementation(SPECS, name, RULES)()
