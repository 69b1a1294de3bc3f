"""gankit: train, evaluate and ship generative adversarial networks on PyTorch."""

from typing import Any

from .config import Config, presets, resolve
from .data import build as load_data
from .data.base import Dataset
from .errors import ConfigError, DataError, GankitError, RunError
from .run import Run, load_run, prepare, resume_config, train
from .training.trainer import Trainer

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``TableSynthesizer`` is imported on first use (it brings in pandas)."""
    if name == "TableSynthesizer":
        from .synthesizer import TableSynthesizer

        return TableSynthesizer
    raise AttributeError(f"module 'gankit' has no attribute '{name}'")

__all__ = [
    "Config", "ConfigError", "DataError", "Dataset", "GankitError", "Run", "RunError",
    "TableSynthesizer", "Trainer", "load_data", "load_run", "prepare", "presets", "resolve",
    "resume_config", "train",
]
