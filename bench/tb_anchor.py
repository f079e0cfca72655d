"""The TensorBoard anchor: ``EventAccumulator`` loading a tfevents file of N scalars (the same loss
values as our journals, as float32), timed, with the RSS it took, in a fresh process.

The file is what ``SummaryWriter.add_scalar`` writes, record for record, but built with numpy
(``bench.data.write_tfevents``): writing 1M scalars through SummaryWriter would take 1–2 minutes
here. ``size_guidance={SCALARS: 0}`` keeps every point, as our store keeps every point's
contribution; TensorBoard's default reservoir (10,000 per tag) bounds memory by dropping points,
and reads the file at the same speed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import data
from bench.common import rss_mb


def write(scalars: int, log_dir: str = "") -> dict:
    path = Path(log_dir or tempfile.mkdtemp(prefix="neurotop-bench-tb-"))
    t0 = time.perf_counter()
    file = data.write_tfevents(path, scalars)
    return {"log_dir": str(path), "seconds": time.perf_counter() - t0, "bytes": file.stat().st_size}


def load(log_dir: str, scalars: int) -> dict:
    from tensorboard.backend.event_processing import event_accumulator as ea

    rss0 = rss_mb()
    t0 = time.perf_counter()
    acc = ea.EventAccumulator(log_dir, size_guidance={ea.SCALARS: 0})
    acc.Reload()
    seconds = time.perf_counter() - t0
    got = acc.Scalars("loss")
    assert len(got) == scalars, (len(got), scalars)
    return {"seconds": seconds, "rss_before": rss0, "rss_after": rss_mb(), "scalars": len(got)}
