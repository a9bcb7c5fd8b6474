"""Uncertainty: D-optimality (MaxVol) active sets and the extrapolation grade γ."""
from .maxvol import ActiveSet, build_active_sets, maxvol, extrapolation_grade

__all__ = ["ActiveSet", "build_active_sets", "maxvol", "extrapolation_grade"]
