"""The divergence guard's judgement: when a watched value (the loss) has really diverged, and
when a run that resumed sits far above where it was.

A value is out of line when it is not finite, or when it lies above the running median by more
than ``spike - 1`` times the median's size and more than ``SPREADS`` times the running spread (the
median absolute deviation, scaled): ordinary minibatch noise on plain SGD moves a value around its
median by a few spreads. It diverged when it stays out of line for ``patience`` values in a row
(a NaN or Inf at once): one noisy batch never trips it. Out-of-line values do not enter the window,
so a divergence never raises its own limit.

``check`` runs in the training thread for every logged value (a comparison, in the common case);
``observe`` in the writer thread (the window, the limit every ``RECOMPUTE`` values, and the check
after a resume). ``rebaseline`` starts a new window after a resume, roll back or restart, and
keeps the level before it as the reference that ``observe`` compares the resumed values with.
"""

from __future__ import annotations

import collections
import math
import threading

WINDOW = 64  # values in the running median and spread
WARMUP = 20  # values before the first limit
RECOMPUTE = 8  # values between two recomputations of the limit
SPREADS = 8.0  # how many spreads above the median a value must lie to be out of line
RESUMED_VALUES = 10  # values after a resume whose median is compared with the reference
RESUMED_RATIO = 3.0  # "far above": the resumed median over this many times the reference
_MAD_TO_SIGMA = 1.4826


class Guard:
    """Running statistics of one watched value, and the limit above which it is out of line."""

    def __init__(self, spike: float = 10.0, patience: int = 3) -> None:
        self.spike, self.patience = spike, max(1, int(patience))
        self.limit = math.inf  # read by the training thread, set by the writer thread
        self.tripped = False  # an episode was reported and not yet resolved
        self.calm = True  # not tripped and no value out of line just now: ``check`` can be skipped
        self._over = 0  # consecutive out-of-line values (training thread)
        self._under = 0  # consecutive values back in line after a trip (training thread)
        self._lock = threading.Lock()
        self._window: collections.deque[float] = collections.deque(maxlen=WINDOW)
        self._since = 0  # values since the limit was last computed
        self._reference: tuple[float, float] | None = None  # (median, spread) before a resume
        self._resumed: list[float] = []
        self._resume_reason = ""

    # ------------------------------------------------------------------- training thread
    def check(self, value: float) -> str:
        """``"diverged"`` when ``value`` ends the patience (or is not finite), ``"recovered"``
        when a tripped value has been back in line for ``patience`` values, else ``""``."""
        if value < self.limit:  # NaN fails every comparison
            self._over = 0
            if self.tripped:
                self._under += 1
                if self._under < self.patience:
                    return ""
                self.tripped, self._under = False, 0
                self.calm = True
                return "recovered"
            self.calm = True
            return ""
        self.calm = False
        self._under = 0
        self._over += 1
        if self.tripped or (math.isfinite(value) and self._over < self.patience):
            return ""
        self.tripped = True
        return "diverged"

    def rebaseline(self, reason: str) -> None:
        """A person resumed (or rolled back, or restarted): judge the values from here on against
        a fresh window, and warn once if they settle far above the level before."""
        with self._lock:
            self._reference = self._level() or self._reference
            self._window.clear()
            self._resumed = []
            self._resume_reason = reason
            self._since = 0
            self.limit = math.inf
        self.tripped, self._over, self._under, self.calm = False, 0, 0, True

    def expect(self, reference: tuple[float, float] | None, reason: str) -> None:
        """A restart from a checkpoint: the level saved with it is the reference."""
        self.rebaseline(reason)
        if reference is not None:
            with self._lock:
                self._reference = (float(reference[0]), float(reference[1]))

    # --------------------------------------------------------------------- writer thread
    def observe(self, value: float | None) -> str:
        """Take a written value into the window. Returns a warning's text when a resumed run
        settled far above its earlier level, else ``""``."""
        if value is None or not math.isfinite(value) or not value < self.limit:
            return ""
        with self._lock:
            self._window.append(value)
            self._since += 1
            if len(self._window) >= WARMUP and self._since >= RECOMPUTE:
                self._since = 0
                median, spread = self._stats()
                self.limit = median + max((self.spike - 1.0) * abs(median), SPREADS * spread, 1e-12)
            if self._reference is None:
                return ""
            self._resumed.append(value)
            if len(self._resumed) < RESUMED_VALUES:
                return ""
            (before, spread), self._reference = self._reference, None
            now = _median(self._resumed)
            if now <= before + max((RESUMED_RATIO - 1.0) * abs(before), SPREADS * spread):
                return ""
            times = f", {now / before:.0f}× " if before > 0 else " "
            return f"{self._resume_reason}: it goes on at {now:.4g}{times}its {before:.4g} before"

    def level(self) -> tuple[float, float] | None:
        """(median, spread) of the window, once it has warmed up (saved with a checkpoint)."""
        with self._lock:
            return self._level()

    def _level(self) -> tuple[float, float] | None:
        return self._stats() if len(self._window) >= WARMUP else None

    def _stats(self) -> tuple[float, float]:
        values = list(self._window)
        median = _median(values)
        return median, _MAD_TO_SIGMA * _median([abs(v - median) for v in values])


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
