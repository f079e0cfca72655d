"""Bounded multi-resolution time series for metric streams (numpy only).

A night of training can log ~10M points per metric; the TUI must draw any
window of that in a few hundred terminal columns, instantly, without holding
the whole stream.  `Series` keeps a pyramid of rings:

* level 0 holds the most recent ``capacity`` raw points;
* level k holds the most recent ``capacity`` buckets of ``factor**k``
  consecutive points each (first/last step, finite min/max/sum, last value,
  point count, non-finite count, smoothed values at the last point).

Buckets are aligned on point *index* (bucket j of level k is points
``[j*F**k, (j+1)*F**k)``), so every point is summarised at every level: a
single spike survives in every level's min/max.  Levels are added as soon as
the one below has F buckets to merge, so the coarsest level always covers the
whole run with fewer than F buckets; memory is O(capacity * log_F N).  Rings
grow geometrically up to ``capacity``, so a short series stays small.

Smoothing is a debiased EMA computed on the *raw* stream at ingest (for every
weight in `SMOOTHING`) and stored at each bucket's last point, so a smoothed
curve shows the same value at a given point whatever the zoom level.

All ingest work is vectorised per batch; per-batch Python work is O(levels).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["SMOOTHING", "Series", "View"]

#: EMA weights precomputed at ingest (0.0 = raw values).  A fixed set, because
#: the EMA must run over the raw stream, which is not kept.
SMOOTHING: tuple[float, ...] = (0.0, 0.6, 0.9, 0.99, 0.999)

_INT = ("first", "step", "count", "nonfinite")
_FLOAT = ("lo", "hi", "last", "sum", "smooth")
_FIELDS = _INT + _FLOAT

Buckets = dict  # field name -> array, all the same length (smooth is (n, W))


def _scan(u: np.ndarray, a: float, s0: float) -> np.ndarray:
    """Solve ``y[i] = a*y[i-1] + u[i]`` with ``y[-1] = s0``, vectorised.

    Closed form inside blocks of B points: ``y[j] = a**j * cumsum(u * a**-j)``,
    with B chosen so ``a**-B <= 1e16`` (no overflow, and rounding stays at
    float eps relative to the largest input).  The block-end states obey the
    same recurrence with weight ``a**B``, solved recursively; that weight
    shrinks fast, so the recursion is 1-3 deep.  (Inputs above ~1e290 would
    overflow ``u * a**-j``; metric values never get there.)
    """
    n = len(u)
    if n == 0 or a == 0.0:
        return u.copy()
    if a < 1e-8:  # a**2 terms are below float eps: one step of the recurrence
        y = u.copy()
        y[0] += a * s0
        y[1:] += a * u[:-1]
        return y
    B = int(min(256, max(2, np.log(1e16) / -np.log(a))))
    if n <= B:
        j = np.arange(n)
        return a**j * np.cumsum(u * a ** -j.astype(float)) + a ** (j + 1.0) * s0
    nb = -(-n // B)
    U = np.zeros(nb * B)
    U[:n] = u
    U = U.reshape(nb, B)
    j = np.arange(B, dtype=float)
    local = np.cumsum(U * a**-j, axis=1) * a**j  # each block started from 0
    ends = _scan(local[:, -1], a**B, s0)  # true state after each block
    starts = np.concatenate(([s0], ends[:-1]))
    return (local + np.outer(starts, a ** (j + 1))).ravel()[:n]


def _reduce(b: Buckets, g: int) -> Buckets:
    """Merge each run of ``g`` consecutive buckets (len(b) % g == 0)."""
    r = {k: v.reshape(-1, g, *v.shape[1:]) for k, v in b.items()}
    return {
        "first": r["first"][:, 0],
        "step": r["step"][:, -1],
        "count": r["count"].sum(axis=1),
        "nonfinite": r["nonfinite"].sum(axis=1),
        "lo": np.fmin.reduce(r["lo"], axis=1),  # fmin/fmax skip NaN (= missing)
        "hi": np.fmax.reduce(r["hi"], axis=1),
        "last": r["last"][:, -1],
        "sum": r["sum"].sum(axis=1),
        "smooth": r["smooth"][:, -1],
    }


def _concat(a: Buckets, b: Buckets) -> Buckets:
    return {k: np.concatenate((a[k], b[k])) for k in _FIELDS}


def _length(b: Buckets) -> int:
    return len(b["step"])


def _empty(width: int) -> Buckets:
    b = {k: np.empty(0, np.int64) for k in _INT}
    b.update({k: np.empty(0) for k in _FLOAT})
    b["smooth"] = np.empty((0, width))
    return b


class _Ring:
    """The most recent ``cap`` buckets of one level, by absolute index.

    Storage grows geometrically up to ``cap`` and then wraps; bucket with
    absolute index j lives at ``j % cap``.
    """

    def __init__(self, cap: int, width: int):
        self.cap, self.n = cap, 0
        self.a = _empty(width)

    @property
    def oldest(self) -> int:
        """Absolute index of the oldest retained bucket."""
        return max(0, self.n - self.cap)

    def append(self, b: Buckets) -> None:
        m = _length(b)
        keep = min(m, self.cap)
        size = len(self.a["step"])
        if self.n + m > size and size < self.cap:  # grow (never wrapped yet)
            new = min(self.cap, max(2 * size, 16, self.n + m))
            for k, v in self.a.items():
                g = np.empty((new, *v.shape[1:]), v.dtype)
                g[:size] = v
                self.a[k] = g
        p = (self.n + m - keep) % self.cap  # write the last `keep` at p.., wrapping once
        n1 = min(keep, self.cap - p)
        for k, v in self.a.items():
            src = b[k][m - keep :]
            v[p : p + n1] = src[:n1]
            v[: keep - n1] = src[n1:]
        self.n += m

    def take(self, i0: int, i1: int) -> Buckets:
        """Buckets with absolute indices ``[i0, i1)`` (must be retained)."""
        idx = np.arange(i0, i1) % self.cap
        return {k: v[idx] for k, v in self.a.items()}

    def search(self, field: str, value: int, side: str) -> int:
        """``searchsorted`` over the retained buckets in time order, O(log cap)."""
        v, start = self.a[field], self.oldest
        p = start % self.cap
        if self.n <= self.cap:
            return int(np.searchsorted(v[: self.n], value, side))
        i = int(np.searchsorted(v[p:], value, side))  # the older segment
        if i < self.cap - p:
            return start + i
        return start + self.cap - p + int(np.searchsorted(v[:p], value, side))

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.a.values())


@dataclass(frozen=True)
class View:
    """Buckets to draw, oldest first; all arrays have the same length.

    ``steps`` is each bucket's last step (the x position), ``first`` its first
    step; ``lo``/``hi`` are finite min/max (NaN if the bucket has no finite
    value); ``last`` is the value of the bucket's last point (raw, may be
    non-finite); ``smooth`` the debiased EMA at that point; ``start`` the
    index of the bucket's first point in the stream.
    """

    steps: np.ndarray
    first: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    last: np.ndarray
    smooth: np.ndarray
    count: np.ndarray
    nonfinite: np.ndarray
    start: np.ndarray
    sum: np.ndarray
    level: int

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def mean(self) -> np.ndarray:
        """Mean of the finite values of each bucket (NaN if none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum / (self.count - self.nonfinite)


class _Level:
    __slots__ = ("ring", "pending")

    def __init__(self, cap: int, width: int):
        self.ring = _Ring(cap, width)
        self.pending = _empty(width)  # last < F buckets, not yet merged upward


class Series:
    """Bounded multi-resolution store of one metric (see module docstring)."""

    def __init__(self, capacity: int = 4096, factor: int = 4):
        if factor < 2 or capacity < factor:
            raise ValueError("need factor >= 2 and capacity >= factor")
        self.capacity, self.factor = capacity, factor
        self._w = len(SMOOTHING)
        self._levels = [_Level(capacity, self._w)]
        self._n = 0
        self._nonfinite = 0
        self._first_step: int | None = None
        self._last_step: int | None = None
        self._last_value = float("nan")
        # EMA state per weight: biased EMA, finite points seen, last debiased value.
        self._ema = np.zeros(self._w)
        self._nfinite = 0
        self._held = np.full(self._w, np.nan)
        self._tails: list[Buckets] | None = None

    # ---- ingest -------------------------------------------------------------

    def append(self, step: int, value: float) -> None:
        self.extend(np.array([step], np.int64), np.array([value], np.float64))

    def extend(self, steps, values) -> None:
        """Append a batch; steps must be nondecreasing (repeats and jumps ok)."""
        steps = np.asarray(steps, np.int64).ravel()
        values = np.asarray(values, np.float64).ravel()
        if len(steps) != len(values):
            raise ValueError("steps and values differ in length")
        n = len(steps)
        if n == 0:
            return
        if np.any(steps[1:] < steps[:-1]) or (
            self._last_step is not None and steps[0] < self._last_step
        ):
            raise ValueError("steps must be nondecreasing")
        finite = np.isfinite(values)
        fv = np.where(finite, values, np.nan)
        bad = (~finite).astype(np.int64)
        b = {
            "first": steps, "step": steps, "count": np.ones(n, np.int64), "nonfinite": bad,
            "lo": fv, "hi": fv, "last": values, "sum": np.where(finite, values, 0.0),
            "smooth": self._smooth(values, finite),
        }  # fmt: skip
        k, F = 0, self.factor
        while _length(b):
            if k == len(self._levels):
                self._levels.append(_Level(self.capacity, self._w))
            lvl = self._levels[k]
            lvl.ring.append(b)
            pend = _concat(lvl.pending, b)
            m = _length(pend) // F * F
            lvl.pending = {key: v[m:].copy() for key, v in pend.items()}
            b = _reduce({key: v[:m] for key, v in pend.items()}, F)
            k += 1
        if self._first_step is None:
            self._first_step = int(steps[0])
        self._n += n
        self._nonfinite += int(bad.sum())
        self._last_step, self._last_value = int(steps[-1]), float(values[-1])
        self._tails = None

    def _smooth(self, values: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """Debiased EMA at every point for every weight, shape (n, W).

        Non-finite points are skipped (the state holds; they get the previous
        smoothed value, NaN before the first finite point).  Debiasing divides
        by ``1 - a**k`` with k the number of finite points so far, as
        TensorBoard does, so the curve does not start near zero.
        """
        xf = values[finite]
        k = self._nfinite + np.arange(1, len(xf) + 1, dtype=np.float64)
        sel = np.cumsum(finite)  # index into [held, *smoothed finite points]
        out = np.empty((len(values), self._w))
        for w, a in enumerate(SMOOTHING):
            y = _scan((1.0 - a) * xf, a, self._ema[w])
            if len(y):
                self._ema[w] = y[-1]
            if a**self._nfinite > 1e-17:  # later, 1 - a**k rounds to 1: skip the power
                y = y / (1.0 - a**k)
            ext = np.concatenate(([self._held[w]], y))
            out[:, w] = ext[sel]
            self._held[w] = ext[-1]
        self._nfinite += len(xf)
        return out

    # ---- queries ------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    @property
    def first_step(self) -> int | None:
        return self._first_step

    @property
    def last_step(self) -> int | None:
        return self._last_step

    @property
    def last_value(self) -> float:
        """Value of the last point (raw, may be non-finite; NaN if empty)."""
        return self._last_value

    @property
    def nonfinite(self) -> int:
        """Number of NaN/inf points ingested (they are excluded from min/max/mean)."""
        return self._nonfinite

    @property
    def nlevels(self) -> int:
        return len(self._levels)

    @property
    def nbytes(self) -> int:
        """Bytes held by this series' arrays."""
        return sum(
            lv.ring.nbytes + sum(v.nbytes for v in lv.pending.values()) for lv in self._levels
        )

    def level(self, k: int) -> View:
        """All retained complete buckets of level k, for tests and debugging.

        Unlike `view`, ``smooth`` here is 2-D: one column per `SMOOTHING` weight.
        """
        ring = self._levels[k].ring
        return self._make_view(k, ring.oldest, ring.n, None)

    def _tail(self, k: int) -> Buckets | None:
        """One bucket for the points after level k's last complete bucket.

        Built from the pending buckets of the levels below: O(F * k) work.
        """
        if self._tails is None:
            tails: list[Buckets | None] = [None]
            for lv in self._levels[:-1]:
                b = lv.pending if tails[-1] is None else _concat(lv.pending, tails[-1])
                tails.append(_reduce(b, _length(b)) if _length(b) else None)
            self._tails = tails
        return self._tails[k]

    def _make_view(self, k: int, i0: int, i1: int, tail: Buckets | None) -> View:
        b = self._levels[k].ring.take(i0, i1)
        start = np.arange(i0, i1, dtype=np.int64) * self.factor**k
        if tail is not None:
            b = _concat(b, tail)
            start = np.append(start, self._levels[k].ring.n * self.factor**k)
        return View(
            steps=b["step"], first=b["first"], lo=b["lo"], hi=b["hi"], last=b["last"],
            smooth=b["smooth"], count=b["count"], nonfinite=b["nonfinite"], start=start,
            sum=b["sum"], level=k,
        )  # fmt: skip

    def view(
        self,
        lo_step: int | None = None,
        hi_step: int | None = None,
        columns: int = 80,
        smoothing: float = 0.0,
    ) -> View:
        """Buckets covering steps ``[lo_step, hi_step]`` (None = run's ends).

        Picks the finest level that still retains ``lo_step`` and yields at
        most ``2 * columns`` buckets in the window (the coarsest level always
        qualifies, giving at most ``max(2 * columns, factor)`` buckets), plus
        one partial bucket for the newest points not yet in a complete bucket
        of that level.  Every point in the window is inside a returned bucket.
        Cost: O(levels * log capacity + output).
        """
        try:
            w = SMOOTHING.index(smoothing)
        except ValueError:
            raise ValueError(f"smoothing must be one of {SMOOTHING}") from None
        if self._n == 0:
            v = self._make_view(0, 0, 0, None)
            return _pick(v, w)
        lo = self._first_step if lo_step is None else int(lo_step)
        hi = self._last_step if hi_step is None else int(hi_step)
        for k, lv in enumerate(self._levels):
            ring = lv.ring
            top = k == len(self._levels) - 1
            old = ring.oldest
            # Retained buckets cover lo only if the dropped ones all end before it.
            if old > 0 and ring.a["first"][old % ring.cap] >= lo and not top:
                continue
            i0 = ring.search("step", lo, "left")  # first bucket ending at/after lo
            i1 = max(i0, ring.search("first", hi, "right"))  # first starting after hi
            tail = self._tail(k)
            if tail is not None and not (tail["first"][0] <= hi and tail["step"][0] >= lo):
                tail = None
            if i1 - i0 + (tail is not None) <= 2 * columns or top:
                return _pick(self._make_view(k, i0, i1, tail), w)
        raise AssertionError("unreachable: the top level always qualifies")

    def minmax(
        self, lo_step: int | None = None, hi_step: int | None = None, columns: int = 512
    ) -> tuple[float, float]:
        """Finite (min, max) of what `view` draws for this window, for axis scaling.

        Exact for the whole run; for a window, buckets straddling its edges
        may add a few neighbouring points, so the range contains the window's
        true range and everything drawn (NaN, NaN if no finite value).
        """
        v = self.view(lo_step, hi_step, columns)
        if not np.isfinite(v.lo).any():
            return float("nan"), float("nan")
        return float(np.nanmin(v.lo)), float(np.nanmax(v.hi))


def _pick(v: View, w: int) -> View:
    """Select smoothing column w."""
    return replace(v, smooth=np.ascontiguousarray(v.smooth[:, w]))
