"""What the config knows of every component: one torch-free spec per rule, network kind, loss,
Tune scheduler and data source, in a registry by name.

A component declares its traits once, in a spec beside it (`raygan.core.rules.specs`,
`raygan.core.network_specs`, `raygan.core.loss_specs`, `raygan.arch.spec`,
`raygan.tuning.scheduler_specs`, `raygan.data.sources`): its name, the options only it reads,
the options that cannot act under it, the settings it refuses, whether `resources.vectorise`
can stack its step, and its own checks. `raygan.config.schema` derives the allowed names, the
inert-option errors, the vectorise blockers and the combination refusals from the chosen
components' specs, so no config module names a component. `raygan.components` imports the
built-in specs when `raygan` is imported; `raygan.register_rule` (`_network`, `_loss`) adds a
user's component at run time, and `shipped` lists those for the Ray workers (`raygan.objects`).

Everything here is plain Python: the registries hold specs, never torch objects; a component's
implementation is registered in its own layer (`raygan.core.rules.RULES`, ...).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from raygan.errors import ConfigError

if TYPE_CHECKING:
    from raygan.config.catalog import DataKind

RunConfig = Any
"""A `raygan.config.schema.RunConfig` (not imported: the config's modules build on this one)."""
DataConfig = Any
"""A `raygan.config.model.DataConfig`, likewise."""
Check = Callable[[RunConfig], dict[str, str]]
"""A predicate over a whole config: `{dotted key: reason}` of the keys it finds (none: `{}`)."""


@dataclass(frozen=True, eq=False)
class Spec:
    """The traits every component declares.

    Attributes:
        name: the value that selects it (`training.rule`, `networks.kind`, ...).
        description: one line for docs and errors.
        options: dotted keys only components that list them read; set away from its default
            under another component, such a key is an error.
        unread: per key of `options`, why it cannot act under another component: a template
            with `{chosen}` (the chosen name) and `{readers}` (the readers' names, quoted);
            default "only <field> <readers> reads it, not <chosen>".
        inert: the keys that cannot act while this component is chosen, with the reason.
        refuses: the settings this component does not combine with, each with the whole
            message (`"does not combine with ..."`).
        vectorise: why `resources.vectorise` cannot stack this component's step ("": it can).
        blockers: further vectorise blockers under this component, `{key: why}`.
        check: any other check of the whole config; raises `ConfigError` naming the key.
        implementation: the module that registers the implementation, imported when it is
            first needed ("": registered with the spec, or built into its registry).
    """

    name: str
    description: str = ""
    options: tuple[str, ...] = ()
    unread: Mapping[str, str] = field(default_factory=dict)
    inert: Check | None = None
    refuses: Check | None = None
    vectorise: str = ""
    blockers: Check | None = None
    check: Callable[[RunConfig], None] | None = None
    implementation: str = ""


@dataclass(frozen=True, eq=False)
class RuleSpec(Spec):
    """A training rule (`raygan.core.rules`).

    Attributes:
        own_step: it trains with its own step, not the shared batch loop (`egan`).
        single_adversary: a G step faces one adversary (the pair trains against itself), so
            several discriminators per G step must come from `losses.discriminators: local`.
        shared_adversary: several trainees step against one adversary within a batch (`live`),
            which a D with batch statistics cannot serve in a stacked step.
    """

    own_step: bool = False
    single_adversary: bool = False
    shared_adversary: bool = False


@dataclass(frozen=True, eq=False)
class NetworkSpec(Spec):
    """A network kind (`raygan.core.networks`).

    Attributes:
        forms: the data forms it can build for (`DataKind.form`); None: any.
        local_heads: it can be the K projection heads of `losses.discriminators: local`.
        genome: its architecture and optimizers are `networks.genome`'s (`raygan.arch`).
        batch_stats: its discriminator keeps batch statistics (batch norm).
    """

    forms: tuple[str, ...] | None = None
    local_heads: bool = False
    genome: bool = False
    batch_stats: bool = False


@dataclass(frozen=True, eq=False)
class LossSpec(Spec):
    """A generator loss and its discriminator loss (`raygan.core.losses`).

    Attributes:
        labelled: D's loss has labels (BCE, least squares): it can smooth them, be trained
            with BCE, and its output read as a probability (E-GAN's fitness).
        gradient_penalty: D's loss adds the WGAN-GP penalty.
    """

    labelled: bool = False
    gradient_penalty: bool = False


@dataclass(frozen=True, eq=False)
class SchedulerSpec(Spec):
    """A Tune scheduler (`raygan.tuning`).

    Attributes:
        perturbs: it restarts trials from others' checkpoints (keep them all).
        decides_every: the `tune.*` key of generations between its decisions, which must be a
            multiple of `metrics.every` (None: it never decides between evaluations).
        mutates: which `tune.space` domains over live knobs it perturbs: "none", "any" (PBT),
            "continuous" (PB2, which models them).
        population: it draws the trials itself (one per member, `tune.num_samples` members):
            the trial keeps the scheduler in its config, the space's grids do not multiply.
        ranking: the result key and mode trials are ranked by, overriding `tune.metric`
            (None: no override).
    """

    perturbs: bool = False
    decides_every: str | None = None
    mutates: Literal["none", "any", "continuous"] = "none"
    population: bool = False
    ranking: Callable[[RunConfig], tuple[str, Literal["min", "max"]] | None] | None = None


@dataclass(frozen=True, eq=False)
class SourceSpec:
    """A data source (`raygan.data.sources`).

    Attributes:
        name: the `data.name` that selects it.
        keys: the `data.*` keys it reads besides `name` and `sharding`; setting another is an
            error.
        load: `(cfg, seed) -> Dataset`; bad input raises a one-line `DataError`.
        kind: `cfg -> DataKind`, what is known before loading (None fields: known once loaded).
        description: one line for docs and errors.
    """

    name: str
    keys: tuple[str, ...]
    load: Callable[[DataConfig, int], Any]
    kind: Callable[[DataConfig], DataKind]
    description: str


S = TypeVar("S")
T = TypeVar("T")
_fetchers: list[Callable[[], bool]] = []


class Registry(Generic[S]):
    """Specs by name, for one kind of component.

    Args:
        what: the component, for messages ("training rule").
        key: the config key that names one ("training.rule").
    """

    def __init__(self, what: str, key: str) -> None:
        self.what, self.key = what, key
        self._specs: dict[str, S] = {}
        self._deferred: list[Callable[[], object]] = []

    def add(self, spec: S) -> S:
        """Register `spec` under its name (a later one replaces it)."""
        self._specs[getattr(spec, "name")] = spec  # noqa: B009  (S is any spec with a name)
        return spec

    def defer(self, load: Callable[[], object]) -> None:
        """Call `load` (which registers specs) before the registry is first read: built-in
        specs whose modules are costly to import (the data sources import numpy)."""
        self._deferred.append(load)

    @property
    def _ready(self) -> dict[str, S]:
        while self._deferred:
            self._deferred.pop(0)()
        return self._specs

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._ready)

    def __iter__(self) -> Iterator[S]:
        return iter(tuple(self._ready.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._ready or (isinstance(name, str) and _fetch(self._specs, name))

    def get(self, name: str, key: str | None = None) -> S:
        """The spec registered as `name`.

        Args:
            name: the component's name.
            key: the config key for the message (default this registry's).

        Raises:
            ConfigError: one line naming the key and the registered names.
        """
        if name not in self:
            names = self.names()
            hint = difflib.get_close_matches(str(name), names, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{key or self.key}: unknown {self.what} {name!r}{extra}; allowed "
                              "values: " + ", ".join(repr(n) for n in names))
        return self._specs[name]

    def readers(self, key: str) -> list[str]:
        """The names of the components that list `key` among their options."""
        return [n for n, s in self._ready.items() if key in getattr(s, "options", ())]

    def unread(self, chosen: str) -> dict[str, str]:
        """The options of other components that `chosen` does not read, with the reason."""
        own = getattr(self.get(chosen), "options", ())
        out: dict[str, str] = {}
        for spec in self:
            for key in getattr(spec, "options", ()):
                if key in own or key in out:
                    continue
                readers = ", ".join(repr(n) for n in self.readers(key))
                template = getattr(spec, "unread", {}).get(key) or (
                    f"only {self.key} {{readers}} reads it, not {{chosen!r}}")
                out[key] = template.format(chosen=chosen, readers=readers)
        return out


def implement(registry: Registry[Any], name: str, implemented: Mapping[str, object]) -> None:
    """Make sure `name`'s implementation is in `implemented` if it can be: fetch the driver's
    registrations on a Ray worker (`on_unknown`), or import the module its spec names.

    Raises:
        ConfigError: for a name that is not registered.
    """
    if name in implemented:
        return
    spec = registry.get(name)
    module = getattr(spec, "implementation", "")
    if module:
        importlib.import_module(module)


def implementation(registry: Registry[Any], name: str, implemented: Mapping[str, T]) -> T:
    """`implemented[name]`, once `implement` has made sure it is there.

    Raises:
        KeyError: naming the implemented components, for a name that has none.
    """
    if name not in implemented and name in registry:  # its module, or a Ray driver's
        implement(registry, name, implemented)
    if name not in implemented:
        raise KeyError(f"unknown {registry.what} {name!r}; registered: "
                       f"{', '.join(implemented)}")
    return implemented[name]


def _fetch(specs: Mapping[str, object], name: str) -> bool:
    """Ask the fetchers (`on_unknown`) for components registered elsewhere: a Ray worker gets
    its driver's. True when `name` is then known."""
    return any(fetch() for fetch in _fetchers) and name in specs


def on_unknown(fetch: Callable[[], bool]) -> None:
    """Call `fetch` when a name is not registered (it returns whether it registered any)."""
    if fetch not in _fetchers:
        _fetchers.append(fetch)


RULES: Registry[RuleSpec] = Registry("training rule", "training.rule")
NETWORKS: Registry[NetworkSpec] = Registry("network kind", "networks.kind")
LOSSES: Registry[LossSpec] = Registry("loss", "losses.generator")
SCHEDULERS: Registry[SchedulerSpec] = Registry("Tune scheduler", "tune.scheduler")
SOURCES: Registry[SourceSpec] = Registry("data source", "data.name")

_registered: dict[tuple[Callable[..., Any], str], tuple[Any, ...]] = {}


def remember(register: Callable[..., Any], spec: Spec, *args: Any) -> None:
    """Keep a registration made through the public API, `register(spec, *args)`, to repeat it
    in the Ray workers (a later one of the same name replaces it)."""
    _registered.pop((register, spec.name), None)
    _registered[(register, spec.name)] = (spec, *args)


def registered() -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    """The registrations made through the public API in this process, in order (`remember`):
    `(register, args)` pairs."""
    return [(register, args) for (register, _), args in _registered.items()]


def chosen(config: RunConfig) -> list[Spec]:
    """The specs of the components `config` chooses: its rule, network kind, Tune scheduler
    and generator losses."""
    return [RULES.get(config.training.rule), NETWORKS.get(config.networks.kind),
            SCHEDULERS.get(config.tune.scheduler),
            *(LOSSES.get(n) for n in config.losses.generator)]


def rule(config: RunConfig) -> RuleSpec:
    """The spec of `training.rule`."""
    return RULES.get(config.training.rule)


def network(config: RunConfig) -> NetworkSpec:
    """The spec of `networks.kind`."""
    return NETWORKS.get(config.networks.kind)


def scheduler(name: str) -> SchedulerSpec:
    """The spec of a `tune.scheduler` name."""
    return SCHEDULERS.get(name)


def labelled_losses() -> tuple[str, ...]:
    """The registered losses whose D loss has labels (BCE, least squares)."""
    return tuple(s.name for s in LOSSES if s.labelled)
