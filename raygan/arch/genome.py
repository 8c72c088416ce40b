"""Architecture genome of a GAN (Neurales / COEGAN style): layer blocks and optimizers.

The limits of a search and the check against them are `raygan.arch.bounds`'s.

A :class:`Genome` describes both networks of one GAN: G's transposed-convolution blocks, D's
convolution blocks followed by optional linear blocks, G's starting channel count and one
optimizer setting per side. It is a frozen value: variation operators return new genomes.

``Genome.encode()`` gives a compact string that round-trips through :meth:`Genome.decode`::

    G64=c32k4s2bn0.1.prelu+c16k3s1.relu/D=c16k4s2.lrelu+l64bn0.1.elu/Gopt=adam.lr0.0002.m0.5/Dopt=rmsprop.lr0.0001.m0.0

Sections are separated by ``/``, blocks by ``+``. A block is ``c`` (convolution; transposed on
the G side) or ``l`` (linear, D's head only), its width, for convolutions ``k<kernel>s<stride>``,
``bn<momentum>`` when it has batch norm, and ``.<activation>``. Floats are written with
``repr`` so that decoding gives back the exact value. The string has no spaces, quotes,
``:``, ``#`` or brackets, so it is a plain YAML scalar and a plain Ray Tune config value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Activation = Literal["prelu", "leaky_relu", "relu", "elu"]
ACTIVATIONS: tuple[Activation, ...] = ("prelu", "leaky_relu", "relu", "elu")
OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd")
# leaky_relu is written "lrelu" to keep genome strings short
_ACT_CODE: dict[str, str] = {"prelu": "prelu", "leaky_relu": "lrelu", "relu": "relu", "elu": "elu"}
_CODE_ACT: dict[str, str] = {v: k for k, v in _ACT_CODE.items()}

_FLOAT = r"[0-9.eE+-]+"
_BLOCK_RE = re.compile(
    rf"^(?P<kind>[cl])(?P<width>\d+)(?:k(?P<kernel>\d+)s(?P<stride>\d+))?"
    rf"(?:bn(?P<bn>{_FLOAT}))?\.(?P<act>[a-z]+)$"
)
_OPT_RE = re.compile(rf"^(?P<name>[a-z]+)\.lr(?P<lr>{_FLOAT})\.m(?P<m>{_FLOAT})$")
_GENOME_RE = re.compile(
    r"^G(?P<c0>\d+)=(?P<g>[^/]*)/D=(?P<d>[^/]*)/Gopt=(?P<go>[^/]+)/Dopt=(?P<do>[^/]+)$"
)


@dataclass(frozen=True)
class Block:
    """One layer block: convolution (or linear) -> optional batch norm -> activation.

    Args:
        kind: ``"conv"`` (a transposed convolution on the G side) or ``"linear"`` (D's head).
        width: Output channels (conv) or output features (linear).
        kernel: Kernel size of a convolution; 0 for a linear block.
        stride: 1 keeps the side, 2 halves it (D) or doubles it (G); 0 for a linear block.
        bn: Batch-norm momentum, or None for no batch norm.
        activation: One of :data:`ACTIVATIONS`.
    """

    kind: Literal["conv", "linear"]
    width: int
    kernel: int = 0
    stride: int = 0
    bn: float | None = None
    activation: Activation = "prelu"

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "linear"):
            raise ValueError(f"Block.kind must be 'conv' or 'linear', got {self.kind!r}")
        if self.width < 1:
            raise ValueError(f"Block.width must be positive, got {self.width}")
        if self.kind == "conv" and (self.kernel < 1 or self.stride not in (1, 2)):
            raise ValueError(
                f"conv Block needs kernel >= 1 and stride 1 or 2, got {self.kernel}, {self.stride}"
            )
        if self.kind == "linear" and (self.kernel, self.stride) != (0, 0):
            raise ValueError(
                f"linear Block takes no kernel/stride (0, 0), got {self.kernel}, {self.stride}"
            )
        if self.bn is not None and not (0.0 < self.bn <= 1.0):
            raise ValueError(f"Block.bn momentum must be in (0, 1] or None, got {self.bn}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"Block.activation must be one of {ACTIVATIONS}, got {self.activation!r}"
            )

    def encode(self) -> str:
        """The block's part of :meth:`Genome.encode`, e.g. ``c32k4s2bn0.1.prelu``."""
        shape = f"k{self.kernel}s{self.stride}" if self.kind == "conv" else ""
        bn = "" if self.bn is None else f"bn{self.bn!r}"
        return f"{self.kind[0]}{self.width}{shape}{bn}.{_ACT_CODE[self.activation]}"

    @staticmethod
    def decode(text: str) -> Block:
        """Inverse of :meth:`encode`; raises ValueError on malformed text."""
        m = _BLOCK_RE.match(text)
        if m is None or m["act"] not in _CODE_ACT:
            raise ValueError(f"malformed block {text!r}")
        conv = m["kind"] == "c"
        if conv != (m["kernel"] is not None):
            raise ValueError(f"malformed block {text!r}: kernel/stride go with conv blocks only")
        return Block(
            kind="conv" if conv else "linear",
            width=int(m["width"]),
            kernel=int(m["kernel"]) if conv else 0,
            stride=int(m["stride"]) if conv else 0,
            bn=None if m["bn"] is None else _float(m["bn"], text),
            activation=_CODE_ACT[m["act"]],  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Optimizer:
    """One network's optimizer.

    Args:
        name: One of :data:`OPTIMIZERS`.
        lr: Learning rate.
        momentum: Adam's beta1, or the momentum of RMSprop and SGD.
    """

    name: str = "adam"
    lr: float = 2e-4
    momentum: float = 0.5

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"Optimizer.name must be one of {OPTIMIZERS}, got {self.name!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"Optimizer.lr must be positive and finite, got {self.lr}")
        if not (0.0 <= self.momentum < 1.0):
            raise ValueError(f"Optimizer.momentum must be in [0, 1), got {self.momentum}")

    def encode(self) -> str:
        """The optimizer's part of :meth:`Genome.encode`, e.g. ``adam.lr0.0002.m0.5``."""
        return f"{self.name}.lr{self.lr!r}.m{self.momentum!r}"

    @staticmethod
    def decode(text: str) -> Optimizer:
        """Inverse of :meth:`encode`; raises ValueError on malformed text."""
        m = _OPT_RE.match(text)
        if m is None:
            raise ValueError(f"malformed optimizer {text!r}")
        return Optimizer(m["name"], _float(m["lr"], text), _float(m["m"], text))


@dataclass(frozen=True)
class Genome:
    """Both networks of one GAN.

    Args:
        g_channels: Channels of G's base feature map (the output of its latent projection).
        g_blocks: G's conv blocks, input to output; their stride-2 count sets the base side.
        d_blocks: D's conv blocks, then its linear blocks (all convs come first).
        g_opt: G's optimizer.
        d_opt: D's optimizer.
    """

    g_channels: int
    g_blocks: tuple[Block, ...]
    d_blocks: tuple[Block, ...]
    g_opt: Optimizer = Optimizer()
    d_opt: Optimizer = Optimizer()

    def __post_init__(self) -> None:
        if self.g_channels < 1:
            raise ValueError(f"Genome.g_channels must be positive, got {self.g_channels}")
        if any(b.kind != "conv" for b in self.g_blocks):
            raise ValueError("Genome.g_blocks must all be conv blocks")
        kinds = [b.kind for b in self.d_blocks]
        if kinds != sorted(kinds):  # "conv" < "linear": convs first, then the linear head
            raise ValueError("Genome.d_blocks must list every conv block before the linear ones")

    @property
    def d_convs(self) -> tuple[Block, ...]:
        """D's convolution blocks."""
        return tuple(b for b in self.d_blocks if b.kind == "conv")

    @property
    def d_linears(self) -> tuple[Block, ...]:
        """D's linear head blocks."""
        return tuple(b for b in self.d_blocks if b.kind == "linear")

    def encode(self) -> str:
        """A compact, human-readable string that :meth:`decode` turns back into this genome."""
        g = "+".join(b.encode() for b in self.g_blocks)
        d = "+".join(b.encode() for b in self.d_blocks)
        return f"G{self.g_channels}={g}/D={d}/Gopt={self.g_opt.encode()}/Dopt={self.d_opt.encode()}"

    @staticmethod
    def decode(text: str) -> Genome:
        """Parse :meth:`encode`'s output.

        Raises:
            ValueError: One line naming the malformed part.
        """
        m = _GENOME_RE.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise ValueError(
                f"malformed genome string {_short(text)}: "
                "expected G<channels>=<blocks>/D=<blocks>/Gopt=<opt>/Dopt=<opt>"
            )
        try:
            return Genome(
                g_channels=int(m["c0"]),
                g_blocks=tuple(Block.decode(s) for s in m["g"].split("+") if s),
                d_blocks=tuple(Block.decode(s) for s in m["d"].split("+") if s),
                g_opt=Optimizer.decode(m["go"]),
                d_opt=Optimizer.decode(m["do"]),
            )
        except ValueError as err:
            raise ValueError(f"malformed genome string {_short(text)}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, numbers, strings, None) for JSON/YAML."""
        out = asdict(self)
        out["g_blocks"] = [asdict(b) for b in self.g_blocks]
        out["d_blocks"] = [asdict(b) for b in self.d_blocks]
        return out

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Genome:
        """Inverse of :meth:`to_dict`; raises ValueError on missing or unknown keys."""
        names = {f.name for f in fields(Genome)}
        if set(data) - names or {"g_channels", "g_blocks", "d_blocks"} - set(data):
            raise ValueError(f"genome dict needs keys {sorted(names)}, got {sorted(data)}")
        try:
            return Genome(
                g_channels=int(data["g_channels"]),
                g_blocks=tuple(Block(**b) for b in data["g_blocks"]),
                d_blocks=tuple(Block(**b) for b in data["d_blocks"]),
                g_opt=Optimizer(**data.get("g_opt", {})),
                d_opt=Optimizer(**data.get("d_opt", {})),
            )
        except TypeError as err:
            raise ValueError(f"malformed genome dict: {err}") from None


def _float(text: str, context: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"bad number {text!r} in {context!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {text!r} in {context!r}")
    return value


def _short(text: object) -> str:
    """``repr`` of garbage, cut to 80 characters: error messages stay on one short line."""
    s = repr(text)
    return s if len(s) <= 80 else s[:77] + "..."
