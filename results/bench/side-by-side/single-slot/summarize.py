#!/usr/bin/env python3
"""summarize.py RUN.txt... - per bench and build, criterion's point estimates (ns per
request) of alternate.sh's output lines, in run order, and their median over the
fast-mode samples (below 60 ns for saturation, 300 ns for the pipeline: the VM's slow
mode gives 80-150 and 500-650 ns, for either build)."""
import collections
import re
import statistics
import sys

SLOW = {"saturation": 60.0, "pipeline": 300.0}
for path in sys.argv[1:]:
    d = collections.defaultdict(list)
    for line in open(path):
        m = re.match(r"(\d+) (\w+) (\S+) .*?time: \[([\d.]+) (\S+) ([\d.]+) (\S+)", line)
        if not m:
            continue
        v = float(m.group(6)) * (1000.0 if m.group(7) == "µs" else 1.0)
        d[(m.group(3), m.group(2))].append(v)
    print(f"== {path}")
    for (bench, build), vs in sorted(d.items()):
        fast = [v for v in vs if v < SLOW[bench.split("/")[0]]]
        med = f"{statistics.median(fast):.1f}" if fast else "-"
        print(f"{bench:18} {build:7} fast-mode median {med:>6} ({len(fast)} of {len(vs)})  "
              + " ".join(f"{v:.1f}" for v in vs))
