"""Train the built-in ``digits`` classifier and write its shipped weights.

Trains ``gankit.metrics.digit_classifier.DigitClassifier`` on the 5,000 built-in MNIST digits
with a fixed seed, holding out 50 digits per class (10%, stratified) for testing, and writes
``src/gankit/weights/digit_classifier.safetensors`` with the held-out accuracy, seed and epochs
in its metadata. Light augmentation (small shifts, rotations, scaling, shear, stroke thickness,
noise and contrast changes) helps it generalise to imperfect generated digits, and non-digit
images (noise, blobs, flat grey) trained towards a uniform prediction keep it from calling
noise a confident digit.

Usage: python scripts/train_digit_classifier.py [--epochs 30] [--seed 0] [--out PATH]
Takes a couple of minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.nn import functional as F

from gankit.data.digits import load_digits
from gankit.metrics.digit_classifier import DigitClassifier, load_digit_classifier, predict

DEFAULT_OUT = (Path(__file__).resolve().parents[1] / "src" / "gankit" / "weights"
               / "digit_classifier.safetensors")
HELD_OUT_PER_CLASS = 50
JUNK_PER_BATCH = 12  # non-digit images added to every batch of 128 digits


def stratified_split(labels: torch.Tensor, per_class: int, gen: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, test indices) with `per_class` random test digits from every class."""
    train, test = [], []
    for c in range(int(labels.max()) + 1):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        test.append(idx[:per_class])
        train.append(idx[per_class:])
    return torch.cat(train), torch.cat(test)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random affine (±2 px shift, ±12° rotation, 0.9-1.1 scale, small shear) plus stroke,
    contrast and noise jitter, for a batch (N, 1, 28, 28) in [0, 1]."""
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    angle = uniform(-12.0, 12.0) * math.pi / 180.0
    scale = uniform(0.9, 1.1)
    shear = uniform(-0.15, 0.15)
    shift = (torch.randint(-2, 3, (n, 2), generator=gen).float()
             + torch.rand(n, 2, generator=gen) - 0.5).clamp(-2.0, 2.0) * (2.0 / 28.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin + shear
    theta[:, 1, 0] = sin
    theta[:, 1, 1] = cos
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Stroke thickness: dilate a quarter of the batch, erode another quarter.
    r = torch.rand(n, generator=gen)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    x = torch.where((r < 0.15).view(-1, 1, 1, 1), 0.5 * (x + thick), x)
    x = torch.where((r > 0.85).view(-1, 1, 1, 1), 0.5 * (x + thin), x)

    # Contrast / brightness and additive noise, as generators produce.
    gain = uniform(0.7, 1.1).view(-1, 1, 1, 1)
    bias = uniform(-0.05, 0.1).view(-1, 1, 1, 1)
    noise_std = (uniform(0.0, 0.12) * (torch.rand(n, generator=gen) < 0.5)).view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen) * noise_std
    return (x * gain + bias + noise).clamp_(0.0, 1.0)


def junk(n: int, gen: torch.Generator) -> torch.Tensor:
    """Non-digit images (N, 1, 28, 28): uniform noise, blurred noise blobs, flat grey images and
    sparse speckle, trained towards a uniform class distribution so that noise (e.g. from an
    untrained or collapsed generator) is not confidently called a digit."""
    kind = torch.randint(0, 4, (n,), generator=gen).view(-1, 1, 1, 1)
    noise = torch.rand(n, 1, 28, 28, generator=gen)
    blobs = F.avg_pool2d(torch.rand(n, 1, 28, 28, generator=gen), 5, stride=1, padding=2)
    blobs = ((blobs - 0.5) * 6.0 + 0.5).clamp(0.0, 1.0)
    flat = torch.rand(n, 1, 1, 1, generator=gen).expand(n, 1, 28, 28)
    speckle = (torch.rand(n, 1, 28, 28, generator=gen)
               < torch.rand(n, 1, 1, 1, generator=gen) * 0.3).float()
    return torch.where(kind == 0, noise,
                       torch.where(kind == 1, blobs, torch.where(kind == 2, flat, speckle)))


def train(epochs: int, seed: int, batch_size: int = 128, lr: float = 3e-3,
          junk_per_batch: int = JUNK_PER_BATCH) -> tuple[DigitClassifier, float]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = load_digits()
    assert data.labels is not None
    train_idx, test_idx = stratified_split(data.labels, HELD_OUT_PER_CLASS, gen)
    x_train, y_train = data.images[train_idx], data.labels[train_idx]
    x_test, y_test = data.images[test_idx], data.labels[test_idx]
    print(f"train {len(train_idx)}  held out {len(test_idx)} ({HELD_OUT_PER_CLASS} per class)")

    model = DigitClassifier()
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(train_idx), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(perm), batch_size):
            b = perm[i:i + batch_size]
            if b.numel() < 2:  # batch norm needs more than one sample
                continue
            xb, yb = augment(x_train[b], gen), y_train[b]
            logits_all = model(torch.cat([xb, junk(junk_per_batch, gen)]))
            logits, logits_junk = logits_all[:len(b)], logits_all[len(b):]
            loss = F.cross_entropy(logits, yb, label_smoothing=0.05)
            # Junk images: cross-entropy to the uniform distribution over the 10 classes.
            loss = loss - 0.5 * F.log_softmax(logits_junk, dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * b.numel()
            correct += int((logits.argmax(1) == yb).sum())
            total += b.numel()
        model.eval()
        acc = float((predict(x_test, model=model) == y_test).float().mean())
        print(f"epoch {epoch + 1:3d}/{epochs}  loss {loss_sum / total:.4f}  "
              f"train acc {correct / total:.4f}  held-out acc {acc:.4f}", flush=True)
    model.eval()
    held_out = float((predict(x_test, model=model) == y_test).float().mean())
    return model, held_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    start = time.perf_counter()
    model, held_out = train(args.epochs, args.seed)
    seconds = time.perf_counter() - start
    print(f"held-out accuracy {held_out:.4f}  ({seconds:.0f} s)")

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "model": "gankit.metrics.digit_classifier.DigitClassifier",
        "held_out_accuracy": f"{held_out:.4f}",
        "held_out_per_class": str(HELD_OUT_PER_CLASS),
        "seed": str(args.seed),
        "epochs": str(args.epochs),
        "train_seconds": f"{seconds:.0f}",
        "junk_per_batch": str(JUNK_PER_BATCH),
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=metadata)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")

    if args.out.resolve() == DEFAULT_OUT:
        shipped = load_digit_classifier()
        data = load_digits()
        acc = float((predict(data.images, model=shipped) == data.labels).float().mean())
        print(f"shipped model reloads; accuracy on all built-in digits {acc:.4f}")


if __name__ == "__main__":
    main()
