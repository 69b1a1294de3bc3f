"""The table generator samples with batch-norm statistics of its own samples."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from gankit.kinds.tables.calibrate import BATCHES, batches_for, calibrated
from gankit.kinds.tables.codec import TableCodec
from gankit.kinds.tables.conditions import TableConditions
from gankit.models.tabular import TabularGenerator


def setup() -> tuple[TabularGenerator, TableConditions]:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 300, p=[0.7, 0.2, 0.1]),
                       "b": rng.normal(5, 2, 300), "c": rng.choice(["u", "v"], 300)})
    codec, _ = TableCodec.fit(df)
    cond = TableConditions(codec, codec.encode(df), focus="a")
    torch.manual_seed(0)
    g = TabularGenerator(16, (32, 32), tuple(codec.heads()), cond.vector_dim)
    return g, cond


def test_calibrated_generator_matches_batch_statistics_of_its_samples() -> None:
    g, cond = setup()
    before = copy.deepcopy(g.state_dict())
    settled = calibrated(g, cond)
    assert not settled.training
    for k, v in g.state_dict().items():  # the trained generator is untouched
        assert torch.equal(v, before[k]), k
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(4000, g.latent_dim, generator=gen)
    y = cond.sample(4000, gen)
    with torch.no_grad():
        batch = copy.deepcopy(g).train()(z, y)  # statistics of this very batch
        stale = copy.deepcopy(g).eval()(z, y)  # the untrained running statistics
        ours = settled(z, y)
    err = (ours - batch).abs().max().item()
    assert err < 0.05, err
    assert (stale - batch).abs().max().item() > 10 * err


def test_calibration_is_deterministic_and_skips_models_without_batch_norm() -> None:
    g, cond = setup()
    a, b = calibrated(g, cond).state_dict(), calibrated(g, cond).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = torch.nn.Sequential(torch.nn.Linear(3, 3))
    assert calibrated(plain, None) is plain and not plain.training


def test_a_check_while_training_settles_on_fewer_rows_close_to_the_full_statistics() -> None:
    assert batches_for(None) == BATCHES == 16  # a run's sampling: all of them
    assert batches_for(256) == 2 and batches_for(600) == 3 and batches_for(10**6) == BATCHES
    g, cond = setup()
    full, light = calibrated(g, cond), calibrated(g, cond, batches_for(256))
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(2000, g.latent_dim, generator=gen)
    y = cond.sample(2000, gen)
    with torch.no_grad():
        a, b = full(z, y), light(z, y)
    assert not torch.equal(a, b)  # other statistics...
    assert (a - b).abs().max().item() < 0.05  # ...of the same rows
