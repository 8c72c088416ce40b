"""The built-in training rules' specs: what the config knows of each (`raygan.config.specs`).

Plain Python, imported with `raygan` (`raygan.components`): the rules themselves (one file
each in this package) import torch. A new rule is its file, its spec here (or beside it, for
a user's rule) and one registration line (`raygan.register_rule`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raygan.config.specs import LOSSES, RULES, RuleSpec, labelled_losses
from raygan.errors import check

if TYPE_CHECKING:
    from raygan.config.schema import RunConfig

_TOURNAMENT = {"evolution.tournament_size":
               "rule {chosen!r} holds no tournaments (only {readers} do)"}
_OWN_ONLY = "only training.rule {readers} has this option; rule {chosen!r} fixes its own selection"


def _own_inert(config: RunConfig) -> dict[str, str]:
    if config.evolution.selection:
        return {}
    return {"evolution.tournament_size": "rule 'own' holds tournaments only with "
            "evolution.selection: true"}


def _egan_inert(config: RunConfig) -> dict[str, str]:
    return {
        "losses.mutation": "rule 'egan' trains one offspring per loss of losses.generator every "
                           "step; it draws no loss",
        "losses.feature_matching": "rule 'egan' selects among offspring trained with the losses "
                                   "of losses.generator",
    }


def _egan_refuses(config: RunConfig) -> dict[str, str]:
    why = ("rule 'egan' steps its offspring against the cell's own D only; set it back to its "
           "default")
    losses = config.losses
    on = {"losses.multi_discriminator": losses.multi_discriminator != "none",
          "losses.discriminators": losses.discriminators == "local"}
    return {key: why for key, bad in on.items() if bad}


def _egan_check(config: RunConfig) -> None:
    """E-GAN's losses read D as a probability, and its first step has one offspring per loss."""
    odd = [name for name in config.losses.generator if not LOSSES.get(name).labelled]
    check(
        not odd,
        "losses.generator",
        f"rule 'egan' evolves offspring of {', '.join(labelled_losses())} only (its fitness reads "
        f"D's output as a probability); drop {', '.join(odd)}",
    )
    n = len(config.losses.generator)
    check(
        config.evolution.egan_mu <= n,
        "evolution.egan_mu",
        f"must be <= the {n} losses of losses.generator (the first step of a generation "
        f"spawns one offspring per loss from the one centre), got {config.evolution.egan_mu}",
    )


def _fresh_check(config: RunConfig) -> None:
    check(config.training.exchange_every is not None, "training.exchange_every",
          "rule 'fresh' needs it (batches between neighbour refreshes)")


LIPIZZANER = RULES.add(RuleSpec(
    "lipizzaner", "centre in place against adversaries drawn per batch from the neighbourhood"))
LIPIZZANER_SELECTION = RULES.add(RuleSpec(
    "lipizzaner-selection", "tournament-selected clones train against each other, kept only "
    "if better", options=("evolution.tournament_size",), unread=_TOURNAMENT,
    single_adversary=True))
OWN = RULES.add(RuleSpec(
    "own", "each cell's own pair, with optional selection and elitist replacement",
    options=("evolution.tournament_size", "evolution.selection", "evolution.replacement"),
    unread={**_TOURNAMENT, "evolution.selection": _OWN_ONLY, "evolution.replacement": _OWN_ONLY},
    inert=_own_inert, single_adversary=True))
FRESH = RULES.add(RuleSpec(
    "fresh", "lipizzaner with neighbours refreshed every training.exchange_every batches",
    options=("training.exchange_every",),
    unread={"training.exchange_every": "only rule {readers} refreshes neighbours during a "
            "generation, not {chosen!r}"},
    check=_fresh_check))
LIVE = RULES.add(RuleSpec(
    "live", "neighbour copies trained in the cell too, against live adversaries only",
    shared_adversary=True))
EGAN = RULES.add(RuleSpec(
    "egan", "E-GAN: every step one offspring of G per loss, the fittest survive",
    options=("evolution.egan_gamma", "evolution.egan_mu"), inert=_egan_inert,
    refuses=_egan_refuses, vectorise="its offspring have their own step", check=_egan_check,
    own_step=True))
