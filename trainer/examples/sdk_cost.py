"""What the SDK costs the training loop: seconds per ``log()`` and ``step()`` call, measured.

    python -m neurotop.trainer.examples.sdk_cost [--calls 200000] [--no-pipe]

Each figure is the wall time of a tight loop of calls in the training thread divided by the calls,
with the Monitor's writer thread running as in a real run (journal always; with a drained events
pipe standing in for a UI unless ``--no-pipe``). The GIL the writer takes is part of the figure.
``disabled`` is the same loop with ``Monitor(enabled=False)``: the floor.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from neurotop.trainer.monitor import Monitor
from neurotop.trainer.params import Param
from neurotop.trainer.protocol import ENV_CONTROL_FD, ENV_EVENTS_FD, ENV_RUN_DIR


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 1 << 20):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def _loops(mon: Monitor, calls: int) -> dict[str, float]:
    out = {}
    t0 = time.perf_counter()
    for i in range(calls):
        mon.log(loss=0.5)
    out["log"] = (time.perf_counter() - t0) / calls
    t0 = time.perf_counter()
    for i in range(calls):
        mon.step()
    out["step"] = (time.perf_counter() - t0) / calls
    t0 = time.perf_counter()
    for i in range(calls):
        mon.step()
        mon.log(loss=0.5, lr=0.001)
    out["step+log"] = (time.perf_counter() - t0) / calls
    return out


def measure(calls: int = 200_000, run_dir: str | os.PathLike | None = None, pipe: bool = True) -> dict[str, float]:
    """Seconds per call: ``log``, ``step``, ``step+log`` (one step and a two-value log) and
    ``disabled`` (step+log with monitoring off). Writes a throwaway run to ``run_dir``."""
    params = {"lr": Param(1e-3, min=1e-6, max=1.0, log=True)}
    saved = {k: os.environ.pop(k, None) for k in (ENV_EVENTS_FD, ENV_CONTROL_FD, ENV_RUN_DIR)}
    reader = None
    tmp = None
    if run_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="neurotop-sdk-cost-")
        run_dir = Path(tmp.name) / "run"
    try:
        if pipe:
            r, w = os.pipe()
            os.environ[ENV_EVENTS_FD] = str(w)
            reader = threading.Thread(target=_drain, args=(r,), daemon=True)
            reader.start()
        mon = Monitor(params=params, run_dir=run_dir, name="sdk-cost")
        try:
            out = _loops(mon, calls)
        finally:
            mon.close()
        off = Monitor(params=params, enabled=False)
        out["disabled"] = _loops(off, calls)["step+log"]
    finally:
        if pipe:
            fd = os.environ.pop(ENV_EVENTS_FD, None)
            if fd is not None:
                try:
                    os.close(int(fd))
                except OSError:
                    pass  # the Monitor closed it
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v
        if reader is not None:
            reader.join(5)
        if tmp is not None:
            tmp.cleanup()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m neurotop.trainer.examples.sdk_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--no-pipe", action="store_true", help="journal only (no UI listening)")
    args = ap.parse_args(argv)
    costs = measure(args.calls, pipe=not args.no_pipe)
    print(f"{args.calls:,} calls each, {'journal + events pipe' if not args.no_pipe else 'journal only'}:")
    for name, seconds in costs.items():
        print(f"  {name:<9} {seconds * 1e6:7.2f} µs/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
