"""The benchmarks' building blocks run on toy sizes (no timing assertions: ``python -m bench`` times)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bench import data, ingest, terminal
from bench.common import Row, machine, markdown, run_worker
from neurotop.trainer.protocol import DecodeCounts, Metric, Status, decode, decode_lines, encode


def test_metric_template_is_what_encode_writes():
    lines = data.metric_lines(1, 3000)
    assert len(lines) == 2999
    for line in lines[:: 97] + lines[-3:]:
        msg = decode(line)
        assert isinstance(msg, Metric) and encode(msg) == line


def test_journal_writer_produces_n_decodable_lines(runs):
    steps = 4321
    run_dir = data.write_run(runs, steps)
    raw = (run_dir / "journal.jsonl").read_bytes()
    lines = raw.split(b"\n")[:-1]
    assert raw.endswith(b"\n") and len(lines) == data.journal_line_count(steps)
    counts = DecodeCounts()
    msgs = decode_lines(lines, counts)
    assert counts.malformed == counts.unknown == 0 and len(msgs) == len(lines)
    assert [m.step for m in msgs if isinstance(m, Metric) and "loss" in m.values] == list(range(1, steps + 1))
    assert isinstance(msgs[-1], Status) and msgs[-1].state == "finished"


def test_open_journal_rebuilds_the_store(runs):
    from bench import open_journal

    w = open_journal.write(2000, root=str(runs))
    got = open_journal.open_run(w["run_dir"], w["lines"], 2000, timeout=20)
    assert got["complete"] and got["messages"] == w["lines"] and got["seconds"] > 0


def test_ingest_cuts_at_line_boundaries_and_measures():
    blob = b"".join(data.journal_chunks(3000))
    chunks = ingest.cut(blob, 4096)
    assert b"\n".join(chunks) + b"\n" == blob
    result = ingest.measure(steps=3000, reps=1)
    for got in result["sizes"].values():
        assert got["ingest_per_s"] > 0 and got["msgspec_per_s"] > 0


def test_log_cost_is_positive(runs):
    result = ingest_free_log_cost(peers=())
    ours = result["neurotop Monitor.log"]
    assert ours["median_us"] > 0 and ours["journal_lines"] == ours["calls"]


def ingest_free_log_cost(peers):
    from bench import log_cost

    return log_cost.measure(calls=2000, tb_calls=200, wandb_calls=50, rounds=1, peers_wanted=peers)


def test_log_cost_tensorboard_peer(runs):
    pytest.importorskip("tensorboard")
    pytest.importorskip("torch")
    result = ingest_free_log_cost(peers=("tensorboard",))
    assert result["TensorBoard SummaryWriter.add_scalar"]["median_us"] > 0


def test_log_cost_wandb_peer(runs, monkeypatch):
    pytest.importorskip("wandb")
    for key in ("WANDB_MODE", "WANDB_SILENT", "WANDB_DIR", "WANDB_CONSOLE", "WANDB_DISABLE_GIT"):
        monkeypatch.setenv(key, "")  # measure() sets these; the monkeypatch puts them back
    result = ingest_free_log_cost(peers=("wandb",))
    assert result["wandb.log (offline)"]["median_us"] > 0


def test_tfevents_records_match_protobuf_and_load(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    steps = np.array([1, 127, 128, 16383, 16384, 2_097_152, 300_000_000], np.int64)
    values, wall = data.losses(steps), data.T0 + steps / 1700
    expected = b""
    for s, v, w in zip(steps, values, wall):
        payload = event_pb2.Event(wall_time=w, step=int(s), summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="loss", simple_value=v)])).SerializeToString()
        header = struct.pack("<Q", len(payload))
        expected += header + struct.pack("<I", masked_crc32c(header)) + payload + struct.pack("<I", masked_crc32c(payload))
    assert data.scalar_events(steps, values, wall) == expected

    log_dir = tmp_path / "tb"  # not the test's own directory: its name holds "tfevents"
    data.write_tfevents(log_dir, 500)
    acc = ea.EventAccumulator(str(log_dir), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    got = acc.Scalars("loss")
    assert [e.step for e in got] == list(range(1, 501))
    assert got[0].value == pytest.approx(float(np.float32(data.losses(np.array([1]))[0])))


def test_dashboard_fills_and_repaints():
    from bench import dashboard

    result = dashboard.measure(points=20_000, batch=5_000, frames=1, anchor_points=200, settle=0.1)
    assert result["full"]["total"] > 0 and result["full"]["bytes"] > 1000
    assert result["braille_cells"] > 0  # the chart drew something
    assert result["rss_10m"] > 0 and result["anchor"]["seconds"] > 0


def test_terminal_attribution_charges_bytes_to_the_cursor_position():
    stream = b"\x1b[1;1Hhello\x1b[3;97Hworld!!"
    cells = terminal.attribute(stream)
    assert cells[(1, 1)] == len(b"\x1b[1;1Hhello") and cells[(3, 97)] == len(b"\x1b[3;97Hworld!!")
    regions = {"header": (0, 0, 160, 1), "log": (96, 1, 64, 40)}
    assert terminal._pane_of(regions, 1, 1) == "header" and terminal._pane_of(regions, 3, 97) == "log"


def test_worker_round_trip_and_table():
    result = run_worker("bench.ingest:measure", steps=500, reps=1)
    assert result["messages"] == data.journal_line_count(500, finished=False)
    row = Row("x", "1 µs", met=True)
    text = markdown([row], machine(), "python -m bench", 1.0, [])
    assert "| x | 1 µs |" in text and "met" in text
