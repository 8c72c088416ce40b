"""Build the generator and discriminator that a :class:`~raygan.arch.genome.Genome` describes.

G: ``Linear(latent -> c0 * s0 * s0)`` reshaped to a ``c0 x s0 x s0`` map, where
``s0 = H / 2**(number of stride-2 G blocks)``, then G's blocks (ConvTranspose -> BN -> act;
stride 2 doubles the side exactly, stride 1 keeps it), then a 3x3 convolution to C channels
and tanh. D: its conv blocks (Conv -> BN -> act; padding ``(k - 1) // 2``, so stride 2 halves
the side rounding up and stride 1 keeps it, minus one for even kernels), flatten, its linear
blocks, and a linear logit. Like raygan's other discriminators, D returns raw logits of shape
``(B,)`` and exposes ``features(x)``, the input of its logit layer.

Parameter names follow the block's position on its side: ``blocks.<i>.layer.weight``,
``blocks.<i>.bn.running_mean``, and ``head.<j>....`` for D's linear blocks (``j`` counted from
the first linear block), plus ``project`` (G), ``to_image`` (G) and ``logit`` (D). So a mutation
leaves the names of every block before the changed position unchanged, and
:func:`~raygan.arch.variation.inherit_state` keeps their weights; blocks after an added or
removed block shift by one and keep theirs only where the shapes still agree.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from raygan.arch.genome import Block, Genome
from raygan.core.init import init_dcgan_weights

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "prelu": nn.PReLU,
    "leaky_relu": nn.LeakyReLU,
    "relu": nn.ReLU,
    "elu": nn.ELU,
}


def _activation(name: str) -> nn.Module:
    # 0.2 is the DCGAN slope; the others keep torch's defaults
    return nn.LeakyReLU(0.2) if name == "leaky_relu" else _ACTIVATIONS[name]()


def _image_shape(data_shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels, side) of a square image shape; ValueError otherwise."""
    if len(data_shape) != 3 or data_shape[1] != data_shape[2] or min(data_shape) < 1:
        raise ValueError(f"architecture genomes need square images (C, H, H), got {data_shape}")
    return data_shape[0], data_shape[1]


def _d_side(side: int, block: Block) -> int:
    """Side of D's feature map after one conv block (padding (k - 1) // 2)."""
    pad = (block.kernel - 1) // 2
    return (side + 2 * pad - block.kernel) // block.stride + 1


def infeasibility(genome: Genome, data_shape: tuple[int, ...]) -> str | None:
    """Why ``genome`` cannot be built for ``data_shape`` (one line), or None when it can."""
    _, side = _image_shape(data_shape)
    ups = sum(b.stride == 2 for b in genome.g_blocks)
    if side % 2**ups:
        return f"G has {ups} stride-2 blocks but side {side} is not divisible by 2**{ups}"
    d_side = side
    for i, b in enumerate(genome.d_convs):
        d_side = _d_side(d_side, b)
        if d_side < 1:
            return f"D conv block {i} (kernel {b.kernel}, stride {b.stride}) shrinks the map to 0"
    return None


def _conv_block(block: Block, in_channels: int, transposed: bool) -> nn.Sequential:
    k, s = block.kernel, block.stride
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    bias = block.bn is None  # batch norm's shift makes a bias redundant
    if not transposed:
        layers["layer"] = nn.Conv2d(in_channels, block.width, k, s, (k - 1) // 2, bias=bias)
    elif s == 2:
        # out = 2 * in - 2 - 2 * pad + k + output_padding = 2 * in for every k
        pad, extra = ((k - 2) // 2, 0) if k % 2 == 0 else ((k - 1) // 2, 1)
        layers["layer"] = nn.ConvTranspose2d(in_channels, block.width, k, 2, pad, extra, bias=bias)
    else:
        pad = (k - 1) // 2
        layers["layer"] = nn.ConvTranspose2d(in_channels, block.width, k, 1, pad, bias=bias)
        if k % 2 == 0:
            # an even kernel cannot keep the side with symmetric padding: it grows by one, and
            # negative padding crops that row and column
            layers["crop"] = nn.ZeroPad2d((0, -1, 0, -1))
    if block.bn is not None:
        layers["bn"] = nn.BatchNorm2d(block.width, momentum=block.bn)
    layers["act"] = _activation(block.activation)
    return nn.Sequential(layers)


def _linear_block(block: Block, in_features: int) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        layer=nn.Linear(in_features, block.width, bias=block.bn is None)
    )
    if block.bn is not None:
        layers["bn"] = nn.BatchNorm1d(block.width, momentum=block.bn)
    layers["act"] = _activation(block.activation)
    return nn.Sequential(layers)


class ArchGenerator(nn.Module):
    """Latent vector -> image, as G's part of a genome describes.

    Args:
        genome: The architecture.
        latent_dim: Size of the input noise vector.
        data_shape: Output ``(C, H, H)``; must be feasible for the genome.
    """

    def __init__(self, genome: Genome, latent_dim: int, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        channels, side = _image_shape(data_shape)
        self.latent_dim = latent_dim
        self.base = side // 2 ** sum(b.stride == 2 for b in genome.g_blocks)
        self.base_channels = genome.g_channels
        self.project = nn.Linear(latent_dim, genome.g_channels * self.base**2)
        blocks, width = [], genome.g_channels
        for b in genome.g_blocks:
            blocks.append(_conv_block(b, width, transposed=True))
            width = b.width
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Conv2d(width, channels, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        """Map noise ``(B, latent_dim)`` to images ``(B, C, H, W)`` in ``[-1, 1]``."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected z of shape (B, {self.latent_dim}), got {list(z.shape)}")
        h = self.project(z).view(len(z), self.base_channels, self.base, self.base)
        return torch.tanh(self.to_image(self.blocks(h)))


class ArchDiscriminator(nn.Module):
    """Image -> logit, as D's part of a genome describes.

    Args:
        genome: The architecture.
        data_shape: Input ``(C, H, H)``; must be feasible for the genome.
    """

    def __init__(self, genome: Genome, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        channels, side = _image_shape(data_shape)
        self.image_shape = tuple(data_shape)
        blocks = []
        for b in genome.d_convs:
            blocks.append(_conv_block(b, channels, transposed=False))
            channels, side = b.width, _d_side(side, b)
        self.blocks = nn.Sequential(*blocks)
        head, features = [], channels * side * side
        for b in genome.d_linears:
            head.append(_linear_block(b, features))
            features = b.width
        self.head = nn.Sequential(*head)
        self.logit = nn.Linear(features, 1)

    def features(self, x: Tensor) -> Tensor:
        """The penultimate activations (the input of the logit layer): ``(B, F)``."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            shape = ", ".join(map(str, self.image_shape))
            raise ValueError(f"expected images of shape (B, {shape}), got {tuple(x.shape)}")
        return self.head(self.blocks(x).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        """Map images ``(B, C, H, W)`` to raw logits of shape ``(B,)``."""
        return self.logit(self.features(x)).squeeze(1)


def _construct(
    genome: Genome, latent_dim: int, data_shape: tuple[int, ...]
) -> tuple[ArchGenerator, ArchDiscriminator]:
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be positive, got {latent_dim}")
    problem = infeasibility(genome, data_shape)
    if problem is not None:
        raise ValueError(problem)
    return ArchGenerator(genome, latent_dim, data_shape), ArchDiscriminator(genome, data_shape)


def build(
    genome: Genome, latent_dim: int, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[ArchGenerator, ArchDiscriminator]:
    """Freshly initialised ``(G, D)`` for ``genome``.

    Args:
        genome: The architecture.
        latent_dim: Size of G's input noise.
        data_shape: ``(C, H, H)`` of one image.
        generator: The only source of the initial weights (G's are drawn first, then D's);
            the networks are made on its device.

    Raises:
        ValueError: One line, when the genome cannot produce images of ``data_shape``.
    """
    # made on the meta device and filled here: torch's own initialisation would draw from the
    # global RNG, and this way the only randomness is `generator`'s
    with torch.device("meta"):
        g, d = _construct(genome, latent_dim, data_shape)
    for net in (g, d):
        net.to_empty(device=generator.device)
        init_dcgan_weights(net, generator)
    return g, d


def parameter_count(
    genome: Genome, latent_dim: int, data_shape: tuple[int, ...]
) -> tuple[int, int]:
    """``(G parameters, D parameters)`` of the networks :func:`build` would make."""
    # the meta device allocates no storage, so counting a too-large candidate costs nothing
    with torch.device("meta"):
        g, d = _construct(genome, latent_dim, data_shape)
    return sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters())
