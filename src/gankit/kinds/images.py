"""Images (N, C, H, W) in [0, 1] and 2-D points (N, D): the kinds gankit began with."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..conditioning import Conditioning, from_labels_or_clusters
from ..errors import GankitError
from ..fileio import atomic_write
from .base import Features, Kind, Scorer, View

if TYPE_CHECKING:
    from ..config import Config, DataConfig
    from ..data.base import Dataset
    from ..run import Run


def to_unit(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Generator output ``x`` in ``value_range`` as images in [0, 1] (clamped)."""
    lo, hi = value_range
    return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)


class FeatureScorer(Scorer):
    """Images in an extractor's feature space; points by the modes of their mixture."""

    def __init__(self, data: Dataset, extractor: str) -> None:
        from ..metrics.evaluate import reference

        self.ref = reference(data, extractor)
        self.main = self.ref.main

    def __call__(self, samples: torch.Tensor, value_range: tuple[float, float]
                 ) -> dict[str, float]:
        from ..metrics.evaluate import evaluate

        if samples.ndim == 4:  # images are scored in [0, 1]
            samples = to_unit(samples, value_range)
        return evaluate(samples, self.ref)


class PooledFeatures(Features):
    """Images average-pooled to at most 8x8 per channel: cheap, and enough to tell sameness."""

    # No realism: measured on digits, collapsed smudges sit among real pooled digits (1.00)
    # while a healthy default run's early samples sit away from them (0.00 at step 500).

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        side = min(8, x.shape[-1])
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float(), side)
        return pooled.reshape(len(x), -1), None


class DigitFeatures(PooledFeatures):
    """Pooled pixels of 28x28 grayscale digits, classed by the shipped digit classifier: the
    judge of the end-of-run verdict, which k-means clusters of pooled pixels cannot stand in
    for (a 4 and a 9 share a cluster, so a run missing one digit still fills every cluster)."""

    num_classes = 10

    def __init__(self, value_range: tuple[float, float]) -> None:
        from ..metrics.extractors import get_extractor

        self.value_range = value_range
        self.extractor = get_extractor("digits")

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        pooled, _ = super().__call__(x)
        probs = self.extractor.probs(to_unit(x.float(), self.value_range))
        assert probs is not None  # the digits extractor has its classifier
        return pooled, probs.argmax(1).numpy()


class ModeFeatures(Features):
    """Points of a known mixture: their coordinates, classed by the nearest mode."""

    # Measured on ring8: collapsed runs (lr 0.1, points spread off the ring) 0.00-0.05 all
    # along, healthy mixture / mixture-grid runs 0.45-0.57 at step 500 and 0.85-0.95 later.
    realism = True

    def __init__(self, means: np.ndarray) -> None:
        self.means = torch.as_tensor(means, dtype=torch.float32)
        self.num_classes = len(means)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        x = x.float()
        return x, torch.cdist(x, self.means).argmin(1).numpy()


class ImageKind(Kind):
    """Images from the built-ins, folders and array files; scored in a feature space."""

    name = "images"
    sample_suffixes = (".npz", ".png")

    def load(self, cfg: DataConfig, codec: dict[str, Any] | None = None) -> Dataset:
        from .. import data as data_sources

        return data_sources.build(cfg)

    def conditioning(self, cfg: Config, data: Dataset, x: torch.Tensor, seed: int,
                     device: torch.device) -> Conditioning:
        return from_labels_or_clusters(cfg.model, data, x, seed, device)

    def preview(self, x: torch.Tensor, value_range: tuple[float, float], data: Dataset,
                data_x: torch.Tensor, nrow: int) -> tuple[str, bytes]:
        from ..images import sample_png

        # Images: one row per class for conditional runs; points: framed by the data.
        return ".png", sample_png(x, value_range, data_x, nrow=nrow)

    def write(self, run: Run, out: Path, num: int, seed: int, label: int | None,
              where: list[str]) -> int:
        from ..images import make_grid, points_extent, save_png, scatter

        if where:
            raise GankitError("--where selects rows of a table; this run makes "
                              f"{self.name}")
        samples = run.sample(num, seed=seed, label=label)
        if out.suffix.lower() == ".png":
            if run.is_image:
                cols = 0 if label is not None else run.grid_columns(num)
                save_png(make_grid(samples, nrow=cols), out)
            else:
                save_png(scatter(samples, points_extent(samples)), out)
        else:
            key = "images" if run.is_image else "samples"

            def write(tmp: Path) -> None:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, **{key: samples})

            atomic_write(out, write)
        return len(samples)

    def scorer(self, data: Dataset, cfg: Config) -> Scorer:
        return FeatureScorer(data, cfg.eval.extractor)

    def features(self, data: Dataset, cfg: Config, value_range: tuple[float, float]
                 ) -> Features:
        # Pooled pixels, not the digit classifier: as telling on induced collapses, and 50x
        # cheaper (measured: the classifier on 256 digits cost 18% of 100 classic steps).
        if not data.is_image:
            from ..data.mixtures import MIXTURES, mixture

            return ModeFeatures(mixture(data.name).means) if data.name in MIXTURES \
                else Features()
        return PooledFeatures()

    def verdict_features(self, data: Dataset, cfg: Config, value_range: tuple[float, float]
                         ) -> Features:
        # 28x28 grayscale digits judged by the digit classifier, as evaluation judges them
        from ..metrics.digit_classifier import IMAGE_SHAPE
        from ..metrics.extractors import default_extractor

        if data.is_image and (cfg.eval.extractor or default_extractor(data.shape)) == "digits" \
                and tuple(data.shape) == IMAGE_SHAPE:
            return DigitFeatures(value_range)
        return self.features(data, cfg, value_range)

    def evaluator(self, run: Run, extractor: str, data: str | None = None,
                  data_dir: str | None = None) -> Callable[[int, int], dict[str, Any]]:
        from ..evaluation import prepare_reference, score_samples

        prepared = prepare_reference(run.config.data, data, data_dir,
                                     extractor or run.config.eval.extractor)

        def judge(num: int, seed: int) -> dict[str, Any]:
            labels = None
            if run.num_classes and not run.self_conditioned:
                labels = run.draw_labels(num, seed)  # the classes asked for, for class_scores
            x = run.generate(num, seed, labels)
            if run.is_image:
                x = to_unit(x, run.value_range)
            head = {"source": str(run.path), "step": run.step}
            return score_samples(x, head, prepared, seed, labels)

        return judge

    def view(self, run: Run) -> View:
        return ImageView(run)


class PointKind(ImageKind):
    """2-D points (the mixtures, or (N, D) arrays); scored by the mixture's modes."""

    name = "points"

    def view(self, run: Run) -> View:
        return PointView(run)


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


class ImageView(View):
    """Images leave as uint8 (N, H, W, C) beside the raw output; the page shows a grid."""

    outputs = ("images", "raw")
    downloads = ("png", "npz")

    @property
    def page_num(self) -> int:
        return 100 if self.run.grid_columns(100) else 36  # ten per class

    def finish(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u8 = to_unit(x, self.run.value_range).mul(255.0).round()  # as images.to_uint8
        return u8.to(torch.uint8).permute(0, 2, 3, 1), x

    def describe(self) -> dict[str, str]:
        c, h, w = self.run.generator.image_shape
        return {"gankit.outputs": json.dumps({"images": ["N", h, w, c], "raw": ["N", c, h, w]}),
                "gankit.value_range": json.dumps({"images": [0, 255],
                                                  "raw": list(self.run.value_range)})}

    def uint8(self, x: torch.Tensor) -> np.ndarray:
        """Images as uint8 (N, H, W, C)."""
        from ..images import to_uint8

        return to_uint8(x, self.run.value_range)

    def grid(self, x: torch.Tensor, columns: int) -> dict[str, Any]:
        from ..images import png_bytes, png_data_url

        imgs = self.uint8(x)
        scale = max(1, 64 // imgs.shape[1])
        return {"images": [png_data_url(png_bytes(im, scale)) for im in imgs],
                "columns": columns}

    def walked(self, x: torch.Tensor, context: Callable[[], tuple[torch.Tensor, torch.Tensor]]
               ) -> dict[str, Any]:
        from ..images import png_bytes, png_data_url

        img = self.uint8(x)[0]
        return {"image": png_data_url(png_bytes(img, max(1, 192 // img.shape[0])))}

    def download(self, fmt: str, x: torch.Tensor, columns: int) -> tuple[str, str, bytes]:
        from ..images import make_grid, png_bytes

        if fmt == "png":
            return "image/png", ".png", png_bytes(make_grid(self.uint8(x), columns))
        return "application/octet-stream", ".npz", _npz(images=self.uint8(x))


class PointView(View):
    """Points leave as float32 (N, D); the page shows a scatter plot."""

    outputs = ("points",)
    downloads = ("png", "npz")

    @property
    def page_num(self) -> int:
        return 1000

    def describe(self) -> dict[str, str]:
        return {"gankit.outputs": json.dumps({"points": ["N", *self.run.generator.image_shape]})}

    def grid(self, x: torch.Tensor, columns: int) -> dict[str, Any]:
        from ..images import png_data_url

        return {"plot": png_data_url(self.plot(x.numpy()))}

    def walked(self, x: torch.Tensor, context: Callable[[], tuple[torch.Tensor, torch.Tensor]]
               ) -> dict[str, Any]:
        from ..images import png_data_url

        grid, ends = context()
        return {"plot": png_data_url(self.plot(grid.numpy(), ends.numpy(), x.numpy()[0])),
                "point": [round(float(v), 6) for v in x[0]]}

    def download(self, fmt: str, x: torch.Tensor, columns: int) -> tuple[str, str, bytes]:
        if fmt == "png":
            return "image/png", ".png", self.plot(x.numpy())
        return "application/octet-stream", ".npz", _npz(samples=x.numpy().astype(np.float32))

    @staticmethod
    def plot(points: np.ndarray, ends: np.ndarray | None = None,
             here: np.ndarray | None = None, size: int = 320) -> bytes:
        """A scatter plot of 2-D ``points`` (PNG), with a walk's ends (green) and its point
        (red) circled."""
        from PIL import Image, ImageDraw

        from ..images import png_bytes, points_extent, scatter

        extent = points_extent(points)
        pil = Image.fromarray(scatter(points[:, :2], extent, size))
        draw = ImageDraw.Draw(pil)
        marks = [(e, (40, 160, 60)) for e in (ends if ends is not None else [])]
        if here is not None:
            marks.append((here, (220, 40, 40)))
        for p, color in marks:
            cx = (p[0] / extent + 1) * 0.5 * (size - 1)
            cy = (1 - (p[1] / extent + 1) * 0.5) * (size - 1)
            draw.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], outline=color, width=2)
        return png_bytes(np.asarray(pil))
