"""What a checkpoint's meta.json records about how and where it was made."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys

import torch

from zoo.pretrained import REPO_ROOT


def git_sha() -> str:
    """HEAD's sha, with '-dirty' when tracked files differ from it. Outside git (a copy of the tree sent
    to another machine) the sha the copy was made from, given as ZOO_GIT_SHA, else 'unknown'."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("ZOO_GIT_SHA", "unknown")


DOCUMENTATION = (".md", ".png", ".svg", ".jpg", ".gif", ".csv", ".jsonl", ".txt")  # changes that do not change a figure


def uncommitted_code(root=REPO_ROOT, ignore: tuple = ()) -> list[str]:
    """Tracked files (paths relative to ``root``) that differ from HEAD, documentation and ``ignore``
    left out: a figure measured with any of them changed belongs to no commit. Outside git: []."""
    try:
        lines = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return []
    paths = [line[3:].split(" -> ")[-1] for line in lines if line.strip()]
    return [p for p in paths if not p.endswith(DOCUMENTATION) and p not in ignore]


def hardware() -> dict:
    info = {"machine": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def command_line() -> str:
    """The command that is running, relative to the repo root, as a user would type it."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO_ROOT)
    return shlex.join(["python", script, *sys.argv[1:]])
