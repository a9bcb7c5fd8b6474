"""Training: :func:`train` an ensemble on labelled structures, :func:`load_checkpoint` to continue or deploy."""
from .config import TrainConfig
from .checkpoint import deploy_checkpoint, load_checkpoint
from .loss import errors
from .trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train", "load_checkpoint", "deploy_checkpoint", "errors"]
