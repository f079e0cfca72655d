"""Checkpoints: saved atomically, restored without unpickling arbitrary objects, and each with a
small JSON record beside it (``<name>.json``: the step, the parameter values in force and the
guard's level) so a roll back restores the values that were in force when it was taken, and a
restart knows where the loss stood."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from neurotop.trainer import journal


@dataclass
class Restored:
    """What a restore brought back: the step (when known), the parameter values in force at the
    checkpoint and the guard's (median, spread) then (both empty for a checkpoint without its record)."""

    step: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    level: tuple[float, float] | None = None


class Checkpointer:
    """``save(path)``/``load(path)`` are the script's own, if given; by default the model's (and
    optimizer's) state dicts go through ``torch.save`` and come back with ``weights_only=True``."""

    def __init__(self, run_dir: Path, model: Any = None, optimizer: Any = None,
                 save: Callable[[Path], None] | None = None, load: Callable[[Path], int | None] | None = None) -> None:
        self.run_dir, self.model, self.optimizer = run_dir, model, optimizer
        self._save, self._load = save, load
        self.last: Path | None = None

    def save(self, step: int, params: dict[str, Any], level: tuple[float, float] | None,
             name: str | None = None) -> Path:
        """Write ``step-NNNNNNNNN.pt`` (or ``name``.pt, overwritten) and its record; raises on failure
        and leaves no partial file."""
        ckpt_dir = journal.make_private_dir(self.run_dir / "checkpoints")
        path = ckpt_dir / f"{name or f'step-{step:09d}'}.pt"
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            if self._save is not None:
                self._save(tmp)
            else:
                import torch

                state = {"step": step, "params": dict(params)}
                if self.model is not None:
                    state["model"] = self.model.state_dict()
                if self.optimizer is not None:
                    state["optimizer"] = self.optimizer.state_dict()
                torch.save(state, tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        record = {"step": step, "params": dict(params), "level": list(level) if level else None}
        journal.write_atomic(_record_path(path), json.dumps(record).encode())
        self.last = path
        return path

    def restore(self, path: Path) -> Restored:
        """Load ``path`` into the model and optimizer (or through ``load``); raises on failure."""
        if self._load is not None:
            step = self._load(path)
            params: dict = {}
        else:
            import torch

            state = torch.load(path, weights_only=True, map_location="cpu")
            if self.model is not None and "model" in state:
                self.model.load_state_dict(state["model"])
            if self.optimizer is not None and "optimizer" in state:
                self.optimizer.load_state_dict(state["optimizer"])
            step, params = state.get("step"), state.get("params") or {}
        out = Restored(step=step if isinstance(step, int) else None, params=dict(params))
        try:  # the record is plain JSON: values only, each validated again by whoever applies it
            record = json.loads(_record_path(path).read_bytes())
        except (OSError, ValueError):
            return out
        if isinstance(record, dict):
            if isinstance(record.get("params"), dict):
                out.params = record["params"]
            level = record.get("level")
            if isinstance(level, list) and len(level) == 2 and all(isinstance(v, (int, float)) for v in level):
                out.level = (float(level[0]), float(level[1]))
        return out


def _record_path(path: Path) -> Path:
    return path.with_suffix(".json")
