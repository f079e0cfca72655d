"""Test data written fast: metric journals from a byte template, tfevents files built with numpy.

Both produce exactly what the real writers produce (the smoke test checks the template against
``protocol.encode`` and the tfevents records against protobuf and ``EventAccumulator``), only
without paying the writers' per-call cost for millions of records.
"""

from __future__ import annotations

import math
import os
import struct
import time
from pathlib import Path

import msgspec
import numpy as np

from neurotop.trainer import journal
from neurotop.trainer.protocol import (
    Activations,
    Event,
    Hello,
    LayerInfo,
    Metric,
    ParamChange,
    ParamSpec,
    Sample,
    Status,
    encode,
)

T0 = 1_795_000_000.0
STEPS_PER_S = 1700.0  # the demo's pace: sets the "t" field, so the numbers look like a real run
STEPS_PER_EPOCH = 23  # 1,437 training digits / batch 64
VAL_EVERY = 100
STATUS_EVERY = 2000  # about one heartbeat a second at the demo's pace

METRIC = b'{"type":"metric","step":%s,"t":%s,"values":{"%s":%s},"epoch":%s}\n'
_encode = msgspec.json.Encoder().encode


def losses(steps: np.ndarray, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """A falling, noisy loss as ``loss.item()`` gives it (float32 widened to float64)."""
    rng = np.random.default_rng(seed + int(steps[0]) if len(steps) else seed)
    base = 0.02 + 0.25 * np.exp(-steps / 2e6) + 0.05 * np.exp(-steps / 5e4)
    noisy = base * (1.0 + 0.08 * rng.standard_normal(len(steps)))
    return (noisy * scale).astype(np.float32).astype(np.float64)


def _json_items(a: np.ndarray) -> list[bytes]:
    """Each element as msgspec writes it (ints and shortest round-trip floats), ~0.2 µs each."""
    return _encode(a.tolist())[1:-1].split(b",") if len(a) else []


def metric_lines_at(steps: np.ndarray, values: np.ndarray, name: str = "loss") -> list[bytes]:
    """Encoded Metric lines, byte for byte what ``protocol.encode(Metric(...))`` writes."""
    key = name.encode()
    return [METRIC % (s, t, key, v, e) for s, t, v, e in
            zip(_json_items(steps), _json_items(T0 + steps / STEPS_PER_S), _json_items(values),
                _json_items(steps // STEPS_PER_EPOCH))]


def metric_lines(first: int, stop: int, name: str = "loss", seed: int = 0) -> list[bytes]:
    """One encoded Metric line per step in ``[first, stop)``."""
    steps = np.arange(first, stop, dtype=np.int64)
    return metric_lines_at(steps, losses(steps, seed), name)


#: What the child printed. Deliberately nothing the output parser reads as a metric: ``attach``
#: parses output.log for metrics until the journal's hello is in, and a parsed ``loss`` at a small
#: step racing the journal's first batch makes the journal's steps go backwards (see the report).
OUTPUT_TEXT = "".join(f"[train] worker {w} ready\nusing device cpu, 1,437 training digits\n" for w in range(25))


def hello(name: str = "bench", pid: int = 1) -> Hello:
    return Hello(version=1, run_id="bench-run", name=name, pid=pid, host="bench", started=T0,
                 model=[LayerInfo(name="encoder.0", kind="Linear", shape=[32, 64], params=2080),
                        LayerInfo(name="encoder.1", kind="ReLU"),
                        LayerInfo(name="decoder.1", kind="ReLU")],
                 params=[ParamSpec(name="lr", kind="float", value=1e-3, default=1e-3, min=1e-6, max=10.0,
                                   log=True, help="learning rate"),
                         ParamSpec(name="weight_decay", kind="float", value=0.0, default=0.0, min=0.0, max=0.1),
                         ParamSpec(name="optimizer", kind="choice", value="adam", default="adam",
                                   choices=["adam", "adamw", "sgd"]),
                         ParamSpec(name="batch_size", kind="int", value=64, default=64, min=1, max=1437),
                         ParamSpec(name="noise", kind="float", value=0.0, default=0.0, min=0.0, max=1.0)])


def journal_chunks(steps: int, chunk: int = 200_000, finished: bool = True):
    """A demo-like journal as byte chunks: hello, ``loss`` at every step, ``val_loss`` every
    100 steps, a ``status`` heartbeat every 2,000 steps, and the end record."""
    yield encode(hello())
    for first in range(1, steps + 1, chunk):
        stop = min(first + chunk, steps + 1)
        lines = metric_lines(first, stop)
        val_steps = np.arange(-(-first // VAL_EVERY) * VAL_EVERY, stop, VAL_EVERY, dtype=np.int64)
        for s, line in zip(val_steps.tolist(), metric_lines_at(val_steps, losses(val_steps, 1, 1.1), "val_loss")):
            lines[s - first] += line
        for s in range(-(-first // STATUS_EVERY) * STATUS_EVERY, stop, STATUS_EVERY):
            lines[s - first] += encode(Status(step=s, t=T0 + s / STEPS_PER_S, state="running",
                                              steps_per_s=STEPS_PER_S, overhead=0.01))
        yield b"".join(lines)
    if finished:
        yield encode(Status(step=steps, t=T0 + steps / STEPS_PER_S, state="finished", exit_code=0,
                            steps_per_s=STEPS_PER_S))


def journal_line_count(steps: int, finished: bool = True) -> int:
    return 1 + steps + steps // VAL_EVERY + steps // STATUS_EVERY + (1 if finished else 0)


def write_run(root: Path, steps: int, name: str = "bench", finished: bool = True, pid: int = 1) -> Path:
    """A run directory (journal, run.json, output.log) as a finished demo run would leave it."""
    run_dir = journal.create_run_dir(root, name)
    with open(run_dir / journal.JOURNAL, "wb") as f:
        for chunk in journal_chunks(steps, finished=finished):
            f.write(chunk)
    (run_dir / journal.OUTPUT).write_text(OUTPUT_TEXT)
    journal.RunInfo(id=run_dir.name, name=name, pid=pid, started=T0, state="finished" if finished else "running",
                    ended=T0 + steps / STEPS_PER_S if finished else None, exit_code=0 if finished else None,
                    step=steps).save(run_dir)
    return run_dir


def dashboard_run(root: Path, step: int, pid: int) -> Path:
    """A small live-looking run for the dashboard: hello, activations, samples, a change, notes.

    No metric lines: the series are filled directly (4 × 10M points would be a 4 GB journal).
    """
    run_dir = journal.create_run_dir(root, "dashboard")
    t = T0 + step / STEPS_PER_S
    msgs: list = [hello(pid=pid)]
    msgs.append(ParamChange(step=step // 2, t=t, name="lr", old=1e-3, new=2e-3, source="ui"))
    msgs.append(Event(step=step // 2 + 10, t=t, kind="note", text="lr doubled: watch val_loss", source="ui"))
    msgs.append(Event(step=step - 1000, t=t, kind="checkpoint", path="ckpt.pt", source="ui"))
    rng = np.random.default_rng(1)
    for layer, units in (("encoder.1", 32), ("decoder.1", 32)):
        cells = rng.integers(0, 256, units * 32, dtype=np.uint8)
        cells[:: 7] = 0
        msgs.append(Activations(step=step, layer=layer, rows=units, cols=32, lo=0.0, scale=0.02,
                                cells=cells.tobytes(), units=units))
    img = rng.integers(0, 256, 8 * 64, dtype=np.uint8).tobytes()
    msgs.append(Sample(step=step, name="inputs", count=8, height=8, width=8, lo=0.0, scale=1 / 255, cells=img))
    msgs.append(Sample(step=step, name="outputs", count=8, height=8, width=8, lo=0.0, scale=1 / 255, cells=img))
    msgs.append(Status(step=step, t=t, state="running", steps_per_s=STEPS_PER_S, overhead=0.01))
    (run_dir / journal.JOURNAL).write_bytes(b"".join(encode(m) for m in msgs))
    (run_dir / journal.OUTPUT).write_text(OUTPUT_TEXT * 20)
    journal.RunInfo(id=run_dir.name, name="dashboard", pid=pid, started=T0, state="running",
                    step=step).save(run_dir)
    return run_dir


def metric(step: int, name: str, value: float) -> Metric:
    return Metric(step=step, t=T0 + step / STEPS_PER_S, values={name: value}, epoch=step // STEPS_PER_EPOCH)


# ------------------------------------------------------------------------------ tfevents
_CRC_TABLE: np.ndarray | None = None


def _crc_table() -> np.ndarray:
    global _CRC_TABLE
    if _CRC_TABLE is None:
        table = np.zeros(256, np.uint32)
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table[i] = c
        _CRC_TABLE = table
    return _CRC_TABLE


def masked_crc32c(rows: np.ndarray) -> np.ndarray:
    """TFRecord's masked CRC-32C of each row of a uint8 matrix, vectorised over rows."""
    table = _crc_table()
    crc = np.full(rows.shape[0], 0xFFFFFFFF, np.uint32)
    for j in range(rows.shape[1]):
        crc = table[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> 8)
    crc = (crc ^ 0xFFFFFFFF).astype(np.uint64)
    return ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF).astype(np.uint32)


def _records(data: np.ndarray) -> np.ndarray:
    """Frame equal-length payloads as TFRecords: length, crc(length), payload, crc(payload)."""
    n, length = data.shape
    header = np.frombuffer(struct.pack("<Q", length), np.uint8)
    header_crc = masked_crc32c(header[None, :])
    out = np.empty((n, 8 + 4 + length + 4), np.uint8)
    out[:, :8] = header
    out[:, 8:12] = header_crc.view(np.uint8)
    out[:, 12:12 + length] = data
    out[:, 12 + length:] = masked_crc32c(data).reshape(-1, 1).view(np.uint8)
    return out


def scalar_events(steps: np.ndarray, values: np.ndarray, wall: np.ndarray, tag: str = "loss") -> bytes:
    """The records ``SummaryWriter.add_scalar(tag, value, step)`` writes (steps ≥ 1), in order."""
    tag_b = tag.encode()
    value_msg = b"\x0a" + bytes([len(tag_b)]) + tag_b + b"\x15"  # tag, then simple_value (fixed32)
    value_len = len(value_msg) + 4
    summary = b"\x0a" + bytes([value_len]) + value_msg
    summary_len = len(summary) + 4
    prefix = b"\x2a" + bytes([summary_len]) + summary  # Event.summary (field 5)
    nbytes = np.ones(len(steps), np.int64)
    for k in range(1, 10):
        nbytes += steps >= (1 << (7 * k))
    chunks = []
    for k in np.unique(nbytes):
        idx = np.nonzero(nbytes == k)[0]
        s = steps[idx].astype(np.uint64)
        length = 9 + 1 + int(k) + len(prefix) + 4
        data = np.empty((len(idx), length), np.uint8)
        data[:, 0] = 0x09  # wall_time (double)
        data[:, 1:9] = wall[idx].astype("<f8").view(np.uint8).reshape(-1, 8)
        data[:, 9] = 0x10  # step (varint)
        for i in range(int(k)):
            byte = (s >> np.uint64(7 * i)) & np.uint64(0x7F)
            data[:, 10 + i] = (byte | np.uint64(0x80 if i < k - 1 else 0)).astype(np.uint8)
        p = 10 + int(k)
        data[:, p:p + len(prefix)] = np.frombuffer(prefix, np.uint8)
        data[:, p + len(prefix):] = values[idx].astype("<f4").view(np.uint8).reshape(-1, 4)
        chunks.append((idx[0], _records(data).tobytes()))
    return b"".join(c for _, c in sorted(chunks))


def file_version_event(wall: float) -> bytes:
    data = b"\x09" + struct.pack("<d", wall) + b"\x1a\x0dbrain.Event:2"
    return _records(np.frombuffer(data, np.uint8)[None, :]).tobytes()


def write_tfevents(log_dir: Path, scalars: int, chunk: int = 1_000_000, tag: str = "loss") -> Path:
    """A tfevents file holding ``scalars`` values of one tag at steps 1..N, as SummaryWriter
    would write it (same records, byte for byte), built with numpy in seconds."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"events.out.tfevents.{int(T0)}.bench.{os.getpid()}.0"
    with open(path, "wb") as f:
        f.write(file_version_event(T0))
        for first in range(1, scalars + 1, chunk):
            steps = np.arange(first, min(first + chunk, scalars + 1), dtype=np.int64)
            f.write(scalar_events(steps, losses(steps), T0 + steps / STEPS_PER_S, tag))
    return path


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
