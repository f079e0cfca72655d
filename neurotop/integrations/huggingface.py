"""Hugging Face ``transformers.Trainer``: one callback connects it to neurotop.

    from neurotop.trainer import Param
    from neurotop.integrations.huggingface import NeurotopCallback

    cb = NeurotopCallback(params={"lr": Param(5e-5, min=1e-7, max=1e-2, log=True)})
    Trainer(model, args, train_dataset=ds, callbacks=[cb]).train()   # neurotop run -- python train.py

What it does:

* on train begin, makes a ``Monitor`` for the model (main process only);
* at every step end calls ``monitor.step(global_step)``: commands are applied there and a pause
  waits there; a stop sets ``control.should_training_stop``; a checkpoint command saves the model
  and optimizer state dicts at once (the journal's checkpoint, ``torch.load(weights_only=True)``
  reads it) and sets ``control.should_save``, so the Trainer also writes its own
  ``checkpoint-N`` folder right after (resumable with ``resume_from_checkpoint``);
* a declared ``lr`` (``lr_param``) becomes the base learning rate: the optimizer's groups and the
  scheduler's ``base_lrs`` move together, so warm-up and decay go on from the new rate;
* ``on_log``: every number in the logs (``loss``, ``grad_norm``, ``learning_rate``, ``eval_loss``
  ...) is logged at the global step. The Trainer logs every ``logging_steps`` (500 by default):
  set it low (e.g. 10) to see the loss move;
* ``probes``: layer names, a tuple of layer types, or ``True``: activation snapshots of the next
  training forward pass every ``probe_every`` steps (or ``probe_seconds``). Transformer blocks
  are many: name a few layers rather than ``True``.

Other params reach your code through ``cb.params`` or a ``Param(on_change=...)``. Multi-process
runs are monitored from the main process; commands do not reach the other processes.

Imports ``transformers`` when this module is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from neurotop.integrations._bridge import Bridge, BridgeOwner
from neurotop.trainer.params import Param

__all__ = ["NeurotopCallback"]

#: Numbers in the logs that describe the whole run (the final summary), not a point on a curve.
SUMMARY_KEYS = frozenset({"epoch", "total_flos", "train_runtime", "train_samples_per_second",
                          "train_steps_per_second", "train_loss"})


class NeurotopCallback(BridgeOwner, TrainerCallback):
    """Monitor a ``transformers.Trainer``; see the module docstring."""

    def __init__(self, params: dict[str, Param] | None = None, probes: Any = None, *, probe_every: int = 50,
                 probe_seconds: float | None = None, lr_param: str | None = "lr", name: str | None = None,
                 **monitor_kwargs: Any) -> None:
        self.bridge = Bridge(params, probes, probe_every=probe_every, probe_seconds=probe_seconds,
                             lr_param=lr_param, name=name, monitor_kwargs=monitor_kwargs)
        self._control: Any = None
        self._model: Any = None
        self._optimizer: Any = None
        self._step = 0
        self._save_asked = False

    # ---------------------------------------------------------------------------------- hooks
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self._model, self._optimizer, self._control = model, optimizer, control
        self._step = state.global_step
        self.bridge.start(model, optimizer=optimizer, save=self._save, enabled=bool(state.is_world_process_zero))

    def on_step_begin(self, args, state, control, **kwargs):
        self.bridge.arm_probe(state.global_step + 1)

    def on_step_end(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        if not self.bridge.active:
            return
        self._control, self._step = control, state.global_step
        if optimizer is not None:
            self._optimizer = optimizer
        mon = self.bridge.monitor
        mon.epoch = int(state.epoch or 0)
        schedulers = [lr_scheduler] if lr_scheduler is not None else []
        if not self.bridge.step(state.global_step, [self._optimizer] if self._optimizer else [], schedulers):
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            skip = SUMMARY_KEYS | {k for k in logs if k.endswith(("_runtime", "_per_second"))}
            self.bridge.log(state.global_step, logs, skip=skip)

    def on_save(self, args, state, control, **kwargs):
        if self._save_asked and self.bridge.active:
            self._save_asked = False
            self.bridge.monitor.note(f"the Trainer saved {Path(args.output_dir) / f'checkpoint-{state.global_step}'}",
                                     kind="info", source="monitor")

    def on_train_end(self, args, state, control, **kwargs):
        self.bridge.close()

    # ------------------------------------------------------------------------------ storage
    def _save(self, path: Path) -> None:
        import torch

        state = {"step": self._step, "params": dict(self.params), "model": self._model.state_dict()}
        if self._optimizer is not None:
            state["optimizer"] = self._optimizer.state_dict()
        torch.save(state, path)
        if self._control is not None:
            self._control.should_save = True  # and the Trainer's own checkpoint-N right after this step
            self._save_asked = True
