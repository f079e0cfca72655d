"""Fuzzing the decode → store → series path with hypothesis, and replaying what once broke it.

Arbitrary bytes and structurally valid but weird messages (huge, negative and backwards steps,
NaN values, empty dicts, very long names, many names) go through ``decode_lines`` and
``RunStore.ingest`` exactly as the link feeds them; ``Series.extend`` gets random batches at the
edges of float64 and int64. Inputs that ever broke something live in ``tests/fuzz_corpus/`` and
are replayed here (store level) and in ``tests/test_faults.py`` (through the real app).
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from neurotop.trainer.params import Param
from neurotop.trainer.protocol import (
    DecodeCounts,
    Event,
    Gradients,
    Health,
    Latent,
    Metric,
    ParamChange,
    Signal,
    Status,
    decode,
    decode_lines,
    encode,
)
from neurotop.tui.param_input import step_value
from neurotop.tui.link import FINAL_STATES, ChildExited, Launched, OutputLines, skipped
from neurotop.tui.series import Series
from neurotop.tui.store import MAX_EVENTS, MAX_OUTPUT_LINES, RunStore
from neurotop.tui.widgets.activations import decode_cells
from neurotop.tui.widgets.reconstructions import decode_images

CORPUS = Path(__file__).parent / "fuzz_corpus"
INT64 = (-(2**63), 2**63 - 1)

#: corpus file → (where it still breaks, the open product bug). ``store``: decode_lines + ingest
#: raise; ``app``: the real app crashes or loses data (tests/test_faults.py). Remove an entry
#: (or its ``store``/``app`` part) when the owner's fix lands: the strict xfail fails until then.
KNOWN_BUGS: dict[str, tuple[set[str], str]] = {}


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.jsonl"))


def corpus_params(layer: str) -> list:
    """One pytest param per corpus file, strictly xfailed while its bug is open at ``layer``."""
    out = []
    for path in corpus_files():
        where, reason = KNOWN_BUGS.get(path.name, (set(), ""))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if layer in where else []
        out.append(pytest.param(path, id=path.stem, marks=marks))
    return out


def feed(store: RunStore, lines: list[bytes], counts: DecodeCounts | None = None) -> list:
    """What ``Link._ingest_lines`` does, minus its safety net (which would hide a raise)."""
    counts = DecodeCounts() if counts is None else counts
    messages = decode_lines(lines, counts)
    store.ingest(messages + skipped(counts))
    return messages


def check_store(store: RunStore) -> None:
    """What holds whatever went in."""
    assert len(store.events.entries) <= MAX_EVENTS and len(store.metrics.markers) <= MAX_EVENTS
    assert len(store.output.lines) <= MAX_OUTPUT_LINES
    assert store.run.state in ("starting", "running", "paused", "finished", "failed", "stopped", "lost")
    for series in store.metrics.series.values():
        if len(series):
            view = series.view(columns=40)
            assert np.all(view.steps[1:] >= view.steps[:-1])
            assert int(view.count.sum()) == len(series)


# ----------------------------------------------------------------------------- arbitrary bytes
GOOD = [encode(m) for m in (
    Metric(step=1, t=0.0, values={"loss": 0.5}),
    Event(step=2, t=0.0, kind="note", text="x"),
    Status(step=3, t=0.0, state="running"),
    ParamChange(step=4, t=0.0, name="lr", new=0.1, old=0.2),
)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=200), st.sampled_from(GOOD),
                          st.sampled_from(GOOD).map(lambda b: b[: len(b) // 2]),
                          st.tuples(st.sampled_from(GOOD), st.integers(0, 80), st.binary(min_size=1, max_size=3))
                          .map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1:])), max_size=30))
def test_decode_lines_never_raises_and_counts_every_line(chunks):
    """Arbitrary bytes, torn and bit-flipped lines: every non-blank line is a message or counted."""
    lines = b"".join(chunks).split(b"\n")
    counts = DecodeCounts()
    messages = decode_lines(lines, counts)
    nonblank = sum(1 for line in lines if line.strip())
    assert len(messages) + counts.malformed + counts.unknown == nonblank
    store = RunStore()
    store.ingest(messages)
    check_store(store)


json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                          max_leaves=8)


@example({"type": {"loss": 1.0}})
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "step", "t", "values", "name", "x"]), json_value, max_size=5)
       .map(lambda d: d if "type" in d else {**d, "type": "metric"}))
def test_decode_lines_takes_any_json_object(obj):
    """Any JSON object, whatever its "type" holds, is a message or is counted."""
    counts = DecodeCounts()
    messages = decode_lines([msgspec.json.encode(obj)], counts)
    assert len(messages) + counts.malformed + counts.unknown == 1


# ---------------------------------------------------------------- valid but weird messages
finite = st.floats(allow_nan=False, allow_infinity=False)
weird_float = st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e308]))
names = st.one_of(st.sampled_from(["loss", "val_loss", "lr", "", " ", "[b]", "[/]", "é✓", "\x00"]),
                  st.text(max_size=20), st.builds(lambda c, n: c * n, st.text(min_size=1, max_size=3), st.integers(1000, 5000)))
# steps: mostly what the protocol takes (|step| <= 2**62), sometimes past it or past int64 (then counted)
steps = st.one_of(st.integers(-(2**62), 2**62), st.integers(-5, 50),
                  st.sampled_from([INT64[0], INT64[1], 2**62, -(2**62), 2**62 + 1, 2**64, 0, -1]))
metric = st.builds(Metric, step=steps, t=finite, values=st.dictionaries(names, st.one_of(st.none(), weird_float),
                                                                          max_size=6),
                   epoch=st.one_of(st.none(), st.integers(*INT64)))
status = st.builds(Status, step=steps, t=finite,
                   state=st.sampled_from(["starting", "running", "paused", "finished", "failed", "stopped", "lost"]),
                   exit_code=st.one_of(st.none(), st.integers(-(2**31), 2**31)), detail=names,
                   steps_per_s=finite, overhead=finite, dropped=st.integers(0, 2**62))
event = st.builds(Event, step=steps, t=finite, kind=st.sampled_from(["note", "warning", "diverged", "restore",
                                                                     "checkpoint", "pause", "resume", "zzz"]),
                  text=names, source=st.sampled_from(["ui", "guard", "auto", ""]))
finite_value = st.one_of(st.booleans(), st.integers(*INT64), finite, names)
value = st.one_of(finite_value, st.sampled_from([math.inf, -math.inf]))
change = st.builds(ParamChange, step=steps, t=finite, name=names, new=st.one_of(st.none(), value),
                   old=st.one_of(st.none(), value), ok=st.booleans(), reason=names)
# Hello, Activations and Sample are generated as plain JSON objects: the protocol's structs check
# themselves on construction, and a fuzzer must be able to say what the protocol would refuse.
spec = st.fixed_dictionaries({"name": names, "kind": st.sampled_from(["float", "int", "bool", "choice"]),
                              "value": finite_value, "default": finite_value},
                             optional={"min": st.one_of(st.none(), finite), "max": st.one_of(st.none(), finite),
                                       "log": st.booleans(), "choices": st.lists(names, max_size=3)})
hello = st.fixed_dictionaries({"type": st.just("hello"), "version": st.integers(0, 9), "run_id": names,
                               "name": names, "pid": st.integers(0, 2**31), "host": names, "started": finite,
                               "params": st.lists(spec, max_size=4)})
dims = st.integers(0, 40)


def filled(n: int) -> st.SearchStrategy[bytes]:
    """``n`` bytes repeating a short drawn pattern: shapes are what these tests vary, and a batch of
    snapshots with ``n`` drawn bytes each overruns hypothesis's 8 KB per case (data_too_large)."""
    return st.binary(min_size=1, max_size=16).map(lambda pattern: (pattern * n)[:n])


cells = st.integers(0, 300).flatmap(filled)


@st.composite
def activations(draw, exact=False, step=steps, name=names):
    """Snapshots whose cells match their shape (now and then, unless ``exact``, not)."""
    r, c = draw(dims), draw(dims)
    n = r * c if exact or draw(st.integers(0, 9)) else draw(st.integers(0, 300))
    # (JSON has no NaN: a non-finite lo/scale travels as null and does not decode; the SDK never sends one)
    return {"type": "activations", "step": draw(step), "layer": draw(name), "rows": r, "cols": c,
            "lo": draw(finite), "scale": draw(finite), "cells": draw(filled(n)),
            "units": draw(st.integers(0, 2**31))}


@st.composite
def sample(draw, exact=False, step=steps, name=names):
    count, height, width = draw(st.integers(0, 5)), draw(st.integers(0, 9)), draw(st.integers(0, 9))
    n = count * height * width if exact or draw(st.integers(0, 9)) else draw(st.integers(0, 300))
    return {"type": "sample", "step": draw(step), "name": draw(name), "count": count, "height": height,
            "width": width, "lo": draw(finite), "scale": draw(finite), "cells": draw(filled(n))}
opt_floats = st.lists(st.one_of(st.none(), weird_float), max_size=8)
health = st.builds(Health, step=steps, layer=names, units=st.integers(-3, 2**31), dead=st.integers(-3, 2**31),
                   saturated=st.integers(-3, 2**31), mean=finite, std=finite, signal=finite, kind=names,
                   rows=st.integers(-3, 400), means=cells, mean_lo=finite, mean_scale=finite,
                   spreads=cells, spread_lo=finite, spread_scale=finite, window=st.integers(-3, 99))
gradients = st.builds(Gradients, step=steps, layers=st.lists(names, max_size=6), grad_norm=opt_floats,
                      update_ratio=opt_floats)
latent = st.builds(Latent, step=steps, points=st.integers(-3, 200), x=st.binary(max_size=64), y=st.binary(max_size=64),
                   lo=st.lists(finite, max_size=3), scale=st.lists(finite, max_size=3),
                   explained=st.lists(finite, max_size=3), labels=st.lists(st.integers(-9, 99), max_size=9),
                   dims=st.integers(-3, 999), name=names)
signal = st.builds(Signal, step=steps, layers=st.lists(names, max_size=6), mean_abs=opt_floats)
message = st.one_of(metric, metric, metric, status, event, change, hello, activations(), sample(),
                    health, gradients, latent, signal)


def line_of(message) -> bytes:
    return encode(message) if isinstance(message, msgspec.Struct) else msgspec.json.encode(message) + b"\n"


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # 1e308 into float32 history: inf
@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(message, max_size=25), max_size=6))
def test_store_takes_weird_but_valid_messages(batches):
    """Batches as the link delivers them (encoded, decoded): huge, negative and backwards steps, NaN
    and non-finite values, empty dicts, odd and very long names, snapshots short of cells. Nothing
    raises; every line is a message or counted (what the protocol refuses is its business); every
    value of every message that decoded lands in its series (up to the store's bound on series);
    steps on the chart only go forward."""
    store = RunStore()
    want: dict[str, int] = {}
    metric_steps: list[int] = []
    malformed = 0
    for batch in batches:
        counts = DecodeCounts()
        messages = feed(store, b"".join(line_of(m) for m in batch).split(b"\n"), counts)
        assert len(messages) + counts.malformed == len(batch) and counts.unknown == 0
        malformed += counts.malformed
        assert store.intake.counts.malformed == malformed  # what the link skipped reaches the diagnostics
        for m in messages:
            if isinstance(m, Metric):
                metric_steps.append(m.step)
                for name in m.values:
                    want[name] = want.get(name, 0) + 1
        check_store(store)
    kept = {name: len(s) for name, s in store.metrics.series.items()}
    assert all(kept[name] == want[name] for name in kept) and set(kept) <= set(want)
    if len(kept) < len(want):  # past the store's bound: the rest are counted, not kept
        assert store.metrics.refused_series > 0
    if metric_steps and kept:
        assert store.run.step >= max(metric_steps)


ended = st.builds(ChildExited, code=st.integers(-64, 255), detail=names, t=finite)
launched = st.builds(Launched, name=names, started=finite)
output = st.builds(OutputLines, lines=st.lists(names, max_size=5))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.one_of(status, ended, launched, output), max_size=8), min_size=1, max_size=8))
def test_once_a_run_has_ended_it_stays_ended_at_one_time(batches):
    """The run's own statuses and what the link sees of its process, in any order: nothing revives
    a run that ended; while it is over its clock stands still (its end moves only with a later end
    record); and only the run's own messages count as decoded."""
    store = RunStore()
    decoded = 0
    for batch in batches:
        was = (store.run.finished, store.run.ended)
        store.ingest(batch)
        decoded += sum(1 for m in batch if isinstance(m, Status))
        run = store.run
        assert store.intake.messages == decoded
        if was[0]:
            assert run.finished
            final = [m for m in batch if isinstance(m, Status) and m.state in FINAL_STATES]
            assert run.ended == (final[-1].t if final else was[1])
        if run.finished:
            assert run.ended is not None and run.elapsed() == run.elapsed(now=run.ended + 1e6)


def test_backwards_steps_are_drawn_forward_and_counted():
    store = RunStore()
    for step in (10, 5, 20, -3, 20, 7):
        feed(store, [encode(Metric(step=step, t=0.0, values={"loss": 1.0}))])
    s = store.metrics.series["loss"]
    assert len(s) == 6 and s.first_step == 10 and s.last_step == 20
    assert store.metrics.reordered == 3  # 5, -3 and 7 went backwards


def test_the_number_of_series_is_bounded():
    store = RunStore()
    feed(store, [encode(Metric(step=1, t=0.0, values={f"m{i}": 1.0 for i in range(10_000)}))])
    check_store(store)
    assert len(store.metrics.series) < 10_000, f"{len(store.metrics.series)} series kept"


def test_names_are_bounded_in_length():
    """A megabyte name is refused (or cut), never kept whole as a key or a label."""
    store = RunStore()
    feed(store, [encode(Metric(step=1, t=0.0, values={"n" * (1 << 20): 1.0})),
                 msgspec.json.encode({"type": "activations", "step": 1, "layer": "l" * (1 << 20), "rows": 1, "cols": 1,
                                      "lo": 0.0, "scale": 1.0, "cells": b"\0"})])
    assert all(len(name) <= 4096 for name in store.metrics.series)
    assert all(len(name) <= 4096 for name in store.insights.activations.items)


# ---------------------------------------------------------------------------------- Series
@st.composite
def batches_for_series(draw):
    start = draw(st.integers(INT64[0], INT64[1] - 10_000_000))
    out, step = [], start
    for _ in range(draw(st.integers(1, 12))):
        n = draw(st.integers(0, 300))
        gaps = np.array(draw(st.lists(st.sampled_from([0, 0, 1, 1, 1, 7, 1000]), min_size=n, max_size=n)), np.int64)
        steps = step + np.cumsum(gaps)
        step = int(steps[-1]) if n else step
        values = np.array(draw(st.lists(weird_float, min_size=n, max_size=n)), np.float64)
        out.append((steps, values))
    return out


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",  # values near 1e308: the smoothed
                            "ignore:invalid value encountered:RuntimeWarning")  # curve overflows (series.py says so)
@settings(max_examples=60, deadline=None)
@given(batches_for_series(), st.sampled_from([(4, 2), (16, 4), (4096, 4)]))
def test_series_extend_with_random_batches(batches, shape):
    """Empty batches, repeats, jumps, int64-wide steps, NaN/inf and float64-edge values: counts,
    ends and the whole-run min/max stay exact and memory stays within the pyramid's bound."""
    capacity, factor = shape
    s = Series(capacity=capacity, factor=factor)
    for steps, values in batches:
        s.extend(steps, values)
    all_steps = np.concatenate([b[0] for b in batches])
    all_values = np.concatenate([b[1] for b in batches])
    assert len(s) == len(all_values)
    if not len(all_values):
        assert s.view().steps.size == 0
        return
    assert s.first_step == all_steps[0] and s.last_step == all_steps[-1]
    assert s.nonfinite == int((~np.isfinite(all_values)).sum())
    fin = all_values[np.isfinite(all_values)]
    lo, hi = s.minmax()
    assert (lo, hi) == (fin.min(), fin.max()) if fin.size else (math.isnan(lo) and math.isnan(hi))
    view = s.view(columns=20)
    assert int(view.count.sum()) == len(all_values) and np.all(view.steps[1:] >= view.steps[:-1])
    per_bucket = 8 * (4 + 4 + 5)  # int fields, float fields, smoothing weights
    assert s.nbytes <= per_bucket * (capacity + factor) * s.nlevels * 2


def test_series_refuses_steps_that_go_backwards():
    s = Series()
    s.extend([5, 6], [1.0, 2.0])
    with pytest.raises(ValueError):
        s.extend([4], [1.0])
    with pytest.raises(ValueError):
        s.extend([7, 6], [1.0, 1.0])
    assert len(s) == 2


# -------------------------------------------------------------- what the panes do with it
@settings(max_examples=200, deadline=None)
@given(activations(exact=True, step=st.integers(0, 10**6), name=st.text(max_size=20))
       .map(lambda d: decode(msgspec.json.encode(d))))
def test_activation_snapshots_of_any_nonnegative_shape_decode(msg):
    cells = decode_cells(msg)
    assert cells.shape == (msg.rows, msg.cols) and cells.dtype == np.uint8


@settings(max_examples=200, deadline=None)
@given(sample(exact=True, step=st.integers(0, 10**6), name=st.text(max_size=20))
       .map(lambda d: decode(msgspec.json.encode(d))))
def test_sample_images_of_any_nonnegative_shape_decode(msg):
    images = decode_images(msg)
    assert images.shape == (msg.count, msg.height, msg.width)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.builds(lambda d, lo, span: Param(d, min=lo, max=lo + span).spec("p", d),
              st.floats(-10, 10), st.floats(-20, -10), st.floats(30, 40)),
    st.builds(lambda e: Param(10.0 ** e, min=1e-9, max=1e9, log=True).spec("lr", 10.0 ** e), st.integers(-9, 9)),
    st.builds(lambda d: Param(d, min=-100, max=100).spec("n", d), st.integers(-100, 100)),
    st.builds(lambda d: Param(d).spec("b", d), st.booleans()),
    st.builds(lambda c: Param(c[0], choices=c).spec("c", c[0]), st.lists(st.text(min_size=1), min_size=1, max_size=4)),
), st.sampled_from([1, -1]))
def test_step_value_stays_valid_for_declared_params(spec, direction):
    """What `+`/`-` ask for is always a value the child's own declaration accepts."""
    param = Param(spec.default, min=spec.min, max=spec.max, log=spec.log, choices=spec.choices)
    param.validate(step_value(spec, spec.value, direction))


def test_a_tiny_snapshot_cannot_claim_a_huge_shape():
    """60-byte lines that claim 10^10 cells, through decode and the panes' decoders, in a child with its
    address space capped (so the box is never at risk): refused or drawn small, never allocated."""
    code = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from neurotop.trainer.protocol import Activations, DecodeCounts, Sample, decode_lines
        from neurotop.tui.widgets.activations import decode_cells
        from neurotop.tui.widgets.reconstructions import decode_images
        lines = [b'{"type":"activations","step":1,"layer":"l","rows":100000,"cols":100000,"lo":0,"scale":1,"cells":""}',
                 b'{"type":"sample","step":1,"name":"i","count":1000,"height":10000,"width":10000,"lo":0,"scale":1,'
                 b'"cells":""}']
        try:
            for msg in decode_lines(lines, DecodeCounts()):
                decode_cells(msg) if isinstance(msg, Activations) else decode_images(msg)
        except MemoryError:
            sys.exit(3)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-500:]


# ----------------------------------------------------------------------- corpus, replayed
@pytest.mark.parametrize("path", corpus_params("store"))
def test_corpus_through_the_store(path):
    lines = path.read_bytes().split(b"\n")
    store = RunStore()
    counts = DecodeCounts()
    messages = feed(store, lines, counts)
    assert len(messages) + counts.malformed + counts.unknown == sum(1 for line in lines if line.strip())
    assert store.intake.messages == len(messages)
    check_store(store)


def test_corpus_is_there():
    assert len(corpus_files()) >= len(KNOWN_BUGS)
    assert set(KNOWN_BUGS) <= {p.name for p in corpus_files()}
    for path in corpus_files():  # every file is lines of JSON objects (for jq, and to stay readable)
        for line in path.read_bytes().splitlines():
            assert isinstance(msgspec.json.decode(line), dict)
