"""A small convolutional autoencoder on the digits as 1×8×8 images, with reconstructions shown live.

Run it under the TUI with ``neurotop run -- python -m neurotop.trainer.examples.conv_autoencoder``. CPU, well
under a minute. Beyond the five-line SDK shape (declare, step, read params, log) it shows:

* activation probes on layers chosen **by name** (``encoder.act1`` ...), on a **cadence in seconds**;
* image samples of inputs and reconstructions with ``neurotop.trainer.probes.image_sample``;
* a ``save`` callable: what a checkpoint command writes (state dicts and plain numbers only, so
  ``torch.load(path, weights_only=True)`` reads it back), and the matching ``load``;
* a clean stop with ``if not mon.step(): break``.
"""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from neurotop import Monitor, Param
from neurotop.trainer.demo.autoencoder import load_digits_split
from neurotop.trainer.probes import ActivationProbe, Cadence, image_sample


class ConvAutoencoder(nn.Module):
    """1×8×8 → 8×8×8 → 16×4×4 (the code) → 8×8×8 → 1×8×8."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        c = channels
        self.encoder = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(1, c, 3, padding=1)), ("act1", nn.ReLU()),
            ("conv2", nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)), ("act2", nn.ReLU()),
        ]))
        self.decoder = nn.Sequential(OrderedDict([
            ("up", nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1)), ("act1", nn.ReLU()),
            ("conv", nn.Conv2d(c, 1, 3, padding=1)), ("out", nn.Sigmoid()),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m neurotop.trainer.examples.conv_autoencoder",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=150, help="about 15 s on one CPU core")
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--probe-seconds", type=float, default=1.0, help="seconds between activation snapshots")
    ap.add_argument("--sample-seconds", type=float, default=2.0, help="seconds between image samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (a tiny model: 1 is fastest)")
    ap.add_argument("--name", default="conv-autoencoder")
    return ap.parse_args(argv)


def train(args: argparse.Namespace) -> Monitor:
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, args.threads))
    x_train, _, x_val, _ = load_digits_split(args.seed)
    x_train, x_val = x_train.reshape(-1, 1, 8, 8), x_val.reshape(-1, 1, 8, 8)
    model = ConvAutoencoder(args.channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    progress = {"epoch": 0}

    def save(path: Path) -> None:  # called on a checkpoint command; the Monitor renames it into place
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": progress["epoch"], "step": mon.step_count}, path)

    def load(path: Path) -> int:  # a roll-back, or `neurotop` restarting the run from a checkpoint
        state = torch.load(path, weights_only=True, map_location="cpu")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return state["step"]

    mon = Monitor(model, {
        "lr": Param(args.lr, min=1e-5, max=1.0, log=True, help="learning rate"),
        "weight_decay": Param(0.0, min=0.0, max=0.1, help="L2 penalty"),
        "noise": Param(0.0, min=0.0, max=1.0, help="input noise (denoising)"),
    }, optimizer=optimizer, save=save, load=load, name=args.name)
    probe = ActivationProbe(mon, model, layers=["encoder.act1", "encoder.act2", "decoder.act1"],
                            inputs=x_val, every=None, seconds=args.probe_seconds, samples=32)
    pictures = Cadence(seconds=args.sample_seconds)
    shown = x_val[:8]
    loss_fn = nn.MSELoss()
    n = len(x_train)
    stopped = False
    with mon:
        for epoch in range(args.epochs):
            mon.epoch = progress["epoch"] = epoch
            order = torch.randperm(n)
            for start in range(0, n, args.batch_size):
                if args.steps and mon.step_count >= args.steps:
                    stopped = True
                    break
                if not mon.step():  # a stop command (after applying what came before it)
                    stopped = True
                    break
                for group in optimizer.param_groups:
                    group["lr"] = mon.params["lr"]
                    group["weight_decay"] = mon.params["weight_decay"]
                batch = x_train[order[start : start + args.batch_size]]
                noisy = (batch + mon.params["noise"] * torch.randn_like(batch)) if mon.params["noise"] else batch
                loss = loss_fn(model(noisy), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                mon.log(loss=loss.item())
                probe.maybe(mon.step_count)
                if pictures.due(mon.step_count):
                    with torch.no_grad():
                        mon.emit(image_sample(mon.step_count, "inputs", shown))
                        mon.emit(image_sample(mon.step_count, "outputs", model(shown)))
            if stopped:
                break
            with torch.no_grad():
                val_loss = loss_fn(model(x_val), x_val).item()
            mon.log(val_loss=val_loss)
            if epoch % 10 == 0:
                print(f"epoch {epoch} step {mon.step_count} val_loss {val_loss:.5f} "
                      f"lr {optimizer.param_groups[0]['lr']:.3g}", flush=True)
    return mon


def main(argv: list[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
