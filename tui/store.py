"""RunStore: everything the panes draw, bounded, fed off the UI thread (DESIGN rules 4 and 5).

The link's reader thread calls ``ingest`` with decoded batches; panes read under ``lock`` on the
UI's repaint clock and compare ``versions`` to skip work when nothing changed.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from trainer.protocol import (
    Activations,
    DecodeCounts,
    Event,
    Hello,
    Message,
    Metric,
    ParamChange,
    ParamSpec,
    Sample,
    Status,
)
from tui.series import Series

NAN = float("nan")
MAX_EVENTS = 5000
MAX_OUTPUT_LINES = 5000
FINAL_STATES = ("finished", "failed", "stopped", "lost")


@dataclass
class Marker:
    """A point on the loss chart's timeline: a parameter change, a note, a checkpoint."""

    step: int
    kind: str
    label: str


@dataclass
class Notice:
    """Something a person must be told once (a refused value, a dead child)."""

    text: str
    severity: str = "information"


@dataclass
class RunStore:
    lock: threading.RLock = field(default_factory=threading.RLock)
    hello: Hello | None = None
    name: str = ""
    state: str = "starting"
    detail: str = ""
    exit_code: int | None = None
    step: int = 0
    epoch: int | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    steps_per_s: float = 0.0
    overhead: float = 0.0
    series: dict[str, Series] = field(default_factory=dict)
    params: dict[str, ParamSpec] = field(default_factory=dict)
    last_change: dict[str, ParamChange] = field(default_factory=dict)
    markers: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_EVENTS))
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_EVENTS))
    activations: dict[str, Activations] = field(default_factory=dict)
    samples: dict[str, Sample] = field(default_factory=dict)
    output: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_OUTPUT_LINES))
    output_total: int = 0
    notices: collections.deque = field(default_factory=lambda: collections.deque(maxlen=100))
    counts: DecodeCounts = field(default_factory=DecodeCounts)
    messages: int = 0
    read_only: bool = False
    alert: str = ""  # the guard's latest finding, shown in the header until the run resumes
    diverged: Event | None = None  # the guard paused the run: the app offers what to do
    dropped: int = 0  # live messages the child dropped for the pipe while we lagged
    reordered: int = 0  # metric points whose step went backwards (drawn at the latest step)
    last_metric_t: float = 0.0  # the child's clock on the newest metric: how far behind we are
    system: object | None = None  # the latest tui.system.SystemSample
    versions: collections.Counter = field(default_factory=collections.Counter)

    # -------------------------------------------------------------------------------- ingest
    def ingest(self, batch: list[Message]) -> None:
        """Apply a decoded batch. Metrics are grouped per series and appended vectorised."""
        if not batch:
            return
        columns: dict[str, tuple[list[int], list[float]]] = {}
        statuses: list[Status] = []
        with self.lock:
            self.messages += len(batch)
            for msg in batch:
                kind = type(msg)
                if kind is Metric:
                    for name, value in msg.values.items():
                        steps, values = columns.setdefault(name, ([], []))
                        steps.append(msg.step)
                        values.append(NAN if value is None else value)
                    self.step = max(self.step, msg.step)
                    self.last_metric_t = msg.t
                    if msg.epoch is not None:
                        self.epoch = msg.epoch
                elif kind is Activations:
                    self.activations[msg.layer] = msg
                    self.versions["activations"] += 1
                elif kind is Sample:
                    self.samples[msg.name] = msg
                    self.versions["samples"] += 1
                elif kind is Status:
                    statuses.append(msg)  # applied after the metrics: "finished" means all is in
                elif kind is ParamChange:
                    self._on_param(msg)
                elif kind is Event:
                    self._on_event(msg)
                elif kind is Hello:
                    self._on_hello(msg)
                # a Command in a journal is an echo of what was sent: nothing to draw
            for name, (steps, values) in columns.items():
                series = self.series.get(name)
                if series is None:
                    series = self.series[name] = Series()
                series.extend(self._monotone(series, np.asarray(steps, dtype=np.int64)),
                              np.asarray(values, dtype=np.float64))
            if columns:
                self.versions["metrics"] += 1
            for status in statuses:
                self._on_status(status)
            self.versions["header"] += 1

    def _monotone(self, series: Series, steps: np.ndarray) -> np.ndarray:
        """A step that goes backwards (a script that restarts its count) is drawn at the latest
        step instead, and counted: the chart's x axis only moves forward."""
        floor = series.last_step if len(series) else steps[0]
        fixed = np.maximum.accumulate(np.concatenate(([floor], steps)))[1:]
        self.reordered += int(np.count_nonzero(fixed != steps))
        return fixed

    def _on_hello(self, msg: Hello) -> None:
        self.hello, self.name, self.started = msg, msg.name, msg.started
        self.params = {p.name: p for p in msg.params}
        if self.state == "starting":
            self.state = "running"
        self.versions["params"] += 1
        self.versions["model"] += 1

    def _on_status(self, msg: Status) -> None:
        if self.state in FINAL_STATES and msg.state not in FINAL_STATES:
            return  # a late heartbeat never revives a run we know has ended
        self.state, self.step = msg.state, max(self.step, msg.step)
        self.steps_per_s, self.overhead, self.dropped = msg.steps_per_s, msg.overhead, msg.dropped
        if msg.state in FINAL_STATES:
            self.exit_code, self.detail, self.ended = msg.exit_code, msg.detail, msg.t

    def _on_param(self, msg: ParamChange) -> None:
        self.last_change[msg.name] = msg
        spec = self.params.get(msg.name)
        if msg.ok and spec is not None:
            spec.value = msg.new
            self.markers.append(Marker(msg.step, "param", f"{msg.name}={_short(msg.new)}"))
        elif not msg.ok:
            self.notices.append(Notice(f"{msg.name} = {msg.new!r} refused: {msg.reason}", "warning"))
        self.events.append(msg)
        self.versions["params"] += 1
        self.versions["events"] += 1

    def _on_event(self, msg: Event) -> None:
        self.events.append(msg)
        self.versions["events"] += 1
        kind = msg.kind
        if kind in ("note", "warning", "diverged", "restore") or (kind == "checkpoint" and msg.source != "auto"):
            self.markers.append(Marker(msg.step, kind, msg.text or kind))
        if kind in ("warning", "diverged"):
            self.notices.append(Notice(msg.text, "error" if kind == "diverged" else "warning"))
            if msg.source == "guard":
                self.alert = msg.text
        elif kind == "resume":
            self.alert = ""
        elif kind == "restore":
            self.notices.append(Notice(msg.text or f"restored {msg.path}"))
        elif kind == "checkpoint" and msg.source != "auto":
            self.notices.append(Notice(f"checkpoint saved at step {msg.step:,}"))
        if kind == "diverged":
            self.diverged = msg
            self.versions["diverged"] += 1
        self.versions["header"] += 1

    # ------------------------------------------------------------------- from the supervisor
    def add_output(self, lines: list[str]) -> None:
        with self.lock:
            self.output.extend(lines)
            self.output_total += len(lines)
            self.versions["output"] += 1

    def child_exited(self, code: int, detail: str) -> None:
        """The process is gone. A clean end record wins; otherwise the exit code tells."""
        with self.lock:
            if self.state not in FINAL_STATES:
                self.state = "finished" if code == 0 else "failed"
                self.exit_code, self.detail, self.ended = code, detail, time.time()
                if code != 0:
                    self.notices.append(Notice(f"the run {detail}", "error"))
            elif self.exit_code is None:
                self.exit_code = code
            self.versions["header"] += 1

    def set_system(self, sample: object) -> None:
        with self.lock:
            self.system = sample
            self.versions["system"] += 1

    def reset(self) -> None:
        """Forget the run (a restart begins a new one); every version moves on, so panes redraw."""
        fresh = RunStore(name=self.name)
        with self.lock:
            for name in self.__dataclass_fields__:
                if name not in ("lock", "versions", "system"):
                    setattr(self, name, getattr(fresh, name))
            for key in ("metrics", "activations", "samples", "params", "events", "output", "header",
                        "model", "diverged"):
                self.versions[key] += 1

    def take_notices(self) -> list[Notice]:
        with self.lock:
            out = list(self.notices)
            self.notices.clear()
            return out

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def lag(self) -> float:
        """Seconds between the newest metric we hold and now, while the run is live: a backlog
        (the UI reading slower than the child writes) shows here, never silently."""
        if self.state != "running" or not self.last_metric_t:
            return 0.0
        return max(0.0, time.time() - self.last_metric_t)

    def elapsed(self) -> float:
        return (self.ended or time.time()) - self.started


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)

