"""What the framework callbacks share: a Monitor made when training starts, probes, the declared
learning rate written into the framework's optimizers, numbers logged from whatever the framework
reports. Framework-free (no torch import either): the callbacks hand it their objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from neurotop.trainer.monitor import Monitor
from neurotop.trainer.params import Param


class Bridge:
    """One training run seen from a callback. ``start`` makes the Monitor; until then, and on
    processes other than the main one, every call is a no-op."""

    def __init__(self, params: dict[str, Param] | None = None, probes: Any = None, *, probe_every: int = 50,
                 probe_seconds: float | None = None, lr_param: str | None = "lr", name: str | None = None,
                 monitor_kwargs: dict | None = None) -> None:
        self.declared = dict(params or {})
        self.probes, self.probe_every, self.probe_seconds = probes, probe_every, probe_seconds
        self.lr_param = lr_param if lr_param in self.declared else None
        self.name = name
        self.monitor_kwargs = dict(monitor_kwargs or {})
        self.monitor: Monitor | None = None
        self.probe = None
        self._lr_applied: float | None = None
        self._last: dict[str, float] = {}
        self._open = False

    # --------------------------------------------------------------------------------- life
    def start(self, model: Any, *, optimizer: Any = None, save: Callable | None = None,
              load: Callable | None = None, enabled: bool = True) -> Monitor:
        self.close()  # a second fit() begins a new Monitor
        kwargs = dict(self.monitor_kwargs)
        kwargs.setdefault("name", self.name)
        self.monitor = Monitor(model, self.declared, optimizer=optimizer, save=save, load=load,
                               enabled=enabled, **kwargs)
        self._lr_applied = None
        self._last.clear()
        self.probe = None
        self._open = enabled
        if enabled and self.probes is not None and self.probes is not False and model is not None:
            from neurotop.trainer.probes import ActivationProbe

            layers = None if self.probes is True else self.probes
            if isinstance(layers, list) and layers and all(isinstance(t, type) for t in layers):
                layers = tuple(layers)
            every = None if self.probe_seconds is not None else self.probe_every
            self.probe = ActivationProbe(self.monitor, model, layers, every=every, seconds=self.probe_seconds)
        return self.monitor

    @property
    def params(self) -> dict[str, Any]:
        """The declared parameters' current values (their defaults before the run starts)."""
        if self.monitor is not None:
            return self.monitor.params
        return {k: p.default for k, p in self.declared.items()}

    def close(self, state: str | None = None, exit_code: int | None = None, detail: str = "") -> None:
        if self.monitor is not None:
            self._open = False
            self.monitor.close(state, exit_code=exit_code, detail=detail)

    @property
    def active(self) -> bool:
        return self._open

    # ---------------------------------------------------------------------------- per step
    def step(self, step: int, optimizers: Iterable[Any] = (), schedulers: Iterable[Any] = ()) -> bool:
        """A step boundary: commands applied, pause honoured. False once a stop was asked for."""
        if not self.active:
            return True
        ok = self.monitor.step(step)
        if self.lr_param is not None:
            value = self.monitor.params[self.lr_param]
            if value != self._lr_applied:
                set_base_lr(value, list(optimizers), list(schedulers))
                self._lr_applied = value
        return ok

    def arm_probe(self, step: int) -> None:
        """Hooks for the next forward pass when a snapshot is due at ``step``."""
        if self.probe is not None and self.active:
            self.probe.maybe(step)

    def log(self, step: int, values: Mapping[str, Any], skip: Iterable[str] = (), changed_only: bool = False) -> None:
        """Log the numeric entries of ``values`` (floats, ints, one-element tensors) at ``step``.
        ``changed_only``: skip a value equal to the one last logged under its name (for a
        framework's metrics dict, which keeps reporting a validation result until the next one)."""
        if not self.active or not values:
            return
        skip = set(skip)
        out = {}
        for key, raw in values.items():
            if key in skip:
                continue
            value = as_number(raw)
            if value is None:
                continue
            if changed_only and (self._last.get(key) == value or (math.isnan(value) and key in self._last
                                                                   and math.isnan(self._last[key]))):
                continue
            self._last[key] = value
            out[str(key)] = value
        if out:
            self.monitor.log(step=step, **out)


def as_number(value: Any) -> float | None:
    """A plain float from a Python number, a numpy scalar or a one-element tensor; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    numel = getattr(value, "numel", None)
    if callable(numel):
        try:
            return float(value.item()) if numel() == 1 else None
        except (TypeError, ValueError, RuntimeError):
            return None
    item = getattr(value, "item", None)
    if callable(item):
        try:
            out = item()
        except (TypeError, ValueError):
            return None
        return float(out) if isinstance(out, (int, float)) and not isinstance(out, bool) else None
    return None


def set_base_lr(value: float, optimizers: list[Any], schedulers: list[Any]) -> None:
    """Make ``value`` the learning rate of each optimizer's first param group; the other groups
    keep their ratio to it. With a scheduler, ``value`` is the base rate the schedule scales (its
    ``base_lrs`` and the groups' ``initial_lr`` move by the same factor), so warm-up and decay go
    on from the new rate instead of overwriting it at their next step."""
    scheds = [getattr(s, "scheduler", s) for s in schedulers]  # Lightning configs, accelerate wrappers
    for opt in optimizers:
        groups = getattr(opt, "param_groups", None)
        if not groups:
            continue
        sched = next((s for s in scheds if getattr(s, "optimizer", None) in (opt, getattr(opt, "optimizer", None))),
                     None)
        bases = getattr(sched, "base_lrs", None) if sched is not None else None
        reference = bases[0] if bases else groups[0].get("lr")
        if not isinstance(reference, (int, float)) or reference <= 0:
            for group in groups:
                group["lr"] = value
            continue
        factor = value / reference
        if factor == 1.0:
            continue
        for group in groups:
            group["lr"] = group["lr"] * factor
            if "initial_lr" in group:
                group["initial_lr"] = group["initial_lr"] * factor
        if bases:
            sched.base_lrs = [b * factor for b in bases]


class BridgeOwner:
    """What each framework's callback shows of its ``bridge``: the current fit's ``Monitor``
    (None before it starts) and the declared parameters' values."""

    bridge: Bridge

    @property
    def monitor(self) -> Monitor | None:
        return self.bridge.monitor

    @property
    def params(self) -> dict[str, Any]:
        """The declared parameters' current values (defaults before the fit starts)."""
        return self.bridge.params
