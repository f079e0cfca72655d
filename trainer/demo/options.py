"""The demo's options, in one place: the training script parses them, and ``neurotop demo`` shows
them in its help and passes them on (this module imports no torch, so the help stays fast)."""

from __future__ import annotations

import argparse


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    ap.add_argument("--epochs", type=int, default=0, help="stop after this many epochs (default 0: run until stopped)")
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (default 0: no limit)")
    ap.add_argument("--latent", type=int, default=8, help="width of the bottleneck (default 8)")
    ap.add_argument("--hidden", type=int, default=32, help="width of the hidden layers (default 32)")
    ap.add_argument("--lr", type=float, default=1e-3, help="starting learning rate (default 1e-3)")
    ap.add_argument("--batch-size", type=int, default=64, help="starting batch size (default 64)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    ap.add_argument("--probe-every", type=int, default=50, help="activation snapshot cadence in steps")
    ap.add_argument("--val-every", type=int, default=100, help="validation cadence in steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: this model is tiny, and spinning OpenMP threads "
                         "collapse when they share cores with the UI)")
    ap.add_argument("--name", default="autoencoder-digits", help="the run's name")
    ap.add_argument("--no-monitor", action="store_true", help="train with monitoring off (for benchmarks)")
    ap.add_argument("--no-guard", action="store_true",
                    help="do not pause when the loss turns NaN or spikes (it is still flagged)")
    ap.add_argument("--checkpoint-every", type=int, default=1000,
                    help="steps between rolling 'last-good' checkpoints (what a roll-back returns to)")
    ap.add_argument("--insight-every", type=int, default=200,
                    help="neuron health, signal and gradient-flow cadence in steps (0: off)")
    ap.add_argument("--latent-every", type=int, default=1000, help="latent-space projection cadence in steps (0: off)")
    ap.add_argument("--broken", action="store_true",
                    help="a deliberately broken model: most units of the first hidden layer start dead "
                         "(bias -10), for finding the dead layer in the pathways view (v)")
    return ap


def to_argv(args: argparse.Namespace) -> list[str]:
    """The options in ``args`` that differ from their defaults, as the demo's command line."""
    argv: list[str] = []
    for action in add_arguments(argparse.ArgumentParser(add_help=False))._actions:
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        flag = action.option_strings[0]
        argv += [flag] if isinstance(action, argparse._StoreTrueAction) else [flag, str(value)]
    return argv
