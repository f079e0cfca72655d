"""Journals written by hand, so a test knows exactly what a reader must rebuild."""

from __future__ import annotations

import math
from pathlib import Path

from neurotop.trainer import journal
from neurotop.trainer.protocol import (
    Activations, Event, Hello, LayerInfo, Metric, ParamChange, ParamSpec, Sample, Status, encode,
)

T0 = 1_795_000_000.0


def demo_messages(steps: int = 600, finished: bool = True, name: str = "fixed") -> list:
    msgs = [Hello(version=1, run_id="fixed-run", name=name, pid=1, host="test", started=T0,
                  model=[LayerInfo(name="enc.relu", kind="ReLU"), LayerInfo(name="dec.relu", kind="ReLU")],
                  params=[ParamSpec(name="lr", kind="float", value=1e-3, default=1e-3, min=1e-6, max=1.0, log=True,
                                    help="learning rate"),
                          ParamSpec(name="weight_decay", kind="float", value=0.0, default=0.0, min=0.0, max=0.1),
                          ParamSpec(name="optimizer", kind="choice", value="adam", default="adam",
                                    choices=["adam", "sgd"])])]
    for step in range(1, steps + 1):
        loss = 0.02 + 0.2 * math.exp(-step / 120) + 0.004 * math.sin(step / 7)
        msgs.append(Metric(step=step, t=T0 + step / 100, values={"loss": loss}, epoch=step // 50))
        if step % 20 == 0:
            msgs.append(Metric(step=step, t=T0 + step / 100, values={"val_loss": loss * 1.15}, epoch=step // 50))
        if step == steps // 2:
            msgs.append(ParamChange(step=step, t=T0 + step / 100, name="lr", old=1e-3, new=2e-3, source="ui"))
            msgs.append(Event(step=step + 3, t=T0 + step / 100, kind="note", text="lr doubled: watch it", source="ui"))
    cells = bytes(0 if u % 5 == 0 else (u * 16 + s * 8) % 256 for u in range(16) for s in range(8))
    for layer in ("enc.relu", "dec.relu"):
        msgs.append(Activations(step=steps, layer=layer, rows=16, cols=8, lo=0.0, scale=0.01, cells=cells, units=16))
    digit = bytes((255 if (x in (2, 5) or y in (1, 6)) else 0) for y in range(8) for x in range(8))
    msgs.append(Sample(step=steps, name="inputs", count=4, height=8, width=8, lo=0.0, scale=1 / 255, cells=digit * 4))
    msgs.append(Sample(step=steps, name="outputs", count=4, height=8, width=8, lo=0.0, scale=1 / 255,
                       cells=bytes(v // 2 for v in digit) * 4))
    if finished:
        msgs.append(Status(step=steps, t=T0 + steps / 100, state="finished", exit_code=0))
    return msgs


def write_run(root: Path, msgs: list, name: str = "fixed", state: str = "finished", pid: int = 1) -> Path:
    run_dir = journal.create_run_dir(root, name)
    (run_dir / journal.JOURNAL).write_bytes(b"".join(encode(m) for m in msgs))
    (run_dir / journal.OUTPUT).write_text("epoch 1 done\nepoch 2 done\n")
    journal.RunInfo(id=run_dir.name, name=name, pid=pid, started=T0, state=state,
                    step=max((getattr(m, "step", 0) for m in msgs), default=0)).save(run_dir)
    return run_dir
