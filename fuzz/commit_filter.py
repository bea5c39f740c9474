#!/usr/bin/env python3
"""Removes from a corpus folder every input that carries 96 bytes in a row of
a file under ../shared/testdata (SITEWATCH_SHARED_TESTDATA): those captures
are read where they lie, never committed (fuzz/cmin.sh)."""

import os
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
SHARED = os.environ.get("SITEWATCH_SHARED_TESTDATA") or os.path.join(os.path.dirname(ROOT), "shared", "testdata")
WINDOW = 64


def shared_chunks():
    chunks = set()
    for folder, _, names in os.walk(SHARED):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read()
            for i in range(0, max(len(data) - WINDOW + 1, 0), WINDOW // 2):
                chunks.add(data[i:i + WINDOW])
    return chunks


def main():
    folder = sys.argv[1]
    if not os.path.isdir(SHARED):
        print(
            f"commit_filter: SKIPPED: {SHARED} (../shared/testdata) not present: no seed came from it, "
            "so no input can carry it; nothing filtered",
            file=sys.stderr,
        )
        return
    chunks = shared_chunks()
    dropped = 0
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
            data = f.read()
        # Every shared chunk is taken at a stride of half a window, so any run
        # of WINDOW * 1.5 shared bytes contains one whole: look for each window.
        if any(data[i:i + WINDOW] in chunks for i in range(0, max(len(data) - WINDOW + 1, 0))):
            os.remove(path)
            dropped += 1
    print(f"commit_filter: {folder}: {dropped} inputs with shared test data left out", file=sys.stderr)


if __name__ == "__main__":
    main()
