"""A fake child that does NOT use the SDK: it writes raw bytes to the events fd that neurotop gave it
(``NEUROTOP_EVENTS_FD``), so a test can feed the real app anything through a real pipe.

    misbehaving.py [--stdout PATH] [--close-control] [--file PATH] [--huge MB] [--flood N] [--done]
                   [--torn] [--linger S] [--exit CODE]

In this order: the bytes of ``--stdout`` to its stdout (raw: invalid UTF-8 is fine); closes the
control pipe when ``--close-control`` (a child that stops listening); the bytes of ``--file`` to the
events pipe (as they are); a line of ``--huge`` megabytes (no newline until its end); ``--flood``
metric lines as fast as the pipe takes them; a ``note`` event with text ``done`` when ``--done``
(the test's sign that everything before it was read); half a line when ``--torn``; then it stays
``--linger`` seconds (or until the UI closes the control pipe) and exits with ``--exit``.
Only the standard library: it starts fast.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stdout")
    ap.add_argument("--close-control", action="store_true")
    ap.add_argument("--file")
    ap.add_argument("--huge", type=int, default=0, help="megabytes of one line")
    ap.add_argument("--flood", type=int, default=0, help="metric lines")
    ap.add_argument("--done", action="store_true")
    ap.add_argument("--torn", action="store_true")
    ap.add_argument("--linger", type=float, default=60.0)
    ap.add_argument("--exit", type=int, default=0)
    args = ap.parse_args()

    fd = int(os.environ["NEUROTOP_EVENTS_FD"])
    control = int(os.environ.get("NEUROTOP_CONTROL_FD") or -1)
    os.set_blocking(fd, True)
    if args.stdout:
        with open(args.stdout, "rb") as f:
            write_all(1, f.read())
    if args.close_control and control >= 0:
        os.close(control)
        control = -1
    if args.file:
        with open(args.file, "rb") as f:
            write_all(fd, f.read())
    if args.huge:
        chunk = b"x" * (1 << 20)
        write_all(fd, b'{"type":"metric","step":1,"t":0,"values":{"')
        for _ in range(args.huge):
            write_all(fd, chunk)
        write_all(fd, b'":1.0}}\n')
    if args.flood:
        batch = 20_000
        for start in range(0, args.flood, batch):
            stop = min(args.flood, start + batch)
            write_all(fd, b"".join(b'{"type":"metric","step":%d,"t":%d.0,"values":{"loss":%d.5}}\n'
                                   % (i + 1, i, i % 7) for i in range(start, stop)))
    if args.done:
        write_all(fd, b'{"type":"event","step":0,"t":0,"kind":"note","text":"done"}\n')
    if args.torn:
        write_all(fd, b'{"type":"metric","step":99,"t":0,"val')
    print("misbehaving child wrote everything", flush=True)
    deadline = time.monotonic() + args.linger
    while time.monotonic() < deadline:
        if control < 0:
            time.sleep(0.2)
            continue
        ready, _, _ = select.select([control], [], [], 0.2)
        if ready and not os.read(control, 65536):
            break  # the UI closed its end
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
