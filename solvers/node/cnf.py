"""Continuous normalizing flows (FFJORD-style) for any integrator of this package.

A CNF block integrates the augmented state s = [z, ℓ] with dz/dt = f(z, t; θ) and
dℓ/dt = −tr(∂f/∂z) from 0 to its end time T = σ² (σ trainable when ``train_T``). With
z(0) = x and ℓ(0) = 0, log p(x) = log 𝒩(z(T); 0, I) − ℓ(T), so the negative log-likelihood
in nats is NLL(x) = −log 𝒩(z(T)) + ℓ(T). Blocks stack; their ℓ add up.

The divergence is exact (one autograd pass per dimension) or Hutchinson's estimate
εᵀ(∂f/∂z)ε with one Gaussian probe ε per solve. The state is one tensor N × (d+1), so
every integrator (and torchdiffeq's adjoint) handles it unchanged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from .integrators import Integrator

NONLINEARITIES = {"tanh": nn.Tanh, "softplus": nn.Softplus, "relu": nn.ReLU, "elu": nn.ELU}
DIVERGENCES = ("exact", "hutchinson")


class ConcatSquashLinear(nn.Module):
    """FFJORD's time-dependent layer: Linear(x) · sigmoid(a·t + b) + c·t."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.layer = nn.Linear(d_in, d_out)
        self.gate = nn.Linear(1, d_out)
        self.shift = nn.Linear(1, d_out, bias=False)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tt = t.reshape(1, 1).to(x)
        return self.layer(x) * torch.sigmoid(self.gate(tt)) + self.shift(tt)


class ODEnet(nn.Module):
    """f(z, t): concat-squash layers of the given hidden widths with a nonlinearity between
    them (none after the last)."""

    def __init__(self, dim: int, hidden: Sequence[int], nonlinearity: str = "tanh"):
        super().__init__()
        widths = [dim, *hidden, dim]
        self.layers = nn.ModuleList(ConcatSquashLinear(a, b) for a, b in
                                    itertools.pairwise(widths))
        self.act = NONLINEARITIES[nonlinearity]()

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            z = layer(t, z)
            if i < len(self.layers) - 1:
                z = self.act(z)
        return z


class CNFDynamics(nn.Module):
    """The augmented right-hand side (f, −tr ∂f/∂z) of one block."""

    def __init__(self, net: ODEnet, divergence: str = "exact"):
        super().__init__()
        self.net, self.divergence = net, divergence
        self.noise: torch.Tensor | None = None  # Hutchinson probe, set per solve

    def forward(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        # Second derivatives are needed only when the caller differentiates (Disc-Opt's
        # backprop, the adjoint's vector-Jacobian products); not in a no_grad evaluation.
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            z = s[:, :-1]
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            dz = self.net(t, z)
            div = self._divergence(dz, z, create_graph)
        return torch.cat([dz, -div[:, None]], dim=1)

    def _divergence(self, dz: torch.Tensor, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
        if self.divergence == "hutchinson":
            eps = self.noise
            (g,) = torch.autograd.grad(dz, z, eps, create_graph=create_graph)
            return (g * eps).sum(dim=1)
        div = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for i in range(z.shape[1]):
            (g,) = torch.autograd.grad(dz[:, i].sum(), z, create_graph=create_graph,
                                       retain_graph=True)
            div = div + g[:, i]
        return div


class CNFBlock(nn.Module):
    """One CNF: its dynamics and its end time T = σ²."""

    def __init__(self, dim: int, hidden: Sequence[int], nonlinearity: str, T: float,
                 train_T: bool, divergence: str):
        super().__init__()
        self.dynamics = CNFDynamics(ODEnet(dim, hidden, nonlinearity), divergence)
        self.sqrt_T = nn.Parameter(torch.tensor(math.sqrt(T)), requires_grad=train_T)

    @property
    def T(self) -> torch.Tensor:
        return self.sqrt_T**2

    def times(self, reverse: bool = False) -> torch.Tensor:
        t = torch.stack([torch.zeros_like(self.T), self.T])
        return t.flip(0) if reverse else t


class CNF(nn.Module):
    """A stack of CNF blocks on R^dim (all parameters, T included, trained together)."""

    def __init__(self, dim: int, hidden: Sequence[int], nonlinearity: str = "tanh",
                 num_blocks: int = 1, T: float = 0.5, train_T: bool = True,
                 divergence: str = "exact"):
        super().__init__()
        if divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {DIVERGENCES}, not {divergence!r}")
        self.dim = dim
        self.blocks = nn.ModuleList(CNFBlock(dim, hidden, nonlinearity, T, train_T, divergence)
                                    for _ in range(num_blocks))

    def set_divergence(self, divergence: str) -> None:
        """Switch every block to ``exact`` or ``hutchinson`` (e.g. exact for test NLL)."""
        for block in self.blocks:
            block.dynamics.divergence = divergence

    def forward_flow(self, solve: Integrator, x: torch.Tensor,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
        """(z(T), ℓ(T) summed over blocks) for data x (N × dim)."""
        z, delta = x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for block in self.blocks:
            dyn = block.dynamics
            if dyn.divergence == "hutchinson":
                dyn.noise = torch.randn(z.shape, generator=generator, dtype=z.dtype,
                                        device="cpu" if generator is not None else z.device
                                        ).to(z.device)
            s0 = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)
            sT = solve(dyn, s0, block.times())[-1]
            z, delta = sT[:, :-1], delta + sT[:, -1]
        return z, delta

    def nll(self, solve: Integrator, x: torch.Tensor,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean negative log-likelihood of x in nats."""
        z, delta = self.forward_flow(solve, x, generator)
        return (-standard_normal_logpdf(z) + delta).mean()

    def inverse(self, solve: Integrator, z: torch.Tensor) -> torch.Tensor:
        """x = f⁻¹(z): every block integrated backward from T to 0 (z only)."""
        for block in reversed(self.blocks):
            net = block.dynamics.net
            z = solve(net, z, block.times(reverse=True))[-1]
        return z


def standard_normal_logpdf(z: torch.Tensor) -> torch.Tensor:
    """log 𝒩(z; 0, I) per row."""
    return -0.5 * (z**2).sum(dim=1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def inverse_error(model: CNF, solve: Integrator, x: torch.Tensor) -> float:
    """‖f⁻¹(f(x)) − x‖_F / N (the paper's inverse error), with ``solve`` both ways."""
    with torch.no_grad():
        z, _ = model.forward_flow(solve, x)
        back = model.inverse(solve, z)
    return float(torch.linalg.norm(back - x)) / x.shape[0]
