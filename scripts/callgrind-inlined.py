#!/usr/bin/env python3
"""callgrind-inlined.py - instructions a callgrind profile spent in code inlined from a
given function.

    callgrind-inlined.py PROFILE BINARY FUNCTION FILE

PROFILE is a callgrind output written with --dump-instr=yes; BINARY the program it
profiled (with line tables: the release profile's `debug = "line-tables-only"` keeps
the inlining records). Prints the total Ir of the instructions whose inlining chain, as
`addr2line -i` reads it from BINARY, has a frame named FUNCTION in a source file whose
path ends with FILE. Used by scripts/callgrind.sh to count the in-memory generator's
`fill` (inlined into the transport's receive) apart from the rest of the receive, with
no change to the code measured: an out-of-line `fill` would cost a call per burst.
"""
import re
import subprocess
import sys


def costs(path):
    """Ir per instruction address (exclusive costs; call lines skipped)."""
    ir = {}
    positions = ["line"]
    last = {}
    skip_next = False
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("positions:"):
            positions = line.split()[1:]
            last = {p: 0 for p in positions}
            continue
        if line.startswith("calls="):
            skip_next = True  # the next cost line is the call's inclusive cost
            continue
        if not line or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        toks = line.split()
        for i, p in enumerate(positions):
            t = toks[i]
            if t == "*":
                v = last[p]
            elif t[0] in "+-":
                v = last[p] + int(t, 0)
            else:
                v = int(t, 0)
            last[p] = v
        if skip_next:
            skip_next = False
            continue
        if len(toks) > len(positions) and "instr" in last:
            a = last["instr"]
            ir[a] = ir.get(a, 0) + int(toks[len(positions)])
    return ir


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    profile, binary, function, file = sys.argv[1:]
    ir = costs(profile)
    if not ir:
        sys.exit(f"{profile}: no per-instruction costs (run callgrind with --dump-instr=yes)")
    addrs = sorted(ir)
    # -a prints each address before its chain of frames (function, then file:line).
    out = subprocess.run(
        ["addr2line", "-a", "-i", "-f", "-C", "-e", binary],
        input="\n".join(f"{a:#x}" for a in addrs),
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    total = 0
    current, frames = None, []

    def flush():
        nonlocal total
        if current is None:
            return
        for fn, loc in zip(frames[0::2], frames[1::2]):
            path = loc.rsplit(":", 1)[0]
            if fn == function and path.endswith(file):
                total += ir.get(current, 0)
                return

    for line in out:
        if re.fullmatch(r"0x[0-9a-f]+", line):
            flush()
            current, frames = int(line, 16), []
        else:
            frames.append(line)
    flush()
    if total == 0:
        sys.exit(f"{profile}: no instruction inlined from {function} in {file} "
                 f"(does {binary} have line tables? the release profile keeps them)")
    print(total)


if __name__ == "__main__":
    main()
