"""Multi-discriminator generator objectives: one G step against K discriminators at once.

A generator facing K discriminators has K losses `l_k` (its loss on each D's verdict of the
same fake batch). `losses.multi_discriminator` says how they become one update:

- `avg`: the mean of the `l_k`.
- `gman` (Durugkar et al., GMAN): `sum_k w_k l_k` with `w = softmax(lambda * l)`, lambda =
  `losses.gman_temperature`. The convention here: lambda multiplies the losses, so lambda = 0
  gives equal weights (exactly `avg`) and a large lambda approaches the hardest D's loss (the
  max). The weights are detached: the gradient is `sum_k w_k grad l_k`.
- `hv` (Albuquerque et al., hypervolume maximisation): `-sum_k log(eta - l_k)` with the nadir
  point `eta = delta * max_k l_k` recomputed (and detached) each step, delta =
  `losses.hv_delta` > 1. The gradient is `sum_k grad l_k / (eta - l_k)`: the worse a D's
  loss, the more it counts. The paper's losses are positive; so that eta stays above every
  loss for any loss, eta is written `m + (delta - 1) * max(|m|, floor)` with `m = max_k l_k`
  and `floor = 1e-8`, which is `delta * m` whenever `m >= floor`.
- `mgd` (multiple gradient descent, Desideri): with `u_k` the unit-normalised gradients of
  `l_k` w.r.t. G's parameters, `p` = the minimum-norm point of their convex hull, G steps
  along `-p`, a direction that decreases every `l_k` to first order (`<-p, grad l_k> <= 0`).
  `p` is exact for K = 2 (closed form) and found by Wolfe's min-norm-point algorithm (a
  fully corrective Frank-Wolfe method, finite) on the K x K Gram matrix for K > 2.

Everything here is a function of its arguments: no global state, no RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

MODES: tuple[str, ...] = ("avg", "gman", "hv", "mgd")
"""The modes that train G against every discriminator of its pool."""
HV_FLOOR = 1e-8
"""Smallest margin `(eta - max_k l_k) / (delta - 1)` the hypervolume nadir keeps."""


def gman_weights(losses: Tensor, temperature: float) -> Tensor:
    """GMAN's weights `softmax(temperature * losses)`, detached (temperature 0: all 1/K).

    Args:
        losses: the K generator losses, shape (K,).
        temperature: lambda >= 0; larger favours the discriminators G does worst against.
    """
    return torch.softmax(temperature * losses.detach(), dim=0)


def hv_eta(losses: Tensor, delta: float) -> Tensor:
    """The hypervolume nadir point `delta * max_k l_k` (see the module docstring), detached."""
    top = losses.detach().max()
    return top + (delta - 1.0) * top.abs().clamp_min(HV_FLOOR)


def objective(losses: Tensor, mode: str, temperature: float = 1.0, delta: float = 1.5) -> Tensor:
    """The scalar G minimises for the differentiable modes (`avg`, `gman`, `hv`).

    Args:
        losses: the K generator losses, shape (K,), attached to G's graph.
        mode: "avg", "gman" or "hv".
        temperature: GMAN's lambda.
        delta: the hypervolume slack (> 1).

    Raises:
        ValueError: for another mode (`mgd` is not one scalar: see `mgd_direction`).
    """
    if mode == "avg":
        return losses.mean()
    if mode == "gman":
        return (gman_weights(losses, temperature) * losses).sum()
    if mode == "hv":
        return -torch.log(hv_eta(losses, delta) - losses).sum()
    raise ValueError(f"no scalar objective for multi-discriminator mode {mode!r}")


def min_norm_weights(gram: np.ndarray, iterations: int = 1000, tol: float = 1e-12) -> np.ndarray:
    """Convex weights `w` minimising `w^T gram w` on the simplex: the min-norm hull point.

    K <= 2 is solved in closed form. K > 2: Wolfe's min-norm-point algorithm, a fully
    corrective Frank-Wolfe method: each major step adds the Frank-Wolfe vertex (the smallest
    entry of `gram @ w`) to an active set, minor steps move to the affine minimiser of the
    active set, dropping vertices whose weight would turn negative. It ends, exactly up to
    rounding, when the Frank-Wolfe duality gap `w^T G w - min_k (G w)_k` is under `tol`: that
    gap bounds how far below zero any `<p, u_k>` can be, `p` the returned point.

    Args:
        gram: the K x K Gram matrix `U U^T` of the vectors, float64.
        iterations: cap on major steps (each adds one vertex; a handful is the usual need).
        tol: the duality gap that ends the iterations.
    """
    k = gram.shape[0]
    if k == 1:
        return np.ones(1)
    if k == 2:
        g00, g11, g01 = gram[0, 0], gram[1, 1], gram[0, 1]
        denom = g00 + g11 - 2.0 * g01  # |u_0 - u_1|^2
        a = 0.5 if denom <= 0 else min(max((g11 - g01) / denom, 0.0), 1.0)
        return np.array([a, 1.0 - a])
    first = int(np.argmin(np.diag(gram)))
    w, active = np.zeros(k), [first]
    w[first] = 1.0
    for _ in range(iterations):
        grad = gram @ w
        t = int(np.argmin(grad))
        if w @ grad - grad[t] <= tol or t in active:
            break
        active.append(t)
        for _ in range(k + 1):  # minor steps: each drops at least one vertex
            v = _affine_minimiser(gram, active)
            if (v > 0).all():
                w = np.zeros(k)
                w[active] = v
                break
            cur = w[active]
            neg = v <= 0
            gaps = cur[neg] - v[neg]  # >= 0; 0 only for a fresh vertex with v == 0
            theta = float(np.min(np.where(gaps > 0, cur[neg] / np.where(gaps > 0, gaps, 1), 0)))
            w = np.zeros(k)
            w[active] = np.maximum(cur + theta * (v - cur), 0.0)
            active = [i for i in active if w[i] > 0]
        w /= w.sum()
    return w


def _affine_minimiser(gram: np.ndarray, active: list[int]) -> np.ndarray:
    """Weights (summing to 1) of the min-norm point of the affine hull of `active`'s vectors,
    by least squares on the KKT system (its matrix is singular when the vectors are affinely
    dependent; least squares then returns one of the minimisers)."""
    n = len(active)
    kkt = np.zeros((n + 1, n + 1))
    kkt[:n, :n] = gram[np.ix_(active, active)]
    kkt[:n, n] = kkt[n, :n] = 1.0
    rhs = np.zeros(n + 1)
    rhs[n] = 1.0
    return np.linalg.lstsq(kkt, rhs, rcond=None)[0][:n]


def mgd_direction(grads: Tensor, iterations: int = 1000) -> Tensor:
    """The min-norm point `p` of the convex hull of the unit-normalised gradients.

    G descends along `-p`; for the exact `p`, `<p, u_k> >= |p|^2` for every k, so the step
    lowers every loss to first order. A zero gradient stays zero (its D does not constrain p).

    Args:
        grads: shape (K, P), the flattened gradients of each `l_k` w.r.t. G's parameters.
        iterations: the solver's cap on major steps for K > 2.

    Returns:
        `p`, shape (P,), in `grads`' dtype.
    """
    norms = grads.norm(dim=1, keepdim=True)
    units = (grads / norms.clamp_min(torch.finfo(grads.dtype).tiny)).double()
    weights = min_norm_weights((units @ units.T).cpu().numpy(), iterations)
    return (torch.from_numpy(weights).to(units.device) @ units).to(grads.dtype)


@dataclass(frozen=True)
class StepResult:
    """What one multi-discriminator G step did.

    Attributes:
        losses: the K generator losses `l_k` (before the step).
        objective: the minimised scalar (`avg`, `gman`, `hv`); for `mgd`, the mean loss.
    """

    losses: list[float]
    objective: float


def generator_step(
    generator: nn.Module,
    optimizer: torch.optim.Optimizer,
    discriminators: Sequence[nn.Module],
    loss: Callable[[Tensor], Tensor],
    noise: Tensor,
    mode: str,
    temperature: float = 1.0,
    delta: float = 1.5,
) -> StepResult:
    """One optimizer step of `generator` against all `discriminators` under `mode`.

    One fake batch `generator(noise)` is judged by every D; `l_k = loss(D_k(fake))`, where a D
    with K local heads (`multi_head`, `raygan.core.local_d`) counts as K discriminators. Only G's
    parameters receive gradients (`.grad` is set, then `optimizer.step()`); the Ds' gradients
    are left untouched.

    Args:
        generator: the trainee G.
        optimizer: G's optimizer.
        discriminators: the adversaries (frozen snapshots or live networks).
        loss: the generator loss on D logits (a `Loss.generator`).
        noise: the latent batch.
        mode: one of `MODES`.
        temperature: GMAN's lambda.
        delta: the hypervolume slack.
    """
    params = [p for p in generator.parameters() if p.requires_grad]
    fake = generator(noise)
    losses = torch.stack([term for d in discriminators for term in _verdicts(d, fake, loss)])
    grads_out: list[Tensor | None]
    if mode == "mgd":
        flat = []
        for k in range(len(losses)):
            grads = torch.autograd.grad(losses[k], params, retain_graph=k + 1 < len(losses),
                                        allow_unused=True)
            flat.append(torch.cat([_dense(g, p).flatten() for g, p in zip(grads, params)]))
        step = mgd_direction(torch.stack(flat))
        value = losses.detach().mean()
        grads_out = list(_unflatten(step, params))
    else:
        total = objective(losses, mode, temperature, delta)
        grads_out = list(torch.autograd.grad(total, params, allow_unused=True))
        value = total.detach()
    optimizer.zero_grad(set_to_none=True)
    for p, g in zip(params, grads_out):
        p.grad = g
    optimizer.step()
    return StepResult([float(v) for v in losses.detach()], float(value))


def _verdicts(d: nn.Module, fake: Tensor, loss: Callable[[Tensor], Tensor]) -> list[Tensor]:
    """One D's generator losses: one per head of a D with `multi_head` set (its logits are
    (K, B), `raygan.core.local_d`), else the one loss of its logits."""
    logits = d(fake)
    return [loss(row) for row in logits] if getattr(d, "multi_head", False) else [loss(logits)]


def _dense(grad: Tensor | None, param: Tensor) -> Tensor:
    return torch.zeros_like(param) if grad is None else grad


def _unflatten(flat: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    out, at = [], 0
    for p in params:
        out.append(flat[at:at + p.numel()].view_as(p).clone())
        at += p.numel()
    return out
