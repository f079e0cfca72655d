"""A fake training process for fast UI tests: the real Monitor SDK, no torch, a synthetic loss.

Options let a test provoke what a real run does: crash, print, run slowly, never say hello.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import time

from neurotop import Monitor, Param
from neurotop.trainer.protocol import Activations, Sample


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=0, help="0: until stopped")
    ap.add_argument("--rate", type=float, default=200.0, help="steps per second")
    ap.add_argument("--fail-at", type=int, default=0, help="raise an exception at this step")
    ap.add_argument("--kill-at", type=int, default=0, help="SIGKILL itself at this step")
    ap.add_argument("--print-every", type=int, default=50)
    ap.add_argument("--name", default="scripted")
    ap.add_argument("--nan-at", type=int, default=0, help="the loss turns NaN from this step on")
    ap.add_argument("--guard", action="store_true", help="the divergence guard pauses the run")
    args = ap.parse_args()

    rng = random.Random(0)
    mon = Monitor(params={
        "lr": Param(1e-3, min=1e-6, max=1.0, log=True, help="learning rate"),
        "weight_decay": Param(0.0, min=0.0, max=0.1),
        "optimizer": Param("adam", choices=["adam", "adamw", "sgd"]),
    }, name=args.name, guard=args.guard)
    with mon:
        while mon.step():
            step = mon.step_count
            mon.epoch = step // 100
            loss = math.exp(-step / 300) * (1 + 0.05 * rng.random()) * (mon.params["lr"] / 1e-3) ** 0.2 + 0.01
            if args.nan_at and step >= args.nan_at and mon.params["lr"] >= 1e-3:
                loss = float("nan")  # "diverges" until the learning rate comes down
            mon.log(loss=loss)
            if step % 10 == 0:
                mon.log(val_loss=loss * 1.1)
            if step % 25 == 0:
                cells = bytes((u * 8 + s * 3 + step) % 256 if u % 7 else 0 for u in range(16) for s in range(8))
                for layer in ("enc.relu", "dec.relu"):
                    mon.emit(Activations(step=step, layer=layer, rows=16, cols=8, lo=0.0, scale=0.01,
                                         cells=cells, units=16))
                img = bytes((i * 4 + step) % 256 for i in range(4 * 64))
                mon.emit(Sample(step=step, name="inputs", count=4, height=8, width=8, lo=0.0, scale=1 / 255, cells=img))
                mon.emit(Sample(step=step, name="outputs", count=4, height=8, width=8, lo=0.0, scale=1 / 255, cells=img))
            if args.print_every and step % args.print_every == 0:
                print(f"step {step} loss {loss:.4f}", flush=True)
            if step == args.fail_at:
                raise RuntimeError(f"synthetic failure at step {step}")
            if step == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if args.steps and step >= args.steps:
                break
            time.sleep(1.0 / args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
