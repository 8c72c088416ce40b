"""`RunConfig`: the whole run, its checks across sections and the settings derived from them.

A `RunConfig` holds one dataclass per YAML section (`raygan.config.model`, `.sections`, and
the `tune` section of `raygan.config.tune`). Its `__post_init__` checks what no single
section can: options that only act under other settings, metric names against the data set,
the tune space's values, the scheduler's decision points against the evaluation schedule.
What a rule, network kind, loss or scheduler reads, refuses and can vectorise is its spec's
(`raygan.config.specs`); the checks here loop over the chosen components' specs.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from raygan.config import catalog, specs
from raygan.config.coerce import build, plain, set_dotted
from raygan.config.model import DataConfig, LossesConfig, NetworksConfig
from raygan.config.sections import (
    EvolutionConfig,
    GridConfig,
    MetricsConfig,
    MixtureConfig,
    OutputConfig,
    ResourcesConfig,
    TrainingConfig,
)
from raygan.config.tune import TuneSection, check_against_metrics
from raygan.errors import ConfigError, check, check_run_name


def _registries() -> dict[str, specs.Registry[Any]]:
    return {"training.rule": specs.RULES, "networks.kind": specs.NETWORKS,
            "tune.scheduler": specs.SCHEDULERS}


def inert_options(config: RunConfig) -> dict[str, str]:
    """The options that nothing reads under `config`'s other settings, with the reason: the
    options of components not chosen (their specs' `options`), those the chosen components'
    specs find inert, and those of settings outside the components."""
    out: dict[str, str] = {}
    for key, registry in _registries().items():
        section, name = key.split(".")
        out.update(registry.unread(getattr(getattr(config, section), name)))
    for spec in specs.chosen(config):
        if spec.inert is not None:
            out.update(spec.inert(config))
    evo = config.evolution
    mutation = {"multiplicative": "evolution.lr_mutation_sigma",
                "additive": "evolution.lr_additive_sigma"}
    for kind, key in mutation.items():
        if evo.lr_mutation != kind:
            out[key] = f"evolution.lr_mutation is {evo.lr_mutation!r}, not {kind!r}"
    if evo.lr_mutation == "none":
        out["evolution.lr_mutation_probability"] = "evolution.lr_mutation is 'none'"
    if config.losses.feature_matching and config.losses.discriminator == "bce":
        for key in ("generator", "mutation"):
            out[f"losses.{key}"] = (
                "losses.feature_matching replaces G's loss and losses.discriminator 'bce' "
                "fixes D's")
    nets = config.networks
    if not nets.minibatch_discrimination:
        for key in ("minibatch_kernels", "minibatch_kernel_dims", "minibatch_group"):
            out[f"networks.{key}"] = "networks.minibatch_discrimination is false"
    if nets.g_norm != "virtual_batch":
        out["networks.vbn_reference_size"] = "networks.g_norm is not 'virtual_batch'"
    if config.evolution.exploit_probability == 0:
        for key in ("exploit_margin", "exploit_factors"):
            out[f"evolution.{key}"] = "evolution.exploit_probability is 0 (off)"
    elif config.grid.size == 1:
        out["evolution.exploit_probability"] = "a 1x1 grid's cell has no neighbour to copy"
    multi = config.losses.multi_discriminator
    for mode, key in (("gman", "losses.gman_temperature"), ("hv", "losses.hv_delta")):
        if multi != mode:
            out[key] = f"losses.multi_discriminator is {multi!r}, not {mode!r}"
    local = config.losses.discriminators == "local"  # one adversary is then K discriminators
    if not local:
        out["losses.k"] = f"losses.discriminators is {config.losses.discriminators!r}, not 'local'"
    rule = config.training.rule
    if not local and specs.rule(config).single_adversary:
        several = ", ".join(repr(r.name) for r in specs.RULES
                            if not (r.single_adversary or r.own_step))
        out["losses.multi_discriminator"] = (
            f"rule {rule!r} gives G a single adversary; the K discriminators come from the "
            f"neighbourhood (rules {several}) or, with losses.discriminators: local, from "
            "each D's heads")
    elif not local and config.grid.size == 1:
        out["losses.multi_discriminator"] = (
            "a 1x1 grid's neighbourhood holds one discriminator; set losses.discriminators: "
            "local for K local ones")
    return out


def vectorise_blockers(config: RunConfig) -> dict[str, str]:
    """Options whose training step `resources.vectorise` cannot stack, with the reason
    (`raygan.core.packed.train` runs the shared batch loop of plain and mutated losses): the
    chosen components' (their specs' `vectorise` and `blockers`) and the methods'."""
    losses, nets = config.losses, config.networks
    rule, network = specs.rule(config), specs.network(config)
    blockers = {
        "losses.multi_discriminator": (losses.multi_discriminator != "none",
                                       "a G step against K discriminators"),
        "losses.discriminators": (losses.discriminators == "local", "projection heads"),
        "losses.feature_matching": (losses.feature_matching, "a G loss on D's features"),
        "networks.minibatch_discrimination": (nets.minibatch_discrimination,
                                              "a layer that groups the batch"),
        "networks.g_norm": (nets.g_norm != "batch", "virtual batch norm's reference batch"),
        "training.historical_averaging": (config.training.historical_averaging > 0,
                                          "a penalty on each network's own history"),
    }
    out: dict[str, str] = {}
    for key, spec in (("training.rule", rule), ("networks.kind", network),
                      *(("losses.generator", specs.LOSSES.get(n))
                        for n in losses.generator)):
        if spec.vectorise:
            out[key] = spec.vectorise
    if rule.shared_adversary and network.batch_stats:  # trainees would update one D's stats
        out["training.rule"] = (f"{rule.name!r} trains several networks against one batch "
                                "norm adversary in the same batch")
    for spec in specs.chosen(config):
        if spec.blockers is not None:
            out.update(spec.blockers(config))
    out.update({key: why for key, (on, why) in blockers.items() if on})
    return out


@dataclass(frozen=True)
class RunConfig:
    """A whole coevolution run."""

    name: str = "raygan"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    networks: NetworksConfig = field(default_factory=NetworksConfig)
    losses: LossesConfig = field(default_factory=LossesConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    tune: TuneSection = field(default_factory=TuneSection)

    def __post_init__(self) -> None:
        check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        check_run_name(self.name, "name")
        network = specs.network(self)
        heads = [n.name for n in specs.NETWORKS if n.local_heads]
        check(
            self.losses.discriminators != "local" or network.local_heads,
            "losses.discriminators",
            f"'local' builds MLP heads on projected inputs; networks.kind must be "
            f"{' or '.join(repr(n) for n in heads)}, not {self.networks.kind!r}",
        )
        check_against_metrics(self.tune, self.metrics.every)
        # figures are drawn from an evaluation's samples, so copies can only be kept at one
        every = self.metrics.every
        check(
            self.output.plot_every % every == 0,
            "output.plot_every",
            f"must be a multiple of metrics.every ({every}), got {self.output.plot_every}",
        )
        evo = self.evolution
        if not network.genome:  # a genome sets its own rates (within its bounds)
            for key in ("lr_g", "lr_d"):
                lr = getattr(self.training, key)
                check(evo.lr_min <= lr <= evo.lr_max, f"training.{key}",
                      f"{lr:g} is outside [evolution.lr_min, evolution.lr_max] = "
                      f"[{evo.lr_min:g}, {evo.lr_max:g}], the range rates are kept in; change "
                      "the rate or the bound")
        self._check_inert()
        self._check_combinations()
        if self.resources.vectorise:
            for key, why in vectorise_blockers(self).items():
                check(False, key, f"cannot be vectorised ({why}): set it back to its default or "
                      "resources.vectorise: false")
        for spec in specs.chosen(self):
            if spec.check is not None:
                spec.check(self)
        self._check_metrics()
        self._check_space()

    def _check_inert(self) -> None:
        """An option set away from its default where nothing reads it is an error, not silence
        (`inert_options` says where each one acts)."""
        for key, why in inert_options(self).items():
            section, name = key.split(".")
            value = getattr(getattr(self, section), name)
            default = getattr(type(getattr(self, section))(), name)
            check(value == default, key, f"is set to {value!r} but cannot act: {why}")

    def _check_combinations(self) -> None:
        """Methods whose training steps do not compose (yet) are refused together, so no option
        is silently dropped by another's step: what the chosen components' specs refuse, and
        the multi-discriminator objectives' limits."""
        for spec in specs.chosen(self):
            for key, why in (spec.refuses(self) if spec.refuses else {}).items():
                check(False, key, why)
        losses, multi = self.losses, self.losses.multi_discriminator
        local = losses.discriminators == "local"
        if multi != "none":
            for key, on in (("losses.feature_matching", losses.feature_matching),
                            ("training.historical_averaging",
                             self.training.historical_averaging > 0)):
                check(not on, key, "does not combine with losses.multi_discriminator "
                      f"{multi!r} (its G step is the multi-discriminator objective's)")
        if local:
            for key, on in (("losses.feature_matching", losses.feature_matching),
                            ("networks.minibatch_discrimination",
                             self.networks.minibatch_discrimination)):
                check(not on, key, "does not combine with losses.discriminators: local (its "
                      "discriminators are projection heads)")

    def _check_metrics(self) -> None:
        """Every metric name must be in the catalog and apply to the data set."""
        kind = self.data.kind
        self.check_data(kind)
        data = self.data.name
        check(
            self.rank_by in self.metric_names,
            "metrics.rank_by",
            f"{self.rank_by!r} is not among the reported metrics.names "
            f"({', '.join(self.metric_names)}); add it there",
        )
        needs_inception = "fid_inception" in (*self.metric_names, self.mixture_objective)
        check(
            not needs_inception or self.metrics.inception_weights is not None,
            "metrics.inception_weights",
            f"fid_inception (data set {data!r}) needs Inception-v3 weights: "
            + catalog.INCEPTION_HELP,
        )

    def check_data(self, kind: catalog.DataKind) -> None:
        """The networks and metrics against what is known of the data: from the config here,
        and again by the driver with the loaded data's kind (a user's array or function).

        Raises:
            ConfigError: naming the key, for a network or metric the data cannot serve.
        """
        forms = specs.network(self).forms
        check(
            forms is None or kind.form is None or kind.form in forms,
            "networks.kind",
            f"{self.networks.kind!r} needs {' or '.join(f.removesuffix('s') for f in forms or ())}"
            f" data, but data.name {kind.name!r} holds {kind.form} data",
        )
        for i, name in enumerate(self.metrics.names or ()):
            problem = catalog.check_name(name, kind)
            check(problem is None, f"metrics.names[{i}]", str(problem))
        for key, chosen in (("metrics.rank_by", self.metrics.rank_by),
                            ("mixture.objective", self.mixture.objective)):
            problem = None if chosen is None else catalog.check_name(chosen, kind)
            check(problem is None, key, str(problem))

    def for_data(self, kind: catalog.DataKind) -> RunConfig:
        """This config checked against the loaded data's kind, with the metrics that default
        from the data (names, rank_by, objective) written out, so every process that reads
        the config scores the same metrics.

        Raises:
            ConfigError: as `check_data`.
        """
        self.check_data(kind)
        if self.data.kind == kind:
            return self
        names = self.metrics.names or catalog.default_names(kind)
        default = catalog.default_rank_by(kind)
        rank = self.metrics.rank_by or (default if default in names else names[0])
        objective = self.mixture.objective or ("coverage_score" if kind.form == "toy" else rank)
        return self.replace(**{"metrics.names": list(names), "metrics.rank_by": rank,
                               "mixture.objective": objective})

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics every evaluation reports (`metrics.names` or the data set's default)."""
        return self.metrics.names or catalog.default_names(self.data.kind)

    @property
    def rank_by(self) -> str:
        """The metric that ranks cells (and, by default, trials): `metrics.rank_by`, else the
        data's default if it is reported, else the first of `metrics.names`."""
        default = catalog.default_rank_by(self.data.kind)
        names = self.metric_names
        return self.metrics.rank_by or (default if default in names else names[0])

    @property
    def mixture_objective(self) -> str:
        """The metric the mixture ES optimises (`mixture.objective`, else the data's default,
        which is `rank_by` but for the toy mixtures' coverage score)."""
        if self.mixture.objective:
            return self.mixture.objective
        return "coverage_score" if self.data.kind.form == "toy" else self.rank_by

    @property
    def eval_samples(self) -> int:
        """Samples drawn per evaluation (`metrics.samples`, else 2,500 toy / 1,000 images)."""
        if self.metrics.samples is not None:
            return self.metrics.samples
        return 2500 if self.data.is_toy else 1000

    @property
    def tune_metric(self) -> str:
        """The result key trials are ranked by: the scheduler's own ranking
        (`neurales_fitness` under evolve's `tune.fitness: neurales`), else `tune.metric`, else
        the best `rank_by`."""
        ranking = self._scheduler_ranking()
        if ranking is not None:
            return ranking[0]
        return self.tune.metric or catalog.result_key(self.rank_by)

    def _scheduler_ranking(self) -> tuple[str, Literal["min", "max"]] | None:
        spec = specs.scheduler(self.tune.scheduler)
        return None if spec.ranking is None else spec.ranking(self)

    @property
    def tune_mode(self) -> Literal["min", "max"]:
        """`tune.mode`, else the ranking metric's direction."""
        if self.tune.mode is not None:
            return self.tune.mode
        ranking = self._scheduler_ranking()
        if ranking is not None:
            return ranking[1]
        name = self.tune_metric.removeprefix(catalog.BEST_PREFIX)
        return "min" if catalog.lower_is_better(name) else "max"

    def _check_space(self) -> None:
        """Each listed value, lowest and highest draw of `tune.space` must give a valid config."""
        if not self.tune.space:
            return
        base = self.to_dict()
        base["tune"] = {}  # the candidates carry no space, so this does not recurse
        for key, domain in self.tune.space.items():
            for value in domain.extremes():
                data = copy.deepcopy(base)
                set_dotted(data, key, value)
                try:
                    config_from_dict(data)
                except ConfigError as exc:
                    raise ConfigError(
                        f"tune.space.{key}: the value {value!r} is not allowed ({exc})"
                    ) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists) that round-trips through `config_from_dict`."""
        return plain(dataclasses.asdict(self))

    def replace(self, **overrides: Any) -> RunConfig:
        """Copy with dotted-key overrides, e.g. `cfg.replace(**{"grid.rows": 3})`."""
        data = self.to_dict()
        for key, value in overrides.items():
            set_dotted(data, key, value)
        return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build a validated `RunConfig` from a nested dict.

    Raises:
        ConfigError: on an unknown key or a value that is not allowed.
    """
    return typing.cast(RunConfig, build(RunConfig, data))

