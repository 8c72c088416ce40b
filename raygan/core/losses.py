"""GAN loss registry, written on discriminator logits so that no loss is NaN at saturation.

A `Loss` pairs a generator objective with its matching discriminator objective (least-squares
D for a least-squares G, BCE for minimax and heuristic). Least-squares terms use
`sigmoid(logit)`, as Mustangs' discriminators end in a sigmoid: one discriminator can then be
trained with any loss of the set without its output scale drifting.

What the config knows of each loss is its spec (`raygan.core.loss_specs`); a new loss is its
two functions and one line, `raygan.register_loss(spec, loss)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raygan.config.specs import LOSSES as SPECS
from raygan.config.specs import LossSpec, implementation, remember


@dataclass(frozen=True)
class Loss:
    """Generator loss and its matching discriminator loss.

    Attributes:
        name: registry key.
        generator: fake logits -> scalar loss minimised by G.
        discriminator: (real logits, fake logits) -> scalar loss minimised by D.
        gradient_penalty: whether D's loss adds the WGAN-GP penalty.
        labelled: (real logits, fake logits, real target) -> D's loss with the real samples'
            target set to the given value (one-sided label smoothing); None for losses with
            no labels (hinge, Wasserstein).
    """

    name: str
    generator: Callable[[Tensor], Tensor]
    discriminator: Callable[[Tensor, Tensor], Tensor]
    gradient_penalty: bool = False
    labelled: Callable[[Tensor, Tensor, float], Tensor] | None = None

    def discriminator_loss(self, real: Tensor, fake: Tensor, real_label: float = 1.0) -> Tensor:
        """D's loss with real samples' target `real_label` (1.0: `discriminator` itself).

        Raises:
            ValueError: a target other than 1.0 for a loss without labels.
        """
        if real_label == 1.0:
            return self.discriminator(real, fake)
        if self.labelled is None:
            raise ValueError(f"loss {self.name!r} has no labels to smooth")
        return self.labelled(real, fake, real_label)


def _bce_d(real: Tensor, fake: Tensor) -> Tensor:
    # -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit)
    return -(F.logsigmoid(real).mean() + F.logsigmoid(-fake).mean())


def _bce_d_labelled(real: Tensor, fake: Tensor, target: float) -> Tensor:
    # BCE of the real logits against `target` (fakes keep target 0: one-sided smoothing)
    on_real = target * F.logsigmoid(real) + (1.0 - target) * F.logsigmoid(-real)
    return -(on_real.mean() + F.logsigmoid(-fake).mean())


def _minimax_g(fake: Tensor) -> Tensor:
    # log(1 - D(G(z))) = logsigmoid(-logit): finite for any logit
    return F.logsigmoid(-fake).mean()


def _heuristic_g(fake: Tensor) -> Tensor:
    return -F.logsigmoid(fake).mean()


def _ls_g(fake: Tensor) -> Tensor:
    return 0.5 * ((torch.sigmoid(fake) - 1.0) ** 2).mean()


def _ls_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (((torch.sigmoid(real) - 1.0) ** 2).mean() + (torch.sigmoid(fake) ** 2).mean())


def _ls_d_labelled(real: Tensor, fake: Tensor, target: float) -> Tensor:
    return 0.5 * (((torch.sigmoid(real) - target) ** 2).mean() + (torch.sigmoid(fake) ** 2).mean())


def _hinge_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def _hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


LOSSES: dict[str, Loss] = {
    "minimax": Loss("minimax", _minimax_g, _bce_d, labelled=_bce_d_labelled),
    "heuristic": Loss("heuristic", _heuristic_g, _bce_d, labelled=_bce_d_labelled),
    "least_squares": Loss("least_squares", _ls_g, _ls_d, labelled=_ls_d_labelled),
    "hinge": Loss("hinge", _hinge_g, _hinge_d),
    "wasserstein_gp": Loss("wasserstein_gp", _hinge_g, _wasserstein_d, gradient_penalty=True),
}


def register_loss(spec: LossSpec | str, loss: Loss) -> Loss:
    """Register a loss: the functions under `spec.name`, its spec in the config, so
    `losses.generator` (and `evolution.fitness_loss`) may name it.

    Args:
        spec: what the config knows of it (a name: a spec without traits); `spec.labelled`
            must be True exactly when `loss.labelled` is set, `spec.gradient_penalty` when
            `loss.gradient_penalty` is.
        loss: its generator and discriminator functions, on D's logits.

    Raises:
        ValueError: a spec that disagrees with the loss.
    """
    spec = LossSpec(spec, labelled=loss.labelled is not None,
                    gradient_penalty=loss.gradient_penalty) if isinstance(spec, str) else spec
    if (spec.name != loss.name or spec.labelled != (loss.labelled is not None)
            or spec.gradient_penalty != loss.gradient_penalty):
        raise ValueError(f"loss {loss.name!r}: its spec {spec.name!r} must have its name, "
                         "labelled (a labelled D loss) and gradient_penalty")
    SPECS.add(spec)
    LOSSES[spec.name] = loss
    remember(register_loss, spec, loss)
    return loss


def get_loss(name: str) -> Loss:
    """Look up a loss by name.

    Raises:
        KeyError: naming the registered losses.
    """
    return implementation(SPECS, name, LOSSES)


def interpolation_weights(n: int, dims: int, generator: torch.Generator) -> Tensor:
    """The gradient penalty's random weights for `n` samples of `dims` dimensions: shape
    (n, 1, ..., 1), uniform on [0, 1), drawn on the CPU from `generator`."""
    return torch.rand((n,) + (1,) * (dims - 1), generator=generator, device="cpu")


def gradient_penalty(
    discriminator: nn.Module, real: Tensor, fake: Tensor, eps: Tensor | torch.Generator
) -> Tensor:
    """WGAN-GP penalty `E[(||grad D(x_hat)|| - 1)^2]` on random interpolates.

    Args:
        discriminator: the critic being trained.
        real: real batch.
        fake: fake batch of the same shape (detached).
        eps: the interpolation weights (`interpolation_weights` for the batch: the batch loop
            draws them when it plans the step), or the generator to draw them from.
    """
    n = min(len(real), len(fake))
    real, fake = real[:n], fake[:n]
    if isinstance(eps, torch.Generator):
        eps = interpolation_weights(n, real.dim(), eps)
    eps = eps.to(real.device)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = discriminator(mixed)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
