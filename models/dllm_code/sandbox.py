"""Run model-written Python in a sandbox: the only place generated code is ever executed.

Each program runs
- in its own process and process group, killed as a group at a wall-clock timeout (and after it ends,
  so nothing it started lingers);
- under CPU-time, address-space, file-size and process-count rlimits;
- in a fresh temporary directory, with an environment stripped to PATH, LANG and HOME=that directory,
  through ``python -I`` (no user site, no PYTHON* variables);
- as the unprivileged user ``nobody`` when started as root, so it cannot write the repo;
- in a new, empty network namespace where the platform allows it (Linux, as root).
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

NOBODY = 65534
CLONE_NEWNET = 0x40000000


@dataclass
class SandboxResult:
    status: str  # "passed", "failed" (non-zero exit), "timeout"
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _limits(timeout: float, memory_mb: int, max_file_mb: int, max_procs: int, drop_root: bool):
    """Runs in the child between fork and exec."""

    def setup():
        cpu = int(timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        memory = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = max_file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if drop_root:
            try:  # an empty network namespace: no interface but a downed loopback
                ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET)
            except OSError:
                pass
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        # RLIMIT_NPROC counts every process of the (now unprivileged) user; root ignores it.
        resource.setrlimit(resource.RLIMIT_NPROC, (max_procs, max_procs))

    return setup


def _world_executable(path: str) -> bool:
    """Can any user run this file (every folder above it searchable, the file executable)?"""
    real = os.path.realpath(path)
    parts = [real] + [os.path.dirname(real)]
    while parts[-1] != os.path.dirname(parts[-1]):
        parts.append(os.path.dirname(parts[-1]))
    try:
        return all(os.stat(p).st_mode & stat.S_IXOTH for p in parts)
    except OSError:
        return False


def interpreter(drop_root: bool) -> str:
    """A Python the sandboxed user may run: ours, or else the system's (programs need only the stdlib)."""
    candidates = [sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3", "/usr/local/bin/python3"]
    for path in candidates:
        if path and os.path.exists(path) and (not drop_root or _world_executable(path)):
            return path
    raise RuntimeError("no Python interpreter the unprivileged sandbox user can run; tried " + ", ".join(candidates))


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_program(source: str, timeout: float = 5.0, memory_mb: int = 1024, max_file_mb: int = 4,
                max_procs: int = 32) -> SandboxResult:
    """Execute ``source`` as a Python program in the sandbox and report how it ended."""
    drop_root = os.geteuid() == 0
    workdir = tempfile.mkdtemp(prefix="zoo-sandbox-")
    try:
        with open(os.path.join(workdir, "program.py"), "w") as f:
            f.write(source)
        if drop_root:
            os.chown(workdir, NOBODY, NOBODY)
            os.chown(os.path.join(workdir, "program.py"), NOBODY, NOBODY)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir}
        start = time.perf_counter()
        proc = subprocess.Popen([interpreter(drop_root), "-I", "program.py"], cwd=workdir, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, close_fds=True,
                                preexec_fn=_limits(timeout, memory_mb, max_file_mb, max_procs, drop_root))
        try:
            out, err = proc.communicate(timeout=timeout)
            status = "passed" if proc.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            status = "timeout"
            _kill_group(proc.pid)
            try:  # a child that left the group may still hold the pipes: stop waiting for it
                out, err = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = b"", b""
        finally:
            _kill_group(proc.pid)  # whatever the program left running
        return SandboxResult(status, proc.returncode, out.decode(errors="replace")[-2000:],
                             err.decode(errors="replace")[-2000:], time.perf_counter() - start)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
