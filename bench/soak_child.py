"""The soak's training processes.

``python -m bench.soak_child sdk STEPS``: the real Monitor SDK logging as fast as it can, no model:
``loss`` at every step, ``val_loss`` every 100 steps.

``python -m bench.soak_child raw STEPS``: no SDK: the same journal lines (``bench.data``) written
to the events pipe with blocking writes, so the UI's reading speed alone sets the pace and nothing
is dropped; it records the last step it handed to the pipe in ``$NEUROTOP_RUN_DIR/raw-progress``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def sdk(steps: int) -> int:
    from neurotop.trainer.monitor import Monitor

    mon = Monitor(name="soak")
    with mon:
        while mon.step():
            step = mon.step_count
            mon.log(loss=0.02 + 1.0 / (1.0 + step * 1e-5))
            if step % 100 == 0:
                mon.log(val_loss=0.03 + 1.0 / (1.0 + step * 1e-5))
            if step >= steps:
                break
    return 0


def raw(steps: int) -> int:
    from bench import data
    from neurotop.trainer.protocol import ENV_EVENTS_FD, ENV_RUN_DIR

    fd = int(os.environ[ENV_EVENTS_FD])
    os.set_blocking(fd, True)
    progress = Path(os.environ[ENV_RUN_DIR]) / "raw-progress"
    chunk = 20_000
    done = 0
    for blob in data.journal_chunks(steps, chunk=chunk):
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view):]
        if blob.startswith(b'{"type":"metric"'):
            done = min(done + chunk, steps)
            progress.write_text(str(done))
    return 0


if __name__ == "__main__":
    kind, n = sys.argv[1], int(sys.argv[2])
    sys.exit(sdk(n) if kind == "sdk" else raw(n))
