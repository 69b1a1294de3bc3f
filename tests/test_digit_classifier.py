"""The built-in digits classifier: shipped weights, accuracy, features, determinism, errors."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from gankit.data.digits import load_digits
from gankit.errors import RunError
from gankit.metrics import digit_classifier as dc
from gankit.metrics.digit_classifier import (
    DigitClassifier,
    extract_features,
    load_digit_classifier,
    predict,
)


@pytest.fixture(scope="module")
def model() -> DigitClassifier:
    return load_digit_classifier()


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_shipped_model_is_frozen_and_in_eval_mode(model):
    assert isinstance(model, DigitClassifier)
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())


def test_weights_metadata_records_held_out_accuracy():
    from importlib import resources

    path = resources.files("gankit").joinpath(dc.WEIGHTS_RESOURCE)
    with resources.as_file(path) as f, safe_open(str(f), "pt") as st:
        meta = st.metadata()
    assert float(meta["held_out_accuracy"]) >= 0.97
    assert "seed" in meta and "epochs" in meta


def test_accuracy_on_built_in_digits(model, digits):
    pred = predict(digits.images, model=model)
    assert pred.shape == (len(digits),) and pred.dtype == torch.int64
    correct = pred == digits.labels
    assert correct.float().mean().item() >= 0.97
    for c in range(10):  # no class is neglected
        assert correct[digits.labels == c].float().mean().item() >= 0.9


def test_feature_shape_and_dtype(model, digits):
    feats = extract_features(digits.images[:300], batch_size=128, model=model)
    assert feats.shape == (300, 128) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all()
    assert (feats.std(0) > 0).sum() > 64  # features are informative, not mostly dead


def test_deterministic_and_batch_size_independent(model, digits):
    x = digits.images[::10]
    assert torch.equal(predict(x, model=model), predict(x, model=model))
    assert torch.equal(extract_features(x, model=model), extract_features(x, model=model))
    a = extract_features(x, batch_size=1000, model=model)
    b = extract_features(x, batch_size=37, model=model)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert torch.equal(predict(x, batch_size=37, model=model), predict(x, model=model))


def test_default_model_is_loaded_when_not_given(digits):
    x = digits.images[:20]
    assert predict(x).shape == (20,)
    assert extract_features(x).shape == (20, 128)


def test_noise_gives_valid_ids_and_low_confidence(model):
    x = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    pred = predict(x, model=model)
    assert pred.shape == (200,) and pred.dtype == torch.int64
    assert ((pred >= 0) & (pred < 10)).all()
    with torch.no_grad():
        confidence = model(x).softmax(1).max(1).values
    assert confidence.mean().item() < 0.5


def test_does_not_change_training_mode_or_track_gradients():
    m = DigitClassifier()
    m.train()
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    out = extract_features(x, model=m)
    assert m.training
    assert not out.requires_grad


def test_empty_and_bad_inputs(model):
    assert predict(torch.empty(0, 1, 28, 28), model=model).shape == (0,)
    assert extract_features(torch.empty(0, 1, 28, 28), model=model).shape == (0, 128)
    with pytest.raises(ValueError):
        predict(torch.rand(2, 3, 28, 28), model=model)
    with pytest.raises(ValueError):
        extract_features(torch.rand(2, 1, 32, 32), model=model)
    with pytest.raises(ValueError):
        predict(torch.rand(2, 1, 28, 28), batch_size=0, model=model)


def test_missing_weights_raise_run_error(monkeypatch):
    monkeypatch.setattr(dc, "WEIGHTS_RESOURCE", "weights/no_such_file.safetensors")
    with pytest.raises(RunError, match="not found"):
        load_digit_classifier()


def test_damaged_weights_raise_run_error(monkeypatch):
    monkeypatch.setattr(dc, "WEIGHTS_RESOURCE", "data/digits.npz")
    with pytest.raises(RunError, match="damaged"):
        load_digit_classifier()
