"""Run directories and the append-only journal: the truth that outlives any UI (DESIGN rule 3).

A run lives in ``<runs>/<run-id>/`` (``<runs>``: see ``runs_root``): ``journal.jsonl`` (the
protocol's lines), ``output.log`` (the child's stdout and stderr), ``run.json`` (a small summary), ``checkpoints/`` and, while the run is
alive, ``control.sock``. Directories are owner-only (0700).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neurotop.trainer.protocol import LineFramer

JOURNAL = "journal.jsonl"
OUTPUT = "output.log"
RUN_JSON = "run.json"
SOCKET = "control.sock"
ENV_RUNS = "NEUROTOP_RUNS"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def default_runs_root() -> Path:
    """Per user, whatever the current directory: ``$XDG_STATE_HOME/neurotop/runs``, by default
    ``~/.local/state/neurotop/runs``, so a run started anywhere is found again from anywhere."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "neurotop" / "runs"


def runs_root(runs_dir: str | os.PathLike | None = None) -> Path:
    """``--runs-dir``, else ``$NEUROTOP_RUNS``, else the per-user default."""
    chosen = runs_dir or os.environ.get(ENV_RUNS)
    return Path(chosen).expanduser().absolute() if chosen else default_runs_root()


def new_run_id(name: str) -> str:
    """Sortable by time, then readable: ``20261125-064512-3fa2-autoencoder-digits``."""
    slug = _UNSAFE.sub("-", name).strip("-")[:40] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}-{slug}"


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) so that only its owner can enter it. The directory itself is
    opened without following a link: a link or someone else's directory planted there is refused."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as err:
        raise PermissionError(f"{path} is not a directory of ours (a link or a file?): {err.strerror}") from None
    try:
        if os.fstat(fd).st_uid != os.getuid():
            raise PermissionError(f"{path} belongs to another user")
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


def create_run_dir(root: Path, name: str) -> Path:
    make_private_dir(root)
    run_dir = root / new_run_id(name)
    run_dir.mkdir(mode=0o700)
    os.chmod(run_dir, 0o700)
    return run_dir


@dataclass
class RunInfo:
    """``run.json``: what ``neurotop ls`` shows without reading the whole journal."""

    id: str
    name: str
    command: list[str] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    pid: int = 0
    started: float = field(default_factory=time.time)
    ended: float | None = None
    state: str = "running"
    exit_code: int | None = None
    step: int = 0
    best_val: float | None = None
    socket: str = ""
    notes: int = 0
    supervisor: int = 0  # the pid of the process that journals a `neurotop run` command and records its end

    def save(self, run_dir: Path) -> None:
        write_atomic(run_dir / RUN_JSON, json.dumps(asdict(self), indent=1).encode())

    @classmethod
    def load(cls, run_dir: Path) -> "RunInfo":
        data = json.loads((run_dir / RUN_JSON).read_bytes())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def effective_state(self) -> str:
        """``lost`` when the record says running but its process is gone (no end was written)
        and no supervisor is left to write that end."""
        if self.state in ("running", "paused", "starting") and not (pid_alive(self.pid) or pid_alive(self.supervisor)):
            return "lost"
        return self.state


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive for us
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[-1][:1] != b"Z"
    except OSError:
        return True


def list_runs(root: Path) -> list[tuple[Path, RunInfo]]:
    """Runs under ``root``, newest first; directories without a readable ``run.json`` are skipped."""
    out = []
    if not root.is_dir():
        return out
    for run_dir in sorted(root.iterdir(), reverse=True):
        try:
            out.append((run_dir, RunInfo.load(run_dir)))
        except (OSError, ValueError, TypeError):
            continue
    return out


def find_run(root: Path, which: str | None) -> Path:
    """The run named by directory, id, unique id prefix, name or unique part of an id; the
    newest when ``which`` is None. Several matches raise ``LookupError`` naming them."""
    if which and Path(which).is_dir() and (Path(which) / JOURNAL).exists():
        return Path(which).absolute()
    runs = list_runs(root)
    if not runs:
        raise LookupError(f"no runs in {root}")
    if which is None:
        return runs[0][0]
    tiers = (lambda d, i: d.name == which, lambda d, i: d.name.startswith(which),
             lambda d, i: i.name == which, lambda d, i: which in d.name)
    for matches in tiers:
        found = [run_dir for run_dir, info in runs if matches(run_dir, info)]
        if len(found) == 1:
            return found[0]
        if found:
            listed = "\n  ".join(d.name for d in found[:10]) + ("\n  ..." if len(found) > 10 else "")
            raise LookupError(f"{which!r} matches {len(found)} runs in {root}; give more of the id:\n  {listed}")
    raise LookupError(f"no run matching {which!r} in {root}")


def describe_exit(code: int) -> str:
    """``exited with code 1`` / ``was killed by SIGKILL``: what a person needs to read."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint a run wrote (by modification time), if any."""
    found = [p for p in (run_dir / "checkpoints").glob("*.pt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def socket_path_for(run_dir: Path) -> Path:
    """``control.sock`` in the run directory, unless that path is too long for AF_UNIX (108 bytes);
    then a private per-user directory under the runtime dir (or /tmp)."""
    path = run_dir / SOCKET
    if len(os.fsencode(path)) < 100:
        return path
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"neurotop-{os.getuid()}"
    try:
        os.mkdir(base, 0o700)  # never follows a link planted at that name: mkdir fails on it
    except FileExistsError:
        pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(f"{base} is not a private directory of ours")
    os.chmod(base, 0o700)
    return base / f"{run_dir.name[:60]}.sock"


class JournalReader:
    """Reads complete lines from a journal that may still be growing.

    A torn last line (a writer killed mid-line, or caught mid-write) is held back until it is
    completed; ``finish()`` hands it back when the run is over. Framing is the protocol's
    ``LineFramer``: an oversize line is dropped and counted in ``skipped``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "rb")
        self._framer = LineFramer()
        self.offset = 0

    @property
    def skipped(self) -> int:
        """Lines dropped for being longer than ``MAX_EVENT_LINE``."""
        return self._framer.oversize

    def read_lines(self, limit: int | None = None) -> list[bytes]:
        """Whatever complete lines are there now (at most about ``limit`` bytes of them)."""
        data = self._f.read(limit or -1)
        if not data:
            return []
        self.offset += len(data)
        return self._framer.feed(data)

    def finish(self) -> bytes:
        """The torn tail, if any (the caller counts it); the reader stays usable."""
        return self._framer.finish()

    def close(self) -> None:
        self._f.close()
