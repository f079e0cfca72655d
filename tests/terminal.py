"""`neurotop` on a real pseudo-terminal, as a person at an SSH prompt runs it: in a directory of
its choosing, with an environment of its own; the screen's text is kept so a test can wait on it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import sys
import termios
import threading
import time
from pathlib import Path

NEUROTOP = str(Path(sys.executable).parent / "neurotop")  # the console script `make setup` installs
_ESCAPE = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


class Terminal:
    """One program on a 120x40 pty; ``text`` is everything it drew, escapes removed."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str | os.PathLike) -> None:
        self._raw = bytearray()
        self._lock = threading.Lock()
        self.pid, self.master = pty.fork()
        if self.pid == 0:  # the child: exec at once (no Python work after fork in a threaded parent)
            try:
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        threading.Thread(target=self._drain, args=(self.master,), daemon=True).start()

    def _drain(self, master: int) -> None:
        try:
            while data := os.read(master, 65536):
                with self._lock:
                    self._raw += data
        except OSError:
            pass

    @property
    def text(self) -> str:
        with self._lock:
            return _ESCAPE.sub(b"", bytes(self._raw)).decode(errors="replace")

    def wait_text(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never appeared; the screen's last text:\n{self.text[-2000:]}")
            time.sleep(0.05)

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_exit(self, timeout: float = 60.0) -> int:
        """The exit status (or -signal)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        raise AssertionError(f"process {self.pid} did not end")

    def hang_up(self) -> None:
        """The terminal goes away (a dropped SSH session): the kernel sends SIGHUP to the program."""
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def close(self) -> None:
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.hang_up()
