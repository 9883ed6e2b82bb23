"""Training: the Trainer around the one train step, checkpoints, run directories, recipes."""

from zoo.train.trainer import FitResult, Trainer

__all__ = ["FitResult", "Trainer"]
