"""What the network learned, summarised where the data is (DESIGN rule 6): neuron health per
layer, gradient flow, a 2-D view of the latent space, and how much signal each layer passes on.

    insights = InsightProbe(mon, model, inputs=x_val, labels=y_val)    # latent: model.encode if any
    ...
    loss.backward()
    insights.before_step(step)      # gradient norms, and the weights before the update (on cadence)
    opt.step()
    insights.after_step(step)       # update-to-weight ratios
    insights.maybe(step)            # health, signal and latent snapshots (on cadence)

Each layer's batch is reduced on the model's device (to per-unit statistics for a layer of at
most ``max_units`` units, which the host finishes; to the finished summary for a wider one), and
everything is copied to the CPU once per snapshot. Every message is bounded whatever the model's
width (``max_units`` unit groups per layer, ``max_layers`` layer groups, ``latent_points``
points). Between snapshots no hook is registered and nothing is cloned: a step costs two modulo
checks. ``update_ratio=False`` skips the copy of the weights taken before a measured update (a
second copy of the parameters for an instant, on a large model).

Definitions (over the last ``window`` snapshots, each over the probe's batch):

* a rectifier unit (ReLU, GELU, SiLU, ELU, ...) is **dead** when it is never positive, and
  **saturated** when it is positive on at least ``saturated_at`` of the samples (always on: the
  non-linearity is unused);
* a bounded unit (Sigmoid, Tanh, Hardtanh, Softsign) is **dead** when its output does not move
  (range ≤ ``stuck``), and **saturated** when it sits within ``margin`` of a bound on at least
  ``saturated_at`` of the samples (dead units are not counted again as saturated);
* any other layer's unit is dead when its output does not move; it is never called saturated.

Conv outputs count channels as units (averaged over their positions first).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from neurotop.trainer.probes import Cadence, group_mean, pick_layers, units_view
from neurotop.trainer.protocol import Gradients, Health, Latent, Signal, quantize

RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.CELU, nn.SELU, nn.Mish,
              nn.Softplus, nn.PReLU, nn.RReLU, nn.Hardswish)
#: Bounded activations and their (low, high) bounds.
BOUNDED: dict[type, tuple[float, float]] = {nn.Sigmoid: (0.0, 1.0), nn.Tanh: (-1.0, 1.0),
                                            nn.Hardtanh: (-1.0, 1.0), nn.Softsign: (-1.0, 1.0),
                                            nn.Hardsigmoid: (0.0, 1.0)}
#: Rectifiers whose output can be negative: their signal is mean |x|, not mean x.
_SIGNED = (nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.CELU, nn.SELU, nn.Mish, nn.PReLU, nn.RReLU, nn.Hardswish)
#: Layers whose behaviour differs in training: the probe's own pass switches to eval() only when
#: the model has one (switching walks every module, a cost on a small model).
_MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase, nn.RReLU)
#: A Softplus unit is "on" above this (its output is never exactly zero).
SOFTPLUS_ON = 1e-3
_N_SCALARS = 5  # dead, saturated, mean, std, signal


def classify(module: nn.Module) -> tuple[str, float, float]:
    """(kind, low, high): ``"rectifier"`` (low = the "on" threshold), ``"bounded"`` (its bounds)
    or ``"other"``."""
    if isinstance(module, nn.Softplus):
        return "rectifier", SOFTPLUS_ON, math.inf
    if isinstance(module, RECTIFIERS):
        return "rectifier", 0.0, math.inf
    for kind, (lo, hi) in BOUNDED.items():
        if isinstance(module, kind):
            if isinstance(module, nn.Hardtanh):
                lo, hi = float(module.min_val), float(module.max_val)
            return "bounded", lo, hi
    return "other", -math.inf, math.inf


def group_names(names: list[str], groups: int) -> tuple[list[str], list[int]]:
    """Contiguous groups of at most ``groups`` entries: (group names, group index of each name)."""
    n = len(names)
    if n <= groups:
        return list(names), list(range(n))
    index = [i * groups // n for i in range(n)]
    out = []
    for g in range(groups):
        members = [names[i] for i in range(n) if index[i] == g]
        out.append(members[0] if len(members) == 1 else f"{members[0]}…{members[-1]}")
    return out, index


def pca_2d(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project ``z`` (points, dims) on its first two principal components.

    Returns (points × 2 projection, explained-variance fraction of each component). The sign of
    each component is fixed so that its largest-|loading| entry is positive: the picture does not
    flip between snapshots when the subspace does not change. With one dimension the second
    coordinate is zero.
    """
    z = z.detach().float().flatten(1)
    zc = z - z.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(zc, full_matrices=False)
    k = min(2, vh.shape[0])
    v = vh[:k]
    pivot = v.abs().argmax(dim=1)
    signs = torch.sign(v[torch.arange(k, device=v.device), pivot])
    signs[signs == 0] = 1.0
    v = v * signs[:, None]
    proj = zc @ v.T
    var = s.pow(2)
    explained = var[:k] / var.sum().clamp_min(1e-30)  # no host sync: the caller copies once
    if k < 2:
        proj = torch.cat([proj, torch.zeros(proj.shape[0], 2 - k, device=proj.device)], dim=1)
        explained = torch.cat([explained, torch.zeros(2 - k, device=explained.device)])
    return proj, explained


class _LayerState:
    """One watched layer: its kind and the ring of per-unit statistics over the window."""

    __slots__ = ("name", "module", "kind", "lo", "hi", "ring", "counts", "filled", "next", "signed",
                 "signal_index")

    def __init__(self, name: str, module: nn.Module, window: int) -> None:
        self.name, self.module = name, module
        self.kind, self.lo, self.hi = classify(module)
        # can the output be negative? then the signal is mean |x|, else simply the mean
        self.signed = not (self.kind == "rectifier" and not isinstance(module, _SIGNED)) and not (
            self.kind == "bounded" and self.lo >= 0)
        self.signal_index: int | None = None
        self.ring = None  # (window, 3, units): samples on (or at a bound), min, max; torch or numpy
        self.counts = [0] * window  # samples behind each ring entry
        self.filled = 0
        self.next = 0


class InsightProbe:
    """Neuron health, signal, gradient flow and latent projections, sent through a ``Monitor``.

    ``inputs``: a fixed batch (e.g. validation data) the probe runs its own ``no_grad`` forward
    pass on when due, so successive snapshots are comparable; without it, hooks are armed for the
    next training forward pass. ``labels``: one integer per input, drawn as colours in the latent
    view. ``latent``: a callable mapping inputs to latent codes; by default ``model.encode`` when
    the model has one; ``False`` turns the latent view off. Cadences are in steps.
    """

    def __init__(self, monitor: Any, model: nn.Module, layers=None, *, inputs: torch.Tensor | None = None,
                 labels: torch.Tensor | Iterable[int] | None = None, every: int | None = 100,
                 seconds: float | None = None, window: int = 4, max_units: int = 64,
                 saturated_at: float = 0.95, margin: float = 0.02, stuck: float = 1e-4,
                 grad_every: int | None = 100, update_ratio: bool = True, max_layers: int = 48,
                 latent: Callable[[torch.Tensor], torch.Tensor] | bool | None = None,
                 latent_every: int | None = 500, latent_points: int = 200, signal: bool = True) -> None:
        self.monitor, self.model = monitor, model
        self.window = max(1, int(window))
        self.max_units, self.max_layers = max(1, int(max_units)), max(1, int(max_layers))
        self.saturated_at, self.margin, self.stuck = saturated_at, margin, stuck
        self.layers = [_LayerState(n, m, self.window) for n, m in pick_layers(model, layers)]
        self.inputs = inputs
        self.cadence = Cadence(every, seconds)
        # signal: every leaf module's mean |output|, grouped to at most max_layers entries
        leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
        self.signal_modules = leaves if signal else []
        self.signal_names, self._signal_group = group_names([n for n, _ in leaves], self.max_layers)
        position = {n: i for i, (n, _) in enumerate(self.signal_modules)}
        for state in self.layers:
            state.signal_index = position.get(state.name)
        self._last_signal = 0.0
        # gradients: the trainable parameters of each module that owns some, in model order
        owners: list[str] = []
        params: list[nn.Parameter] = []
        owner_of: list[int] = []
        for name, module in model.named_modules():
            own = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if own:
                owners.append(name or "(root)")
                params.extend(own)
                owner_of.extend([len(owners) - 1] * len(own))
        self.grad_names, owner_group = group_names(owners, self.max_layers)
        self._params = params
        self._param_group = [owner_group[o] for o in owner_of]
        self._grad_every = int(grad_every or 0) if self._params else 0
        self.update_ratio = update_ratio
        self._grad_pending: tuple[int, torch.Tensor, list[torch.Tensor] | None] | None = None
        self._indices: dict[tuple, torch.Tensor] = {}
        # latent
        if latent is None:
            latent = getattr(model, "encode", None)
        self.encode = latent if callable(latent) else None
        self.latent_name = getattr(latent, "__name__", "latent") if callable(latent) else ""
        self.latent_cadence = Cadence(latent_every) if latent_every and self.encode else None
        self.latent_inputs = inputs[:latent_points] if inputs is not None else None
        if labels is not None:
            labels = [int(v) for v in (labels.tolist() if hasattr(labels, "tolist") else labels)]
            labels = labels[:latent_points]
        self.latent_labels: list[int] = labels or []
        self._handles: list[Any] = []
        self._collected: list[tuple[str, Any, torch.Tensor, int]] = []  # (what, state/index, tensor, extra)
        self._armed_step: int | None = None
        self.failures = 0
        self._mode_dependent = any(isinstance(m, _MODE_DEPENDENT) for m in model.modules())
        # step cadences let maybe() dismiss a step with two modulos (a cadence of 0 never fires)
        if seconds is None:
            latent_steps = int(latent_every or 0) if self.latent_cadence is not None else 0
            self._quiet = (int(every or 0) or 1 << 62, latent_steps or 1 << 62)
        else:
            self._quiet = None

    # -------------------------------------------------------------------------- public calls
    def maybe(self, step: int) -> bool:
        """Health and signal snapshots (and the latent projection) if due at ``step``."""
        quiet = self._quiet
        if quiet and step % quiet[0] and step % quiet[1] and self._armed_step is None:
            return False  # the common case, in a few operations: nothing due between snapshots
        if not self.monitor.enabled:
            return False
        due = self.cadence.due(step) and bool(self.layers or self.signal_modules)
        latent_due = (self.latent_cadence is not None and self.latent_inputs is not None
                      and self.latent_cadence.due(step))
        if not (due or latent_due or self._armed_step is not None):
            return False
        t0 = time.perf_counter()
        self._finish_armed()
        did = False
        if due:
            did = True
            self._arm(step)
            if self.inputs is not None:
                with self._eval_mode(), torch.no_grad():
                    self.model(self.inputs)
                self._finish_armed()
        if latent_due:
            did = True
            self._latent(step)
        self.monitor.add_monitoring_time(time.perf_counter() - t0)
        return did

    def before_step(self, step: int) -> None:
        """Call after ``backward()``, before ``optimizer.step()``: gradient norms when due."""
        if not self._grad_every or step % self._grad_every or not self.monitor.enabled:
            if self._grad_pending is not None:  # after_step was never called: send what we have
                self._send_gradients(None)
            return
        if self._grad_pending is not None:
            self._send_gradients(None)
        t0 = time.perf_counter()
        with torch.no_grad():
            device = self._params[0].device
            groups = len(self.grad_names)
            sq = torch.zeros(groups, device=device)
            have = [(p.grad, g) for p, g in zip(self._params, self._param_group) if p.grad is not None]
            if have:
                norms = _norms([t for t, _ in have])
                sq.index_add_(0, self._index([g for _, g in have], device), norms.to(device).pow(2))
            before = [p.detach().clone() for p in self._params] if self.update_ratio else None
        self._grad_pending = (step, sq.sqrt(), before)
        self.monitor.add_monitoring_time(time.perf_counter() - t0)

    def after_step(self, step: int | None = None) -> None:
        """Call after ``optimizer.step()``: the update-to-weight ratio, then send."""
        if self._grad_pending is None or not self.monitor.enabled:
            return
        t0 = time.perf_counter()
        self._send_gradients(self._params)
        self.monitor.add_monitoring_time(time.perf_counter() - t0)

    def _index(self, groups: list[int], device) -> torch.Tensor:
        """The group of each parameter as a tensor on ``device``, made once (no copy per step)."""
        key = (tuple(groups), str(device))
        index = self._indices.get(key)
        if index is None:
            if len(self._indices) > 8:
                self._indices.clear()
            index = self._indices[key] = torch.tensor(groups, device=device)
        return index

    @contextlib.contextmanager
    def _eval_mode(self):
        """The probe's own passes run in eval mode when that changes anything."""
        if not self._mode_dependent or not self.model.training:
            yield
            return
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(True)

    # ----------------------------------------------------------------------------- gradients
    def _send_gradients(self, after: list[nn.Parameter] | None) -> None:
        step, gnorm, before = self._grad_pending
        self._grad_pending = None
        groups = len(self.grad_names)
        with torch.no_grad():
            parts = [gnorm]
            if before is not None and after is not None:
                device = gnorm.device
                delta = _norms(torch._foreach_sub([p.detach() for p in after], before))
                weight = _norms(before)
                index = self._index(self._param_group, device)
                dsq = torch.zeros(groups, device=device).index_add_(0, index, delta.to(device).pow(2))
                wsq = torch.zeros(groups, device=device).index_add_(0, index, weight.to(device).pow(2))
                parts += [dsq.sqrt(), wsq.sqrt()]
            host = torch.cat(parts).double().cpu().numpy()
        grad = [_finite(v) for v in host[:groups]]
        ratio: list[float | None] = []
        if len(host) > groups:
            d, w = host[groups:2 * groups], host[2 * groups:]
            ratio = [_finite(dv / wv) if wv > 0 else (0.0 if dv == 0 else None) for dv, wv in zip(d, w)]
        self.monitor.emit(Gradients(step=step, layers=list(self.grad_names), grad_norm=grad, update_ratio=ratio))

    # -------------------------------------------------------------------------------- health
    def _arm(self, step: int) -> None:
        self._disarm()
        self._collected = []
        self._armed_step = step
        for state in self.layers:
            self._handles.append(state.module.register_forward_hook(self._health_hook(state)))
        covered = {state.signal_index for state in self.layers}
        for i, (_, module) in enumerate(self.signal_modules):
            if i not in covered:  # a health layer reports its own signal
                self._handles.append(module.register_forward_hook(self._signal_hook(i)))

    def _disarm(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _health_hook(self, state: _LayerState):
        def hook(module, args, out):
            if isinstance(out, (tuple, list)):
                out = out[0]
            if not isinstance(out, torch.Tensor) or out.numel() == 0:
                return
            with torch.no_grad():
                x = units_view(out)
                packed, rows = self._reduce(state, x)
                self._collected.append(("health", state, packed, (rows, x.shape[0])))
        return hook

    def _signal_hook(self, index: int):
        def hook(module, args, out):
            if isinstance(out, (tuple, list)):
                out = out[0]
            if isinstance(out, torch.Tensor) and out.numel() and out.is_floating_point():
                with torch.no_grad():  # sum |x| in one kernel; divided by the count on the host
                    total = torch.linalg.vector_norm(out.detach(), ord=1, dtype=torch.float32)
                    self._collected.append(("signal", index, total.reshape(1), out.numel()))
        return hook

    def _reduce(self, state: _LayerState, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Per-unit statistics over the batch, on the device.

        For a layer of at most ``max_units`` units, returns (per-unit rows, their count): the
        host keeps the window and finishes (a few hundred bytes; each device operation costs more
        in dispatch than in arithmetic on a small model). For a wider layer the window ring lives
        on the device and the finished, bounded summary comes back (rows = 0)."""
        n, units = x.shape
        kind = state.kind
        first = None
        if kind == "rectifier":
            first = (x > state.lo).sum(dim=0, dtype=x.dtype)  # samples on
        elif kind == "bounded":
            first = ((x <= state.lo + self.margin) | (x >= state.hi - self.margin)).sum(dim=0, dtype=x.dtype)
        lo, hi = torch.aminmax(x, dim=0) if kind != "rectifier" else (None, None)
        mean_u = x.mean(dim=0)
        sq_u = (x * x).mean(dim=0)
        abs_u = x.abs().mean(dim=0) if state.signed else None
        if units <= self.max_units:
            rows = [v for v in (first, lo, hi, mean_u, sq_u, abs_u) if v is not None]
            return torch.stack(rows), len(rows)
        ring = self._window(state, units, n, x.device, first, lo, hi, torch.zeros)
        total = float(sum(state.counts))
        wfirst = ring[:, 0].sum(dim=0) if first is not None else None
        spread = ring[:, 2].amax(dim=0) - ring[:, 1].amin(dim=0) if lo is not None else None
        dead, saturated, mean, std, signal, unit_mean, unit_std = self._summarize(
            kind, wfirst, spread, mean_u, sq_u, abs_u, total)
        scalars = torch.stack([dead.sum().float(), saturated.sum().float(), mean, std, signal])
        return torch.cat([scalars, group_mean(unit_mean, self.max_units), group_mean(unit_std, self.max_units)]), 0

    def _window(self, state: _LayerState, units: int, n: int, device, first, lo, hi, zeros):
        """Put this snapshot's (samples on / at a bound, min, max) per unit into the layer's ring
        of the last ``window`` snapshots; returns the filled part. ``zeros`` makes the ring
        (``torch.zeros`` on the device, ``np.zeros`` on the host)."""
        ring = state.ring
        if ring is None or ring.shape[2] != units or (device is not None and ring.device != device):
            ring = state.ring = zeros((self.window, 3, units)) if device is None else zeros(
                (self.window, 3, units), device=device)
            state.counts = [0] * self.window
            state.filled, state.next = 0, 0
        slot = state.next
        if first is not None:
            ring[slot, 0] = first
        if lo is not None:
            ring[slot, 1] = lo
            ring[slot, 2] = hi
        state.counts[slot] = n
        state.next = (slot + 1) % self.window
        state.filled = min(self.window, state.filled + 1)
        return ring if state.filled == self.window else ring[: state.filled]

    def _summarize(self, kind: str, first, spread, mean_u, sq_u, abs_u, total: float):
        """Dead and saturated flags per unit, and the layer's scalars, from per-unit statistics.
        Works on torch tensors (on the device) and numpy arrays (on the host) alike."""
        if kind == "rectifier":
            dead = first == 0
            saturated = first >= self.saturated_at * total
        else:
            dead = spread <= self.stuck
            saturated = (first >= self.saturated_at * total) & ~dead if kind == "bounded" else dead & False
        mean = mean_u.mean()
        var = sq_u.mean() - mean * mean
        std = (var * (var > 0)) ** 0.5
        signal = abs_u.mean() if abs_u is not None else mean
        unit_var = sq_u - mean_u * mean_u
        return dead, saturated, mean, std, signal, mean_u, (unit_var * (unit_var > 0)) ** 0.5

    def _finish_armed(self) -> None:
        """Copy what the hooks reduced to the CPU (once) and send it."""
        if self._armed_step is None:
            return
        if self.inputs is None and not self._collected:
            return  # armed for a training pass that has not happened yet
        step, collected = self._armed_step, self._collected
        self._armed_step, self._collected = None, []
        self._disarm()
        if not collected:
            return
        sizes = [t.numel() for _, _, t, _ in collected]
        device = collected[0][2].device
        parts = [t.reshape(-1) for _, _, t, _ in collected]
        parts = [t if t.device == device and t.dtype == torch.float32 else t.to(device, torch.float32) for t in parts]
        host = torch.cat(parts).cpu().numpy().astype(np.float64)
        offsets = np.concatenate(([0], np.cumsum(sizes)))
        signal_parts: dict[int, list[float]] = {}
        seen: set[str] = set()
        for (what, who, _, extra), start, end in zip(collected, offsets[:-1], offsets[1:]):
            values = host[start:end]
            if what == "health":
                if who.name in seen:  # a module called twice in one pass: its first call counts
                    continue
                seen.add(who.name)
                self._send_health(step, who, values, *extra)
                if who.signal_index is not None:
                    signal_parts.setdefault(self._signal_group[who.signal_index], []).append(self._last_signal)
            else:
                signal_parts.setdefault(self._signal_group[who], []).append(float(values[0]) / max(1, extra))
        if self.signal_modules:
            signal: list[float | None] = [None] * len(self.signal_names)
            for g, vals in signal_parts.items():
                signal[g] = _finite(sum(vals) / len(vals))
            self.monitor.emit(Signal(step=step, layers=list(self.signal_names), mean_abs=signal))

    def _send_health(self, step: int, state: _LayerState, values: np.ndarray, rows: int, n: int) -> None:
        if rows:  # per-unit rows: the window and the summary are kept and made here
            v = values.reshape(rows, -1)
            units = v.shape[1]
            i = 0
            first = lo = hi = abs_u = None
            if state.kind != "other":
                first, i = v[i], i + 1
            if state.kind != "rectifier":
                lo, hi, i = v[i], v[i + 1], i + 2
            mean_u, sq_u = v[i], v[i + 1]
            if state.signed:
                abs_u = v[i + 2]
            ring = self._window(state, units, n, None, first, lo, hi, np.zeros)
            wfirst = ring[:, 0].sum(axis=0) if first is not None else None
            spread = ring[:, 2].max(axis=0) - ring[:, 1].min(axis=0) if lo is not None else None
            dead, saturated, mean, std, signal, unit_mean, unit_std = self._summarize(
                state.kind, wfirst, spread, mean_u, sq_u, abs_u, float(sum(state.counts)))
            dead, saturated = int(dead.sum()), int(saturated.sum())
        else:
            units = int(state.ring.shape[2])
            dead, saturated, mean, std, signal = (int(round(values[0])), int(round(values[1])), *values[2:5])
            unit_mean = values[_N_SCALARS:_N_SCALARS + (len(values) - _N_SCALARS) // 2]
            unit_std = values[_N_SCALARS + len(unit_mean):]
        self._last_signal = _finite(signal) or 0.0
        m_lo, m_scale, m_cells = quantize(unit_mean)
        s_lo, s_scale, s_cells = quantize(unit_std)
        self.monitor.emit(Health(
            step=step, layer=state.name, units=int(units), dead=dead, saturated=saturated,
            mean=_finite(mean) or 0.0, std=_finite(std) or 0.0, signal=self._last_signal,
            kind=state.kind, rows=len(unit_mean), means=m_cells, mean_lo=m_lo,
            mean_scale=m_scale, spreads=s_cells, spread_lo=s_lo,
            spread_scale=s_scale, window=state.filled))

    # -------------------------------------------------------------------------------- latent
    def _latent(self, step: int) -> None:
        try:
            with self._eval_mode(), torch.no_grad():
                z = self.encode(self.latent_inputs)
                if isinstance(z, (tuple, list)):
                    z = z[0]
                z = torch.nan_to_num(z.detach().float().flatten(1), nan=0.0, posinf=0.0, neginf=0.0)
                proj, explained = pca_2d(z)
                host = torch.cat([proj.t().reshape(-1), explained]).double().cpu().numpy()
        except Exception:  # a latent that cannot be projected must not cost the run
            self.failures += 1
            return
        n = z.shape[0]
        xs, ys, explained = host[:n], host[n:2 * n], host[2 * n:]
        x_lo, x_scale, x_cells = quantize(xs, 65535, "<u2")
        y_lo, y_scale, y_cells = quantize(ys, 65535, "<u2")
        labels = self.latent_labels[:n] if len(self.latent_labels) >= n else []
        self.monitor.emit(Latent(
            step=step, points=n, x=x_cells, y=y_cells,
            lo=[x_lo, y_lo], scale=[x_scale, y_scale], explained=[float(e) for e in explained],
            labels=labels, dims=int(z.shape[1]), name=self.latent_name))


def _norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of each tensor, stacked (one fused kernel where torch has it)."""
    try:
        norms = torch._foreach_norm(tensors)
    except (AttributeError, RuntimeError):
        norms = [torch.linalg.vector_norm(t) for t in tensors]
    return torch.stack([n.float().reshape(()) for n in norms])


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None

