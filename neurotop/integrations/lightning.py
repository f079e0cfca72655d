"""PyTorch Lightning: one callback connects a ``Trainer`` to neurotop.

    from neurotop.trainer import Param
    from neurotop.integrations.lightning import NeurotopCallback

    cb = NeurotopCallback(params={"lr": Param(1e-3, min=1e-6, max=1.0, log=True)}, probes=["encoder.1"])
    Trainer(callbacks=[cb]).fit(model, data)          # then: neurotop run -- python train.py

What it does:

* on fit start, makes a ``Monitor`` for the LightningModule (``hello``: its layers, the declared
  params), on the main process only (``trainer.is_global_zero``);
* before every training batch calls ``monitor.step()``: commands are applied there, a pause waits
  there, and a stop sets ``trainer.should_stop`` (Lightning ends after that batch, as with early
  stopping; ``min_epochs``/``min_steps`` still hold it back);
* a declared ``lr`` (``lr_param``) becomes the base learning rate of every optimizer: the first
  param group gets it, other groups keep their ratio, a scheduler's ``base_lrs`` follow;
* logs the loss returned by ``training_step`` as ``loss``, and each scalar in
  ``trainer.callback_metrics`` when it changes (so what ``self.log`` records, e.g. ``val_loss``,
  reaches the chart once per new value);
* a checkpoint command writes ``trainer.save_checkpoint`` (a full Lightning checkpoint that
  ``Trainer.fit(ckpt_path=...)`` resumes); a roll-back loads its weights and optimizer states;
* ``probes``: layer names, a tuple of layer types, or ``True`` (the activation layers): snapshots
  of the next training batch's activations every ``probe_every`` steps (or ``probe_seconds``).

Other params reach your code through ``cb.params`` (e.g. ``cb.params["dropout"]`` in
``training_step``) or a ``Param(on_change=...)``. Multi-process (DDP) runs are monitored from rank 0;
commands do not reach the other ranks, so stop and pause there are not synchronised.

Imports ``lightning`` (or, failing that, ``pytorch_lightning``) when this module is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the older package name
    from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef]

from neurotop.integrations._bridge import Bridge, BridgeOwner
from neurotop.trainer.params import Param

__all__ = ["NeurotopCallback"]


class NeurotopCallback(BridgeOwner, Callback):
    """Monitor a Lightning ``Trainer.fit``; see the module docstring."""

    def __init__(self, params: dict[str, Param] | None = None, probes: Any = None, *, probe_every: int = 50,
                 probe_seconds: float | None = None, lr_param: str | None = "lr", name: str | None = None,
                 log_loss: bool = True, **monitor_kwargs: Any) -> None:
        super().__init__()
        self.bridge = Bridge(params, probes, probe_every=probe_every, probe_seconds=probe_seconds,
                             lr_param=lr_param, name=name, monitor_kwargs=monitor_kwargs)
        self.log_loss = log_loss
        self._trainer: Any = None
        self._module: Any = None

    # ---------------------------------------------------------------------------------- hooks
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._trainer, self._module = trainer, pl_module
        optimizers = list(trainer.optimizers)
        self.bridge.start(pl_module, optimizer=optimizers[0] if len(optimizers) == 1 else None,
                          save=self._save, load=self._load, enabled=bool(trainer.is_global_zero))

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if not self.bridge.active:
            return
        mon = self.bridge.monitor
        mon.epoch = trainer.current_epoch
        step = trainer.global_step + 1
        if not self.bridge.step(step, trainer.optimizers, trainer.lr_scheduler_configs):
            trainer.should_stop = True
        self.bridge.arm_probe(step)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.bridge.active:
            return
        step = self.bridge.monitor.step_count
        skip = ()
        if self.log_loss:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            self.bridge.log(step, {"loss": loss})
            skip = ("loss",)  # a module that also self.log()s "loss" would draw it twice
        self.bridge.log(step, trainer.callback_metrics, skip=skip, changed_only=True)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self.bridge.active and not trainer.sanity_checking:
            self.bridge.log(self.bridge.monitor.step_count, trainer.callback_metrics, changed_only=True)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.bridge.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.bridge.close("stopped", detail="interrupted")
        else:
            self.bridge.close("failed", exit_code=1, detail=f"{type(exception).__name__}: {exception}"[:500])

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":
            self.bridge.close()

    # ------------------------------------------------------------------------------ storage
    def _save(self, path: Path) -> None:
        self._trainer.save_checkpoint(str(path))

    def _load(self, path: Path) -> int | None:
        import torch

        state = torch.load(path, weights_only=True, map_location="cpu")
        self._module.load_state_dict(state["state_dict"])
        for opt, opt_state in zip(self._trainer.optimizers, state.get("optimizer_states", [])):
            opt.load_state_dict(opt_state)
        return state.get("global_step")
