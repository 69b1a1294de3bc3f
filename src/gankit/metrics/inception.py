"""The standard FID Inception-v3 features through torch-fidelity (``gankit[inception]`` extra).

A thin adapter: torch-fidelity owns the network, its TensorFlow-compatible resizing and the
weights (``pt_inception-2015-12-05``). Nothing is downloaded when the weights are already in
torch's hub cache or at ``$GANKIT_INCEPTION_WEIGHTS``.
"""

from __future__ import annotations

import os

import torch

from ..errors import RunError
from .extractors import Extractor

WEIGHTS_ENV = "GANKIT_INCEPTION_WEIGHTS"


def to_fidelity_input(images: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] as torch-fidelity's input: uint8 (N, 3, H, W)."""
    x = images.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def load_inception() -> Extractor:
    """The ``inception`` extractor: 2048-d pool features and unbiased ImageNet class probabilities.

    Raises RunError naming the missing extra, or the missing weights file.
    """
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except Exception as e:  # ImportError, or torchvision failing to load beside this torch
        raise RunError("the 'inception' extractor needs the optional extra: "
                       f"pip install 'gankit[inception]' (torch-fidelity, torchvision) ({e})"
                       ) from None
    path = os.environ.get(WEIGHTS_ENV) or None
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                          feature_extractor_weights_path=path)
    except Exception as e:  # no network, a missing or damaged file
        raise RunError("the Inception weights (pt_inception-2015-12-05-6726825d.pth) could not "
                       f"be loaded; put them in torch's hub cache or point {WEIGHTS_ENV} at "
                       f"them ({type(e).__name__}: {e})") from None
    net.eval()

    def features(x: torch.Tensor) -> torch.Tensor:
        return net(to_fidelity_input(x))[0]

    def probs(x: torch.Tensor) -> torch.Tensor:
        return net(to_fidelity_input(x))[1].softmax(1)

    return Extractor("inception", features, probs, batch_size=64)
