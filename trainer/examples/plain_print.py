"""A training script that knows nothing of neurotop: it only prints, the way PyTorch's MNIST example does.

Zero-code mode: ``neurotop run -- python -m neurotop.trainer.examples.plain_print`` reads the loss from lines
such as ``Train Epoch: 1 [640/1437 (44%)]\tLoss: 0.300195`` and ``val_loss``/``val_acc`` from the
validation line, and charts them; the log pane shows every line. Nothing here imports ``trainer``
(the data is loaded straight from scikit-learn), so this is what any unmodified script looks like.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def load_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    cut = int(len(x) * 0.8)
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m neurotop.trainer.examples.plain_print", description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many batches (0: no limit)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--log-interval", type=int, default=5, help="batches between Train lines")
    ap.add_argument("--sleep", type=float, default=0.01, help="seconds to sleep per batch (0: full speed)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    torch.manual_seed(1)
    torch.set_num_threads(max(1, args.threads))
    x_train, y_train, x_val, y_val = load_digits()
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    n, batches = len(x_train), 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(n)
        for batch_idx, start in enumerate(range(0, n, args.batch_size)):
            idx = order[start : start + args.batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            if batch_idx % args.log_interval == 0:
                print(f"Train Epoch: {epoch} [{start}/{n} ({100.0 * start / n:.0f}%)]\tLoss: {loss.item():.6f}",
                      flush=True)
            batches += 1
            if args.sleep:
                time.sleep(args.sleep)
            if args.steps and batches >= args.steps:
                break
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = F.cross_entropy(logits, y_val).item()
            correct = int((logits.argmax(dim=1) == y_val).sum())
        print(f"Validation: val_loss: {val_loss:.4f}, val_acc: {correct / len(y_val):.4f} "
              f"({correct}/{len(y_val)})", flush=True)
        if args.steps and batches >= args.steps:
            break
    print("Done.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
