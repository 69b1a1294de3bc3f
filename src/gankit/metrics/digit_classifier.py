"""The built-in ``digits`` classifier: judges generated 28x28 grayscale digits.

A small CNN trained on the built-in MNIST digits (``scripts/train_digit_classifier.py``) and
shipped as ``gankit/weights/digit_classifier.safetensors``. Its predictions give class coverage
and its 128-d penultimate features feed the Fréchet distance.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import RunError

FEATURE_DIM = 128
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)

# Package-relative location of the shipped weights (a module attribute so tests can redirect it).
WEIGHTS_RESOURCE = "weights/digit_classifier.safetensors"


class DigitClassifier(nn.Module):
    """CNN for (N, 1, 28, 28) digits in [0, 1].

    28x28x16 -> 14x14x32 -> 7x7x64 -> 4x4x128 (3x3 convs, batch norm, ReLU) -> 128 -> 10.

    ``features`` returns the 128-d penultimate activations (after ReLU); ``forward`` the logits.
    Use the shipped weights through `load_digit_classifier`, which returns it in eval mode.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.conv1 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, stride=2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.fc = nn.Linear(128 * 4 * 4, FEATURE_DIM, bias=False)
        self.bn_fc = nn.BatchNorm1d(FEATURE_DIM)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 128) of images (N, 1, 28, 28) in [0, 1]."""
        if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"expected images (N, 1, 28, 28), got {tuple(x.shape)}")
        x = (x - 0.5) * 2.0
        x = F.relu(self.bn0(self.conv0(x)))
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return F.relu(self.bn_fc(self.fc(x.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10)."""
        return self.head(self.dropout(self.features(x)))


def load_digit_classifier() -> DigitClassifier:
    """The shipped classifier in eval mode with gradients off.

    Raises RunError if the weights file is missing or does not match the architecture.
    """
    from safetensors.torch import load as load_safetensors

    resource = resources.files("gankit").joinpath(WEIGHTS_RESOURCE)
    try:
        data = resource.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        raise RunError(
            f"digit classifier weights not found at gankit/{WEIGHTS_RESOURCE}; reinstall gankit "
            "or regenerate them with scripts/train_digit_classifier.py"
        ) from e
    model = DigitClassifier()
    try:
        state = load_safetensors(data)
        model.load_state_dict(state, strict=True)
    except Exception as e:  # any decode or shape problem means a damaged file
        raise RunError(f"digit classifier weights at gankit/{WEIGHTS_RESOURCE} are damaged or "
                       f"do not match the model: {e}") from e
    model.eval()
    model.requires_grad_(False)
    return model


def _batched(model: DigitClassifier, images: torch.Tensor, batch_size: int,
             fn: Callable[[torch.Tensor], torch.Tensor], empty: torch.Tensor) -> torch.Tensor:
    """Apply `fn` to `images` in batches in eval mode without gradients; results on the CPU."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"expected images (N, 1, 28, 28), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        return empty
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [fn(images[i:i + batch_size].to(device=device, dtype=torch.float32)).cpu()
                   for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def predict(images: torch.Tensor, batch_size: int = 1000,
            model: DigitClassifier | None = None) -> torch.Tensor:
    """Predicted class ids (N,) int64 for images (N, 1, 28, 28) in [0, 1].

    Pass `model` (from `load_digit_classifier`) to avoid reloading the weights on every call.
    """
    model = load_digit_classifier() if model is None else model
    return _batched(model, images, batch_size, lambda x: model(x).argmax(1),
                    torch.empty(0, dtype=torch.int64))


def extract_features(images: torch.Tensor, batch_size: int = 1000,
                     model: DigitClassifier | None = None) -> torch.Tensor:
    """Penultimate features (N, 128) float32 for images (N, 1, 28, 28) in [0, 1].

    Pass `model` (from `load_digit_classifier`) to avoid reloading the weights on every call.
    """
    model = load_digit_classifier() if model is None else model
    return _batched(model, images, batch_size, model.features,
                    torch.empty(0, FEATURE_DIM, dtype=torch.float32))
