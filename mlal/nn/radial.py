"""Radial basis: Chebyshev polynomials times a smooth cutoff (TorchScript-able).

All distances in Å. The cutoff function f_c(d) = (1 - (d/r_c)^2)^3 has value,
first and second derivative zero at d = r_c, so energies, forces and their
derivatives are continuous when a neighbour crosses the cutoff.

The polynomials' argument maps [r_min, r_c] onto [-1, 1], so all ``n_basis`` functions resolve
the range where neighbours are (Chebyshev polynomials resolve finest near the ends). Below
``r_min`` the argument saturates: ``x = (d - r_min)/(r_c - r_min)`` becomes ``ε tanh(x/ε)``,
which matches ``x`` to second order at ``r_min`` (value, slope 1, curvature 0: energies stay C²)
and never goes below ``-ε``. So the functions stay within a few times their range and flatten
within about ``ε (r_c - r_min)`` (0.07 Å for r_c 5, r_min 1.5) under r_min: a model knows
nothing there, but its energy and forces stay bounded instead of growing like ``T_k`` outside
[-1, 1] (which sent a Cu dimer at 1.0 Å to -2·10⁵ eV). With ``r_min`` 0 nothing changes.
"""

import torch


def cutoff_function(d: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Smooth (C²) cutoff: ``(1 - (d/r_c)²)³`` for ``d < r_c``, exactly 0 beyond."""
    x2 = (d / cutoff) ** 2
    inside = x2 < 1.0
    one_minus = torch.where(inside, 1.0 - x2, torch.zeros_like(x2))
    return one_minus * one_minus * one_minus


def chebyshev_basis(d: torch.Tensor, cutoff: float, n_basis: int, r_min: float) -> torch.Tensor:
    """``[E, n_basis]`` values ``T_k(t) f_c(d)`` with ``t = 2 x - 1``, ``x = (d - r_min)/(r_c - r_min)``
    (saturating below r_min, see the module docstring)."""
    x = (d - r_min) / (cutoff - r_min)
    if r_min > 0.0:
        eps = 0.02      # how far (in units of r_c - r_min) the argument may go under r_min
        x = torch.where(x < 0.0, eps * torch.tanh(x / eps), x)
    t = 2.0 * x - 1.0
    fc = cutoff_function(d, cutoff)
    terms = [torch.ones_like(t), t]
    for _ in range(2, n_basis):
        terms.append(2.0 * t * terms[-1] - terms[-2])
    return torch.stack(terms[:n_basis], dim=1) * fc.unsqueeze(1)
