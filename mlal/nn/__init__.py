"""Neural-network rooms: radial basis and the ensemble model."""
from .model import EnsembleModel

__all__ = ["EnsembleModel"]
