"""Radial basis: Chebyshev polynomials times a smooth cutoff (TorchScript-able).

All distances in Å. The cutoff function f_c(d) = (1 - (d/r_c)^2)^3 has value,
first and second derivative zero at d = r_c, so energies, forces and their
derivatives are continuous when a neighbour crosses the cutoff.

The polynomials' argument maps [r_min, r_c] onto [-1, 1], so all ``n_basis`` functions resolve
the range where neighbours are (Chebyshev polynomials resolve finest near the ends). Below
``r_min`` the same polynomials continue smoothly (they grow, and the model extrapolates there).
"""

import torch


def cutoff_function(d: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Smooth (C²) cutoff: ``(1 - (d/r_c)²)³`` for ``d < r_c``, exactly 0 beyond."""
    x2 = (d / cutoff) ** 2
    inside = x2 < 1.0
    one_minus = torch.where(inside, 1.0 - x2, torch.zeros_like(x2))
    return one_minus * one_minus * one_minus


def chebyshev_basis(d: torch.Tensor, cutoff: float, n_basis: int, r_min: float) -> torch.Tensor:
    """``[E, n_basis]`` values ``T_k(t) f_c(d)`` with ``t = 2 (d - r_min)/(r_c - r_min) - 1``."""
    t = 2.0 * (d - r_min) / (cutoff - r_min) - 1.0
    fc = cutoff_function(d, cutoff)
    terms = [torch.ones_like(t), t]
    for _ in range(2, n_basis):
        terms.append(2.0 * t * terms[-1] - terms[-2])
    return torch.stack(terms[:n_basis], dim=1) * fc.unsqueeze(1)
