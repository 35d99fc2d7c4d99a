"""The sandbox's trusted launcher: run as ``python -I -S sandbox_child.py`` by ``sandbox.run_program``.

Standard library only (``-I`` puts neither the repo nor site-packages on the path). It talks to the
parent over two pipes, on fds given in argv: a control pipe it reads (one JSON line with the program
and its limits, then ``mapped`` once the parent has written the uid/gid maps) and a status pipe it
writes (``unshared``, ``init <pid>``, ``ready``, or ``fail <step>: <error>``, after which it exits).

Three processes, each with one job:
- the launcher unshares user, mount, pid, network, IPC and UTS namespaces, becomes uid 1000 of its
  new user namespace (still holding that namespace's capabilities), and forks
- init, pid 1 of the new pid namespace: it makes every mount read-only and nosuid, puts one
  size-capped tmpfs under the run's folder, builds a new root there (the system's library and binary
  folders and the interpreter's prefix bound read-only, four devices, a fresh /proc, the tmpfs as /tmp
  and /dev/shm, and nothing else: not the project, the home folder or the benchmark's data), chroots
  into it, then forks
- the program: ``setsid``, rlimits, no_new_privs, ``execve`` as uid 1000 with no file capabilities, so it holds no
  capability at all. When it exits, init exits, and the kernel kills whatever is left in the pid
  namespace before init's parent sees it go: nothing the program started survives the run.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, AT_RECURSIVE, AT_FDCWD = 0x1, 0x2, 0x8000, -100
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and aarch64 (syscalls added after 5.0 share one table)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
INSIDE_ID = 1000  # the program's uid and gid inside its user namespace; the parent maps it outside

libc = ctypes.CDLL(None, use_errno=True)


class StepFailed(Exception):
    pass


def check(step: str, rc: int) -> None:
    """libc calls return -1 and set errno instead of raising: turn that into a named failure."""
    if rc != 0:
        err = ctypes.get_errno()
        raise StepFailed(f"{step}: {os.strerror(err)} (errno {err})")


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount(step: str, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None):
    enc = (lambda s: None if s is None else s.encode())
    check(step, libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)))


def make_filesystem(cfg: dict) -> None:
    """In init (pid 1 of the new pid namespace, holding the new user namespace's capabilities): a new
    root on the run's tmpfs that holds only what the interpreter needs, then chroot into it."""
    mount("make mounts private", None, "/", None, MS_REC | MS_PRIVATE)
    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    check("read-only host mounts (mount_setattr)", libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE,
                                                                ctypes.byref(attr), ctypes.sizeof(attr)))
    # One tmpfs holds every byte the run may write and the new root's folders; the host folder under it
    # stays empty.
    work = cfg["workdir"]
    mount("tmpfs for the run", "tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={cfg['disk_mb']}m,nr_inodes=4096,mode=0755")
    root = os.path.join(work, "root")
    for sub in ("tmp", "shm", "root"):
        os.mkdir(os.path.join(work, sub), 0o1777 if sub != "root" else 0o755)
    with open(os.path.join(work, "tmp", "program.py"), "w") as f:
        f.write(cfg["source"])
    # Bind mounts keep the read-only, nosuid flags of the mounts they copy.
    for path in cfg["visible"]:  # the system's library and binary folders, the interpreter's prefix
        target = root + path
        if os.path.islink(path):  # merged /usr: /lib -> usr/lib stays a link
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
        elif os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
            mount(f"bind {path}", path, target, None, MS_BIND | MS_REC)
        elif os.path.isfile(path):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "w").close()
            mount(f"bind {path}", path, target, None, MS_BIND)
    os.makedirs(os.path.join(root, "dev"), exist_ok=True)
    for device in ("null", "zero", "random", "urandom"):
        open(os.path.join(root, "dev", device), "w").close()
        mount(f"bind /dev/{device}", f"/dev/{device}", os.path.join(root, "dev", device), None, MS_BIND)
    for sub, target in (("tmp", "tmp"), ("shm", "dev/shm")):
        os.makedirs(os.path.join(root, target), exist_ok=True)
        mount(f"bind /{target}", os.path.join(work, sub), os.path.join(root, target), None, MS_BIND)
    for path in cfg["hidden"]:  # the project, the home folder, the benchmark's data: where a visible
        if os.path.isdir(root + path):  # folder holds them, an empty read-only tmpfs covers them
            mount(f"hide {path}", "tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
    os.mkdir(os.path.join(root, "proc"))
    mount("mount /proc", "proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chmod(root, 0o555)
    os.chroot(root)
    os.chdir("/")


def exec_program(cfg: dict, status_fd: int) -> None:
    """In the program's process, after the fork from init: limits, then execve (never returns)."""
    cpu = int(cfg["timeout"]) + 1
    limits = {resource.RLIMIT_CPU: cpu, resource.RLIMIT_AS: cfg["memory_mb"] * 2**20,
              resource.RLIMIT_FSIZE: cfg["max_file_mb"] * 2**20, resource.RLIMIT_CORE: 0,
              resource.RLIMIT_NOFILE: cfg["max_files"], resource.RLIMIT_NPROC: cfg["max_procs"]}
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))
    check("no_new_privs", libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    os.chdir("/tmp")
    os.setsid()  # a process group apart from init's and the launcher's: signalling its group cannot reach them
    os.set_inheritable(status_fd, False)  # closed by a successful execve: the parent then reads EOF
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", **cfg.get("env", {})}
    os.execve(cfg["python"], [cfg["python"], "-I", "program.py"], env)


def wait_for(pid: int) -> int:
    """Reap every child (pid 1 inherits orphans) until ``pid`` ends; return its exit code or 128 + signal."""
    while True:
        try:
            child, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        if child == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def report(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())


def run_init(cfg: dict, status_fd: int) -> int:
    check("parent-death signal", libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0))
    check("not dumpable", libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # pid 1 ignores what it has no handler for
    make_filesystem(cfg)
    program = os.fork()
    if program == 0:
        try:
            exec_program(cfg, status_fd)
        except BaseException as e:  # noqa: BLE001 - anything before execve is a failed isolation step
            report(status_fd, f"fail {e if isinstance(e, StepFailed) else 'exec: ' + repr(e)}")
        os._exit(127)
    report(status_fd, "ready")
    os.close(status_fd)
    for fd in (1, 2):  # the program alone holds the output pipes now: EOF when its namespace is gone
        os.dup2(os.open("/dev/null", os.O_WRONLY), fd)
    return wait_for(program)


def main() -> int:
    control_fd, status_fd = int(sys.argv[1]), int(sys.argv[2])
    control = os.fdopen(control_fd, "r")
    cfg = json.loads(control.readline())
    try:
        # run_program's thread waits for this process, so the signal comes only if the parent dies
        check("parent-death signal", libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0))
        if os.getppid() != cfg["parent"]:
            raise StepFailed("the parent ended before the run started")
        flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        if cfg.get("fail_step") == "unshare":  # lets the tests see a failed step end the run
            raise StepFailed("unshare: simulated failure")
        check("unshare (user, mount, pid, net, ipc, uts namespaces)", libc.unshare(flags))
        report(status_fd, "unshared")
        if control.readline().strip() != "mapped":
            raise StepFailed("uid/gid maps: the parent did not write them")
        if cfg["drop_groups"]:
            os.setgroups([])
        os.setresgid(INSIDE_ID, INSIDE_ID, INSIDE_ID)
        os.setresuid(INSIDE_ID, INSIDE_ID, INSIDE_ID)
        # The kernel clears the parent-death signal when the outside uid changes (root's runs take a uid
        # of their own): arm it again, then check that the parent did not end in between.
        check("parent-death signal after the uid change", libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0))
        if os.getppid() != cfg["parent"]:
            raise StepFailed("the parent ended during setup")
        init = os.fork()
        if init == 0:
            try:
                os._exit(run_init(cfg, status_fd))
            except BaseException as e:  # noqa: BLE001
                report(status_fd, f"fail {e if isinstance(e, StepFailed) else 'init: ' + repr(e)}")
                os._exit(126)
        report(status_fd, f"init {init}")
        os.close(status_fd)
        for fd in (1, 2):
            os.dup2(os.open("/dev/null", os.O_WRONLY), fd)
        _, status = os.waitpid(init, 0)
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    except Exception as e:  # noqa: BLE001 - whatever stops the launcher is a failed isolation step
        report(status_fd, f"fail {e if isinstance(e, StepFailed) else 'launcher: ' + repr(e)}")
        return 126


if __name__ == "__main__":
    sys.exit(main())
