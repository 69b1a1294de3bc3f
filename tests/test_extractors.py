"""The extractor registry: digits, user-registered modules and callables, inception's adapter."""

from __future__ import annotations

import builtins

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError, RunError
from gankit.metrics import extractors
from gankit.metrics.extractors import (
    default_extractor,
    extractor_names,
    get_extractor,
    register_extractor,
    unregister_extractor,
)


def test_digits_extractor() -> None:
    ext = get_extractor("digits")
    x = torch.rand(7, 1, 28, 28)
    f, p = ext.features(x), ext.probs(x)
    assert f.shape == (7, 128) and p.shape == (7, 10)
    torch.testing.assert_close(p.sum(1), torch.ones(7))
    assert default_extractor((1, 28, 28)) == "digits"
    assert default_extractor((3, 32, 32)) == "inception"


def test_user_module_and_callable() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.Dropout(0.5))
    net.train()
    try:
        register_extractor("tiny", net, classifier=nn.Sequential(nn.Flatten(), nn.Linear(12, 3)),
                           batch_size=2)
        register_extractor("mean", lambda x: x.mean((2, 3)))
        assert {"tiny", "mean"} <= set(extractor_names())
        ext = get_extractor("tiny")
        x = torch.rand(5, 3, 2, 2)
        assert not net.training  # put in eval mode: features are deterministic
        assert torch.equal(ext.features(x), ext.features(x)) and ext.features(x).shape == (5, 4)
        assert ext.probs(x).shape == (5, 3)
        assert get_extractor("mean").probs(x) is None
        assert get_extractor("mean").features(x).shape == (5, 3)
    finally:
        unregister_extractor("tiny")
        unregister_extractor("mean")
    assert "tiny" not in extractor_names()


def test_unknown_and_builtin_names() -> None:
    with pytest.raises(ConfigError, match="unknown feature extractor 'nope'"):
        get_extractor("nope")
    with pytest.raises(ValueError):
        register_extractor("digits", lambda x: x)


def test_inception_without_the_extra_says_how_to_install(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_fidelity(name, *args, **kwargs):
        if name.startswith("torch_fidelity"):
            raise ImportError("No module named 'torch_fidelity'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fidelity)
    with pytest.raises(RunError, match=r"gankit\[inception\]"):
        get_extractor("inception")


def test_inception_features() -> None:
    try:
        import torch_fidelity  # noqa: F401
        import torchvision  # noqa: F401
    except Exception as e:  # torchvision does not load beside the local CPU torch wheel
        pytest.skip(f"the inception extra (torch-fidelity, torchvision) is not usable here: {e}")
    try:
        ext = extractors.get_extractor("inception")
    except RunError as e:
        pytest.skip(f"Inception weights unavailable offline: {e}")
    x = torch.rand(2, 3, 32, 32)
    assert ext.features(x).shape == (2, 2048) and ext.probs(x).shape[0] == 2
