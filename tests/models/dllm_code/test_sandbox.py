"""The sandbox that runs model-written code: it must contain what a bad program tries."""

import os
from pathlib import Path

import pytest

from models.dllm_code.humaneval import humaneval_program, load_problems
from models.dllm_code.sandbox import run_program

REPO = Path(__file__).resolve().parents[3]


def test_a_correct_and_a_wrong_humaneval_solution():
    problem = load_problems()[0]
    good = run_program(humaneval_program(problem, problem["canonical_solution"]))
    assert good.passed, good.stderr
    bad = run_program(humaneval_program(problem, "    return not True\n"))
    assert bad.status == "failed" and "AssertionError" in bad.stderr


def test_infinite_loop_is_killed_at_the_timeout():
    result = run_program("while True:\n    pass\n", timeout=1.0)
    assert result.status == "timeout" and result.seconds < 5


def test_memory_bomb_is_stopped():
    result = run_program("x = bytearray(8 * 1024**3)\n", memory_mb=256)
    assert result.status == "failed" and "MemoryError" in result.stderr


def test_fork_bomb_is_stopped():
    source = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run_program(source, timeout=2.0, max_procs=16)
    assert result.status in ("timeout", "failed") and result.seconds < 10


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops to 'nobody' only when started as root")
def test_cannot_write_into_the_repo():
    target = REPO / "sandbox_was_here.txt"
    result = run_program(f"open({str(target)!r}, 'w').write('x')\n")
    assert result.status == "failed" and not target.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root")
def test_no_network():
    source = ("import socket\ns = socket.socket()\ns.settimeout(2)\n"
              "s.connect(('127.0.0.1', 9))\n")
    result = run_program(source)
    assert result.status == "failed" and "unreachable" in result.stderr  # not "refused": no loopback
