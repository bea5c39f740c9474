#!/usr/bin/env python3
"""Prints FUZZING.md's table row for each target from fuzz/logs/<target>.log
(written by fuzz/run.sh): executions, seconds, exec/s, the final cov/ft and
corpus, and whether the run ended on a finding."""

import glob
import os
import re

FUZZ = os.path.dirname(os.path.abspath(__file__))

for path in sorted(glob.glob(os.path.join(FUZZ, "logs", "*.log"))):
    text = open(path, errors="replace").read()
    name = os.path.basename(path)[:-4]
    stat = dict(re.findall(r"^stat::(\w+):\s+(\d+)", text, re.M))
    done = re.search(r"^Done (\d+) runs in (\d+) second", text, re.M)
    last = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", text)
    cov, ft, corp, size = last[-1] if last else ("?", "?", "?", "?")
    found = "crash" if re.search(r"==\d+== ERROR|panicked at|deadly signal|Test unit written", text) else "none"
    secs = done.group(2) if done else "?"
    print(
        f"| `{name}` | {int(stat.get('number_of_executed_units', 0)):,} | {secs} | "
        f"{stat.get('average_exec_per_sec', '?')} | {cov} / {ft} | {corp} ({size}) | {found} |"
    )
