"""Ensemble surgery: take members out of an ensemble as a model of their own."""
from __future__ import annotations

import copy
from typing import Sequence

import torch

from .model import EnsembleModel

_HEAD_PARAMS = ("head_w1", "head_b1", "head_w2", "head_b2")


def select_members(model: EnsembleModel, members: Sequence[int]) -> EnsembleModel:
    """A new :class:`EnsembleModel` holding only ``members`` (shared parts copied).

    ``select_members(m, [k])`` evaluates exactly like member ``k`` of ``m``.
    """
    members = list(members)
    if not members or any(k < 0 or k >= model.n_members for k in members):
        raise ValueError(f"members must be in 0..{model.n_members - 1}, got {members}")
    out = copy.deepcopy(model)
    idx = torch.tensor(members, dtype=torch.long)
    with torch.no_grad():
        for name in _HEAD_PARAMS:
            old = getattr(out, name)
            setattr(out, name, torch.nn.Parameter(old.detach().index_select(0, idx).clone()))
    out.n_members = len(members)
    out.hyperparameters = dict(model.hyperparameters, n_members=len(members))
    return out
