"""Where commands come in: the control pipe a spawning ``neurotop`` gave, and ``control.sock`` for
one that attaches later (owner-only, never taking over what sits at its path). Lines are framed by
the protocol's ``LineFramer`` and decoded by msgspec (nothing is evaluated or unpickled); each
command goes to ``submit`` with its source, each bad line is counted and reported through ``warn``.
"""

from __future__ import annotations

import os
import select
import socket
import stat
import threading
from pathlib import Path
from typing import Callable

from neurotop.trainer import journal
from neurotop.trainer.protocol import Command, DecodeCounts, LineFramer, decode_lines


class ControlServer:
    """Reader threads for the control pipe (``control_fd``) and the socket of ``run_dir``: the
    Monitor's, and the supervisor's of a plain command (``neurotop run``)."""

    def __init__(self, run_dir: Path, control_fd: int | None, submit: Callable[[Command], None],
                 warn: Callable[[str, str], None], serve_socket: bool = True) -> None:
        self._submit, self._warn = submit, warn
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self.socket_path = ""
        if control_fd is not None:
            self._threads.append(threading.Thread(target=self._read, args=(control_fd, "ui"),
                                                  name="neurotop-control", daemon=True))
        self._server = self._open_socket(run_dir) if serve_socket else None
        if self._server is not None:
            self._threads.append(threading.Thread(target=self._serve, name="neurotop-socket", daemon=True))

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def close(self) -> None:
        """Stop serving and remove the socket; the readers end within their poll interval."""
        self._closing.set()
        if self._server is not None:
            try:
                self._server.close()
                os.unlink(self.socket_path)
            except OSError:
                pass

    def _open_socket(self, run_dir: Path) -> socket.socket | None:
        try:
            path = journal.socket_path_for(run_dir)
            _remove_stale_socket(path)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o177)
            try:
                server.bind(str(path))
            finally:
                os.umask(old_umask)
            os.chmod(path, 0o600)
            server.listen(8)
            server.settimeout(0.5)
        except OSError as err:
            self._warn(f"control socket unavailable: {err}", "monitor")
            return None
        self.socket_path = str(path)
        return server

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def _serve_connection(self, conn: socket.socket) -> None:
        with conn:
            self._read(conn.fileno(), "attach")

    def _read(self, fd: int, source: str) -> None:
        """Commands from ``fd`` until EOF or close, a bounded line at a time."""
        framer = LineFramer()
        while not self._closing.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if not ready:
                    continue
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            oversize = framer.oversize
            lines = framer.feed(data)
            self._take(lines, source, framer.oversize - oversize)

    def _take(self, lines: list[bytes], source: str, oversize: int) -> None:
        counts = DecodeCounts(malformed=oversize, last_error="a line too long" if oversize else "")
        for msg in decode_lines(lines, counts):
            if isinstance(msg, Command):
                self._submit(Command(action=msg.action, name=msg.name, value=msg.value,
                                     text=msg.text, source=msg.source or source))
        if counts.malformed or counts.unknown:
            self._warn(f"ignored {counts.malformed + counts.unknown} bad command line(s) from {source}: "
                       f"{counts.last_error}", source)


def _remove_stale_socket(path: Path) -> None:
    """A socket left by a dead run is replaced; anything else there is refused, never followed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        raise OSError(f"{path} exists and is not a socket of ours")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        os.unlink(path)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise OSError(f"{path} is in use by a live run")
