"""Process, port and file helpers shared by the stack services.

Everything here is bounded: every wait has a deadline, every subprocess a timeout, and
output of short-lived commands goes to a temporary file (never a pipe a daemonised
grandchild could keep open).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar, cast

T = TypeVar("T")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
UP_HINT = "`billing stack up` (or `make dev`)"


class StackError(RuntimeError):
    """A service could not be started, stopped or reached; the message says what to do."""


# --------------------------------------------------------------------------- commands


def _popen_in_new_session(
    args: list[str],
    out: IO[Any],
    *,
    cwd: str | os.PathLike[str] | None,
    env: dict[str, str] | None,
) -> subprocess.Popen[bytes]:
    """Start args in a session of its own, stdin from /dev/null, stdout and stderr to `out`
    (a file, never a pipe), no other descriptor inherited."""
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
    )


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    what: str,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a short-lived command with a timeout; stdout+stderr are returned together.

    Raises StackError (with the command's output) on a non-zero exit when `check`.
    """
    args = [str(c) for c in cmd]
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as out:
        try:
            proc = _popen_in_new_session(args, out, cwd=cwd, env=env)
        except FileNotFoundError as exc:
            raise StackError(f"{what}: command not found: {args[0]}") from exc
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait(timeout=10)
            out.seek(0)
            raise StackError(
                f"{what}: `{' '.join(args)}` did not finish within {timeout:.0f} s.\n{_tail_text(out.read())}"
            ) from None
        out.seek(0)
        text = out.read()
    result = subprocess.CompletedProcess(args, rc, text, "")
    if check and rc != 0:
        raise StackError(f"{what}: `{' '.join(args)}` exited with {rc}.\n{_tail_text(text)}")
    return result


def spawn_detached(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    log_file: Path,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start a long-running server in its own session, output appended to log_file.

    The process outlives the caller (new session, stdin from /dev/null, no pipes).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(log_file)
    with open(log_file, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(map(str, cmd))}\n".encode())
        log.flush()
        proc = _popen_in_new_session([str(c) for c in cmd], log, cwd=cwd, env=env)
    # The Popen object is dropped on purpose: the server must outlive us. Python would
    # warn "subprocess still running" on GC of a Popen; clear its returncode tracking.
    proc.returncode = 0
    return proc.pid


LOG_ROTATE_BYTES = 50 * 1024 * 1024


def rotate_log(log_file: Path, max_bytes: int = LOG_ROTATE_BYTES) -> None:
    """Before a (re)start: keep one previous log (<name>.1) once the log passes max_bytes."""
    try:
        if log_file.stat().st_size > max_bytes:
            log_file.replace(log_file.with_name(log_file.name + ".1"))
    except FileNotFoundError:
        pass


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- processes


def _reap(pid: int) -> None:
    """Collect the exit status if pid is our own child (tests call up/down in-process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def pid_alive(pid: int | None) -> bool:
    """True when pid exists and is not a zombie."""
    if not pid or pid <= 0:
        return False
    _reap(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if _task_state(stat) not in ("Z", "X"):
        return True
    # A multi-threaded process's leader turns zombie before its other threads have exited,
    # and the process keeps its files (a listening socket) until the last one has.
    return any(_task_alive(stat_file) for stat_file in Path(f"/proc/{pid}/task").glob("*/stat"))


def _task_alive(stat_file: Path) -> bool:
    try:
        return _task_state(stat_file.read_bytes().decode(errors="replace")) not in ("Z", "X")
    except OSError:
        return False


def _task_state(stat: str) -> str:
    # "pid (comm) S ..." — comm may contain spaces/parens; the state follows the last ')'.
    return stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def cmdline_matches(pid: int | None, *needles: str) -> bool:
    """pid is alive and every needle occurs in its command line (guards against pid reuse)."""
    if pid is None or not pid_alive(pid):
        return False
    joined = "\0".join(cmdline(pid))
    return all(n in joined for n in needles)


def read_pid(pid_file: Path) -> int | None:
    try:
        first = pid_file.read_text().split()[0]
        return int(first)
    except (OSError, ValueError, IndexError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(pid_file.suffix + ".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def terminate(pid: int, *, name: str, grace: float = 30.0, first_signal: int = signal.SIGTERM) -> str:
    """Send first_signal, wait up to `grace` seconds, then SIGKILL. Returns what happened."""
    if not pid_alive(pid):
        return f"{name}: pid {pid} was not running"
    try:
        os.kill(pid, first_signal)
    except ProcessLookupError:
        return f"{name}: pid {pid} was not running"
    if wait_until(lambda: not pid_alive(pid), timeout=grace, interval=0.1):
        return f"{name}: stopped pid {pid} ({signal.Signals(first_signal).name})"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return f"{name}: stopped pid {pid}"
    wait_until(lambda: not pid_alive(pid), timeout=10, interval=0.1)
    return f"{name}: pid {pid} ignored {signal.Signals(first_signal).name} for {grace:.0f} s; killed (SIGKILL)"


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):  # a probe failing just means "not yet"
            if predicate():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------- ports


def port_in_use(host: str, port: int) -> bool:
    """True when something already holds host:port (listening or merely bound).

    Binds with SO_REUSEADDR like the servers do, so sockets in TIME_WAIT don't count.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_owner(port: int) -> int | None:
    """Best effort: pid of the process listening on TCP `port` (via /proc; None if unknown)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                try:
                    if os.readlink(fd) in targets:
                        return int(entry.name)
                except OSError:
                    continue
        except OSError:
            continue
    return None


def foreign_server(port: int, needle: str) -> int | None:
    """Pid of a server of the right kind (`needle` in its command line) listening on `port`
    that the caller did not start from its own data dir (e.g. another checkout's stack)."""
    owner = port_owner(port)
    if owner and cmdline_matches(owner, needle):
        return owner
    return None


def describe_pid(pid: int | None) -> str:
    if not pid:
        return "an unknown process"
    args = cmdline(pid)
    text = " ".join(args) if args else "?"
    if len(text) > 120:  # keep the program and the tail, where the data dir usually is
        text = f"{Path(args[0]).name} ... {text[-90:]}"
    return f"pid {pid} ({text})"


def ensure_port_free(
    host: str, port: int, *, service: str, log_file: Path | None = None, variable: str | None = None
) -> None:
    """Raise a clear StackError when host:port is taken by something else."""
    if not port_in_use(host, port):
        return
    owner = port_owner(port)
    msg = (
        f"{service}: cannot start, port {port} on {host} is already in use by {describe_pid(owner)}, "
        f"which is not a {service} started by `billing stack up`."
    )
    where = f"with {variable}" if variable else "(see contracts/settings.py)"
    msg += f" Stop that process or choose another port {where}."
    if log_file is not None:
        msg += f" Log file: {log_file}"
    raise StackError(msg)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- files & tools


def tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return _tail_text(data, lines)


def _tail_text(text: str, lines: int = 25) -> str:
    chunk = text.strip().splitlines()[-lines:]
    return "\n".join("    " + line for line in chunk)


def which(name: str, extra_dirs: Sequence[Path] = ()) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    for d in extra_dirs:
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


_apt_lock = threading.Lock()


def apt_install(packages: Sequence[str], *, why: str, timeout: float = 900) -> None:
    """Install Debian packages non-interactively (needs root and apt-get)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(
            f"{why}, and this machine cannot install it automatically (needs root and apt-get). "
            f"Install the Debian package(s) {' '.join(packages)} and run {UP_HINT} again."
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with _apt_lock:
        run(["apt-get", "update"], timeout=timeout, what=f"apt-get update (for {' '.join(packages)})", env=env)
        run(
            [
                "apt-get",
                "install",
                "-y",
                "--no-install-recommends",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                *packages,
            ],
            timeout=timeout,
            what=f"apt-get install {' '.join(packages)}",
            env=env,
        )


def run_async(factory: Callable[[], Coroutine[Any, Any, T]], *, timeout: float) -> T:
    """Run a coroutine to completion from sync code, even when called inside an event loop."""

    async def bounded() -> T:
        return await asyncio.wait_for(factory(), timeout)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    # Called from inside a running loop (e.g. an async test): use a private loop in a thread.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(bounded())
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout + 5)
    if "error" in box:
        raise box["error"]
    if "value" not in box:
        raise TimeoutError(f"timed out after {timeout} s")
    return cast(T, box["value"])
