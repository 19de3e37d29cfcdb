"""The feature extractor of the peaks and CDR experiments (Meganet's ``ResNNrk4``;
docs/papers.md): an opening dense layer, then a ResNet whose layers are RK4 steps of
dx/dt = tanh(K(t) x + b(t)) with antisymmetric K = Θ − Θᵀ − γI (stable forward
propagation), and the smoothness regularizer of the paper.

With ``depth`` steps of size h = T/depth, layer j uses (Θ_j, b_j) for all four stages.
R(θ) = ‖θ_open‖² + h Σ_j ‖(θ_{j+1} − θ_j)/h‖²: the opening weights plus a time-derivative
penalty on the ResNet weights, so the learned dynamics vary smoothly with depth.
"""

from __future__ import annotations

import torch
from torch import nn

GAMMA = 1e-4  # the −γI shift of the antisymmetric kernel


class AntisymmetricResNet(nn.Module):
    """y (N × d_in) → features (N × width)."""

    def __init__(self, d_in: int, width: int, depth: int = 8, final_time: float = 5.0,
                 open_bias: bool = False, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.h = final_time / depth

        def init(*shape: int, scale: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=generator, dtype=dtype) * scale)

        self.K_open = init(width, d_in, scale=1 / d_in**0.5)
        self.b_open = init(width, scale=0.1) if open_bias else None
        self.theta = init(depth, width, width, scale=1 / width**0.5)
        self.bias = init(depth, width, scale=0.1)

    def _f(self, j: int, x: torch.Tensor) -> torch.Tensor:
        K = self.theta[j] - self.theta[j].T - GAMMA * torch.eye(
            self.theta.shape[1], dtype=x.dtype, device=x.device)
        return torch.tanh(x @ K.T + self.bias[j])

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        x = y @ self.K_open.T
        if self.b_open is not None:
            x = x + self.b_open
        x, h = torch.tanh(x), self.h
        for j in range(self.theta.shape[0]):
            k1 = self._f(j, x)
            k2 = self._f(j, x + h / 2 * k1)
            k3 = self._f(j, x + h / 2 * k2)
            k4 = self._f(j, x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return x

    def regularizer(self) -> torch.Tensor:
        """R(θ) = ‖θ_open‖² + h Σ_j ‖(θ_{j+1} − θ_j)/h‖² (Θ and b of the ResNet)."""
        reg = (self.K_open**2).sum()
        if self.b_open is not None:
            reg = reg + (self.b_open**2).sum()
        for w in (self.theta, self.bias):
            reg = reg + ((w[1:] - w[:-1]) ** 2).sum() / self.h
        return reg
