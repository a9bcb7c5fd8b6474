"""ASE calculators for mlal models: ``from ase_calculators import MlalCalculator``."""
from .mlal import ExtrapolationError, MlalCalculator

__all__ = ["MlalCalculator", "ExtrapolationError"]
