"""The built-in network kinds' specs: what the config knows of each (`raygan.config.specs`).

Plain Python, imported with `raygan` (`raygan.components`); the builders are registered in
`raygan.core.networks`. The genome kind's spec is `raygan.arch.spec`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raygan.config.model import SUPPLIED
from raygan.config.specs import NETWORKS, NetworkSpec
from raygan.errors import check
from raygan.imports import split_spec

if TYPE_CHECKING:
    from raygan.config.schema import RunConfig

MLP_WIDTHS = ("g_hidden", "d_hidden", "hidden_layers", "g_activation", "dcgan_width")
"""The `networks.*` keys that size the built-in MLP and DCGAN networks."""


def _mlp_refuses(config: RunConfig) -> dict[str, str]:
    nets = config.networks
    if config.losses.feature_matching and nets.hidden_layers < 1 and not (
            nets.minibatch_discrimination):
        return {"losses.feature_matching": "needs an intermediate D layer to match, but "
                "networks.hidden_layers is 0"}
    return {}


def _aae_refuses(config: RunConfig) -> dict[str, str]:
    from raygan.config.specs import rule

    why = ("does not combine with networks.kind 'aae' (its G step is the encoder's "
           "reconstruction and regularisation phases): set it back to its default")
    on = {"training.rule": rule(config).own_step,
          "losses.multi_discriminator": config.losses.multi_discriminator != "none",
          "losses.feature_matching": config.losses.feature_matching}
    return {key: why for key, bad in on.items() if bad}


def _custom_inert(config: RunConfig) -> dict[str, str]:
    return {f"networks.{key}": "networks.generator and .discriminator are the networks"
            for key in MLP_WIDTHS}


def _custom_refuses(config: RunConfig) -> dict[str, str]:
    # raygan runs their forward and backward passes only
    why = ("needs a layer inside D, which networks.kind 'custom' does not expose (raygan only "
           "calls its forward): set it back to its default")
    on = {"losses.feature_matching": config.losses.feature_matching,
          "networks.minibatch_discrimination": config.networks.minibatch_discrimination}
    return {key: why for key, bad in on.items() if bad}


def _custom_check(config: RunConfig) -> None:
    """Both networks named, in the right form, and no keyword raygan passes itself."""
    nets = config.networks
    for side in ("generator", "discriminator"):
        spec = getattr(nets, side)
        check(bool(spec), f"networks.{side}",
              "networks.kind 'custom' needs 'package.module:Class' (or a factory, or "
              "'path/to/file.py:name')")
        split_spec(spec, f"networks.{side} {spec!r}", "Class")
    for key, side in (("g_kwargs", "g"), ("d_kwargs", "d")):
        for name in set(getattr(nets, key)) & set(SUPPLIED[side]):
            check(False, f"networks.{key}.{name}",
                  f"raygan passes {name} itself ({SUPPLIED[side][name]}) to a callable whose "
                  "signature names it; remove it here")


MLP = NETWORKS.add(NetworkSpec(
    "mlp", "fully connected G and D (toy data, vectors and small images)", refuses=_mlp_refuses,
    local_heads=True))
DCGAN = NETWORKS.add(NetworkSpec(
    "dcgan", "convolutional G and D (Radford et al. 2015)", options=("networks.g_norm",),
    unread={"networks.g_norm": "the {chosen!r} generator has no normalisation layers (only "
            "{readers} has)"},
    forms=("images",), batch_stats=True))
AAE = NETWORKS.add(NetworkSpec(
    "aae", "adversarial autoencoder: an autoencoder as G, a latent D",
    options=("networks.aae_prior",),
    unread={"networks.aae_prior": "only networks.kind {readers} draws codes from a prior, not "
            "{chosen!r}"},
    refuses=_aae_refuses, vectorise="cells' architectures differ, or the step has phases"))
CUSTOM = NETWORKS.add(NetworkSpec(
    "custom", "the user's G and D (networks.generator, networks.discriminator)",
    options=("networks.generator", "networks.discriminator", "networks.g_kwargs",
             "networks.d_kwargs"),
    inert=_custom_inert, refuses=_custom_refuses, check=_custom_check))
