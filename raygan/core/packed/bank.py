"""A bank: networks of one architecture stacked along a leading axis, run as one.

Parameters and buffers are stacked (as `torch.func.stack_module_state` does); a forward pass runs
any rows of the bank on their own inputs with `vmap(functional_call)`. Buffers are part of the
state (batch norm's running statistics): a forward in training mode updates them in the bank,
exactly as running each network would update its own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

Rows = Tensor | slice
"""Which networks of a bank: an index tensor (no repeats) or a slice."""


class Bank:
    """N networks of one architecture as stacked tensors.

    Args:
        nets: the networks (same architecture, same device); they are copied, not shared:
            `store` writes the bank back into them.
    """

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        self.nets = list(nets)
        # what torch.func.stack_module_state does, but for trainees and frozen adversaries
        # alike (it refuses networks that differ in requires_grad)
        named = [(dict(n.named_parameters()), dict(n.named_buffers())) for n in self.nets]
        self.params = {k: torch.stack([p[k].detach() for p, _ in named]) for k in named[0][0]}
        self.buffers = {k: torch.stack([b[k] for _, b in named]) for k in named[0][1]}
        # a weightless copy to call: functional_call takes the weights from the stack
        self._template = copy.deepcopy(self.nets[0]).to("meta").train()

    def __len__(self) -> int:
        return len(self.nets)

    def forward(self, rows: Rows, x: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """Run networks `rows` on `x` (shape (len(rows), batch, ...)), one input each.

        Args:
            rows: the networks to run.
            x: their inputs, stacked.
            params: parameters to run with instead of the bank's rows (the trainees' leaves,
                whose gradients the caller takes); buffers always come from the bank.
        """
        return self.forward_many(rows, [x], params)[0]

    def forward_many(
        self, rows: Rows, xs: Sequence[Tensor], params: dict[str, Tensor] | None = None
    ) -> list[Tensor]:
        """`forward` on several inputs in turn (each updating the buffers the next one sees,
        as consecutive calls of one network do)."""
        p = params if params is not None else {k: v[rows] for k, v in self.params.items()}
        b = {k: v[rows] for k, v in self.buffers.items()}

        def run(p_one: dict[str, Tensor], b_one: dict[str, Tensor], *x: Tensor) -> list[Tensor]:
            return [functional_call(self._template, (p_one, b_one), (xi,)) for xi in x]

        out = vmap(run)(p, b, *xs)
        if isinstance(rows, Tensor):  # indexing copied the buffers: put their updates back
            for k, v in self.buffers.items():
                v[rows] = b[k]
        return list(out)

    @torch.no_grad()
    def store(self, params_of: int) -> None:
        """Write the bank into its networks: buffers of all, parameters of the first
        `params_of` (the trainees; the others are read-only adversaries)."""
        for i, net in enumerate(self.nets):
            if i < params_of:
                for name, p in net.named_parameters():
                    p.copy_(self.params[name][i])
            for name, buf in net.named_buffers():
                buf.copy_(self.buffers[name][i])


def leaves(params: dict[str, Tensor], rows: Rows) -> dict[str, Tensor]:
    """Rows of stacked parameters as fresh leaves that record gradients."""
    return {k: v[rows].detach().requires_grad_(True) for k, v in params.items()}


def apply_each(fn: Callable[..., Tensor], *stacked: Tensor) -> Tensor:
    """`fn` on each row of the stacked inputs (per-network losses)."""
    return vmap(fn)(*stacked)
