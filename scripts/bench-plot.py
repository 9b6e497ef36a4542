#!/usr/bin/env python3
"""bench-plot.py - tables and SVG figures for results/README.md from the benchmarks.

    scripts/bench-plot.py CRITERION_DIR OUT_DIR

Reads every criterion estimate under CRITERION_DIR (`$CARGO_TARGET_DIR/criterion`),
OUT_DIR/callgrind.csv (scripts/callgrind.sh) and OUT_DIR/machine.txt, and writes
OUT_DIR/criterion.csv, OUT_DIR/summary.md and the SVG figures. Standard library only.
"""

import csv
import json
import os
import sys
from html import escape


def load_criterion(root):
    rows = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            b = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            e = json.load(f)
        per = 1
        tp = b.get("throughput") or {}
        if isinstance(tp, dict) and "Elements" in tp:
            per = tp["Elements"]
        key = (b["group_id"], b.get("function_id") or "", b.get("value_str") or "")
        m = e["mean"]
        rows[key] = {
            "mean": m["point_estimate"] / per,
            "lo": m["confidence_interval"]["lower_bound"] / per,
            "hi": m["confidence_interval"]["upper_bound"] / per,
            "median": e["median"]["point_estimate"] / per,
        }
    return rows


def get(rows, group, fn, val=""):
    return rows.get((group, fn, val))


def fmt_ns(r):
    """Median, then the mean and its 95 % confidence interval."""
    if r is None:
        return "n/a"
    return f"**{r['median']:.1f}** (mean {r['mean']:.1f}, {r['lo']:.1f}–{r['hi']:.1f})"


def mrps(r):
    """Millions per second, from the median time per element."""
    return 1e3 / r["median"] if r else None


def bars(path, title, items, unit, ref=None, ref_label="", legend=None):
    """Horizontal bar chart: items = [(label, value)] or [(label, value, parts)], the
    latter drawn as stacked segments of the lengths in `parts` (which sum to `value`),
    named in order by `legend`; optional reference line."""
    items = [(t[0], t[1], t[2] if len(t) > 2 else None) for t in items if t[1] is not None]
    if not items:
        return
    colours = ("#4878a8", "#a8c4e0", "#e0c890")
    split = any(parts is not None for _, _, parts in items)
    w, left, right, bar_h, gap, top = 760, 230, 210 if split else 90, 22, 8, 48
    key = 22 if legend else 0
    h = top + key + len(items) * (bar_h + gap) + 40
    vmax = max([v for _, v, _ in items] + ([ref] if ref else [])) * 1.05
    scale = (w - left - right) / vmax
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'font-family="sans-serif" font-size="13">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="24" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    if legend:
        x = 20
        for colour, name in zip(colours, legend):
            out.append(f'<rect x="{x}" y="{top - 4}" width="14" height="14" fill="{colour}"/>')
            out.append(f'<text x="{x + 20}" y="{top + 8}">{escape(name)}</text>')
            x += 36 + 6.6 * len(name)
    for i, (label, v, parts) in enumerate(items):
        y = top + key + i * (bar_h + gap)
        out.append(
            f'<text x="{left - 8}" y="{y + bar_h * 0.7}" text-anchor="end">{escape(label)}</text>'
        )
        segments = [(0, v, colours[0])]
        if parts is not None:
            segments, start = [], 0.0
            for length, colour in zip(parts, colours):
                segments.append((start, length, colour))
                start += length
        for start, length, colour in segments:
            if start > 0 and length <= 0:
                continue
            out.append(
                f'<rect x="{left + start * scale:.1f}" y="{y}" '
                f'width="{max(length * scale, 1):.1f}" height="{bar_h}" fill="{colour}"/>'
            )
        shown = [p for p in (parts or []) if p > 0]
        text = (f"{v:.1f} {unit}" if len(shown) < 2
                else f"{v:.1f} {unit} (" + " + ".join(f"{p:.1f}" for p in shown) + ")")
        out.append(f'<text x="{left + v * scale + 6:.1f}" y="{y + bar_h * 0.7}">{escape(text)}</text>')
    if ref:
        x = left + ref * scale
        out.append(
            f'<line x1="{x:.1f}" y1="{top + key - 6}" x2="{x:.1f}" y2="{h - 30}" stroke="#c03030" '
            f'stroke-dasharray="5,4" stroke-width="1.5"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{h - 14}" text-anchor="middle" fill="#c03030">'
            f"{escape(ref_label)}</text>"
        )
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    crit, out = sys.argv[1], sys.argv[2]
    rows = load_criterion(crit)
    with open(os.path.join(out, "criterion.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["group", "function", "value", "mean_ns", "ci_lo_ns", "ci_hi_ns", "median_ns"])
        for (g, fn, v), r in sorted(rows.items()):
            wr.writerow([g, fn, v] + [f"{r[k]:.3f}" for k in ("mean", "lo", "hi", "median")])

    cg = []
    cg_path = os.path.join(out, "callgrind.csv")
    if os.path.exists(cg_path):
        with open(cg_path) as f:
            cg = list(csv.DictReader(f))

    md = []
    # Rings.
    rt = [
        ("mailbox (2 lines)", get(rows, "ring-roundtrip", "mailbox")),
        ("persephone::duplex, 1 slot", get(rows, "ring-roundtrip", "duplex", "1")),
        ("rtrb, cap 8", get(rows, "ring-roundtrip", "rtrb", "8")),
        ("rtrb, cap 1", get(rows, "ring-roundtrip", "rtrb", "1")),
        ("crossbeam ArrayQueue, cap 8", get(rows, "ring-roundtrip", "crossbeam", "8")),
        ("crossbeam ArrayQueue, cap 1", get(rows, "ring-roundtrip", "crossbeam", "1")),
    ]
    ow = [
        ("mailbox (1 slot: one line there and back)", get(rows, "ring-oneway", "mailbox")),
        ("persephone::duplex, 64 out (job + completion)", get(rows, "ring-oneway", "duplex-64")),
        ("rtrb, read_chunk", get(rows, "ring-oneway", "rtrb-chunk")),
        ("rtrb, pop", get(rows, "ring-oneway", "rtrb-pop")),
        ("crossbeam ArrayQueue, pop", get(rows, "ring-oneway", "crossbeam-pop")),
    ]
    md.append("### Channel handoff between core 0 and core 1\n")
    md.append("Times are medians over criterion's samples (mean and its 95 % CI in brackets).\n")
    md.append("| channel | round trip, ns |")
    md.append("|---|---|")
    for l, r in rt:
        md.append(f"| {l} | {fmt_ns(r)} |")
    md.append("")
    md.append("| channel | one way (capacity 64), ns per item | M items/s |")
    md.append("|---|---|---|")
    for l, r in ow:
        md.append(f"| {l} | {fmt_ns(r)} | {mrps(r):.1f} |" if r else f"| {l} | n/a | |")
    md.append("")
    bars(os.path.join(out, "ring_roundtrip.svg"), "Round trip between core 0 and core 1 (lower is better)",
         [(l, r["median"] if r else None) for l, r in rt], "ns")
    bars(os.path.join(out, "ring_oneway.svg"), "One way, core 0 to core 1 (lower is better)",
         [(l, r["median"] if r else None) for l, r in ow], "ns/item")

    # Policies.
    md.append("### Policy decision per request (14 workers, bursts of 32)\n")
    md.append("| policy | 1 type | 4 types | 16 types |")
    md.append("|---|---|---|---|")
    pol_items = []
    for p in ("cfcfs", "dfcfs", "darc", "darc-dynamic"):
        cells = []
        for t in ("1", "4", "16"):
            r = get(rows, "policy", p, t)
            cells.append(f"{r['median']:.1f} ns" if r else "n/a")
            pol_items.append((f"{p}, {t} type{'s' if t != '1' else ''}", r["median"] if r else None))
        md.append(f"| {p} | " + " | ".join(cells) + " |")
    md.append("")
    bars(os.path.join(out, "policy.svg"), "Policy decision per request: push, next, pop, complete",
         pol_items, "ns")

    # Dispatcher.
    mb_rt = get(rows, "mailbox", "roundtrip")
    mb_ow = get(rows, "mailbox", "oneway")
    md.append("### Whole dispatcher, in-process (in-memory transport)\n")
    md.append("c-FCFS, DARC and `dfcfs-depth1` give the worker one request at a time: each "
              "request waits for the previous one's completion, so their physical limit is "
              "the mailbox *round trip*; d-FCFS (depth 64) pipelines, and its limit is the "
              "one-way handoff.\n")
    md.append("| run | ns per request | M requests/s | vs mailbox one-way rate | vs mailbox round-trip rate |")
    md.append("|---|---|---|---|---|")
    if mb_ow:
        md.append(f"| mailbox, one-way single-slot handoff (same run) | {fmt_ns(mb_ow)} | {mrps(mb_ow):.2f} | 1.00 | "
                  f"{(mrps(mb_ow) / mrps(mb_rt)) if mb_rt else float('nan'):.2f} |")
    if mb_rt:
        md.append(f"| mailbox, round trip (same run) | {fmt_ns(mb_rt)} | {mrps(mb_rt):.2f} | "
                  f"{(mrps(mb_rt) / mrps(mb_ow)) if mb_ow else float('nan'):.2f} | 1.00 |")
    disp_items = []
    for kind, label in (("pipeline", "1 worker"), ("saturation", "14 workers")):
        for p in ("darc", "cfcfs", "dfcfs", "dfcfs-depth1"):
            r = get(rows, kind, p, label)
            if not r:
                continue
            ow_ratio = f"{mrps(r) / mrps(mb_ow):.2f}" if (mb_ow and kind == "pipeline") else "—"
            rt_ratio = f"{mrps(r) / mrps(mb_rt):.2f}" if (mb_rt and kind == "pipeline") else "—"
            md.append(f"| {kind}: {p}, {label} | {fmt_ns(r)} | {mrps(r):.2f} | {ow_ratio} | {rt_ratio} |")
            disp_items.append((f"{kind}: {p}, {label}", mrps(r)))
    md.append("")
    bars(os.path.join(out, "dispatcher.svg"), "Dispatcher throughput (higher is better)",
         [("mailbox handoff (one way)", mrps(mb_ow) if mb_ow else None)] + disp_items, "Mrps",
         ref=20.0, ref_label="target: 20 Mrps saturation")

    before = {}
    before_path = os.path.join(out, "callgrind-before.csv")
    if os.path.exists(before_path):
        with open(before_path) as f:
            before = {r["config"]: r for r in csv.DictReader(f)}
    if cg:
        def parts(r):
            """The turn's three parts: the dispatcher's own code, the rest of the
            receive, the generator writing the requests; None for parts an older CSV
            does not have."""
            tot = float(r["instructions_per_request"])
            rx = float(r.get("transport_rx_per_request") or 0)
            gen = r.get("request_bytes_per_request")
            gen = float(gen) if gen else None
            return tot, tot - rx, (rx - gen if gen is not None else None), gen

        def cell(v):
            return f"{v:.1f}" if v is not None else ""

        md.append("### Instructions per request (valgrind --tool=callgrind, dispatcher turn only)\n")
        md.append("The turn includes the in-memory transport's `rx_burst` (our stand-in for a NIC "
                  "driver's receive), and within it the generator writing each request's bytes "
                  "(with a NIC that DMAs, the client's and the NIC's work; with kernel UDP or "
                  "memif, a copy on the dispatcher core). *Before*: `callgrind-before.csv`, the "
                  "same script on the code before the hot-path rework (total / own).\n")
        md.append("| configuration | instructions/request | without the generator | its own | "
                  "the rest of the receive | the generator | before (total / own) | "
                  "requests per turn |")
        md.append("|---|---|---|---|---|---|---|---|")
        for r in cg:
            tot, own, drv, gen = parts(r)
            b = before.get(r["config"])
            was = f"{parts(b)[0]:.1f} / {parts(b)[1]:.1f}" if b else ""
            md.append(f"| {r['config']} | {tot:.1f} | {cell(tot - gen if gen is not None else None)} | "
                      f"{own:.1f} | {cell(drv)} | {cell(gen)} | {was} | {r['requests_per_turn']} |")
        md.append("")
        bars(os.path.join(out, "callgrind.svg"), "Dispatcher instructions per request (callgrind)",
             [(r["config"], parts(r)[0],
               [p for p in parts(r)[1:] if p is not None] if parts(r)[3] is not None
               else [parts(r)[1], parts(r)[0] - parts(r)[1]])
              for r in cg], "instr",
             ref=150.0, ref_label="target: 150 (DARC, 4 types, batch 32)",
             legend=("the dispatcher's own", "the rest of the receive",
                     "the generator writing the requests"))

    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
