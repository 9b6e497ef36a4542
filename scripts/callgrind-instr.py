#!/usr/bin/env python3
"""callgrind-instr.py - per-instruction readings of a callgrind profile.

    callgrind-instr.py inlined PROFILE BINARY FUNCTION FILE
    callgrind-instr.py listing PROFILE BINARY SYMBOL PER

PROFILE is a callgrind output written with --dump-instr=yes; BINARY the program it
profiled (with line tables: the release profile's `debug = "line-tables-only"` keeps
the inlining records).

`inlined` prints the total Ir of the instructions whose inlining chain, as
`addr2line -i` reads it from BINARY, has a frame named FUNCTION in a source file whose
path ends with FILE. scripts/callgrind.sh uses it to count the in-memory generator's
`fill` (inlined into the transport's receive) apart from the rest of the receive, with
no change to the code measured: an out-of-line `fill` would cost a call per burst.

`listing` prints every instruction of BINARY's functions whose name contains SYMBOL
that ran (not those of shared libraries they called), with its Ir divided by PER (e.g. the requests measured: instructions per request),
its disassembly and source line (`objdump -d -l`), in address order, then the total:
where the count goes, instruction by instruction.
"""
import os
import re
import subprocess
import sys


def costs(path, binary, symbol=None):
    """Ir per instruction address (exclusive costs; call lines skipped) of the code in
    `binary` (callgrind's addresses are relative to their object: those of shared
    libraries, e.g. libc's memcpy, are left out, not mixed in), of every function or,
    with `symbol`, of the functions whose name contains it."""
    ir = {}
    positions = ["line"]
    last = {}
    skip_next = False
    names, objects = {}, {}
    binary = os.path.realpath(binary)
    in_binary, in_symbol = False, symbol is None
    for line in open(path):
        line = line.rstrip("\n")
        m = re.match(r"^(c?)(fn|ob)=\((\d+)\)(?: (.*))?$", line)
        if m:
            table = names if m.group(2) == "fn" else objects
            if m.group(4):
                table[m.group(3)] = m.group(4)
            if not m.group(1):  # fn= / ob=: the costs that follow are this one's
                if m.group(2) == "ob":
                    in_binary = os.path.realpath(objects.get(m.group(3), "")) == binary
                else:
                    in_symbol = symbol is None or symbol in names.get(m.group(3), "")
            continue
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
        if in_binary and in_symbol and len(toks) > len(positions) and "instr" in last:
            a = last["instr"]
            ir[a] = ir.get(a, 0) + int(toks[len(positions)])
    return ir


def inlined(profile, binary, function, file):
    ir = costs(profile, binary)
    if not ir:
        sys.exit(f"{profile}: no per-instruction costs in {binary} "
                 "(run callgrind with --dump-instr=yes, on that binary)")
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


def listing(profile, binary, symbol, per):
    ir = costs(profile, binary, symbol)
    if not ir:
        sys.exit(f"{profile}: no per-instruction costs for {symbol!r} in {binary}")
    dis = subprocess.run(["objdump", "-d", "-l", "--no-show-raw-insn", "-C", binary],
                         capture_output=True, text=True, check=True).stdout
    src = ""
    for line in dis.splitlines():
        if line.startswith("/"):
            src = line.rsplit("/", 1)[-1].split(" ")[0]
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(.*)$", line)
        if m and int(m.group(1), 16) in ir:
            a = int(m.group(1), 16)
            print(f"{ir[a] / per:8.2f}  {a:8x}  {m.group(2)[:60]:60s}  {src}")
    print(f"{sum(ir.values()) / per:8.2f}  total")


def main():
    args = sys.argv[1:]
    if len(args) == 5 and args[0] == "inlined":
        inlined(*args[1:])
    elif len(args) == 5 and args[0] == "listing":
        listing(args[1], args[2], args[3], float(args[4]))
    else:
        sys.exit("usage: callgrind-instr.py inlined PROFILE BINARY FUNCTION FILE\n"
                 "       callgrind-instr.py listing PROFILE BINARY SYMBOL PER")


if __name__ == "__main__":
    main()
