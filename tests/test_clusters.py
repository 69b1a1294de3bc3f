"""k-means and self-conditioning (model.clusters): clusters found, labels drawn at their share,
runs that train, resume exactly, sample and evaluate; bad settings refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import gankit
from gankit.cli import main
from gankit.clusters import assign, draw_labels, kmeans, label_share
from gankit.config import resolve
from gankit.data.mixtures import load_mixture
from gankit.errors import ConfigError, RunError
from gankit.evaluation import evaluate_source
from gankit.training import checkpoint

from .test_trainer import assert_same, final_state, metrics

SMALL = {"batch_size": 64, "log_every": 5, "sample_every": 10, "checkpoint_every": 5,
         "grid_size": 16, "threads": 1}


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two labellings group the points alike (up to renaming the labels)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_finds_separated_blobs() -> None:
    grid = load_mixture("grid25", num=2500)  # 25 modes 2 apart, std 0.05
    labels, centroids = kmeans(grid.images, 25, seed=3)
    assert same_partition(labels, grid.labels)
    assert centroids.shape == (25, 2)
    # Each centroid sits on one mode's mean.
    means = torch.stack([grid.images[grid.labels == k].mean(0) for k in range(25)])
    assert torch.cdist(centroids, means).min(1).values.max() < 0.01
    assert torch.equal(assign(grid.images, centroids), labels)


def test_kmeans_over_clusters_without_mixing_modes() -> None:
    ring = load_mixture("ring8", num=4000)
    labels, _ = kmeans(ring.images, 50, seed=0)
    for k in range(50):  # every cluster lies within one mode
        assert len(set(ring.labels[labels == k].tolist())) <= 1
    assert len(set(labels.tolist())) == 50


def test_kmeans_is_deterministic_and_fits_a_subset() -> None:
    x = torch.randn(3000, 5, generator=torch.Generator().manual_seed(1))
    a = kmeans(x, 7, seed=4, fit_points=500)
    b = kmeans(x, 7, seed=4, fit_points=500)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (3000,) and torch.equal(a[0], assign(x, a[1]))  # every point labelled
    images = torch.rand(40, 1, 4, 4)  # images are flattened
    labels, centroids = kmeans(images, 3)
    assert labels.shape == (40,) and centroids.shape == (3, 16)


def test_kmeans_with_repeated_points_and_bad_k() -> None:
    x = torch.zeros(10, 2)
    x[5:] = 1.0  # two distinct points, four clusters asked
    labels, centroids = kmeans(x, 4)
    assert labels.shape == (10,) and torch.isfinite(centroids).all()
    assert torch.cdist(x, centroids).min(1).values.max() == 0
    with pytest.raises(ValueError, match="cannot make 11 clusters of 10 points"):
        kmeans(x, 11)
    with pytest.raises(ValueError, match="cannot make 0 clusters"):
        kmeans(x, 0)


def test_label_share_and_draws() -> None:
    share = label_share(torch.tensor([0, 0, 0, 2]), 4)
    assert share.tolist() == [0.75, 0.0, 0.25, 0.0]
    drawn = draw_labels(share, 20_000, torch.Generator().manual_seed(0))
    freq = torch.bincount(drawn, minlength=4).float() / 20_000
    assert freq[1] == 0 and freq[3] == 0 and abs(freq[0].item() - 0.75) < 0.015


def self_conditioned(steps: int, **train: int) -> gankit.Config:
    return resolve(values={"data": {"source": "ring8"},
                           "train": {**SMALL, "steps": steps, **train},
                           "model": {"clusters": 8}})


def test_self_conditioned_run_trains_samples_and_evaluates(tmp_path: Path) -> None:
    cfg = self_conditioned(10)
    assert cfg.preset == "mixture" and cfg.model.conditioned and not cfg.model.conditional
    out = tmp_path / "run"
    trainer = gankit.train(cfg.replace(eval={"every": 5, "num": 200}), out=out, progress=False)
    assert trainer.num_classes == 8 and trainer.centroids.shape == (8, 2)
    # The ring's 8 modes hold equal shares, and k=8 finds them.
    assert torch.allclose(trainer.label_share, torch.full((8,), 0.125), atol=0.01)
    assert trainer.fixed_y is not None and trainer.grid_cols == 0
    assert [r["step"] for r in metrics(out) if "modes" in r] == [5, 10]
    run = gankit.load_run(out)
    assert run.num_classes == 8 and run.self_conditioned and run.grid_columns(100) == 0
    assert torch.allclose(run.label_share, trainer.label_share)
    points = run.sample(300, seed=2)
    assert points.shape == (300, 2) and np.isfinite(points).all()
    assert np.array_equal(points, run.sample(300, seed=2))  # reproducible from the seed
    assert not np.array_equal(points, run.sample(300, seed=3))
    labels = run.labels(4000, seed=1)
    assert torch.bincount(labels, minlength=8).min() > 350  # drawn at the data's shares
    assert run.labels(3, label=7).tolist() == [7, 7, 7]
    with pytest.raises(ConfigError, match="clusters 0..7"):
        run.labels(3, label=8)
    scores = evaluate_source(out, num=500)
    assert 0 <= scores["modes"] <= 8 and 0 <= scores["high_quality"] <= 1  # barely trained
    assert main(["sample", str(out), "--num", "50", "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as z:
        assert z["samples"].shape == (50, 2)


def test_self_conditioned_resume_is_exact(tmp_path: Path) -> None:
    cfg = self_conditioned(10, lr_decay=0)  # the decay's schedule depends on train.steps
    gankit.train(cfg, out=tmp_path / "a", progress=False)
    gankit.train(cfg.replace(train={"steps": 5}), out=tmp_path / "b", progress=False)
    gankit.train(gankit.resume_config(tmp_path / "b", 10), out=tmp_path / "b", resume=True,
                 progress=False)
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert a["centroids"].shape == (8, 2) and a["label_share"].shape == (8,)
    assert_same(a, b)


def test_resume_keeps_the_checkpointed_clusters(tmp_path: Path) -> None:
    cfg = self_conditioned(5)
    gankit.train(cfg, out=tmp_path / "a", progress=False)
    state = final_state(tmp_path / "a")
    trainer = gankit.Trainer(cfg, gankit.load_data(cfg.data))
    swapped = state["centroids"].flip(0)  # the same clusters, numbered the other way
    trainer.load_state({**state, "centroids": swapped})
    assert torch.equal(trainer.centroids, swapped)
    assert torch.equal(trainer.cond.labels.cpu(), 7 - trainer_labels(cfg))


def test_tampered_clusters_in_a_checkpoint_are_refused(tmp_path: Path) -> None:
    cfg = self_conditioned(5)
    out = tmp_path / "run"
    gankit.train(cfg, out=out, progress=False)
    state = final_state(out)
    checkpoint.save(out / "checkpoints", 6, {**state, "step": 6,
                                             "label_share": torch.full((8,), -1.0)})
    with pytest.raises(RunError, match="invalid label shares"):
        gankit.load_run(out)
    checkpoint.save(out / "checkpoints", 7, {**state, "step": 7,
                                             "centroids": torch.zeros(3, 2)})
    with pytest.raises(RunError, match=r"\(3, 2\) cluster centroids do not fit"):
        gankit.prepare(cfg.replace(train={"steps": 9}), out, resume=True)


def trainer_labels(cfg: gankit.Config) -> torch.Tensor:
    return gankit.Trainer(cfg, gankit.load_data(cfg.data)).cond.labels.cpu()


def test_class_conditional_runs_evaluate_at_the_class_shares(tmp_path: Path) -> None:
    # Evaluation during training and `gankit eval` of a conditional run draw the labels.
    cfg = resolve("cgan", values={"train": {**SMALL, "batch_size": 16, "steps": 2},
                                  "eval": {"every": 2, "num": 100}},
                  overrides=["model.base_channels=4"])
    out = tmp_path / "run"
    trainer = gankit.train(cfg, out=out, progress=False)
    assert torch.allclose(trainer.label_share, torch.full((10,), 0.1))
    assert "fd" in metrics(out)[-1]
    assert evaluate_source(out, num=100)["fd"] > 0
    run = gankit.load_run(out)
    assert run.grid_columns(20) == 2 and not run.self_conditioned


def test_self_conditioned_images(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)

    def cfg(clusters: int) -> gankit.Config:
        return resolve("dcgan", values={"data": {"source": str(tmp_path / "x.npy")},
                                        "train": {**SMALL, "batch_size": 4, "steps": 2},
                                        "model": {"base_channels": 4, "clusters": clusters}})

    trainer = gankit.train(cfg(3), out=tmp_path / "run", progress=False)
    assert trainer.centroids.shape == (3, 28 * 28) and trainer.step == 2
    assert gankit.load_run(tmp_path / "run").sample(5).shape == (5, 28, 28, 1)
    with pytest.raises(ConfigError, match="model.clusters=13 needs at least as many"):
        gankit.Trainer(cfg(13), gankit.load_data(cfg(13).data))
