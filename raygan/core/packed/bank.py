"""A bank: networks of one architecture stacked along a leading axis, run as one.

The parameters of N networks live in one (N, P) tensor, each network's parameters
flattened into a row, so an optimiser step is a few operations over the whole bank and the
gradient of a step is one (N, P) tensor. A forward pass runs any rows of the bank on their own
inputs with `vmap(functional_call)` on views of those rows. Linear layers are run as
`x @ W` with W stored as (in, out), which batches into one fast `baddbmm` (the (out, in)
layout of `nn.Linear` batches into a slower transposed product on the CPU). Buffers (batch
norm's running statistics) are stacked too: a forward in training mode updates them in the
bank, as running each network updates its own.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

Rows = Tensor | slice
"""Which networks of a bank: an index tensor (no repeats) or a slice."""


class _LinearIO(nn.Module):
    """`nn.Linear` with its weight stored as (in, out): the bank's layout (see the module)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        shape = (linear.in_features, linear.out_features)
        self.weight = nn.Parameter(torch.empty(shape, device="meta"))
        self.bias = None if linear.bias is None else nn.Parameter(
            torch.empty(linear.out_features, device="meta"))

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is not None and x.dim() == 2:
            return torch.addmm(self.bias, x, self.weight)
        out = x @ self.weight
        return out if self.bias is None else out + self.bias


_ELEMENTWISE = (nn.LeakyReLU, nn.ReLU, nn.Tanh, nn.Sigmoid)
StackedForward = Callable[[dict[str, Tensor], Tensor], Tensor]
"""`(parameters in the bank's layout, inputs (R, batch, ...)) -> outputs (R, batch, ...)`."""


def _sequential(seq: nn.Module | None, prefix: str) -> StackedForward | None:
    """A stacked version of an `nn.Sequential` of linear layers and activations (None for
    anything else): each linear layer one `baddbmm` over the rows, activations as they are."""
    if not isinstance(seq, nn.Sequential):
        return None
    plan: list[tuple[str, str | None] | nn.Module] = []
    for name, m in seq.named_children():
        if type(m) is nn.Linear:
            bias = None if m.bias is None else f"{prefix}{name}.bias"
            plan.append((f"{prefix}{name}.weight", bias))
        elif isinstance(m, _ELEMENTWISE):
            plan.append(m)
        else:
            return None

    def run(p: dict[str, Tensor], h: Tensor) -> Tensor:
        for step in plan:
            if isinstance(step, nn.Module):
                h = step(h)
            else:
                w, b = step
                h = torch.bmm(h, p[w]) if b is None else torch.baddbmm(p[b].unsqueeze(1), h, p[w])
        return h

    return run


def stacked_forward(net: nn.Module) -> StackedForward | None:
    """A vmap-free stacked forward for the MLP networks (vmap's per-call cost is most of a
    small MLP's step on the CPU); None: the bank runs `vmap(functional_call)`."""
    from raygan.core.mlp import MLPDiscriminator, MLPGenerator

    body = _sequential(getattr(net, "net", None), "net.")
    if body is None:
        return None
    if type(net) is MLPGenerator:
        shape = net.out_shape
        return lambda p, z: body(p, z).view(*z.shape[:2], *shape)
    if type(net) is MLPDiscriminator and net.mbd is None:
        return lambda p, x: body(p, x.flatten(2)).squeeze(2)
    return None


def _swap_linears(module: nn.Module) -> set[str]:
    """Replace every `nn.Linear` below `module` by `_LinearIO`; returns the weights' names."""
    swapped = set()
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            setattr(module, name, _LinearIO(child))
            swapped.add(f"{name}.weight")
        else:
            swapped |= {f"{name}.{k}" for k in _swap_linears(child)}
    return swapped


@dataclass(frozen=True)
class _Slot:
    """Where one parameter lives in a bank row."""

    name: str
    start: int
    shape: tuple[int, ...]  # in the bank's layout
    transposed: bool  # a linear weight, stored (in, out)

    @property
    def stop(self) -> int:
        return self.start + math.prod(self.shape)


class Bank:
    """N networks of one architecture as one stack.

    Args:
        nets: the networks (same architecture, same device); they are copied, not shared:
            `store` writes the bank back into them.

    Attributes:
        flat: the parameters, one row per network, shape (N, P).
        buffers: the buffers by name, shape (N, ...).
    """

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        self.nets = list(nets)
        # a weightless copy to call: functional_call takes the weights from the bank
        self._template = copy.deepcopy(self.nets[0]).to("meta").train()
        transposed = _swap_linears(self._template)
        self._slots: list[_Slot] = []
        start = 0
        for name, p in self.nets[0].named_parameters():
            flip = name in transposed
            shape = tuple(p.shape[::-1]) if flip else tuple(p.shape)
            self._slots.append(_Slot(name, start, shape, flip))
            start = self._slots[-1].stop
        shapes = [[tuple(p.shape) for _, p in n.named_parameters()] for n in self.nets]
        if any(s != shapes[0] for s in shapes):
            raise ValueError("vectorised training needs networks of one architecture in every "
                             "cell of a worker")
        self.flat = torch.stack([self.flatten(dict(n.named_parameters())) for n in self.nets])
        named = [dict(n.named_buffers()) for n in self.nets]
        self.buffers = {k: torch.stack([b[k] for b in named]) for k in named[0]}
        self._stacked = None if self.buffers else stacked_forward(self.nets[0])

    def __len__(self) -> int:
        return len(self.nets)

    # -- layout -------------------------------------------------------------------------------
    def flatten(self, tensors: dict[str, Tensor]) -> Tensor:
        """One network's tensors by parameter name (module layout) as a bank row."""
        return torch.cat([(tensors[s.name].detach().t() if s.transposed
                           else tensors[s.name].detach()).reshape(-1) for s in self._slots])

    def unflatten(self, row: Tensor) -> dict[str, Tensor]:
        """A bank row as tensors by parameter name, in the module's layout."""
        out = {}
        for s in self._slots:
            t = row[s.start : s.stop].view(s.shape)
            out[s.name] = t.t() if s.transposed else t
        return out

    def views(self, rows: Tensor) -> dict[str, Tensor]:
        """(R, P) rows as per-parameter views in the bank's layout (what `forward` runs)."""
        return {s.name: rows[:, s.start : s.stop].view(-1, *s.shape) for s in self._slots}

    # -- running ------------------------------------------------------------------------------
    def forward(self, rows: Rows, x: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """Run networks `rows` on `x` (shape (len(rows), batch, ...)), one input each.

        Args:
            rows: the networks to run.
            x: their inputs, stacked.
            params: parameters to run with instead of the bank's rows (the trainees' leaves,
                `leaves`, whose gradients the caller takes); buffers always come from the bank.
        """
        return self.forward_many(rows, [x], params)[0]

    def forward_many(self, rows: Rows, xs: Sequence[Tensor],
                     params: dict[str, Tensor] | None = None) -> list[Tensor]:
        """`forward` on several inputs in turn (each updating the buffers the next one sees,
        as consecutive calls of one network do)."""
        p = self.views(self.flat[rows]) if params is None else params
        if self._stacked is not None:
            return [self._stacked(p, x) for x in xs]
        b = {k: v[rows] for k, v in self.buffers.items()}

        def run(p_one: dict[str, Tensor], b_one: dict[str, Tensor], *x: Tensor) -> list[Tensor]:
            return [functional_call(self._template, (p_one, b_one), (xi,)) for xi in x]

        out = vmap(run)(p, b, *xs)
        if isinstance(rows, Tensor):  # indexing copied the buffers: put their updates back
            for k, v in self.buffers.items():
                v[rows] = b[k]
        return list(out)

    @torch.no_grad()
    def reload(self, first: int) -> None:
        """Read networks `first..` back into the bank (adversaries whose weights were
        reloaded from newer snapshots)."""
        for i in range(first, len(self.nets)):
            net = self.nets[i]
            self.flat[i] = self.flatten(dict(net.named_parameters()))
            for name, buf in net.named_buffers():
                self.buffers[name][i] = buf

    @torch.no_grad()
    def store(self, params_of: int) -> None:
        """Write the bank into its networks: buffers of all, parameters of the first
        `params_of` (the trainees; the others are read-only adversaries)."""
        for i, net in enumerate(self.nets):
            if i < params_of:
                values = self.unflatten(self.flat[i])
                for name, p in net.named_parameters():
                    p.copy_(values[name])
            for name, buf in net.named_buffers():
                buf.copy_(self.buffers[name][i])


    def leaves(self, rows: Rows) -> dict[str, Tensor]:
        """A copy of rows of the parameters as per-parameter leaves that record gradients.

        One leaf per parameter rather than one for the whole row: autograd would build the
        gradient of a row from one zero-filled (R, P) tensor per parameter.
        """
        return {k: v.requires_grad_(True) for k, v in self.views(self.flat[rows].detach()).items()}

    @staticmethod
    def joined(grads: Sequence[Tensor]) -> Tensor:
        """Gradients of `leaves` (in their order) as (R, P) rows."""
        return torch.cat([g.reshape(len(g), -1) for g in grads], dim=1)


def apply_each(fn: Callable[..., Tensor], *stacked: Tensor) -> Tensor:
    """`fn` on each row of the stacked inputs (per-network losses)."""
    return vmap(fn)(*stacked)
