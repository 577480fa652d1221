"""Critics f(x, y): networks that score every (x_i, y_j) pair of a batch, ``[K, dx], [K, dy] -> [K, K]``.

* ``separable``: f(x) . g(y) plus a(x) + b(y), two MLPs; K forward passes per side, so cheap in K and
  the default. The a(x) + b(y) terms let bounds that are not normalised per row (DV, NWJ, MINE) fit
  the parts of log p/q that depend on one variable only.
* ``bilinear``: x^T W y + x^T A x + y^T B y + c: exactly the family of log density ratios of jointly
  Gaussian data, and nothing else.
* ``concat``: an MLP on [x_i, y_j] for all K^2 pairs: the most flexible, K times the cost.
"""

from __future__ import annotations

import torch
from torch import nn

CRITICS = ("separable", "bilinear", "concat")


def mlp(dim_in: int, hidden: int, layers: int, dim_out: int) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden``, then a linear map to ``dim_out``."""
    modules: list[nn.Module] = []
    width = dim_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, dim_out))
    return nn.Sequential(*modules)


class SeparableCritic(nn.Module):
    """f(x) . g(y) + a(x) + b(y) with f, a from one MLP and g, b from another."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 256, layers: int = 2, embed_dim: int = 32):
        super().__init__()
        self.embed_dim = embed_dim
        self.net_x = mlp(dim_x, hidden, layers, embed_dim + 1)
        self.net_y = mlp(dim_y, hidden, layers, embed_dim + 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.net_x(x), self.net_y(y)
        e = self.embed_dim
        return fx[:, :e] @ fy[:, :e].T + fx[:, e:] + fy[:, e:].T


class BilinearCritic(nn.Module):
    """x^T W y + x^T A x + y^T B y + c: the log density ratio of any zero-mean Gaussian pair."""

    def __init__(self, dim_x: int, dim_y: int):
        super().__init__()
        self.cross = nn.Parameter(torch.zeros(dim_x, dim_y))
        self.quad_x = nn.Parameter(torch.zeros(dim_x, dim_x))
        self.quad_y = nn.Parameter(torch.zeros(dim_y, dim_y))
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        own_x = ((x @ self.quad_x) * x).sum(dim=1)
        own_y = ((y @ self.quad_y) * y).sum(dim=1)
        return x @ self.cross @ y.T + own_x[:, None] + own_y[None, :] + self.offset


class ConcatCritic(nn.Module):
    """An MLP on the concatenation [x_i, y_j], evaluated on all K^2 pairs of the batch."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.net = mlp(dim_x + dim_y, hidden, layers, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = x.shape[0]
        pairs = torch.cat([x[:, None, :].expand(k, k, -1), y[None, :, :].expand(k, k, -1)], dim=2)
        return self.net(pairs).squeeze(-1)


def make_critic(
    kind: str, dim_x: int, dim_y: int, hidden: int = 256, layers: int = 2, embed_dim: int = 32
) -> nn.Module:
    """Build a critic by name.

    Raises:
        ValueError: for an unknown kind or non-positive sizes.
    """
    if kind not in CRITICS:
        raise ValueError(f"critic must be one of {CRITICS}, got {kind!r}")
    for name, value in (("hidden", hidden), ("embed_dim", embed_dim)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    if layers < 0:
        raise ValueError(f"layers must be >= 0, got {layers}")
    if kind == "separable":
        return SeparableCritic(dim_x, dim_y, hidden, layers, embed_dim)
    if kind == "bilinear":
        return BilinearCritic(dim_x, dim_y)
    return ConcatCritic(dim_x, dim_y, hidden, layers)
