"""The event stream between a training process and neurotop: typed JSON lines.

One object per line, tagged by ``"type"``. The same lines travel over the events pipe and are
appended to ``journal.jsonl``, so ``jq`` works on a journal. Nothing here evaluates or unpickles:
decoding is msgspec validating into plain Structs, and anything that does not validate is
reported as malformed (or unknown, for a well-formed object of a type we do not know) and skipped.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union, get_args

import msgspec

PROTOCOL_VERSION = 1

#: The longest event or command line a reader keeps: a longer one is dropped to its end (and
#: counted), never held whole. One rule for the journal, the events pipe and the control inputs.
MAX_EVENT_LINE = 4 << 20

# Bounds that decoding enforces, so nothing downstream meets a step numpy cannot hold, a name the
# size of a megabyte, or a snapshot that claims more cells than it carries.
Step = Annotated[int, msgspec.Meta(ge=-(2**62), le=2**62)]
Name = Annotated[str, msgspec.Meta(max_length=200)]
Size = Annotated[int, msgspec.Meta(ge=0, le=1 << 16)]

#: A parameter value as it travels: msgspec keeps these apart (bool is not int in JSON).
Value = Union[bool, int, float, str]

#: Environment variables through which a supervised child finds its pipes and run directory.
ENV_EVENTS_FD = "NEUROTOP_EVENTS_FD"
ENV_CONTROL_FD = "NEUROTOP_CONTROL_FD"
ENV_RUN_DIR = "NEUROTOP_RUN_DIR"
#: Set when a supervisor (``neurotop run``) serves the run's control socket and forwards commands.
ENV_SUPERVISED = "NEUROTOP_SUPERVISED"
#: Set by a restart: the checkpoint to resume from, and the parameter values to start with (JSON).
ENV_RESUME = "NEUROTOP_RESUME"
ENV_PARAMS = "NEUROTOP_PARAMS"


class ParamSpec(msgspec.Struct, omit_defaults=True):
    """A declared, bounded parameter as the UI sees it (see ``neurotop.trainer.params.Param``)."""

    name: Name
    kind: Literal["float", "int", "bool", "choice"]
    value: Value
    default: Value
    min: float | None = None
    max: float | None = None
    log: bool = False
    choices: list[str] | None = None
    help: str = ""


class LayerInfo(msgspec.Struct, omit_defaults=True):
    name: str
    kind: str
    shape: list[int] = []
    params: int = 0


class Hello(msgspec.Struct, tag="hello", omit_defaults=True):
    version: int
    run_id: str
    name: str
    pid: int
    host: str
    started: float
    model: list[LayerInfo] = []
    params: list[ParamSpec] = []
    argv: list[str] = []
    device: str = ""
    #: the command actions this run accepts; empty: all of them (an SDK run)
    controls: list[str] = []


class Metric(msgspec.Struct, tag="metric", omit_defaults=True, gc=False):
    """Named values at a step. JSON has no NaN or Infinity: a non-finite value travels as null."""

    step: Step
    t: float
    values: dict[Name, float | None]
    epoch: int | None = None


class Activations(msgspec.Struct, tag="activations", omit_defaults=True):
    """A layer's activations, reduced in the child: rows are units, columns samples.

    ``cells`` holds rows*cols uint8 values; the real value of a cell is ``lo + cell * scale``.
    msgspec carries bytes as base64 in JSON.
    """

    step: Step
    layer: Name
    rows: Size
    cols: Size
    lo: float
    scale: float
    cells: bytes
    units: int = 0  # the layer's true width, when rows were downsampled


class Sample(msgspec.Struct, tag="sample", omit_defaults=True):
    """Small images (inputs beside outputs), ``count`` images of ``height``×``width``, quantized."""

    step: Step
    name: Name
    count: Size
    height: Size
    width: Size
    lo: float
    scale: float
    cells: bytes


class ParamChange(msgspec.Struct, tag="param", omit_defaults=True):
    """A change the child applied (``ok``) or refused (``reason``), and who asked."""

    step: Step
    t: float
    name: str
    new: Value | None = None
    old: Value | None = None
    ok: bool = True
    reason: str = ""
    source: str = ""


class Event(msgspec.Struct, tag="event", omit_defaults=True):
    """Something that happened at a step: a note, a checkpoint, a pause, a warning."""

    step: Step
    t: float
    kind: str
    text: str = ""
    source: str = ""
    path: str = ""


RunState = Literal["starting", "running", "paused", "finished", "failed", "stopped", "lost"]


class Status(msgspec.Struct, tag="status", omit_defaults=True):
    step: Step
    t: float
    state: RunState
    exit_code: int | None = None
    detail: str = ""
    steps_per_s: float = 0.0
    overhead: float = 0.0  # fraction of the child's step time spent in monitoring
    dropped: int = 0  # live messages dropped for the pipe while the UI lagged (never for the journal)
    coalesced: int = 0  # metric points folded into ``coalesced`` spans so far (the writer fell behind)


class Command(msgspec.Struct, tag="command", omit_defaults=True):
    """UI → child. Validated by the child against its declarations, then journaled."""

    action: Literal["set", "pause", "resume", "checkpoint", "stop", "note", "rollback"]
    name: str = ""
    value: Value | None = None
    text: str = ""
    source: str = ""


# --------------------------------------------------------------------------- insights (issue 7)
class Health(msgspec.Struct, tag="health", omit_defaults=True):
    """A layer's neuron health at a step, reduced in the child (``neurotop.trainer.insights``).

    ``dead``: units not active on any sample of the last window of snapshots; ``saturated``: units
    pinned at a bound (sigmoid/tanh near 0/1/±1, or a rectifier that is on for every sample).
    ``mean``/``std``: of the activation over units and samples; ``signal``: mean |activation|.
    ``means``/``spreads``: per unit (or per group of neighbouring units when ``units > rows``) mean
    and standard deviation over the samples, ``rows`` uint8 cells each (value = lo + cell*scale).
    """

    step: Step
    layer: str
    units: int
    dead: int
    saturated: int
    mean: float
    std: float
    signal: float = 0.0
    kind: str = ""
    rows: int = 0
    means: bytes = b""
    mean_lo: float = 0.0
    mean_scale: float = 1.0
    spreads: bytes = b""
    spread_lo: float = 0.0
    spread_scale: float = 1.0
    window: int = 1


class Gradients(msgspec.Struct, tag="gradients", omit_defaults=True):
    """Per-layer gradient norm and update-to-weight ratio (||Δw|| / ||w||) at a step; at most a
    bounded number of entries (neighbouring layers are grouped on wide models)."""

    step: Step
    layers: list[str]
    grad_norm: list[float | None]
    update_ratio: list[float | None] = []


class Latent(msgspec.Struct, tag="latent", omit_defaults=True):
    """A fixed batch projected on the first two principal components of the latent space.

    ``x``/``y`` hold ``points`` little-endian uint16 each: value = lo[k] + cell * scale[k].
    Each component's sign is fixed (its largest-|loading| entry is positive), so successive
    projections are comparable. ``explained``: the variance fraction of each component.
    """

    step: Step
    points: int
    x: bytes
    y: bytes
    lo: list[float]
    scale: list[float]
    explained: list[float] = []
    labels: list[int] = []
    dims: int = 0
    name: str = ""


class Signal(msgspec.Struct, tag="signal", omit_defaults=True):
    """Mean |output| of each leaf layer on the probe's batch: how much signal each edge carries."""

    step: Step
    layers: list[str]
    mean_abs: list[float | None]


class SeriesSpan(msgspec.Struct, array_like=True):
    """One series over a coalesced step range: ``[count, min, max, mean, last]``."""

    count: int
    min: float | None
    max: float | None
    mean: float | None
    last: float | None


class Coalesced(msgspec.Struct, tag="coalesced", omit_defaults=True):
    """Metric points the child could not queue one by one (its writer fell behind a loop logging
    flat out): each series summarised over steps ``first``..``step``. ``points``: the values
    folded in, all series together. Each series' ``last`` value also travels as a ``metric`` at
    ``step``, so a reader that knows nothing of this message still draws the newest point."""

    first: Step
    step: Step
    t: float
    points: int
    series: dict[Name, SeriesSpan]


Message = Union[Hello, Metric, Activations, Sample, ParamChange, Event, Status, Command,
                Health, Gradients, Latent, Signal, Coalesced]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)
_probe = msgspec.json.Decoder(dict)
#: The ``type`` tags this version knows: read from the union, so a new kind is added in one place.
_KNOWN = frozenset(kind.__struct_config__.tag for kind in get_args(Message))


def _fits(kind: str, value: object, choices: list[str] | None) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "choice":
        return bool(choices) and isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return kind == "float" or isinstance(value, int)


def encode(msg: Message) -> bytes:
    """One JSON line, newline included."""
    return _encoder.encode(msg) + b"\n"


class Malformed(Exception):
    """A line that is not a valid message (not JSON, wrong shape, bad value)."""


class Unknown(Exception):
    """A well-formed object whose ``type`` this version does not know: skipped, counted."""


def _inconsistent(msg: Message) -> str:
    """What the types alone cannot say: cells that match their shape, values that fit their kind."""
    if isinstance(msg, Activations) and len(msg.cells) != msg.rows * msg.cols:
        return f"{msg.rows}×{msg.cols} cells claimed, {len(msg.cells)} carried"
    if isinstance(msg, Sample) and len(msg.cells) != msg.count * msg.height * msg.width:
        return f"{msg.count}×{msg.height}×{msg.width} cells claimed, {len(msg.cells)} carried"
    if isinstance(msg, Hello):
        for p in msg.params:
            if not (_fits(p.kind, p.value, p.choices) and _fits(p.kind, p.default, p.choices)):
                return f"{p.kind} parameter {p.name!r} cannot hold {p.value!r}"
    return ""


def decode(line: bytes | str) -> Message:
    """Decode one line; raise ``Unknown`` or ``Malformed`` for what must be skipped."""
    try:
        msg = _decoder.decode(line)
        problem = _inconsistent(msg)
        if problem:
            raise Malformed(problem)
        return msg
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as err:
        try:
            obj = _probe.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            raise Malformed(str(err)) from None
        kind = obj.get("type")
        if isinstance(kind, str) and kind not in _KNOWN:
            raise Unknown(kind) from None
        raise Malformed(str(err)) from None


class DecodeCounts(msgspec.Struct):
    """What a reader skipped, for the diagnostics a person can see."""

    malformed: int = 0
    unknown: int = 0
    torn: int = 0
    last_error: str = ""


def decode_lines(lines: list[bytes], counts: DecodeCounts) -> list[Message]:
    """Decode a batch of complete lines, skipping and counting what does not decode."""
    out: list[Message] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            out.append(decode(line))
        except Unknown:
            counts.unknown += 1
        except Malformed as err:
            counts.malformed += 1
            counts.last_error = str(err)[:200]
    return out


class LineFramer:
    """Newline-separated lines out of a byte stream read in chunks: the one framing rule.

    A line longer than ``limit`` (``MAX_EVENT_LINE``) is dropped (``oversize`` counts them),
    however it arrives: whole in one chunk, or in pieces, which are never held past the limit. ``finish()`` hands back a torn tail (no newline yet).
    """

    def __init__(self, limit: int = MAX_EVENT_LINE) -> None:
        self.limit = limit
        self.oversize = 0
        self._partial = b""
        self._skipping = False  # inside an oversize line: dropped up to its end

    def feed(self, data: bytes) -> list[bytes]:
        """The complete lines that ``data`` finishes (without their newlines)."""
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return []
            data, self._skipping = data[end + 1 :], False
        data = self._partial + data if self._partial else data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            if len(data) > self.limit:
                self._partial, self._skipping = b"", True
                self.oversize += 1
            return []
        self._partial = data[cut + 1 :]
        if len(self._partial) > self.limit:
            self._partial, self._skipping = b"", True
            self.oversize += 1
        lines = data[:cut].split(b"\n")
        if cut > self.limit:  # only then can a complete line be oversize
            kept = [line for line in lines if len(line) <= self.limit]
            self.oversize += len(lines) - len(kept)
            lines = kept
        return lines

    def finish(self) -> bytes:
        """The torn tail, if any (the caller counts it); the framer stays usable."""
        tail, self._partial = self._partial, b""
        return tail


def quantize(values, levels: int = 255, dtype: str = "u1") -> tuple[float, float, bytes]:
    """(lo, scale, cells as bytes of ``dtype``) with value ≈ ``lo + cell * scale``: the one
    quantizer for activations, samples, health and latent points. Non-finite values become 0.
    (numpy is imported here, not at the top: a child that never quantizes does not load it.)"""
    import numpy as np

    v = np.asarray(values, np.float64)
    if v.size == 0:
        return 0.0, 1.0, b""
    lo, hi = float(v.min()), float(v.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(v.min()), float(v.max())
    scale = (hi - lo) / levels if hi > lo else 1.0
    return lo, scale, ((v - lo) * (1.0 / scale) + 0.5).astype(dtype).tobytes()


def dequantize(cells, lo: float, scale: float, count: int | None = None, dtype: str = "u1"):
    """The values ``quantize`` encoded, as a flat float64 numpy array: ``lo + cell * scale``, at
    most ``count`` and never more than ``cells`` (bytes, or an array of cells) carries."""
    import numpy as np

    buf = memoryview(cells)
    dtype = np.dtype(dtype)
    carried = buf.nbytes // dtype.itemsize
    n = carried if count is None else max(0, min(int(count), carried))
    return lo + np.frombuffer(buf, dtype, n).astype(np.float64) * scale
