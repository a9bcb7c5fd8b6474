"""One training step's gradient, with the batch's structures split over processes.

A step on a few structures is many small tensor operations: torch's intra-op
threads do not pay off at this size, and Python threads contend for the
interpreter. Separate processes do scale, so ``processes - 1`` worker
processes, forked when training starts, hold a copy of the model and of the
training graphs. Each step the main process sends them the current parameters
and their share of the batch's structures, computes its own share meanwhile,
and sums the returned gradients in a fixed order.

The shares' losses use the whole batch's label counts
(:func:`~mlal.train.loss.loss_denominators`), so they add up to the batch loss:
a step is the same for any number of processes up to round-off, and bitwise
reproducible for a given number. Workers leave when their pipe closes, so a
killed trainer leaves none behind.
"""
from __future__ import annotations

import multiprocessing as mp
import traceback
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..data.graph import Graph, collate
from ..nn.model import EnsembleModel
from ..system import available_cores
from .config import TrainConfig
from .geometry import EdgeGeometry, cached_geometry
from .loss import batch_loss, loss_denominators


def split_batch(graphs: Sequence[Graph], parts: int) -> List[List[int]]:
    """Indices of ``graphs`` in at most ``parts`` contiguous groups of similar atom counts."""
    parts = max(1, min(parts, len(graphs)))
    total = sum(g.n_atoms for g in graphs)
    groups: List[List[int]] = [[] for _ in range(parts)]
    done = 0
    for k, g in enumerate(graphs):
        mid = done + 0.5 * g.n_atoms           # the share of the atoms this structure's middle falls in
        groups[min(parts - 1, int(mid * parts / max(total, 1)))].append(k)
        done += g.n_atoms
    return [grp for grp in groups if grp]


def _part_gradient(model: EnsembleModel, params: List[torch.Tensor], graphs: Sequence[Graph],
                   geometry: Optional[Sequence[EdgeGeometry]], cfg: TrainConfig, dtype: torch.dtype,
                   weights: Optional[torch.Tensor], member: Optional[int],
                   den: Dict[str, float]) -> Tuple[float, List[Optional[torch.Tensor]]]:
    loss, _ = batch_loss(model, collate(graphs, dtype=dtype), cfg, weights, member, den, geometry)
    if not loss.requires_grad:                  # every label of the part weighs 0
        return float(loss.detach()), [None] * len(params)
    return float(loss.detach()), list(torch.autograd.grad(loss, params, allow_unused=True))


def _worker(conn, others: list, model: EnsembleModel, graphs: Sequence[Graph],
            geometry: Optional[Sequence[EdgeGeometry]], cfg: TrainConfig, dtype: torch.dtype) -> None:
    for c in others:           # the main process's ends, inherited by the fork: without them, the
        c.close()              # pipe reports EOF when the main process dies, and the worker leaves
    torch.set_num_threads(1)
    params = list(model.parameters())
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        flat, idx, weights, member, den, energy_weight = msg
        try:
            if energy_weight != cfg.energy_weight:
                cfg = cfg.replace(energy_weight=energy_weight)
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(torch.from_numpy(flat), params)
            w = None if weights is None else torch.from_numpy(weights)
            geo = None if geometry is None else [geometry[k] for k in idx]
            loss, grads = _part_gradient(model, params, [graphs[k] for k in idx], geo, cfg, dtype, w, member, den)
            present = [g is not None for g in grads]
            vec = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                             for g, p in zip(grads, params)]) if params else torch.zeros(0)
            conn.send((loss, vec.numpy(), present))
        except Exception:  # noqa: BLE001  (reported by the main process)
            conn.send(("error", traceback.format_exc(), None))


class GradientStep:
    """Computes the loss and sets ``p.grad`` of the model's parameters for one batch of ``graphs``.

    ``cfg.processes`` (0: one per CPU core) processes share each batch, at most
    ``cfg.batch_size``. Call :meth:`close` when done (workers also leave when
    this object's pipes are closed).
    """

    def __init__(self, model: EnsembleModel, graphs: Sequence[Graph], cfg: TrainConfig,
                 dtype: torch.dtype) -> None:
        self.model, self.graphs, self.cfg, self.dtype = model, list(graphs), cfg, dtype
        self.params = list(model.parameters())
        self.geometry = cached_geometry(model, self.graphs, dtype)
        n = cfg.processes if cfg.processes > 0 else available_cores()
        self.processes = max(1, min(n, cfg.batch_size, len(self.graphs)))
        self.conns = []
        self.workers = []
        if self.processes > 1:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            for _ in range(self.processes - 1):
                here, there = ctx.Pipe()
                p = ctx.Process(target=_worker, daemon=True,
                                args=(there, self.conns + [here], model, self.graphs, self.geometry, cfg, dtype))
                p.start()
                there.close()
                self.conns.append(here)
                self.workers.append(p)

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(None)
                c.close()
            except (OSError, BrokenPipeError):
                pass
        for p in self.workers:
            p.join(timeout=10)
        self.conns, self.workers = [], []

    def __call__(self, indices: Sequence[int], weights: Optional[torch.Tensor],
                 member: Optional[int], energy_weight: Optional[float] = None) -> float:
        """Set every parameter's ``.grad`` to d(batch loss)/dp for ``graphs[indices]``; returns the loss.

        ``energy_weight`` (None: the config's) overrides the loss's energy weight.
        """
        cfg = self.cfg if energy_weight is None else self.cfg.replace(energy_weight=energy_weight)
        batch = [self.graphs[k] for k in indices]
        groups = split_batch(batch, 1 + len(self.conns))
        part_w = [None if weights is None else weights[:, grp] for grp in groups]
        den = loss_denominators(batch, self.model.n_members, weights, member)
        if len(groups) > 1:
            flat = torch.nn.utils.parameters_to_vector([p.detach() for p in self.params]).numpy()
            for conn, grp, w in zip(self.conns, groups[1:], part_w[1:]):
                conn.send((flat, [int(indices[k]) for k in grp], None if w is None else w.numpy(), member, den,
                           cfg.energy_weight))
        geo = None if self.geometry is None else [self.geometry[int(indices[k])] for k in groups[0]]
        total_loss, grads = _part_gradient(self.model, self.params, [batch[k] for k in groups[0]], geo, cfg,
                                           self.dtype, part_w[0], member, den)
        for conn in self.conns[:len(groups) - 1]:
            try:
                loss, vec, present = conn.recv()
            except EOFError:
                raise RuntimeError("a training worker process died (out of memory?); "
                                   "set `processes: 1` to train in one process") from None
            if loss == "error":
                raise RuntimeError(f"a training worker process failed:\n{vec}")
            total_loss += loss
            offset = 0
            for k, p in enumerate(self.params):
                size = p.numel()
                if present[k]:
                    g = torch.from_numpy(vec[offset:offset + size]).view_as(p)
                    grads[k] = g if grads[k] is None else grads[k] + g
                offset += size
        for p, g in zip(self.params, grads):
            p.grad = g
        return total_loss
