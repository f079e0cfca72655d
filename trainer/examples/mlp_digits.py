"""An MLP classifier on scikit-learn's handwritten digits: a plain PyTorch loop plus the SDK.

Run it under the TUI with ``neurotop run -- python -m neurotop.trainer.examples.mlp_digits`` (or alone with
``python -m neurotop.trainer.examples.mlp_digits``: the journal still goes to ``./runs``). CPU, well under a
minute. The SDK is the same five-line shape in any loop::

    mon = Monitor(model, params={"lr": Param(1e-3, min=1e-5, max=1.0, log=True)})  # declare
    while mon.step():                              # step: applies commands, waits while paused
        lr = mon.params["lr"]                      # read params (the values the UI set)
        ...                                        # your forward, backward, optimizer step
        mon.log(loss=loss.item())                  # log

What this example declares and how each reaches the training:

* ``lr``, ``weight_decay``: read at every step and written into the optimizer's param groups;
* ``dropout_on`` (bool): an ``on_change`` callback switches the dropout layers at once;
* ``batch_size`` (int): read at the start of each epoch, so a change takes effect at the next one.

A checkpoint command saves the model and optimizer state dicts (the Monitor's default, loadable with
``torch.load(path, weights_only=True)``); a stop command ends the loop cleanly after the current step.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from neurotop import Monitor, Param
from neurotop.trainer.demo.autoencoder import load_digits_split
from neurotop.trainer.probes import ActivationProbe


class MLP(nn.Module):
    def __init__(self, inputs: int = 64, hidden: int = 128, classes: int = 10, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(inputs, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m neurotop.trainer.examples.mlp_digits", description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=400, help="about 15 s on one CPU core")
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.2, help="dropout probability while dropout_on")
    ap.add_argument("--probe-every", type=int, default=50, help="activation snapshot cadence in steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (a tiny model: 1 is fastest)")
    ap.add_argument("--name", default="mlp-digits")
    return ap.parse_args(argv)


def train(args: argparse.Namespace) -> Monitor:
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, args.threads))
    x_train, y_train, x_val, y_val = load_digits_split(args.seed)
    model = MLP(64, args.hidden, 10, args.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)

    def switch_dropout(on: bool, old: bool) -> None:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = args.dropout if on else 0.0

    # 1. declare: typed, bounded; the TUI draws its controls from this and validates against it
    mon = Monitor(model, {
        "lr": Param(args.lr, min=1e-5, max=1.0, log=True, help="learning rate"),
        "weight_decay": Param(1e-4, min=0.0, max=0.1, help="AdamW weight decay"),
        "dropout_on": Param(True, on_change=switch_dropout, help="dropout layers on/off"),
        "batch_size": Param(args.batch_size, min=8, max=len(x_train), help="applied at the next epoch"),
    }, optimizer=optimizer, name=args.name,
        # a classifier's batch loss swings 10-50x near zero on a set this small: flag NaN and spikes
        # on the epoch's validation loss instead (the default watches ``loss``)
        guard_key="val_loss")
    # activation snapshots of every ReLU (layers chosen by type), on a fixed validation batch
    probe = ActivationProbe(mon, model, layers=(nn.ReLU,), inputs=x_val, every=args.probe_every, samples=32)
    loss_fn = nn.CrossEntropyLoss()
    n = len(x_train)
    batch_size = None
    with mon:  # the end record (finished / stopped / failed) is written however the block ends
        for epoch in range(args.epochs):
            mon.epoch = epoch
            if mon.params["batch_size"] != batch_size:  # int param, applied at the epoch boundary
                if batch_size is not None:
                    mon.note(f"batch_size {batch_size} -> {mon.params['batch_size']} from epoch {epoch}")
                batch_size = mon.params["batch_size"]
            model.train()
            order = torch.randperm(n)
            for start in range(0, n, batch_size):
                # 2. step: applies pending commands, waits while paused; False once a stop came
                if (args.steps and mon.step_count >= args.steps) or not mon.step():
                    return mon
                # 3. read params
                for group in optimizer.param_groups:
                    group["lr"] = mon.params["lr"]
                    group["weight_decay"] = mon.params["weight_decay"]
                idx = order[start : start + batch_size]
                loss = loss_fn(model(x_train[idx]), y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                # 4. log
                mon.log(loss=loss.item())
                probe.maybe(mon.step_count)
            model.eval()
            with torch.no_grad():
                logits = model(x_val)
                val_loss = loss_fn(logits, y_val).item()
                val_acc = (logits.argmax(dim=1) == y_val).float().mean().item()
            model.train()
            mon.log(val_loss=val_loss, val_acc=val_acc)
            print(f"epoch {epoch} step {mon.step_count} val_loss {val_loss:.4f} val_acc {val_acc:.4f} "
                  f"lr {optimizer.param_groups[0]['lr']:.3g} batch_size {batch_size}", flush=True)
    return mon


def main(argv: list[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
