"""Training: :func:`train` an ensemble on labelled structures, :func:`load_checkpoint` to continue or deploy."""
from .config import TrainConfig
from .trainer import TrainResult, deploy_checkpoint, errors, load_checkpoint, train

__all__ = ["TrainConfig", "TrainResult", "train", "load_checkpoint", "deploy_checkpoint", "errors"]
