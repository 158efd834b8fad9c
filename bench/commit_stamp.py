#!/usr/bin/env python3
"""The commit a benchmark measured: `git rev-parse --short HEAD`, plus `-dirty` when the work
tree had uncommitted changes (tracked or untracked, ignored files aside) when the run started.
bench/README.md and bench/charts/ do not count: they are where the benchmark scripts write their
results (tables and charts), and a result written by an earlier run must not mark the next one
dirty.

    python3 bench/commit_stamp.py        prints the stamp (scale.sh takes it at its start)
    from commit_stamp import commit_stamp (compare.py)
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_FILE = "bench/README.md"
CHARTS_DIRECTORY = "bench/charts/"


def commit_stamp(root=ROOT):
    def git(*arguments):
        return subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changes = [line[3:] for line in git("status", "--porcelain", "--untracked-files=all").splitlines()]
    except (OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"commit_stamp: cannot read the git state of {root}: {error}")
    dirty = any(path.strip('"') != RESULTS_FILE and not path.strip('"').startswith(CHARTS_DIRECTORY) for path in changes)
    return commit + ("-dirty" if dirty else "")


if __name__ == "__main__":
    print(commit_stamp())
