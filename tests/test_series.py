"""Correctness of tui/series.py against the raw stream, kept here in full."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurotop.tui.series import SMOOTHING, Series, _scan

NAN, INF = float("nan"), float("inf")


def ema_reference(values) -> np.ndarray:
    """Plain-Python debiased EMA, non-finite points skipped (state held)."""
    out = np.empty((len(values), len(SMOOTHING)))
    for w, a in enumerate(SMOOTHING):
        ema, k, held = 0.0, 0, NAN
        for i, x in enumerate(values):
            if math.isfinite(x):
                ema = a * ema + (1 - a) * x
                k += 1
                held = ema / (1 - a**k)
            out[i, w] = held
        # (no vectorisation here on purpose: this is the reference)
    return out


def close(got, want, scale) -> bool:
    return np.allclose(got, want, rtol=1e-9, atol=1e-9 * scale, equal_nan=True)


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def check_buckets(v, steps, values, ref, w=None) -> None:
    """Every bucket of view `v` agrees with the raw points it covers."""
    scale = max(1.0, np.abs(values[np.isfinite(values)]).max(initial=0.0))
    for i in range(len(v)):
        s, c = int(v.start[i]), int(v.count[i])
        seg = values[s : s + c]
        fin = seg[np.isfinite(seg)]
        assert c >= 1 and s + c <= len(values)
        assert v.first[i] == steps[s] and v.steps[i] == steps[s + c - 1]
        assert same(v.lo[i], fin.min() if fin.size else NAN)
        assert same(v.hi[i], fin.max() if fin.size else NAN)
        assert same(v.last[i], seg[-1])
        assert v.nonfinite[i] == c - fin.size
        assert close(v.sum[i], fin.sum(), scale * c)
        want = ref[s + c - 1] if w is None else ref[s + c - 1, w]
        assert close(v.smooth[i], want, scale)


def check_contiguous(v) -> None:
    assert np.all(v.start[1:] == v.start[:-1] + v.count[:-1])
    assert np.all(np.diff(v.steps) >= 0)


# ---- streams -----------------------------------------------------------------

values_st = st.one_of(
    st.floats(-10, 10),
    st.floats(-10, 10),
    st.sampled_from([NAN, INF, -INF, 1e9, -1e9]),
)


@st.composite
def streams(draw):
    n = draw(st.integers(1, 400))
    gaps = draw(st.lists(st.sampled_from([0, 1, 1, 1, 2, 1000]), min_size=n, max_size=n))
    steps = np.cumsum(np.array(gaps, np.int64)) + draw(st.integers(-5, 5))
    values = np.array(draw(st.lists(values_st, min_size=n, max_size=n)))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8)))
    return steps, values, [0, *cuts, n]


def ingest(series: Series, steps, values, cuts) -> None:
    for a, b in zip(cuts[:-1], cuts[1:]):
        series.extend(steps[a:b], values[a:b])


@settings(max_examples=150, deadline=None)
@given(streams(), st.sampled_from([(4, 2), (8, 2), (16, 4), (9, 3), (64, 4)]))
def test_every_bucket_matches_raw_data(stream, shape):
    steps, values, cuts = stream
    capacity, factor = shape
    s = Series(capacity=capacity, factor=factor)
    ingest(s, steps, values, cuts)
    ref = ema_reference(values)
    n = len(values)

    assert len(s) == n and s.first_step == steps[0] and s.last_step == steps[-1]
    assert same(s.last_value, values[-1])
    assert s.nonfinite == int((~np.isfinite(values)).sum())
    for k in range(s.nlevels):
        lv = s.level(k)
        assert len(lv) <= capacity
        assert np.all(lv.count == factor**k)
        assert len(lv) == 0 or lv.start[-1] + lv.count[-1] == n // factor**k * factor**k
        check_contiguous(lv)
        check_buckets(lv, steps, values, ref)
    top = s.level(s.nlevels - 1)
    assert len(top) < factor and (len(top) == 0 or top.start[0] == 0)  # covers the run


@settings(max_examples=150, deadline=None)
@given(
    streams(),
    st.sampled_from([(4, 2), (16, 4), (64, 4)]),
    st.integers(1, 40),
    st.sampled_from(SMOOTHING),
    st.data(),
)
def test_view_covers_window_and_is_bounded(stream, shape, columns, smoothing, data):
    steps, values, cuts = stream
    capacity, factor = shape
    s = Series(capacity=capacity, factor=factor)
    ingest(s, steps, values, cuts)
    ref = ema_reference(values)
    w = SMOOTHING.index(smoothing)
    limit = max(2 * columns, factor) + 1

    whole = s.view(None, None, columns, smoothing=smoothing)
    assert 1 <= len(whole) <= limit
    assert whole.start[0] == 0 and whole.start[-1] + whole.count[-1] == len(values)
    check_contiguous(whole)
    check_buckets(whole, steps, values, ref, w)

    lo = data.draw(st.integers(int(steps[0]) - 3, int(steps[-1]) + 3), "lo")
    hi = data.draw(st.integers(lo - 2, int(steps[-1]) + 3), "hi")
    v = s.view(lo, hi, columns, smoothing=smoothing)
    assert len(v) <= limit
    check_contiguous(v)
    check_buckets(v, steps, values, ref, w)
    inside = np.flatnonzero((steps >= lo) & (steps <= hi))
    if inside.size:  # every point of the window is in a returned bucket
        assert len(v) and v.start[0] <= inside[0] and v.start[-1] + v.count[-1] > inside[-1]
        fin = values[inside][np.isfinite(values[inside])]
        mn, mx = s.minmax(lo, hi)
        if fin.size:
            assert mn <= fin.min() and mx >= fin.max()
    fin = values[np.isfinite(values)]
    mn, mx = s.minmax()
    assert (same(mn, fin.min()) and same(mx, fin.max())) if fin.size else math.isnan(mn)


# ---- targeted properties -----------------------------------------------------


def test_scan_matches_loop():
    rng = np.random.default_rng(1)
    for a in (*SMOOTHING, 1e-9, 1e-5, 0.3, 0.9999):
        for n in (1, 2, 7, 300, 5000):
            u = rng.normal(size=n) * rng.choice([1.0, 1e6], size=n)
            y, ref, acc = _scan(u, a, 0.7), np.empty(n), 0.7
            for i in range(n):
                acc = a * acc + u[i]
                ref[i] = acc
            assert close(y, ref, np.abs(u).max()), (a, n)


@pytest.mark.parametrize("where", ["middle", "recent"])
def test_spike_survives_every_level(where):
    n = 200_000
    rng = np.random.default_rng(2)
    values = rng.normal(size=n)
    at = 123_457 if where == "middle" else n - 10
    values[at] = 1e6
    s = Series(capacity=256, factor=4)
    ingest(s, np.arange(n) * 3, values, list(range(0, n, 997)) + [n])
    held = []
    for k in range(s.nlevels):
        lv = s.level(k)
        if len(lv) and lv.start[0] <= at < lv.start[-1] + lv.count[-1]:
            assert np.nanmax(lv.hi) == 1e6, k
            held.append(k)
    # A ring that no longer holds the spike's index has scrolled past it (middle) or
    # not yet closed the bucket holding it (recent: it is in that level's partial tail).
    assert held == (list(range(s.nlevels - 4, s.nlevels)) if where == "middle" else [0, 1, 2, 3])
    assert s.level(s.nlevels - 1).start[0] == 0  # the coarsest level spans the run
    levels = set()
    for columns in (1, 3, 10, 80, 1000, 10**6):
        v = s.view(None, None, columns)
        assert np.nanmax(v.hi) == 1e6
        levels.add(v.level)
        v = s.view(at * 3 - 30, at * 3 + 30, columns)  # any zoom around the spike
        assert np.nanmax(v.hi) == 1e6
        levels.add(v.level)
    assert len(levels) >= 4
    assert s.minmax() == (values.min(), 1e6)


def test_memory_is_bounded():
    capacity, n, batch = 4096, 2_000_000, 10_000
    per_bucket = 8 * 4 + 8 * 4 + 8 * len(SMOOTHING)  # int + float fields + smooth
    s = Series(capacity=capacity)
    rng = np.random.default_rng(3)
    at_1m = None
    for i in range(0, n, batch):
        s.extend(np.arange(i, i + batch), rng.normal(size=batch))
        if i + batch == n // 2:
            at_1m = s.nbytes
    assert len(s) == n
    assert s.nbytes < 12 * capacity * per_bucket  # ~O(C log N): 5 MB; the raw data is 32 MB
    assert s.nbytes - at_1m <= capacity * per_bucket


def test_smoothing_is_the_same_at_every_zoom():
    n = 50_000
    rng = np.random.default_rng(4)
    values = np.cumsum(rng.normal(size=n)) + 5 * rng.normal(size=n)
    values[rng.integers(0, n, 300)] = NAN
    values[:5] = NAN  # smoothed value is NaN until the first finite point
    steps = np.arange(n) * 2
    s = Series(capacity=512, factor=4)
    ingest(s, steps, values, list(range(0, n, 613)) + [n])
    ref = ema_reference(values)
    for smoothing in SMOOTHING:
        w = SMOOTHING.index(smoothing)
        seen: dict[int, float] = {}
        for lo, hi, cols in [(None, None, 20), (None, None, 300), (90_000, 99_998, 50), (99_000, None, 600)]:
            v = s.view(lo, hi, cols, smoothing=smoothing)
            ends = v.start + v.count - 1
            assert close(v.smooth, ref[ends, w], np.nanmax(np.abs(values)))
            for e, x in zip(ends.tolist(), v.smooth.tolist()):
                assert same(seen.setdefault(e, x), x)  # identical across zooms
    assert s.view(None, None, 1_000_000).level < s.view(None, None, 10).level


def test_append_equals_extend_and_validation():
    rng = np.random.default_rng(5)
    values = rng.normal(size=300)
    values[[3, 50]] = [NAN, -INF]
    a, b = Series(capacity=16, factor=2), Series(capacity=16, factor=2)
    for i, x in enumerate(values):
        a.append(i // 2, x)
    b.extend(np.arange(300) // 2, values)
    va, vb = a.view(None, None, 7, 0.9), b.view(None, None, 7, 0.9)
    for f in ("steps", "lo", "hi", "last", "count", "start"):
        assert np.array_equal(getattr(va, f), getattr(vb, f), equal_nan=True)
    assert close(va.smooth, vb.smooth, 10)
    with pytest.raises(ValueError):
        a.extend([10], [1.0])  # goes back in steps
    with pytest.raises(ValueError):
        a.extend([200, 199], [1.0, 2.0])
    with pytest.raises(ValueError):
        a.view(smoothing=0.5)
    empty = Series()
    assert len(empty.view()) == 0 and math.isnan(empty.minmax()[0]) and len(empty) == 0
    empty.extend([], [])
    assert len(empty) == 0 and empty.last_step is None
