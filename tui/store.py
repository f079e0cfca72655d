"""RunStore: everything the panes draw, bounded, fed off the UI thread (DESIGN rules 4 and 5).

One way in: ``ingest(batch)``. Every message type has one handler in ``HANDLERS`` (a table from
Struct type to method): the protocol's messages come from the run; the link's own (``Launched``,
``OutputLines``, ``ChildExited``, ``Skipped``: what it sees of the process, defined in
``neurotop.tui.link``, which never imports the store) and the app's ``SystemSample`` come from
this side. Nothing else writes the store.

What comes out are sub-models, each a versioned view a pane reads under ``store.lock``:
``run`` (state, step, clock, speed), ``metrics`` (series and markers), ``params``, ``events``,
``insights`` (activations, samples, health, gradients, latent, signal), ``output``, ``system``
and ``intake`` (what decoding skipped). A pane redraws only when the ``version`` of what it reads
moved. Versions come from one process-wide counter, so they never repeat across stores: a pane
handed another store (a restarted run, a compared one) always redraws.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import msgspec
import numpy as np

from neurotop.trainer.protocol import (
    Activations,
    Coalesced,
    Command,
    DecodeCounts,
    Event,
    Gradients,
    Health,
    Hello,
    Latent,
    Metric,
    ParamChange,
    ParamSpec,
    Sample,
    Signal,
    Status,
    dequantize,
)
from neurotop.tui.format import short
from neurotop.tui.link import FINAL_STATES, LOCAL_MESSAGES, ChildExited, Launched, OutputLines, Skipped
from neurotop.tui.series import Series
from neurotop.tui.system import SystemSample

NAN = float("nan")
MAX_EVENTS = 5000
MAX_SERIES = 256
MAX_OUTPUT_LINES = 5000
#: Insights (issue 7): columns of history kept per layer (older columns merge in pairs), the
#: most unit rows and layers a message may make us keep, and the dead-layer alert thresholds.
HISTORY_COLUMNS = 256
MAX_UNIT_ROWS = 256
MAX_INSIGHT_LAYERS = 128
DEAD_ALERT, DEAD_CLEAR = 0.5, 0.4

_CLOCK = itertools.count(1)


# ------------------------------------------------------------------------------------ sub-models
@dataclass
class Versioned:
    """A part of the store that panes draw: ``version`` moves whenever it changes."""

    version: int = 0

    def touch(self) -> None:
        self.version = next(_CLOCK)


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
class RunState(Versioned):
    """The run at a glance: who, in what state, at what step, since when, how fast."""

    name: str = ""
    read_only: bool = False
    hello: Hello | None = None
    state: str = "starting"
    detail: str = ""
    exit_code: int | None = None
    step: int = 0
    epoch: int | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    steps_per_s: float = 0.0
    overhead: float = 0.0
    dropped: int = 0  # live messages the child dropped for the pipe while we lagged
    last_metric_t: float = 0.0  # the child's clock on the newest metric: how far behind we are
    alert: str = ""  # the guard's latest finding, shown in the header until the run resumes
    diverged: Event | None = None  # the guard paused the run: the app offers what to do
    divergences: int = 0  # how many times it did (the app offers once per time)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def elapsed(self, now: float | None = None) -> float:
        """The run's duration: up to its end once it has ended (the same figure ``neurotop ls`` shows)."""
        end = self.ended if self.ended is not None else (time.time() if now is None else now)
        return max(0.0, end - self.started)

    def lag(self, now: float | None = None) -> float:
        """Seconds between the newest metric we hold and now, while the run is live: a backlog
        (the UI reading slower than the child writes) shows here, never silently."""
        if self.state != "running" or not self.last_metric_t:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.last_metric_t)


@dataclass
class Metrics(Versioned):
    """One bounded ``Series`` per metric name, and the markers drawn on their timeline."""

    series: dict[str, Series] = field(default_factory=dict)
    markers: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_EVENTS))
    reordered: int = 0  # metric points whose step went backwards (drawn at the latest step)
    refused_series: int = 0  # metric names past MAX_SERIES, not kept

    def extent(self) -> tuple[int, int]:
        """(first step, last step) over every series; (0, 0) before any point."""
        firsts = [s.first_step for s in self.series.values() if len(s)]
        lasts = [s.last_step for s in self.series.values() if len(s)]
        return (min(firsts), max(lasts)) if firsts else (0, 0)


@dataclass
class Params(Versioned):
    """The declared parameters with the values the child acknowledged (each spec is replaced on a
    change, never edited in place, so a copy of ``specs`` is a snapshot), and each one's last change."""

    specs: dict[str, ParamSpec] = field(default_factory=dict)
    last_change: dict[str, ParamChange] = field(default_factory=dict)


@dataclass
class Events(Versioned):
    """Notes, checkpoints, pauses, warnings and parameter changes, oldest first (bounded)."""

    entries: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_EVENTS))


@dataclass
class Keyed(Versioned):
    """The newest message per key: a layer's activations, a set of sample images."""

    items: dict = field(default_factory=dict)


@dataclass
class Latest(Versioned):
    """The newest of one kind (a latent projection, the signal per layer, the gradient flow)."""

    value: object = None


@dataclass(frozen=True)
class DeadUnits:
    """How many of a layer's units are dead: one figure, whichever pane shows it."""

    dead: int
    units: int

    @property
    def fraction(self) -> float:
        return self.dead / self.units if self.units > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.dead:,}/{self.units:,} ({self.fraction:.0%})"


@dataclass
class HealthModel(Versioned):
    """Each layer's neuron health over the run, and the layers currently past the dead alert."""

    layers: dict = field(default_factory=dict)  # layer → LayerHealth, in order of arrival
    dead: set = field(default_factory=set)


@dataclass
class Insights:
    """What the network learned, each part versioned on its own (neurotop.trainer.insights)."""

    activations: Keyed = field(default_factory=Keyed)  # layer → Activations
    samples: Keyed = field(default_factory=Keyed)  # name → Sample
    health: HealthModel = field(default_factory=HealthModel)
    gradients: Latest = field(default_factory=Latest)  # GradientFlow
    latent: Latest = field(default_factory=Latest)  # Latent
    signal: Latest = field(default_factory=Latest)  # Signal

    def dead_units(self, layer: str) -> DeadUnits | None:
        """The layer's dead units: from its health report (units never active over a window of
        snapshots) when it has one, else from its latest activations snapshot. Call with the lock."""
        health = self.health.layers.get(layer)
        if health is not None and health.latest is not None and health.latest.units > 0:
            return DeadUnits(health.latest.dead, health.latest.units)
        msg = self.activations.items.get(layer)
        if msg is None or msg.rows <= 0:
            return None
        return DeadUnits(_dead_rows(msg), msg.rows)


@dataclass
class Output(Versioned):
    """The newest lines the run printed (bounded) and how many it printed in all."""

    lines: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_OUTPUT_LINES))
    total: int = 0


@dataclass
class System(Versioned):
    """The latest system sample: host, GPUs, the run's processes, and the UI's own cost."""

    sample: SystemSample | None = None


@dataclass
class Intake(Versioned):
    """What the link decoded and what it had to skip, for the diagnostics a person can see."""

    messages: int = 0
    counts: DecodeCounts = field(default_factory=DecodeCounts)


# ------------------------------------------------------------------------------------ the store
@dataclass
class _Batch:
    """What one ``ingest`` gathers before applying: metric columns (appended vectorised) and
    statuses (applied last: a "finished" means everything before it is in)."""

    columns: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    statuses: list[Status] = field(default_factory=list)


class RunStore:
    """One run as the panes see it. Written only through ``ingest``; read under ``lock``."""

    HANDLERS: dict[type, Callable[["RunStore", object, _Batch], None]]

    def __init__(self, name: str = "", read_only: bool = False) -> None:
        self.lock = threading.RLock()
        self.run = RunState(name=name, read_only=read_only)
        self.metrics = Metrics()
        self.params = Params()
        self.events = Events()
        self.insights = Insights()
        self.output = Output()
        self.system = System()
        self.intake = Intake()
        self._notices: collections.deque[Notice] = collections.deque(maxlen=100)

    # -------------------------------------------------------------------------------- ingest
    def ingest(self, batch: list) -> None:
        """Apply a batch: each message through its type's handler; unknown types are skipped."""
        if not batch:
            return
        pending = _Batch()
        from_run = 0
        with self.lock:
            for msg in batch:
                kind = type(msg)
                handler = self.HANDLERS.get(kind)
                if handler is not None:
                    handler(self, msg, pending)
                from_run += kind not in _FROM_HERE
            self._apply_metrics(pending.columns)
            for status in pending.statuses:
                self._apply_status(status)
            if from_run:
                self.intake.messages += from_run
                self.run.touch()

    def take_notices(self) -> list[Notice]:
        with self.lock:
            out = list(self._notices)
            self._notices.clear()
            return out

    # ------------------------------------------------------------------------------ handlers
    def _on_metric(self, msg: Metric, pending: _Batch) -> None:
        for name, value in msg.values.items():
            steps, values = pending.columns.setdefault(name, ([], []))
            steps.append(msg.step)
            values.append(NAN if value is None else value)
        run = self.run
        run.step = max(run.step, msg.step)
        run.last_metric_t = msg.t
        if msg.epoch is not None:
            run.epoch = msg.epoch

    def _apply_metrics(self, columns: dict[str, tuple[list[int], list[float]]]) -> None:
        metrics = self.metrics
        for name, (steps, values) in columns.items():
            series = metrics.series.get(name)
            if series is None:
                if len(metrics.series) >= MAX_SERIES:  # memory stays bounded whatever the child sends
                    metrics.refused_series += 1
                    continue
                series = metrics.series[name] = Series()
            series.extend(self._monotone(series, np.asarray(steps, dtype=np.int64)),
                          np.asarray(values, dtype=np.float64))
        if columns:
            metrics.touch()

    def _monotone(self, series: Series, steps: np.ndarray) -> np.ndarray:
        """A step that goes backwards (a script that restarts its count) is drawn at the latest
        step instead, and counted: the chart's x axis only moves forward."""
        floor = series.last_step if len(series) else steps[0]
        fixed = np.maximum.accumulate(np.concatenate(([floor], steps)))[1:]
        self.metrics.reordered += int(np.count_nonzero(fixed != steps))
        return fixed

    def _on_status(self, msg: Status, pending: _Batch) -> None:
        pending.statuses.append(msg)

    def _apply_status(self, msg: Status) -> None:
        run = self.run
        if run.finished and msg.state not in FINAL_STATES:
            return  # a late heartbeat never revives a run we know has ended
        run.state, run.step = msg.state, max(run.step, msg.step)
        run.steps_per_s, run.overhead, run.dropped = msg.steps_per_s, msg.overhead, msg.dropped
        if msg.state in FINAL_STATES:
            run.exit_code, run.detail, run.ended = msg.exit_code, msg.detail, msg.t

    def _on_hello(self, msg: Hello, pending: _Batch) -> None:
        run = self.run
        run.hello, run.name, run.started = msg, msg.name, msg.started
        if run.state == "starting":
            run.state = "running"
        self.params.specs = {p.name: p for p in msg.params}
        self.params.touch()

    def _on_launched(self, msg: Launched, pending: _Batch) -> None:
        run = self.run
        run.name = run.name or msg.name
        run.started = msg.started
        if run.state == "starting":
            run.state = "running"
        run.touch()

    def _on_param(self, msg: ParamChange, pending: _Batch) -> None:
        params = self.params
        params.last_change[msg.name] = msg
        spec = params.specs.get(msg.name)
        if msg.ok and spec is not None:
            params.specs[msg.name] = msgspec.structs.replace(spec, value=msg.new)
            self._mark(Marker(msg.step, "param", f"{msg.name}={short(msg.new)}"))
        elif not msg.ok:
            self._notices.append(Notice(f"{msg.name} = {msg.new!r} refused: {msg.reason}", "warning"))
        params.touch()
        self.events.entries.append(msg)
        self.events.touch()

    def _on_event(self, msg: Event, pending: _Batch) -> None:
        self.events.entries.append(msg)
        self.events.touch()
        kind, run = msg.kind, self.run
        if kind in ("note", "warning", "diverged", "restore") or (kind == "checkpoint" and msg.source != "auto"):
            self._mark(Marker(msg.step, kind, msg.text or kind))
        if kind in ("warning", "diverged"):
            self._notices.append(Notice(msg.text, "error" if kind == "diverged" else "warning"))
            if msg.source == "guard":
                run.alert = msg.text
        elif kind == "resume" or (kind == "recovered" and msg.source == "guard"):
            run.alert = ""
        elif kind == "restore":
            self._notices.append(Notice(msg.text or f"restored {msg.path}"))
        elif kind == "checkpoint" and msg.source != "auto":
            self._notices.append(Notice(f"checkpoint saved at step {msg.step:,}"))
        if kind == "diverged":
            run.diverged = msg
            run.divergences += 1

    def _mark(self, marker: Marker) -> None:
        self.metrics.markers.append(marker)
        self.metrics.touch()

    def _on_activations(self, msg: Activations, pending: _Batch) -> None:
        self.insights.activations.items[msg.layer] = msg
        self.insights.activations.touch()

    def _on_sample(self, msg: Sample, pending: _Batch) -> None:
        self.insights.samples.items[msg.name] = msg
        self.insights.samples.touch()

    def _on_health(self, msg: Health, pending: _Batch) -> None:
        health = self.insights.health
        layer = health.layers.get(msg.layer)
        if layer is None:
            if len(health.layers) >= MAX_INSIGHT_LAYERS:
                return
            layer = health.layers[msg.layer] = LayerHealth()
        layer.add(msg)
        fraction = msg.dead / msg.units if msg.units > 0 else 0.0
        if fraction > DEAD_ALERT and msg.layer not in health.dead:
            health.dead.add(msg.layer)
            text = f"layer {msg.layer}: {msg.dead:,} of {msg.units:,} units dead ({fraction:.0%})"
            self._notices.append(Notice(text, "warning"))
            self._mark(Marker(msg.step, "dead", f"{msg.layer} dead"))
        elif fraction <= DEAD_CLEAR and msg.layer in health.dead:
            health.dead.discard(msg.layer)
            self._notices.append(Notice(f"layer {msg.layer} recovered: {fraction:.0%} of its units dead"))
        health.touch()

    def _on_gradients(self, msg: Gradients, pending: _Batch) -> None:
        latest = self.insights.gradients
        names = msg.layers[:MAX_INSIGHT_LAYERS]
        if latest.value is None or latest.value.layers != names:
            latest.value = GradientFlow(names)
        latest.value.add(msg)
        latest.touch()

    def _on_latent(self, msg: Latent, pending: _Batch) -> None:
        self.insights.latent.value = msg
        self.insights.latent.touch()

    def _on_signal(self, msg: Signal, pending: _Batch) -> None:
        self.insights.signal.value = msg
        self.insights.signal.touch()

    def _on_command(self, msg: Command, pending: _Batch) -> None:
        """A command in a journal is an echo of what was sent: its effect arrives as its own message."""

    def _on_coalesced(self, msg: Coalesced, pending: _Batch) -> None:
        """Spans the child's writer folded while it lagged: each series' last value also arrives as
        a metric at the span's end, and ``Status.coalesced`` carries the total."""

    def _on_output(self, msg: OutputLines, pending: _Batch) -> None:
        self.output.lines.extend(msg.lines)
        self.output.total += len(msg.lines)
        self.output.touch()

    def _on_child_exited(self, msg: ChildExited, pending: _Batch) -> None:
        """The process is gone. A clean end record wins; otherwise the exit code tells."""
        run = self.run
        if not run.finished:
            run.state = "finished" if msg.code == 0 else "failed"
            run.exit_code, run.detail, run.ended = msg.code, msg.detail, msg.t
            if msg.code != 0:
                self._notices.append(Notice(f"the run {msg.detail}", "error"))
        elif run.exit_code is None:
            run.exit_code = msg.code
        run.touch()

    def _on_skipped(self, msg: Skipped, pending: _Batch) -> None:
        counts = self.intake.counts
        counts.malformed += msg.malformed
        counts.unknown += msg.unknown
        counts.torn += msg.torn
        if msg.last_error:
            counts.last_error = msg.last_error[:200]
        self.intake.touch()

    def _on_system(self, msg: SystemSample, pending: _Batch) -> None:
        self.system.sample = msg
        self.system.touch()


RunStore.HANDLERS = {
    Hello: RunStore._on_hello,
    Metric: RunStore._on_metric,
    Activations: RunStore._on_activations,
    Sample: RunStore._on_sample,
    ParamChange: RunStore._on_param,
    Event: RunStore._on_event,
    Status: RunStore._on_status,
    Command: RunStore._on_command,
    Coalesced: RunStore._on_coalesced,
    Health: RunStore._on_health,
    Gradients: RunStore._on_gradients,
    Latent: RunStore._on_latent,
    Signal: RunStore._on_signal,
    Launched: RunStore._on_launched,
    OutputLines: RunStore._on_output,
    ChildExited: RunStore._on_child_exited,
    Skipped: RunStore._on_skipped,
    SystemSample: RunStore._on_system,
}
_FROM_HERE = frozenset((*LOCAL_MESSAGES, SystemSample))  # not the run's: not counted as decoded


def _dead_rows(msg: Activations) -> int:
    """Rows (units) of a snapshot whose real value is zero, within quantization, for every sample."""
    rows, cols = msg.rows, msg.cols
    carried = dequantize(msg.cells, msg.lo, msg.scale, rows * cols)
    values = np.full(rows * cols, msg.lo, np.float64)
    values[: len(carried)] = carried
    values = values.reshape(rows, cols)
    tol = abs(msg.scale) / 2 if msg.scale else 1e-12
    return int(np.count_nonzero(np.all(np.abs(values) <= tol, axis=1)))


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
