"""The framework callbacks (neurotop/integrations), in-process with a tiny model for a few steps.

Commands arrive the two ways a UI sends them: ``Monitor.submit`` (as the control pipe's reader does)
and the run's ``control.sock``. Each framework's test is skipped where it is not installed.
"""

import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT
from neurotop.trainer import Param, journal
from neurotop.trainer.protocol import (
    Activations,
    Command,
    DecodeCounts,
    Event,
    Metric,
    ParamChange,
    Status,
    decode_lines,
    encode,
)

torch = pytest.importorskip("torch")
import torch.nn.functional as F
from torch import nn

from neurotop.integrations._bridge import as_number, set_base_lr


def read_journal(run_dir):
    return decode_lines((run_dir / journal.JOURNAL).read_bytes().split(b"\n"), DecodeCounts())


def send_socket(run_dir, cmd):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(journal.RunInfo.load(run_dir).socket)
        s.sendall(encode(cmd))


class PauseWatcher(threading.Thread):
    """Waits for the run to pause, checks the step stays put for a moment, then resumes it."""

    def __init__(self, get_monitor):
        super().__init__(daemon=True)
        self.get_monitor, self.steps = get_monitor, None

    def run(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            mon = self.get_monitor()
            if mon is not None and mon.paused:
                before = mon.step_count
                time.sleep(0.3)
                self.steps = (before, mon.step_count)
                mon.submit(Command(action="resume", source="test"))
                return
            time.sleep(0.01)


def check_journal(run_dir):
    msgs = read_journal(run_dir)
    change = next(m for m in msgs if isinstance(m, ParamChange))
    assert change.ok and change.name == "lr" and change.new == 0.04 and change.old == 0.01 and change.source == "test"
    kinds = [m.kind for m in msgs if isinstance(m, Event) and m.kind in ("checkpoint", "pause", "resume", "stop")]
    assert kinds == ["checkpoint", "pause", "resume", "stop"]
    stop = next(m for m in msgs if isinstance(m, Event) and m.kind == "stop")
    assert stop.source == "attach"  # it came through control.sock
    assert msgs[-1].state == "stopped" and isinstance(msgs[-1], Status)
    assert journal.RunInfo.load(run_dir).state == "stopped"
    assert any(isinstance(m, Activations) and m.layer == "net.1" for m in msgs)
    losses = [m for m in msgs if isinstance(m, Metric) and "loss" in m.values]
    assert losses and all(m.values["loss"] == m.values["loss"] for m in losses)
    ckpt = next(m for m in msgs if isinstance(m, Event) and m.kind == "checkpoint")
    restore = [m for m in msgs if isinstance(m, Event) and m.kind == "restore"]
    assert len(restore) == 1 and restore[0].path == ckpt.path, "the roll-back did not load the checkpoint"
    assert not [m for m in msgs if isinstance(m, Event) and m.kind == "warning"]
    return msgs, torch.load(ckpt.path, weights_only=True)


def test_importing_the_package_imports_no_framework():
    code = ("import sys, neurotop.integrations; "
            "bad = [m for m in ('lightning', 'pytorch_lightning', 'transformers', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_set_base_lr_keeps_group_ratios_and_the_schedule():
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD([{"params": [net.weight], "lr": 0.1}, {"params": [net.bias], "lr": 0.01}], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)  # the schedule halves the base rate
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    set_base_lr(0.4, [opt], [sched])
    assert sched.base_lrs == pytest.approx([0.4, 0.04])
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.02])
    opt.step()
    sched.step()  # the schedule goes on from the new base instead of undoing the change
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.02])
    plain = torch.optim.SGD(net.parameters(), lr=0.1)
    set_base_lr(0.3, [plain], [])
    assert plain.param_groups[0]["lr"] == pytest.approx(0.3)
    assert as_number(torch.tensor(2.5)) == 2.5 and as_number(True) is None and as_number("x") is None
    assert as_number(torch.ones(3)) is None and as_number(3) == 3.0


# ---------------------------------------------------------------------------------- Lightning
def test_lightning_callback_obeys_commands(tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from neurotop.integrations.lightning import NeurotopCallback

    torch.manual_seed(0)
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    cb = NeurotopCallback(params={"lr": Param(0.01, min=1e-5, max=1.0, log=True)}, probes=["net.1"],
                          probe_every=2, run_dir=run_dir, name="tiny-lightning")

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
            self.lrs = {}

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.mse_loss(self.net(x), y)
            step = self.global_step + 1
            self.lrs[step] = self.trainer.optimizers[0].param_groups[0]["lr"]
            mon = cb.monitor
            if step == 2:
                mon.submit(Command(action="set", name="lr", value=0.04, source="test"))
            elif step == 4:
                mon.submit(Command(action="checkpoint", source="test"))
            elif step == 6:
                mon.submit(Command(action="pause", source="test"))
            elif step == 8:
                mon.submit(Command(action="rollback", source="test"))
            elif step == 10:
                send_socket(run_dir, Command(action="stop"))
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", F.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    model = Tiny()
    watcher = PauseWatcher(lambda: cb.monitor)
    watcher.start()
    trainer = L.Trainer(callbacks=[cb], max_steps=5000, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=2, default_root_dir=tmp_path)
    trainer.fit(model, loader, loader)
    watcher.join(5)

    assert trainer.global_step < 5000, "the stop never reached the trainer"
    assert model.lrs[2] == pytest.approx(0.01) and model.lrs[3] == pytest.approx(0.04)  # applied at the next step
    assert watcher.steps is not None and watcher.steps[0] == watcher.steps[1], "steps advanced while paused"
    msgs, state = check_journal(run_dir)
    assert set(state) >= {"state_dict", "optimizer_states", "global_step"}  # a full Lightning checkpoint
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.04)
    assert any(isinstance(m, Metric) and "val_loss" in m.values for m in msgs)


# ------------------------------------------------------------------------------- transformers
def test_huggingface_callback_obeys_commands(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # transformers.Trainer needs it
    from neurotop.integrations.huggingface import NeurotopCallback

    torch.manual_seed(0)
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    cb = NeurotopCallback(params={"lr": Param(0.01, min=1e-5, max=1.0, log=True)}, probes=["net.1"],
                          probe_every=2, run_dir=run_dir, name="tiny-hf")
    lrs = {}

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

        def forward(self, x, labels=None):
            out = self.net(x)
            return {"loss": F.mse_loss(out, labels), "logits": out}

    class Script(transformers.TrainerCallback):  # runs before ours: what it submits applies this step
        def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
            lrs[state.global_step + 1] = optimizer.param_groups[0]["lr"]

        def on_step_end(self, args, state, control, **kwargs):
            mon = cb.monitor
            if state.global_step == 2:
                mon.submit(Command(action="set", name="lr", value=0.04, source="test"))
            elif state.global_step == 4:
                mon.submit(Command(action="checkpoint", source="test"))
            elif state.global_step == 6:
                mon.submit(Command(action="pause", source="test"))
            elif state.global_step == 8:
                mon.submit(Command(action="rollback", source="test"))
            elif state.global_step == 10:
                send_socket(run_dir, Command(action="stop"))

    g = torch.Generator().manual_seed(0)
    data = [{"x": torch.randn(4, generator=g), "labels": torch.randn(1, generator=g)} for _ in range(64)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=5000, per_device_train_batch_size=8, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, learning_rate=0.01,
        lr_scheduler_type="constant")
    watcher = PauseWatcher(lambda: cb.monitor)
    watcher.start()
    hf = transformers.Trainer(model=Tiny(), args=args, train_dataset=data, callbacks=[Script(), cb])
    hf.train()
    watcher.join(5)

    assert hf.state.global_step < 5000, "the stop never reached the trainer"
    assert lrs[2] == pytest.approx(0.01) and lrs[3] == pytest.approx(0.04)  # applied at the end of step 2
    assert watcher.steps is not None and watcher.steps[0] == watcher.steps[1], "steps advanced while paused"
    msgs, state = check_journal(run_dir)
    assert set(state) >= {"model", "optimizer", "step"} and state["step"] == 4
    assert (tmp_path / "out" / "checkpoint-4").is_dir()  # the Trainer's own checkpoint, via should_save
    logged = set().union(*(m.values for m in msgs if isinstance(m, Metric)))
    assert {"loss", "grad_norm", "learning_rate"} <= logged and "epoch" not in logged
