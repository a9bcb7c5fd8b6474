"""The mlal ensemble potential: moment-tensor descriptor, shared latent layer, K heads.

Energy model (units: eV, Å)::

    E_k = Σ_i [ e0[s_i] + scale · head_k(h_i) ],   h_i = silu(W · norm(D_i) + b[s_i])

``D_i`` are rotation-invariant contractions of moment tensors
``M_c^(ν)(i) = Σ_j R_c(r_ij, s_i, s_j) û_ij^{⊗ν}`` (ν = 0..3, and 4 when asked) built from a
Chebyshev radial basis with learned, species-pair-dependent channel weights.
Everything up to the latent ``h_i`` is shared by the K members, so an ensemble
costs one descriptor plus K small MLP heads. The latent ``h_i`` is also the
per-atom feature vector for the D-optimality grade γ (MaxVol active set).

The module is TorchScript-compatible; :func:`mlal.deploy.export_model` scripts
it and writes the file described in ``docs/model_format.md``.
"""

import math
from typing import Dict, List, Tuple

import torch
from torch import nn

from .radial import chebyshev_basis


def _triu(n: int) -> Tuple[List[int], List[int]]:
    rows: List[int] = []
    cols: List[int] = []
    for a in range(n):
        for b in range(a, n):
            rows.append(a)
            cols.append(b)
    return rows, cols


def padded_slots(centre: torch.Tensor, n: int) -> Tuple[torch.Tensor, int]:
    """Row of each edge in a ``[n * n_max]`` per-centre padded layout, and ``n_max``.

    ``centre`` (the edges' centre atoms) must be sorted.
    """
    n_edges = centre.shape[0]
    counts = torch.bincount(centre, minlength=n)
    n_max = int(counts.max()) if n_edges > 0 else 1
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n_edges, device=centre.device) - first.index_select(0, centre)
    return centre * n_max + slot, n_max


def pad_edges(x: torch.Tensor, flat: torch.Tensor, n: int, n_max: int) -> torch.Tensor:
    """Per-edge rows ``x`` [E, F] laid out per centre, ``[n, n_max, F]``, zeros in the padding."""
    out = torch.zeros(n * n_max, x.shape[1], dtype=x.dtype, device=x.device)
    return out.index_copy(0, flat, x).view(n, n_max, x.shape[1])


class EnsembleModel(nn.Module):
    """Ensemble of K atomistic energy models sharing one descriptor.

    Args:
        species: chemical symbols, in model order.
        cutoff: radial cutoff r_c (Å).
        n_members: ensemble size K ≥ 1.
        n_basis: number of Chebyshev radial functions.
        r_min: (Å) where the radial functions' range starts: they span [r_min, r_c] (0: the
            whole sphere). Below it they continue smoothly; set it under the data's shortest
            distance (:mod:`mlal.nn.radial`).
        channels: radial channels for moment ranks 0, 1, 2, 3 (and optionally 4: a fifth
            count adds rank-4 moments, angular resolution up to l = 4, and their
            contractions ``M4_a :: M4_b``).
        latent: width of the shared latent layer (γ features).
        hidden: width of each member's hidden layer.
        latent_layers: shared layers of width ``latent`` (≥ 1); each one after the first is
            residual, ``h ← h + silu(h W_l + b_l)``, and γ uses the last.
    """

    format_name: str
    format_version: int
    cutoff: float
    n_members: int
    n_species: int
    dtype_name: str
    metadata_json: str
    species: List[str]

    def __init__(
        self,
        species: List[str],
        cutoff: float = 5.0,
        n_members: int = 5,
        n_basis: int = 8,
        channels: Tuple[int, int, int, int] = (12, 6, 6, 3),
        latent: int = 48,
        hidden: int = 32,
        seed: int = 0,
        latent_layers: int = 1,
        r_min: float = 0.0,
    ) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        if len(set(species)) != len(species) or not species:
            raise ValueError(f"species must be a non-empty list of distinct symbols, got {species}")
        if latent_layers < 1:
            raise ValueError(f"latent_layers must be >= 1, got {latent_layers}")
        self.format_name = "mlal-ensemble"
        self.format_version = 1
        self.species = list(species)
        self.n_species = len(species)
        self.cutoff = float(cutoff)
        self.n_members = int(n_members)
        self.n_basis = int(n_basis)
        if not 0.0 <= r_min < cutoff:
            raise ValueError(f"r_min must be in [0, cutoff), got {r_min} (cutoff {cutoff})")
        self.r_min = float(r_min)
        if len(channels) not in (4, 5) or min(channels) < 1:
            raise ValueError(f"channels must be 4 or 5 positive integers (ranks 0..3 or 0..4), got {channels}")
        self.c0, self.c1, self.c2, self.c3 = (int(c) for c in channels[:4])
        self.c4 = int(channels[4]) if len(channels) == 5 else 0
        self.n_channels = self.c0 + self.c1 + self.c2 + self.c3 + self.c4
        self.n_angular = 35 if self.c4 > 0 else 20
        self.latent_dim = int(latent)
        self.hidden_dim = int(hidden)
        self.dtype_name = "float64"
        self.metadata_json = "{}"
        self.hyperparameters = {
            "species": list(species), "cutoff": float(cutoff), "n_members": int(n_members),
            "n_basis": int(n_basis), "channels": [int(c) for c in channels],
            "latent": int(latent), "hidden": int(hidden), "seed": int(seed),
            "latent_layers": int(latent_layers), "r_min": float(r_min),
        }

        r1, c1 = _triu(self.c1)
        r2, c2 = _triu(self.c2)
        r3, c3 = _triu(self.c3)
        r4, c4 = _triu(self.c4)
        self.register_buffer("triu1_r", torch.tensor(r1, dtype=torch.long))
        self.register_buffer("triu1_c", torch.tensor(c1, dtype=torch.long))
        self.register_buffer("triu2_r", torch.tensor(r2, dtype=torch.long))
        self.register_buffer("triu2_c", torch.tensor(c2, dtype=torch.long))
        self.register_buffer("triu3_r", torch.tensor(r3, dtype=torch.long))
        self.register_buffer("triu3_c", torch.tensor(c3, dtype=torch.long))
        self.register_buffer("triu4_r", torch.tensor(r4, dtype=torch.long))
        self.register_buffer("triu4_c", torch.tensor(c4, dtype=torch.long))
        # multiplicities of the unique components of symmetric rank-2, rank-3 and rank-4 tensors
        self.register_buffer("sym2_weight", torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 2.0]))
        self.register_buffer("sym3_weight", torch.tensor([1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 6.0]))
        self.register_buffer("sym4_weight", torch.tensor(
            [1.0, 1.0, 1.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 6.0, 6.0, 6.0, 12.0, 12.0, 12.0]))
        # rank-2 unique components (xx yy zz yz xz xy) to the 9 entries of the symmetric 3x3 matrix
        self.register_buffer("sym2_full", torch.tensor([0, 5, 4, 5, 1, 3, 4, 3, 2]), persistent=False)
        self.register_buffer("species_onehot", torch.eye(len(species)), persistent=False)
        # rank-2 unique components as products u_a u_b, rank 3 as (rank-2 component) * u_c
        self.register_buffer("rank2_a", torch.tensor([0, 1, 2, 1, 0, 0]), persistent=False)
        self.register_buffer("rank2_b", torch.tensor([0, 1, 2, 2, 2, 1]), persistent=False)
        self.register_buffer("rank3_a", torch.tensor([0, 1, 2, 0, 0, 1, 1, 2, 2, 5]), persistent=False)
        self.register_buffer("rank3_b", torch.tensor([0, 1, 2, 1, 2, 0, 2, 0, 1, 2]), persistent=False)
        # rank 4 as products of two rank-2 components:
        # xxxx yyyy zzzz xxxy xxxz yyyx yyyz zzzx zzzy xxyy xxzz yyzz xxyz yyxz zzxy
        self.register_buffer("rank4_a", torch.tensor([0, 1, 2, 0, 0, 1, 1, 2, 2, 0, 0, 1, 0, 1, 2]), persistent=False)
        self.register_buffer("rank4_b", torch.tensor([0, 1, 2, 5, 4, 5, 3, 4, 3, 1, 2, 2, 3, 4, 5]), persistent=False)
        self.n_features = self.c0 + len(r1) + len(r2) + len(r3) + self.c1 * self.c2 + self.c2 + len(r4)

        gen = torch.Generator().manual_seed(seed)
        n_pairs = self.n_species * self.n_species
        S, F, H, Hd, K = self.n_species, self.n_features, self.latent_dim, self.hidden_dim, self.n_members
        # Shared: radial channel weights per species pair, normalisation, latent layer.
        self.radial_weight = nn.Parameter(
            torch.randn(n_pairs, self.n_basis, self.n_channels, generator=gen) / math.sqrt(self.n_basis))
        self.register_buffer("feature_mean", torch.zeros(F))
        self.register_buffer("feature_std", torch.ones(F))
        self.latent_weight = nn.Parameter(torch.randn(F, H, generator=gen) / math.sqrt(F))
        self.latent_bias = nn.Parameter(torch.zeros(S, H))
        L = int(latent_layers) - 1   # residual shared layers after the first
        if L > 0:
            self.deep_weight = nn.Parameter(torch.randn(L, H, H, generator=gen) / math.sqrt(H))
            self.deep_bias = nn.Parameter(torch.zeros(L, H))
        else:   # none: empty buffers, so that the parameters (and the optimiser) are those of one layer
            self.register_buffer("deep_weight", torch.zeros(0, H, H))
            self.register_buffer("deep_bias", torch.zeros(0, H))
        # Members: one hidden layer each, batched over K.
        self.head_w1 = nn.Parameter(torch.randn(K, H, Hd, generator=gen) / math.sqrt(H))
        self.head_b1 = nn.Parameter(torch.zeros(K, 1, Hd))
        self.head_w2 = nn.Parameter(torch.randn(K, Hd, 1, generator=gen) / math.sqrt(Hd))
        self.head_b2 = nn.Parameter(torch.zeros(K, 1, 1))
        # Energy scale and per-element reference energies (eV), set before training.
        self.register_buffer("energy_scale", torch.ones(()))
        self.register_buffer("reference_energy", torch.zeros(S))
        # D-optimality: per species, gamma_i = max_k |h_i @ gamma_matrix[s_i]|_k.
        self.register_buffer("gamma_matrix", torch.zeros(S, H, H))
        self.register_buffer("active_rows", torch.zeros(S, H, H))   # the active set's feature rows

    # ------------------------------------------------------------------ descriptor
    def moments(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                n_local: int) -> List[torch.Tensor]:
        """Moment tensors of rank 0..3 (and 4) for the ``n_local`` centre atoms.

        Symmetric tensors are stored by their unique components: rank 2 as
        ``xx yy zz yz xz xy`` and rank 3 as ``xxx yyy zzz xxy xxz yyx yyz zzx zzy xyz``.
        ``mix(basis_moments(...))``: the geometry first, then the learned channel weights.
        """
        return self.mix(species, self.basis_moments(species, edge_index, edge_vec, n_local))

    def edge_basis(self, species: torch.Tensor, edge_index: torch.Tensor,
                   edge_vec: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per edge: radial basis ``[E, S*B]`` (in the neighbour species' block) and angular products ``[E, A]``."""
        d = torch.sqrt((edge_vec * edge_vec).sum(dim=1))
        radial = self.species_blocks(species.index_select(0, edge_index[1]), self.radial_basis(d))
        return radial, self.angular_basis(edge_vec / d.unsqueeze(1))

    def radial_basis(self, d: torch.Tensor) -> torch.Tensor:
        """``T_b(d) f_c(d)``, ``[E, B]``, distances in Å."""
        return chebyshev_basis(d, self.cutoff, self.n_basis, self.r_min)

    def species_blocks(self, neighbour_species: torch.Tensor, radial: torch.Tensor) -> torch.Tensor:
        """``[E, B]`` -> ``[E, S*B]``: each edge's radial basis in its neighbour species' block."""
        S = self.n_species
        if S == 1:
            return radial
        onehot = self.species_onehot.index_select(0, neighbour_species)
        return (radial.unsqueeze(1) * onehot.unsqueeze(2)).reshape(radial.shape[0], S * self.n_basis)

    def angular_basis(self, u: torch.Tensor) -> torch.Tensor:
        """Products ``1, u, u⊗u, u⊗u⊗u`` (and rank 4) of unit vectors, unique components, ``[E, A]``."""
        u2 = u.index_select(1, self.rank2_a) * u.index_select(1, self.rank2_b)   # xx yy zz yz xz xy
        u3 = u2.index_select(1, self.rank3_a) * u.index_select(1, self.rank3_b)  # xxx yyy zzz xxy ... xyz
        one = torch.ones_like(u[:, :1])
        if self.c4 > 0:
            u4 = u2.index_select(1, self.rank4_a) * u2.index_select(1, self.rank4_b)
            return torch.cat([one, u, u2, u3, u4], dim=1)                        # [E, 35]
        return torch.cat([one, u, u2, u3], dim=1)                                # [E, 20]

    def basis_moments(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                      n_local: int) -> torch.Tensor:
        """Moments over the fixed basis, ``Q_i[s*B + b, a] = Σ_{j of species s} T_b(r_ij) f_c(r_ij) û_ij^a``.

        ``[n_local, S*B, A]``: geometry only, no parameters. Edges are laid out
        per centre, padded, and summed by one batched matrix product.
        """
        i = edge_index[0]
        n = n_local
        n_edges = edge_vec.shape[0]
        if n_edges > 1 and bool((i[1:] < i[:-1]).any()):
            order = torch.argsort(i, stable=True)
            edge_index = edge_index.index_select(1, order)
            edge_vec = edge_vec.index_select(0, order)
            i = edge_index[0]
        basis, ang = self.edge_basis(species, edge_index, edge_vec)
        return self.moments_from_basis(basis, ang, i, n)

    def moments_from_basis(self, basis: torch.Tensor, ang: torch.Tensor, centre: torch.Tensor,
                           n_local: int) -> torch.Tensor:
        """``Q_i = Σ_j basis_j ⊗ ang_j`` ``[n_local, S*B, A]`` from per-edge bases (edges sorted by centre)."""
        flat, n_max = padded_slots(centre, n_local)
        b_pad = pad_edges(basis, flat, n_local, n_max)
        return torch.bmm(b_pad.transpose(1, 2), pad_edges(ang, flat, n_local, n_max))          # [n, S*B, A]

    def mix(self, species: torch.Tensor, q: torch.Tensor) -> List[torch.Tensor]:
        """Learned radial channels per centre, ``M[c, a] = Σ_{s,b} W[s_i, s, b, c] Q[s*B + b, a]``, split by rank."""
        S, B = self.n_species, self.n_basis
        n = q.shape[0]
        w = self.radial_weight.view(S, S * B, self.n_channels)
        wi = w[0].t() if S == 1 else w.index_select(0, species[:n]).transpose(1, 2)   # [C, SB] or [n, C, SB]
        # rank by rank: only the blocks that are kept (channels of rank r x components of rank r)
        chans = [0, self.c0, self.c0 + self.c1, self.c0 + self.c1 + self.c2,
                 self.c0 + self.c1 + self.c2 + self.c3, self.n_channels]
        comps = [0, 1, 4, 10, 20, 35]
        out: List[torch.Tensor] = []
        for r in range(5 if self.c4 > 0 else 4):
            wr = wi[chans[r]:chans[r + 1]] if S == 1 else wi[:, chans[r]:chans[r + 1]]
            out.append(torch.matmul(wr, q[:, :, comps[r]:comps[r + 1]]))              # [n, c_r, components]
        out[0] = out[0].squeeze(2)
        return out

    def invariants(self, m: List[torch.Tensor]) -> torch.Tensor:
        """Rotation-invariant contractions ``[n, n_features]`` of the moments."""
        m0, m1, m2s, m3s = m[0], m[1], m[2], m[3]
        # Only the pairs that are kept (upper triangles, all rank-1 x rank-2 pairs), as
        # elementwise products summed over the components: cheaper than tiny batched matmuls.
        w2 = m2s * self.sym2_weight
        g1 = (m1.index_select(1, self.triu1_r) * m1.index_select(1, self.triu1_c)).sum(2)
        g2 = (w2.index_select(1, self.triu2_r) * m2s.index_select(1, self.triu2_c)).sum(2)   # M2_a : M2_b
        g3 = (m3s.index_select(1, self.triu3_r) * (m3s * self.sym3_weight).index_select(1, self.triu3_c)).sum(2)
        p1 = m1.index_select(2, self.rank2_a) * m1.index_select(2, self.rank2_b)  # M1_a ⊗ M1_a, unique
        n = m0.shape[0]
        t12 = torch.bmm(p1, w2.transpose(1, 2)).reshape(n, -1)                  # M1_a·M2_b·M1_a, all (a, b)
        full2 = m2s.index_select(2, self.sym2_full).view(n, -1, 3, 3)           # M2 as 3x3 matrices
        sq = (full2.unsqueeze(4) * full2.unsqueeze(2)).sum(3)                  # M2², no tiny matmuls
        t222 = (sq * full2).sum(dim=(2, 3))                                     # tr(M2³), M2 symmetric
        parts = [m0, g1, g2, g3, t12, t222]
        if self.c4 > 0:
            m4s = m[4]
            parts.append((m4s.index_select(1, self.triu4_r)
                          * (m4s * self.sym4_weight).index_select(1, self.triu4_c)).sum(2))   # M4_a :: M4_b
        return torch.cat(parts, dim=1)

    def latent(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
               n_local: int) -> torch.Tensor:
        """Shared latent features ``h_i`` ``[n_local, latent]`` (also the γ features)."""
        return self.latent_from_moments(species, self.moments(species, edge_index, edge_vec, n_local))

    def latent_from_moments(self, species: torch.Tensor, m: List[torch.Tensor]) -> torch.Tensor:
        """``h_i`` from the centre atoms' moment tensors (:meth:`moments` or ``mix(Q)``)."""
        feats = (self.invariants(m) - self.feature_mean) / self.feature_std
        s = species[:feats.shape[0]]
        h = torch.nn.functional.silu(feats @ self.latent_weight + self.latent_bias[s])
        for layer in range(self.deep_weight.shape[0]):
            h = h + torch.nn.functional.silu(h @ self.deep_weight[layer] + self.deep_bias[layer])
        return h

    def member_energies(self, species: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Per-member atomic energies ``[K, n]`` in eV, reference energies included."""
        x = torch.nn.functional.silu(torch.matmul(h.unsqueeze(0), self.head_w1) + self.head_b1)
        out = (torch.matmul(x, self.head_w2) + self.head_b2).squeeze(2)   # [K, n]
        e0 = self.reference_energy[species[:h.shape[0]]]
        return e0.unsqueeze(0) + self.energy_scale * out

    def gamma(self, species: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """D-optimality extrapolation grade per atom: ``max_k |h_i G[s_i]|_k``."""
        g = torch.bmm(h.unsqueeze(1), self.gamma_matrix[species[:h.shape[0]]]).squeeze(1)
        return g.abs().max(dim=1).values

    # ------------------------------------------------------------------ forward
    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                n_local: int, uncertainty: bool) -> Dict[str, torch.Tensor]:
        """Energies and ∂E/∂r_ij; see ``docs/model_format.md`` for the contract."""
        edge_vec = edge_vec.detach().requires_grad_(True)
        h = self.latent(species, edge_index, edge_vec, n_local)
        member = self.member_energies(species, h)                      # [K, n]
        atom_energy = member.mean(dim=0)
        grads = torch.autograd.grad([atom_energy.sum()], [edge_vec], retain_graph=uncertainty,
                                    allow_unused=True)
        g0 = grads[0]
        edge_grad = g0 if g0 is not None else torch.zeros_like(edge_vec)
        out: Dict[str, torch.Tensor] = {"atom_energy": atom_energy.detach(), "edge_grad": edge_grad.detach()}
        if uncertainty:
            member_grads: List[torch.Tensor] = []
            for k in range(self.n_members):
                gk = torch.autograd.grad([member[k].sum()], [edge_vec], retain_graph=k < self.n_members - 1,
                                         allow_unused=True)[0]
                member_grads.append(gk if gk is not None else torch.zeros_like(edge_vec))
            out["member_atom_energy"] = member.detach()
            out["member_edge_grad"] = torch.stack(member_grads, dim=0).detach()
            out["gamma"] = self.gamma(species, h.detach())
        return out
