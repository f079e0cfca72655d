"""The Monitor's writer: a bounded queue, and a thread that encodes it to the journal and the pipe.

The training thread only appends (DESIGN rule 2). The queue holds at most ``QUEUE_BOUND`` items:
when a loop logs faster than the writer encodes, further metric values are folded, per series,
into a ``Coalesced`` span (count, min, max, mean, last over a step range) until the writer has
drained what waits; then the span is written, the last value of each series as a ``Metric`` too.
Memory stays bounded, the loop never blocks, and the journal says how many points were folded
(each span's counts; ``Status.coalesced`` keeps the total). Snapshots (activations, samples,
health...) offered while the queue is full are dropped and counted. Messages that say what
happened (events, parameter changes, statuses) always queue: they are few.

The journal gets every encoded line; the events pipe gets them while the UI keeps up, and live
messages past ``PIPE_BACKLOG_LIMIT`` are dropped for the pipe (``dropped_for_pipe``).
"""

from __future__ import annotations

import collections
import errno
import math
import os
import select
import sys
import threading
import time
from typing import Any, Callable

from neurotop.trainer.protocol import (
    Activations,
    Coalesced,
    Gradients,
    Health,
    Latent,
    Metric,
    Sample,
    SeriesSpan,
    Signal,
    encode,
)

#: Live messages that may be dropped for the pipe when the UI falls behind (never for the journal).
_LOSSY = (Metric, Coalesced, Activations, Sample, Health, Gradients, Latent, Signal)
#: Items the queue holds at most (a metric item is a few hundred bytes: ~20 MB at the bound).
QUEUE_BOUND = 50_000
PIPE_BACKLOG_LIMIT = 8 << 20
JOURNAL_BACKLOG_LIMIT = 256 << 20  # bytes kept for a journal that cannot be written (a full disk)
BATCH = 10_000  # queue items encoded between two flushes
FLUSH_INTERVAL = 0.1
HEARTBEAT_INTERVAL = 1.0


class _Span:
    """Metric values folded while the queue was full: per series [count, min, max, sum, finite
    count, last, last step]; the step range, the latest epoch and the number of values."""

    __slots__ = ("first", "step", "t", "epoch", "points", "series")

    def __init__(self, step: int) -> None:
        self.first = self.step = step
        self.t = 0.0
        self.epoch: int | None = None
        self.points = 0
        self.series: dict[str, list] = {}

    def fold(self, step: int, t: float, epoch: int | None, values: dict) -> None:
        self.step, self.t, self.epoch = step, t, epoch
        series = self.series
        for name, raw in values.items():
            try:
                v = float(raw)
            except (TypeError, ValueError):
                continue
            self.points += 1
            s = series.get(name)
            if s is None:
                s = series[name] = [0, math.inf, -math.inf, 0.0, 0, v, step]
            s[0] += 1
            s[5], s[6] = v, step
            if math.isfinite(v):
                s[1] = v if v < s[1] else s[1]
                s[2] = v if v > s[2] else s[2]
                s[3] += v
                s[4] += 1

    def messages(self) -> list:
        """The ``Coalesced`` summary, then each series' last value as a ``Metric`` at its step."""
        spans, lasts = {}, collections.defaultdict(dict)
        for name, (count, lo, hi, total, finite, last, step) in self.series.items():
            spans[name] = SeriesSpan(count=count, min=lo if finite else None, max=hi if finite else None,
                                     mean=total / finite if finite else None, last=_finite(last))
            lasts[step][name] = _finite(last)
        out: list = [Coalesced(first=self.first, step=self.step, t=self.t, points=self.points, series=spans)]
        out += [Metric(step=step, t=self.t, values=values, epoch=self.epoch) for step, values in sorted(lasts.items())]
        return out


class Writer:
    """One thread that writes what the training thread queued. ``observe(metric)`` runs in the
    writer thread for every metric written; ``heartbeat()`` about once a second."""

    def __init__(self, journal_fd: int, events_fd: int | None, observe: Callable[[Metric], None],
                 heartbeat: Callable[[], None]) -> None:
        self.journal_fd, self.events_fd = journal_fd, events_fd
        if events_fd is not None:
            os.set_blocking(events_fd, False)
        self.bound = QUEUE_BOUND
        self._observe, self._heartbeat = observe, heartbeat
        self._queue: collections.deque = collections.deque()
        self._span: _Span | None = None
        self._span_lock = threading.Lock()
        self._journal_pending = bytearray()
        self._pipe_pending = bytearray()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._end_record: Callable[[], Any] | None = None
        self.dropped_for_pipe = 0
        self.coalesced = 0  # metric values folded into spans, over the run
        self.snapshots_dropped = 0  # snapshots offered while the queue was full
        self.journal_error = ""
        self.cpu_seconds = 0.0  # the writer thread's CPU time since the last ``take_cpu``
        self._thread = threading.Thread(target=self._run, name="neurotop-writer", daemon=True)

    # ---------------------------------------------------------------- the training thread's calls
    def log(self, step: int, t: float, epoch: int | None, values: dict) -> None:
        """Queue a metric, or fold it into the open span when the queue is full."""
        if self._span is None and len(self._queue) < self.bound:
            self._queue.append((step, t, epoch, values))
            return
        with self._span_lock:
            if self._span is None:
                self._span = _Span(step)
            self._span.fold(step, t, epoch, values)

    def put(self, message: Any) -> None:
        """Queue a message that must be written (an event, a change, a status)."""
        self._queue.append(message)
        self._wake.set()

    def offer(self, message: Any) -> None:
        """Queue a snapshot unless the queue is full (then it is dropped and counted)."""
        if len(self._queue) < self.bound:
            self._queue.append(message)
        else:
            self.snapshots_dropped += 1

    @property
    def queued(self) -> int:
        return len(self._queue)

    def drained(self) -> bool:
        """Nothing waits: every queued item is encoded and the journal's bytes are written."""
        return not self._queue and self._span is None and not self._journal_pending

    def take_cpu(self) -> float:
        seconds, self.cpu_seconds = self.cpu_seconds, 0.0
        return seconds

    def start(self) -> None:
        self._thread.start()

    def close(self, end_record: Callable[[], Any], timeout: float = 10.0) -> None:
        """Write what waits, then the message ``end_record()`` makes (built after everything else
        is written, so its counts are final), then stop the thread."""
        self._end_record = end_record
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=timeout)

    # ---------------------------------------------------------------------- the writer thread
    def _run(self) -> None:
        last_beat = time.perf_counter()
        while True:
            closing = self._closing.is_set()
            t_cpu = time.thread_time()
            self._write_all()
            now = time.perf_counter()
            if now - last_beat >= HEARTBEAT_INTERVAL:
                last_beat = now
                self._heartbeat()
            self.cpu_seconds += time.thread_time() - t_cpu
            if closing:
                while self._queue or self._span is not None:
                    self._write_all()
                self._encode([self._end_record()])
                self._flush_journal()
                self._flush_pipe()
                return
            if self._queue or self._span is not None:
                continue  # more arrived while this round was written
            if self._pipe_pending and self.events_fd is not None:
                try:  # the UI is behind: wake as soon as the pipe has room, not a whole interval later
                    select.select([], [self.events_fd], [], FLUSH_INTERVAL)
                except (OSError, ValueError):
                    pass
            else:
                self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()

    def _write_all(self) -> None:
        """Write what the queue holds now, in slices of ``BATCH`` items, flushing between them, so
        neither buffer grows with a burst (what arrives meanwhile waits for the next round, so a
        heartbeat is never starved); then, once the queue is empty, the span folded meanwhile,
        which is newer than all of it."""
        queue = self._queue
        remaining = len(queue)
        while remaining:
            n = min(remaining, BATCH)
            self._encode(queue.popleft() for _ in range(n))
            remaining -= n
            self._flush_journal()
            self._flush_pipe()
        if self._span is not None and not queue:
            with self._span_lock:
                span, self._span = self._span, None
            self.coalesced += span.points
            self._encode(span.messages())
        self._flush_journal()
        self._flush_pipe()

    def _encode(self, items) -> None:
        journal_buf = self._journal_pending
        pipe_buf = self._pipe_pending if self.events_fd is not None else None
        for item in items:
            if type(item) is tuple:
                step, t, epoch, values = item
                item = Metric(step=step, t=t, values=_floats(values), epoch=epoch)
            if type(item) is Metric:
                self._observe(item)
            line = encode(item)
            journal_buf += line
            if pipe_buf is not None:
                if len(pipe_buf) < PIPE_BACKLOG_LIMIT or not isinstance(item, _LOSSY):
                    pipe_buf += line
                else:
                    self.dropped_for_pipe += 1

    def _flush_journal(self) -> None:
        buf = self._journal_pending
        while buf:
            try:
                written = os.write(self.journal_fd, buf)
            except OSError as err:  # disk full, unwritable: keep training, keep the bytes, retry
                if err.errno == errno.EINTR:
                    continue
                if not self.journal_error:
                    print(f"neurotop: cannot write the journal ({err}); training goes on, retrying",
                          file=sys.stderr, flush=True)
                self.journal_error = str(err)
                if len(buf) > JOURNAL_BACKLOG_LIMIT:  # bounded: past this the oldest half goes, whole lines only
                    del buf[: buf.find(b"\n", len(buf) // 2) + 1]
                return
            del buf[:written]
        if self.journal_error:
            print("neurotop: journal writable again", file=sys.stderr, flush=True)
            self.journal_error = ""

    def _flush_pipe(self) -> None:
        buf = self._pipe_pending
        while buf and self.events_fd is not None:
            try:
                written = os.write(self.events_fd, buf)
            except BlockingIOError:
                return  # the UI is behind; what waits is bounded by PIPE_BACKLOG_LIMIT
            except OSError:  # EPIPE: the UI is gone. Training and journaling go on.
                os.close(self.events_fd)
                self.events_fd = None
                buf.clear()
                return
            del buf[:written]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _floats(values: dict) -> dict[str, float]:
    out = {}
    for k, v in values.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out
