"""The `genome` network kind's spec: what the config knows of it (`raygan.config.specs`).

Plain Python (the genome's string form is, `raygan.arch.genome`), imported with `raygan`
(`raygan.components`); the builder is registered in `raygan.core.networks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raygan.arch.genome import Genome
from raygan.config.specs import NETWORKS, NetworkSpec, rule, scheduler
from raygan.core.network_specs import MLP_WIDTHS
from raygan.errors import check

if TYPE_CHECKING:
    from raygan.config.schema import RunConfig


def _inert(config: RunConfig) -> dict[str, str]:
    out = {f"networks.{key}": "the genome sets the architecture" for key in MLP_WIDTHS}
    out.update({f"training.{key}": "the genome sets each side's optimizer, rate and momentum"
                for key in ("lr_g", "lr_d", "beta1")})
    return out


def _refuses(config: RunConfig) -> dict[str, str]:
    why = ("does not combine with networks.kind 'genome' (its networks and optimizers are the "
           "genome's): set it back to its default")
    on = {"training.rule": rule(config).own_step,
          "losses.discriminators": config.losses.discriminators == "local",
          "networks.minibatch_discrimination": config.networks.minibatch_discrimination}
    return {key: why for key, bad in on.items() if bad}


def _check(config: RunConfig) -> None:
    text = config.networks.genome
    check(bool(text) or scheduler(config.tune.scheduler).population, "networks.genome",
          "networks.kind 'genome' needs a genome string (raygan.arch; tune.scheduler 'evolve' "
          "draws them)")
    if text:
        try:
            Genome.decode(text)
        except ValueError as exc:
            check(False, "networks.genome", str(exc))


GENOME = NETWORKS.add(NetworkSpec(
    "genome", "an evolved architecture and its optimizers (networks.genome; raygan.arch)",
    options=("networks.genome",),
    unread={"networks.genome": "only networks.kind {readers} builds one, not {chosen!r}"},
    inert=_inert, refuses=_refuses, check=_check, implementation="raygan.arch.network",
    forms=("images",), genome=True,
    vectorise="cells' architectures differ, or the step has phases"))
