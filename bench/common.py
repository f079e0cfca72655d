"""Shared pieces: result rows, the Markdown table, machine facts, worker processes, timing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_TAG = "BENCH-RESULT "


@dataclass
class Row:
    """One line of the table. ``met`` is None when there is no figure (skipped, failed)."""

    what: str
    ours: str
    peer: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "n/a"}[self.met]


# ------------------------------------------------------------------------------ numbers
def median(xs) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def quartiles(xs) -> tuple[float, float]:
    xs = sorted(xs)
    if len(xs) < 4:
        return (xs[0], xs[-1]) if xs else (float("nan"), float("nan"))
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def fmt_us(x: float) -> str:
    return f"{x:.2f} µs" if x < 10 else f"{x:.0f} µs"


def fmt_ms(x: float) -> str:
    return f"{x:.1f} ms" if x < 100 else f"{x:,.0f} ms"


def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:,.1f} s"


def fmt_rate(x: float) -> str:
    if x < 1e4:
        return f"{x:,.0f}/s"
    return f"{x / 1e3:,.0f}k/s" if x < 1e6 else f"{x / 1e6:.2f} M/s"


def fmt_mb(x: float) -> str:
    return f"{x:,.0f} MB"


def ratio(ours: float, peer: float, better: str = "lower") -> str:
    """``12× less`` / ``3.1× faster``-style words, from the side that is better."""
    if not (ours > 0 and peer > 0):
        return "—"
    r = peer / ours if better == "lower" else ours / peer
    if r >= 1:
        word = "less" if better == "lower" else "more"
        return f"{r:,.0f}× {word}" if r >= 10 else f"{r:.1f}× {word}"
    return f"{1 / r:.1f}× worse"


def rss_mb(pid: int | None = None) -> float:
    import psutil

    return psutil.Process(pid or os.getpid()).memory_info().rss / 1e6


def batched_per_call(fn, calls: int, batch: int, values) -> tuple[list[float], float]:
    """Call ``fn(i, value)`` ``calls`` times in batches; per-call µs of each batch, and the
    amortized µs per call over the whole loop (wall clock, so it includes background threads
    that took the GIL from the caller)."""
    per_batch = []
    n = len(values)
    t_all = time.perf_counter_ns()
    i = 0
    while i < calls:
        t0 = time.perf_counter_ns()
        for j in range(i, i + batch):
            fn(j, values[j % n])
        per_batch.append((time.perf_counter_ns() - t0) / batch / 1e3)
        i += batch
    return per_batch, (time.perf_counter_ns() - t_all) / i / 1e3


# ------------------------------------------------------------------------------ workers
def run_worker(target: str, timeout: float = 600, env: dict | None = None, **kwargs) -> dict:
    """Run ``module:function(**kwargs)`` in a fresh interpreter; return its JSON result.

    The worker's stderr goes to ours (progress lines); its result comes back on stdout.
    """
    cmd = [sys.executable, "-m", "bench._worker", target, json.dumps(kwargs)]
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=None,
                          timeout=timeout, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f"{target} exited with {proc.returncode} and no result\n{proc.stdout[-2000:]}")


def progress(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ the table
def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    mem = "?"
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    except Exception:
        pass
    versions = {name: _version(name) for name in
                ("neurotop", "textual", "textual-plotext", "plotext", "msgspec", "numpy", "torch",
                 "tensorboard", "wandb", "psutil")}
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem": mem,
        "load": load,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
    }


def markdown(rows: list[Row], info: dict, command: str, seconds: float, details: list[str]) -> str:
    out = [
        "## Benchmarks",
        "",
        f"`{command}` — {info['date']}, {seconds / 60:.1f} min.  ",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['mem']} RAM, {info['os']}, Python "
        f"{info['python']}; load average at the end {info['load']} (a shared, noisy machine: figures "
        f"are medians, ratios are taken within one process or back to back).  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        "",
        "| what | neurotop | peer (same run, same values) | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(f"| {r.what} | {r.ours} | {r.peer} | {r.ratio} | {r.target} | {r.verdict} |")
    out += ["", "### How each figure was taken", ""]
    for r in rows:
        if r.notes:
            out.append(f"- **{r.what}**: " + " ".join(r.notes))
    if details:
        out += ["", "### Details", ""]
        out += details
    return "\n".join(out) + "\n"


def to_json(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
