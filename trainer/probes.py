"""Activation capture, reduced where the data is (DESIGN rule 6).

On a cadence, a probe runs forward hooks on chosen layers, reduces each output on its device to
at most ``max_units`` × ``samples`` cells, quantizes to uint8 with a scale, and only then copies
to the CPU: a snapshot is a few kilobytes whatever the layer's width. Between snapshots no hook is
registered, so the training loop pays nothing.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import torch
from torch import nn

from neurotop.trainer.protocol import Activations, Sample, quantize

ACTIVATION_TYPES = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.Softplus)
WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def units_view(out: torch.Tensor) -> torch.Tensor:
    """A layer output as (samples, units) float: spatial positions averaged per channel."""
    x = out.detach()
    if x.dim() == 1:
        x = x.unsqueeze(1)
    if x.dim() > 2:
        x = x.flatten(2).mean(dim=2)
    return x.float()


def group_mean(v: torch.Tensor, groups: int) -> torch.Tensor:
    """Rows of ``v`` (units first) averaged over neighbouring units down to at most ``groups``
    rows: the one unit reducer, for activation snapshots and health statistics alike."""
    units = v.shape[0]
    if units <= groups:
        return v
    size = -(-units // groups)
    pad = size * groups - units
    if pad:
        v = torch.cat([v, v[-1:].expand(pad, *v.shape[1:])])
    return v.reshape(groups, size, *v.shape[1:]).mean(dim=1)


def reduce_units(out: torch.Tensor, samples: int, max_units: int) -> torch.Tensor:
    """A layer output (batch, units, *spatial) → (units', samples') with units' ≤ max_units."""
    return group_mean(units_view(out[:samples]).t(), max_units)


def quantize_tensor(x: torch.Tensor) -> tuple[float, float, bytes]:
    """The protocol's ``quantize`` of a tensor (reduced first: a few kilobytes cross to the CPU)."""
    return quantize(x.detach().float().cpu().numpy())


def pick_layers(model: nn.Module, layers: Iterable[str] | tuple[type, ...] | None) -> list[tuple[str, nn.Module]]:
    """Layers by name, by type, or by default: the activation functions, else the weight layers."""
    named = [(n, m) for n, m in model.named_modules() if n]
    if layers is None:
        chosen = [(n, m) for n, m in named if isinstance(m, ACTIVATION_TYPES)]
        return chosen or [(n, m) for n, m in named if isinstance(m, WEIGHT_TYPES)]
    if isinstance(layers, tuple) and all(isinstance(t, type) for t in layers):
        return [(n, m) for n, m in named if isinstance(m, layers)]
    wanted = list(layers)
    by_name = dict(named)
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise KeyError(f"no such layer(s): {', '.join(missing)}; the model has {', '.join(by_name)}")
    return [(n, by_name[n]) for n in wanted]


class Cadence:
    """Due every ``steps`` steps or every ``seconds`` seconds, whichever is given."""

    def __init__(self, steps: int | None = None, seconds: float | None = None) -> None:
        self.steps, self.seconds = steps, seconds
        self._next_t = 0.0

    def due(self, step: int) -> bool:
        if self.seconds is not None:
            now = time.monotonic()
            if now >= self._next_t:
                self._next_t = now + self.seconds
                return True
            return False
        return self.steps is not None and step % self.steps == 0


class ActivationProbe:
    """Snapshots of chosen layers' activations, sent through a ``Monitor``.

    With ``inputs`` (a fixed batch, e.g. from the validation set) the probe runs its own forward
    pass under ``no_grad`` when due, so successive snapshots show the same samples and change only
    as the network learns. Without, it arms hooks for the next training forward pass.
    """

    def __init__(self, monitor: Any, model: nn.Module, layers=None, *, inputs: torch.Tensor | None = None,
                 every: int | None = 50, seconds: float | None = None, samples: int = 32,
                 max_units: int = 64) -> None:
        self.monitor, self.model = monitor, model
        self.layers = pick_layers(model, layers)
        self.inputs = inputs[:samples] if inputs is not None else None
        self.cadence = Cadence(every, seconds)
        self.samples, self.max_units = samples, max_units
        self._handles: dict[str, Any] = {}

    def maybe(self, step: int) -> bool:
        """Take a snapshot if one is due at ``step``. Returns whether it did (or armed)."""
        if not self.monitor.enabled or not self.cadence.due(step):
            return False
        t0 = time.perf_counter()
        self._disarm_all()  # hooks on layers the last training pass never reached
        for name, module in self.layers:
            self._handles[name] = module.register_forward_hook(self._hook(name, step))
        if self.inputs is not None:
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad():
                self.model(self.inputs)
            self.model.train(was_training)
            self._disarm_all()
        self.monitor.add_monitoring_time(time.perf_counter() - t0)
        return True

    def _disarm_all(self) -> None:
        for handle in self._handles.values():
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str, step: int):
        def hook(module, args, out):
            t0 = time.perf_counter()
            if isinstance(out, (tuple, list)):
                out = out[0]
            reduced = reduce_units(out, self.samples, self.max_units)
            lo, scale, cells = quantize_tensor(reduced)
            self.monitor.emit(Activations(step=step, layer=name, rows=reduced.shape[0], cols=reduced.shape[1],
                                          lo=lo, scale=scale, cells=cells, units=_units(out)))
            handle = self._handles.pop(name, None)
            if handle is not None:
                handle.remove()
            self.monitor.add_monitoring_time(time.perf_counter() - t0)
        return hook


def _units(out: torch.Tensor) -> int:
    return int(out.shape[1]) if out.dim() > 1 else 1


def image_sample(step: int, name: str, images: torch.Tensor, count: int = 8) -> Sample:
    """A few images (N, H, W) or (N, H*W) with a square side, quantized like activations."""
    x = images.detach()[:count].float()
    if x.dim() == 2:
        side = int(round(x.shape[1] ** 0.5))
        x = x.reshape(x.shape[0], side, -1)
    if x.dim() == 4:  # (N, C, H, W): the first channel, or the mean for colour
        x = x.mean(dim=1)
    lo, scale, cells = quantize_tensor(x)
    return Sample(step=step, name=name, count=x.shape[0], height=x.shape[1], width=x.shape[2],
                  lo=lo, scale=scale, cells=cells)
