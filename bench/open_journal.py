"""Opening a finished run: ``Link.attach`` rebuilding the store from a journal of N steps.

``write`` builds the run directory (journal from a byte template, ``run.json``, ``output.log``);
``open_run`` (in a fresh process) times ``Link.attach`` until the store holds every message and the
reader has seen the end record, and samples the RSS it ends at.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import data
from bench.common import rss_mb


def write(steps: int, root: str = "") -> dict:
    base = Path(root or tempfile.mkdtemp(prefix="neurotop-bench-journal-"))
    t0 = time.perf_counter()
    run_dir = data.write_run(base, steps)
    journal = run_dir / "journal.jsonl"
    return {"run_dir": str(run_dir), "seconds": time.perf_counter() - t0, "bytes": journal.stat().st_size,
            "lines": data.journal_line_count(steps)}


def open_run(run_dir: str, lines: int, steps: int, timeout: float = 300) -> dict:
    from neurotop.tui.link import Link
    from neurotop.tui.store import RunStore

    store = RunStore(read_only=True)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    link = Link.attach(Path(run_dir), store, lambda: None)
    reader = link._threads[0]  # the journal follower: it ends once it has read the end record
    peak = rss0
    while time.perf_counter() - t0 < timeout:
        if not reader.is_alive():  # done, or died (an exception in the reader thread)
            break
        time.sleep(0.005)
        if int((time.perf_counter() - t0) * 200) % 100 == 0:
            peak = max(peak, rss_mb())
    seconds = time.perf_counter() - t0
    link.detach()
    with store.lock:
        loss = store.metrics.series.get("loss")
        ok = store.intake.messages == lines and loss is not None and len(loss) == steps and store.run.state == "finished"
        return {"seconds": seconds, "messages": store.intake.messages, "complete": ok, "state": store.run.state,
                "rate": store.intake.messages / seconds, "rss_before": rss0, "rss_after": rss_mb(),
                "rss_peak": max(peak, rss_mb()), "malformed": store.intake.counts.malformed}
