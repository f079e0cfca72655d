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

from neurotop.trainer.protocol import (
    Activations,
    DecodeCounts,
    Event,
    Gradients,
    Health,
    Hello,
    Latent,
    Message,
    Metric,
    ParamChange,
    ParamSpec,
    Sample,
    Signal,
    Status,
    dequantize,
)
from neurotop.tui.format import short
from neurotop.tui.series import Series

NAN = float("nan")
MAX_EVENTS = 5000
MAX_SERIES = 256
MAX_OUTPUT_LINES = 5000
FINAL_STATES = ("finished", "failed", "stopped", "lost")
#: Insights (issue 7): columns of history kept per layer (older columns merge in pairs), the
#: most unit rows and layers a message may make us keep, and the dead-layer alert thresholds.
HISTORY_COLUMNS = 256
MAX_UNIT_ROWS = 256
MAX_INSIGHT_LAYERS = 128
DEAD_ALERT, DEAD_CLEAR = 0.5, 0.4


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
    refused_series: int = 0  # metric names past MAX_SERIES, not kept
    last_metric_t: float = 0.0  # the child's clock on the newest metric: how far behind we are
    system: object | None = None  # the latest neurotop.tui.system.SystemSample
    # insights (neurotop.trainer.insights): neuron health per layer, gradient flow, latent, signal
    health: dict = field(default_factory=dict)  # layer → LayerHealth, in order of arrival
    dead_layers: set = field(default_factory=set)  # layers past DEAD_ALERT (until DEAD_CLEAR)
    gradients: "GradientFlow | None" = None
    latent: Latent | None = None
    signal: Signal | None = None
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
                elif kind is Health:
                    self._on_health(msg)
                elif kind is Gradients:
                    self._on_gradients(msg)
                elif kind is Latent:
                    self.latent = msg
                    self.versions["latent"] += 1
                elif kind is Signal:
                    self.signal = msg
                    self.versions["signal"] += 1
                # a Command in a journal is an echo of what was sent: nothing to draw
            for name, (steps, values) in columns.items():
                series = self.series.get(name)
                if series is None:
                    if len(self.series) >= MAX_SERIES:  # memory stays bounded whatever the child sends
                        self.refused_series += 1
                        continue
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
            self.markers.append(Marker(msg.step, "param", f"{msg.name}={short(msg.new)}"))
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
        elif kind == "resume" or (kind == "recovered" and msg.source == "guard"):
            self.alert = ""
        elif kind == "restore":
            self.notices.append(Notice(msg.text or f"restored {msg.path}"))
        elif kind == "checkpoint" and msg.source != "auto":
            self.notices.append(Notice(f"checkpoint saved at step {msg.step:,}"))
        if kind == "diverged":
            self.diverged = msg
            self.versions["diverged"] += 1
        self.versions["header"] += 1

    def _on_health(self, msg: Health) -> None:
        layer = self.health.get(msg.layer)
        if layer is None:
            if len(self.health) >= MAX_INSIGHT_LAYERS:
                return
            layer = self.health[msg.layer] = LayerHealth()
        layer.add(msg)
        fraction = msg.dead / msg.units if msg.units > 0 else 0.0
        if fraction > DEAD_ALERT and msg.layer not in self.dead_layers:
            self.dead_layers.add(msg.layer)
            text = f"layer {msg.layer}: {msg.dead:,} of {msg.units:,} units dead ({fraction:.0%})"
            self.notices.append(Notice(text, "warning"))
            self.markers.append(Marker(msg.step, "dead", f"{msg.layer} dead"))
            self.versions["events"] += 1
        elif fraction <= DEAD_CLEAR and msg.layer in self.dead_layers:
            self.dead_layers.discard(msg.layer)
            self.notices.append(Notice(f"layer {msg.layer} recovered: {fraction:.0%} of its units dead"))
        self.versions["health"] += 1

    def _on_gradients(self, msg: Gradients) -> None:
        names = msg.layers[:MAX_INSIGHT_LAYERS]
        if self.gradients is None or self.gradients.layers != names:
            self.gradients = GradientFlow(names)
        self.gradients.add(msg)
        self.versions["gradients"] += 1

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
                        "model", "diverged", "health", "gradients", "latent", "signal"):
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


# ------------------------------------------------------------------------------- insights
class History:
    """Vectors over steps, bounded, always covering the whole run: when ``capacity`` columns are
    full, neighbouring columns merge in pairs and later snapshots are averaged ``stride`` at a
    time. Memory is capacity × width whatever the run's length. NaN means "no value".

    Adding is cheap (ingest stays fast on a long journal): while ``stride`` is 1 a snapshot is
    written as its column; after, snapshots wait in a short list and are folded into a running
    sum a batch at a time."""

    FOLD = 32  # snapshots held before they are folded into the running sum

    def __init__(self, width: int, capacity: int = HISTORY_COLUMNS) -> None:
        self.width, self.capacity = width, capacity
        self.steps = np.zeros(capacity, np.int64)
        self.values = np.full((capacity, width), NAN, np.float32)
        self.n = 0
        self.stride = 1
        self._pending: list = []  # snapshots of the open column not yet folded
        self._sum = np.zeros(width, np.float64)
        self._count = np.zeros(width, np.int64)
        self._taken = 0  # snapshots in the open column
        self._step = 0

    def add(self, step: int, vector) -> None:
        if self.stride == 1:
            self._make_room()
            k = min(len(vector), self.width)
            with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, drawn hottest
                self.values[self.n, :k] = vector[:k]
            self.steps[self.n] = step
            self.n += 1
            return
        self._pending.append(vector)
        self._taken += 1
        self._step = step
        if self._taken >= self.stride:
            self._close()
        elif len(self._pending) >= self.FOLD:
            self._fold()

    def _fold(self) -> None:
        if not self._pending:
            return
        block = np.full((len(self._pending), self.width), NAN)
        for i, v in enumerate(self._pending):
            k = min(len(v), self.width)
            block[i, :k] = v[:k]
        ok = np.isfinite(block)
        self._sum += np.where(ok, block, 0.0).sum(axis=0)
        self._count += ok.sum(axis=0)
        self._pending.clear()

    def _open_column(self) -> np.ndarray:
        self._fold()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._count > 0, self._sum / np.maximum(self._count, 1), NAN)

    def _make_room(self) -> None:
        if self.n < self.capacity:
            return
        a, b = self.values[0::2], self.values[1::2]
        with np.errstate(invalid="ignore"):
            merged = np.where(np.isnan(a), b, np.where(np.isnan(b), a, (a + b) / 2))
        half = self.capacity // 2
        self.values[:half] = merged
        self.values[half:] = NAN
        self.steps[:half] = self.steps[1::2]
        self.n = half
        self.stride *= 2

    def _close(self) -> None:
        column = self._open_column()
        self._make_room()
        with np.errstate(over="ignore", invalid="ignore"):
            self.values[self.n] = column
        self.steps[self.n] = self._step
        self.n += 1
        self._sum[:] = 0
        self._count[:] = 0
        self._taken = 0

    def __len__(self) -> int:
        return self.n + (1 if self._taken else 0)

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values columns × width), oldest first, the open column included (copies)."""
        steps, values = self.steps[: self.n].copy(), self.values[: self.n].copy()
        if self._taken:
            steps = np.append(steps, self._step)
            values = np.vstack([values, self._open_column()[None, :]])
        return steps, values


class LayerHealth:
    """One layer's health over the run: scalars per snapshot (dead and saturated fractions,
    mean, std, signal) and each unit's (or unit group's) mean activation, both as ``History``;
    the latest message, whose per-unit means and spreads are decoded when asked for."""

    SCALARS = ("dead", "saturated", "mean", "std", "signal")

    def __init__(self) -> None:
        self.latest: Health | None = None
        self.scalars = History(len(self.SCALARS))
        self.units: History | None = None

    def add(self, msg: Health) -> None:
        self.latest = msg
        units = max(msg.units, 1)
        self.scalars.add(msg.step, (msg.dead / units, msg.saturated / units, msg.mean, msg.std, msg.signal))
        rows = min(msg.rows, MAX_UNIT_ROWS, len(msg.means))
        if rows <= 0:
            return
        if self.units is None or self.units.width != rows:
            self.units = History(rows)
        self.units.add(msg.step, _unit_values(msg.means, msg.rows, msg.mean_lo, msg.mean_scale))

    @property
    def unit_means(self) -> np.ndarray:
        msg = self.latest
        return np.zeros(0) if msg is None else _unit_values(msg.means, msg.rows, msg.mean_lo, msg.mean_scale)

    @property
    def unit_spreads(self) -> np.ndarray:
        msg = self.latest
        return np.zeros(0) if msg is None else _unit_values(msg.spreads, msg.rows, msg.spread_lo, msg.spread_scale)


class GradientFlow:
    """Gradient norm and update-to-weight ratio per layer over the run (``History`` each)."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = list(layers)
        self.grad_norm = History(len(layers))
        self.update_ratio = History(len(layers))
        self.latest: Gradients | None = None

    def add(self, msg: Gradients) -> None:
        self.latest = msg
        n = len(self.layers)
        self.grad_norm.add(msg.step, _float_list(msg.grad_norm, n))
        if msg.update_ratio:
            self.update_ratio.add(msg.step, _float_list(msg.update_ratio, n))


def _float_list(values: list, n: int) -> np.ndarray:
    out = np.full(n, NAN)
    for i, v in enumerate(values[:n]):
        if v is not None:
            out[i] = v
    return out


def _unit_values(cells: bytes, rows: int, lo: float, scale: float) -> np.ndarray:
    """Per-unit values of a Health message: at most ``MAX_UNIT_ROWS``, never more than it carries."""
    return dequantize(cells, lo, scale, min(rows, MAX_UNIT_ROWS))
