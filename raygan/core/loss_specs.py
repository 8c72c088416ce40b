"""The built-in losses' specs: what the config knows of each (`raygan.config.specs`).

Plain Python, imported with `raygan` (`raygan.components`); the losses themselves are
`raygan.core.losses`'s.
"""

from __future__ import annotations

from raygan.config.specs import LOSSES, LossSpec

MINIMAX = LOSSES.add(LossSpec("minimax", "G minimises log(1 - D(G(z))); D minimises BCE",
                              labelled=True))
HEURISTIC = LOSSES.add(LossSpec("heuristic", "G maximises log D(G(z)); D minimises BCE",
                                labelled=True))
LEAST_SQUARES = LOSSES.add(LossSpec("least_squares", "least squares on D's sigmoid output",
                                    labelled=True))
HINGE = LOSSES.add(LossSpec("hinge", "hinge loss on D's logits"))
WASSERSTEIN_GP = LOSSES.add(LossSpec(
    "wasserstein_gp", "Wasserstein critic with a gradient penalty (losses.gradient_penalty)",
    gradient_penalty=True, vectorise="the gradient penalty takes a gradient inside the step"))
