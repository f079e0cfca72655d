"""The built-in demo: an autoencoder on scikit-learn's handwritten digits (no download).

64 pixels → 32 → latent → 32 → 64, ReLU, trained unsupervised. Learning rate, weight decay,
optimizer, batch size and input noise are declared parameters, so a person can tune the run live.
Run it with ``neurotop demo`` (under the TUI) or ``python -m neurotop.trainer.demo`` (journal only).
"""

from __future__ import annotations

import argparse
import itertools
import sys

import torch
from torch import nn

from neurotop.trainer.demo import options
from neurotop.trainer.insights import InsightProbe
from neurotop.trainer.monitor import Monitor
from neurotop.trainer.params import Param
from neurotop.trainer.probes import ActivationProbe, Cadence, image_sample


def load_digits_split(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """1,797 8×8 digits scaled to [0, 1], split 80/20 with a fixed seed: (x_train, y_train, x_val, y_val)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(len(x) * 0.8)
    train, val = order[:cut], order[cut:]
    return x[train], y[train], x[val], y[val]


class Autoencoder(nn.Module):
    def __init__(self, inputs: int = 64, hidden: int = 32, latent: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, inputs), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="neurotop demo", description=__doc__.splitlines()[0])
    return options.add_arguments(ap).parse_args(argv)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(args: argparse.Namespace) -> Monitor:
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, args.threads))
    device = pick_device(args.device)
    x_train, _, x_val, y_val = (t.to(device) for t in load_digits_split(args.seed))
    model = Autoencoder(64, args.hidden, args.latent).to(device)
    if args.broken:
        break_model(model)
    holder: dict[str, torch.optim.Optimizer] = {}

    def make_optimizer(kind: str, old: str | None = None) -> None:
        holder["opt"] = OPTIMIZERS[kind](model.parameters(), lr=args.lr)
        if "mon" in holder:
            holder["mon"].optimizer = holder["opt"]  # checkpoints and roll-backs follow the new one

    params = {
        "lr": Param(args.lr, min=1e-6, max=10.0, log=True, help="learning rate"),
        "weight_decay": Param(0.0, min=0.0, max=0.1, help="L2 penalty"),
        "optimizer": Param("adam", choices=list(OPTIMIZERS), on_change=make_optimizer,
                           help="rebuilt on change (its state starts afresh)"),
        "batch_size": Param(args.batch_size, min=1, max=len(x_train), help="applied at the next epoch"),
        "noise": Param(0.0, min=0.0, max=1.0, help="input noise (denoising autoencoder)"),
    }
    make_optimizer("adam")
    mon = holder["mon"] = Monitor(model, params, optimizer=holder["opt"], name=args.name, device=str(device),
                                  enabled=not args.no_monitor, guard=not args.no_guard)
    probe = ActivationProbe(mon, model, inputs=x_val, every=args.probe_every, samples=32)
    every = args.insight_every or None
    insights = InsightProbe(mon, model, inputs=x_val, labels=y_val, every=every, grad_every=every,
                            latent=model.encode if args.latent_every else False,
                            latent_every=args.latent_every or None)
    shown = x_val[:8]
    pictures = Cadence(steps=args.probe_every * 4)
    loss_fn = nn.MSELoss()
    n = len(x_train)
    with mon:
        for epoch in range(args.epochs) if args.epochs else itertools.count():
            mon.epoch = epoch
            batch_size = int(mon.params["batch_size"])
            order = torch.randperm(n, device=device)
            for start in range(0, n, batch_size):
                if (args.steps and mon.step_count >= args.steps) or not mon.step():
                    return _finish(mon)
                opt = holder["opt"]
                for group in opt.param_groups:
                    group["lr"] = mon.params["lr"]
                    group["weight_decay"] = mon.params["weight_decay"]
                batch = x_train[order[start : start + batch_size]]
                noisy = batch + mon.params["noise"] * torch.randn_like(batch) if mon.params["noise"] else batch
                loss = loss_fn(model(noisy), batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                step = mon.step_count
                insights.before_step(step)
                opt.step()
                insights.after_step(step)
                loss_value = loss.item()
                mon.log(loss=loss_value)
                if args.checkpoint_every and step % args.checkpoint_every == 0 and mon.steady:
                    mon.checkpoint(source="auto", name="last-good")
                if step % args.val_every == 0:
                    with torch.no_grad():
                        val_loss = loss_fn(model(x_val), x_val).item()
                    mon.log(val_loss=val_loss)
                    if step % (args.val_every * 20) == 0:
                        print(f"step {step} epoch {epoch} loss {loss.item():.5f} val_loss {val_loss:.5f}", flush=True)
                probe.maybe(step)
                insights.maybe(step)
                if mon.enabled and pictures.due(step):
                    with torch.no_grad():
                        mon.emit(image_sample(step, "inputs", shown))
                        mon.emit(image_sample(step, "outputs", model(shown)))
        return _finish(mon)


def break_model(model: Autoencoder, fraction: float = 0.75) -> None:
    """``--broken``: a bias of -10 on most units of the first hidden layer. Their inputs are in
    [0, 1] and their weights small, so the ReLU after them never fires, passes no gradient back,
    and the units stay dead for good: the loss plateaus high and the pathways view shows why."""
    first = model.encoder[0]
    with torch.no_grad():
        first.bias[: int(first.out_features * fraction)] = -10.0


def _finish(mon: Monitor) -> Monitor:
    mon.checkpoint(source="end")
    return mon


def main(argv: list[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
