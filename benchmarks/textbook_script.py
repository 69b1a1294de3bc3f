"""The textbook GAN as a whole script: what ``gankit train --preset seed`` is timed against.

Written as tutorials write it, on torch's default threads: load the digits, two fully connected
networks with 128-wide hidden layers, BCE-with-logits, Adam 2e-4 (0.5, 0.999), batch 128, random
indexing into the in-memory data, `.item()` on both losses each step, and at the end a sample
grid saved as a PNG (gankit's run also writes samples, metrics and checkpoints).

    time python benchmarks/textbook_script.py --steps 3500
    time gankit train --preset seed --steps 3500 --out runs/seed
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

DIGITS = Path(__file__).resolve().parents[1] / "src" / "gankit" / "data" / "digits.npz"


def main() -> None:
    """Train the textbook GAN for ``--steps`` steps and save a grid of 64 samples."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3500)
    ap.add_argument("--out", default="textbook-samples.png")
    args = ap.parse_args()
    torch.manual_seed(0)
    with np.load(DIGITS) as z:
        x = torch.from_numpy(z["images"]).float().div(255.0).view(-1, 784)
    G = nn.Sequential(nn.Linear(100, 128), nn.LeakyReLU(0.2), nn.Linear(128, 128),
                      nn.LeakyReLU(0.2), nn.Linear(128, 784), nn.Sigmoid())
    D = nn.Sequential(nn.Linear(784, 128), nn.LeakyReLU(0.2), nn.Linear(128, 128),
                      nn.LeakyReLU(0.2), nn.Linear(128, 1))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    b = 128
    ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
    for step in range(args.steps):
        real = x[torch.randint(0, x.shape[0], (b,))]
        fake = G(torch.randn(b, 100))
        d_loss = (F.binary_cross_entropy_with_logits(D(real), ones)
                  + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(D(fake), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_loss, g_loss = d_loss.item(), g_loss.item()
        if step % 500 == 0:
            print(f"step {step}: loss_D {d_loss:.3f} loss_G {g_loss:.3f}")
    with torch.no_grad():
        grid = G(torch.randn(64, 100)).view(8, 8, 28, 28).permute(0, 2, 1, 3).reshape(224, 224)
    Image.fromarray((grid.numpy() * 255).astype(np.uint8)).save(args.out)


if __name__ == "__main__":
    main()
