"""What full monitoring costs the demo's training speed: ``train()`` with the Monitor on (journal,
events pipe to a reader, activation probes, image samples, control socket) and with
``--no-monitor``, the same steps, alternated in one process (mon/none, none/mon, ...),
``--threads 1``.

Each run's speed is taken over its training loop: from its first ``Monitor.step()`` call to its
last (the method is wrapped to note the time; a disabled Monitor's ``step()`` is called just the
same), so start-up and the final checkpoint are left out and reported apart as the fixed cost.
The figure is the median over pairs of (monitored steps/s) / (unmonitored steps/s): pairing
cancels the slow drift of a shared machine's load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

from bench.common import median, progress, quartiles
from neurotop.trainer import journal
from neurotop.trainer.protocol import ENV_EVENTS_FD, ENV_RUN_DIR

_loop = {"first": None, "last": None, "n": 0, "cpu_first": 0.0, "cpu_last": 0.0}


def _wrap_step() -> None:
    import neurotop.trainer.monitor as tm

    if getattr(tm.Monitor.step, "_bench", False):
        return
    original = tm.Monitor.step

    def step(self, step=None):
        ok = original(self, step)
        now, cpu = time.perf_counter(), time.process_time()
        if _loop["first"] is None:
            _loop["first"], _loop["cpu_first"] = now, cpu
        _loop["last"], _loop["cpu_last"] = now, cpu
        _loop["n"] += 1
        return ok

    step._bench = True
    tm.Monitor.step = step


def measure(steps: int = 2000, pairs: int = 8, warmup: int = 300, threads: int = 1, pipe: bool = True) -> dict:
    root = tempfile.mkdtemp(prefix="neurotop-bench-demo-")
    os.environ[journal.ENV_RUNS] = root
    os.environ.pop(ENV_RUN_DIR, None)
    reader = None
    if pipe:  # a UI that keeps up: `cat` drains the events pipe, as the app's reader thread would
        r, w = os.pipe()
        reader = subprocess.Popen(["cat"], stdin=r, stdout=subprocess.DEVNULL)
        os.close(r)
        os.environ[ENV_EVENTS_FD] = str(w)
    _wrap_step()
    from neurotop.trainer.demo.autoencoder import parse_args, train

    def one(monitored: bool, n: int) -> dict:
        args = parse_args(["--steps", str(n), "--threads", str(threads)] + ([] if monitored else ["--no-monitor"]))
        _loop.update(first=None, last=None, n=0)
        t0 = time.perf_counter()
        mon = train(args)
        wall = time.perf_counter() - t0
        loop = _loop["last"] - _loop["first"]
        cpu = _loop["cpu_last"] - _loop["cpu_first"]
        iterations = _loop["n"] - 1  # full loop iterations between the first and the last step() call
        return {"wall": wall, "loop": loop, "fixed": wall - loop, "steps": mon.step_count,
                "rate": iterations / loop, "cpu_rate": iterations / cpu if cpu > 0 else float("nan"),
                "self_overhead": mon.overhead if monitored else 0.0}

    one(True, warmup)
    one(False, warmup)
    runs = {"monitored": [], "none": []}
    ratios, cpu_ratios = [], []
    for p in range(pairs):
        order = (True, False) if p % 2 == 0 else (False, True)
        got = {m: one(m, steps) for m in order}
        runs["monitored"].append(got[True])
        runs["none"].append(got[False])
        ratios.append(got[True]["rate"] / got[False]["rate"])
        cpu_ratios.append(got[True]["cpu_rate"] / got[False]["cpu_rate"])
        progress(f"demo: pair {p + 1}/{pairs}: {got[True]['rate']:,.0f} vs {got[False]['rate']:,.0f} steps/s")
    if reader is not None:
        os.close(int(os.environ.pop(ENV_EVENTS_FD)))
        reader.wait(10)
    shutil.rmtree(root, ignore_errors=True)
    q1, q3 = quartiles(ratios)
    rate_mon = median(r["rate"] for r in runs["monitored"])
    rate_none = median(r["rate"] for r in runs["none"])
    return {
        "steps": steps,
        "pairs": pairs,
        "rate_monitored": rate_mon,
        "rate_none": rate_none,
        "ratio": median(ratios),
        "ratio_q1": q1,
        "ratio_q3": q3,
        "ratios": ratios,
        "ratio_of_medians": rate_mon / rate_none,
        "cpu_ratio": median(cpu_ratios),
        "self_overhead": median(r["self_overhead"] for r in runs["monitored"]),
        "fixed_monitored_s": median(r["fixed"] for r in runs["monitored"]),
        "fixed_none_s": median(r["fixed"] for r in runs["none"]),
        "journal_steps": runs["monitored"][-1]["steps"],
    }
