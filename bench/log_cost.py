"""What one ``log()`` call costs the training loop: ``Monitor.log`` beside ``SummaryWriter.add_scalar``
and ``wandb.log`` (offline), in one process, on the same values, in interleaved rounds.

Per call is timed over batches of calls (one clock read per batch) and the median batch is the
figure; the amortized cost (whole loop wall time / calls) is reported too, because it also holds
what each tool's background thread took from the training thread through the GIL.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench import data
from bench.common import median, progress, quartiles


def _child_cpu() -> float:
    """CPU seconds used so far by our child processes (wandb's service)."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _timed_batches(loop, calls: int, batch: int) -> tuple[list[float], float]:
    per_batch = []
    t_all = time.perf_counter_ns()
    for lo in range(0, calls, batch):
        t0 = time.perf_counter_ns()
        loop(lo, lo + batch)
        per_batch.append((time.perf_counter_ns() - t0) / batch / 1e3)
    return per_batch, (time.perf_counter_ns() - t_all) / calls / 1e3


def measure(calls: int = 100_000, tb_calls: int = 10_000, wandb_calls: int = 1_000, rounds: int = 3,
            peers_wanted: tuple = ("tensorboard", "wandb")) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="neurotop-bench-log-"))
    steps = rounds * (max(calls, tb_calls, wandb_calls) + 1000) + 1  # batches may round a count up
    import numpy as np

    values = data.losses(np.arange(1, steps + 1)).tolist()
    results: dict[str, dict] = {}
    peers = {}

    from neurotop.trainer.monitor import Monitor

    mon = Monitor(run_dir=tmp / "ours", name="bench")
    log = mon.log

    def ours(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            log(loss=values[i])

    peers["neurotop Monitor.log"] = (ours, calls, 1000)

    writer = None
    try:
        if "tensorboard" not in peers_wanted:
            raise ImportError("not asked for")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(tmp / "tb"))
        add_scalar = writer.add_scalar

        def tb(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                add_scalar("loss", values[i], i + 1)

        peers["TensorBoard SummaryWriter.add_scalar"] = (tb, tb_calls, 100)
    except ImportError as err:
        results["TensorBoard SummaryWriter.add_scalar"] = {"error": f"not installed ({err})"}

    run = None
    try:
        if "wandb" not in peers_wanted:
            raise ImportError("not asked for")
        os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(tmp),
                          WANDB_CONSOLE="off", WANDB_DISABLE_GIT="true")
        import wandb

        run = wandb.init(project="neurotop-bench", dir=str(tmp), mode="offline")
        wlog = run.log

        def wb(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                wlog({"loss": values[i]}, step=i + 1)

        peers["wandb.log (offline)"] = (wb, wandb_calls, 50)
    except Exception as err:  # not installed, or its service would not start
        results["wandb.log (offline)"] = {"error": f"unavailable ({type(err).__name__}: {err})"}

    collected = {name: {"batches": [], "amortized": [], "child_cpu": 0.0, "calls": 0} for name in peers}
    for r in range(rounds):
        for name, (loop, n, batch) in peers.items():
            offset = r * n
            c0 = _child_cpu()
            per_batch, amortized = _timed_batches(
                lambda lo, hi, loop=loop, offset=offset: loop(offset + lo, offset + hi), n, batch)
            got = collected[name]
            got["batches"] += per_batch
            got["amortized"].append(amortized)
            got["child_cpu"] += _child_cpu() - c0
            got["calls"] += n
        progress(f"log(): round {r + 1}/{rounds} done")

    t0 = time.perf_counter()
    mon.close()
    close_s = {"neurotop Monitor.log": time.perf_counter() - t0}
    if writer is not None:
        t0 = time.perf_counter()
        writer.close()
        close_s["TensorBoard SummaryWriter.add_scalar"] = time.perf_counter() - t0
    if run is not None:
        t0 = time.perf_counter()
        run.finish()
        close_s["wandb.log (offline)"] = time.perf_counter() - t0
        import wandb

        wandb.teardown()  # stop its service now, not at interpreter exit

    for name, got in collected.items():
        q1, q3 = quartiles(got["batches"])
        results[name] = {
            "median_us": median(got["batches"]),
            "q1_us": q1,
            "q3_us": q3,
            "amortized_us": median(got["amortized"]),
            "child_cpu_us": got["child_cpu"] / got["calls"] * 1e6,
            "calls": got["calls"],
            "close_s": close_s.get(name, 0.0),
        }
    # the journal really holds what was logged (a benchmark of a no-op would be worthless)
    lines = (tmp / "ours" / "journal.jsonl").read_bytes().count(b'"loss"')
    results["neurotop Monitor.log"]["journal_lines"] = lines
    shutil.rmtree(tmp, ignore_errors=True)
    return results
