#!/usr/bin/env python3
"""Medians and sievegate/Dovecot ratios from bench/run's results.jsonl, as a Markdown table.

Each line of the input is one lmtp-load run plus what bench/run measured around it
(label = server, repeat, clamd CPU ticks, and for sievegate its peak RSS and CPU ticks).
"""
import json
import statistics
import sys
from collections import defaultdict


def human(size):
    if size >= 1 << 20:
        return f"{size / (1 << 20):g} MB"
    if size >= 1 << 10:
        return f"{size / (1 << 10):g} KB"
    return f"{size} B"


def main(path):
    cells = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            cells[(r["size"], r["rcpts"], r["concurrency"])][r["label"]].append(r)
    print("| size | rcpts | conc | Dovecot msg/s | sievegate msg/s | ratio | Dovecot p99 ms "
          "| sievegate p99 ms | p99 ratio | sievegate peak RSS MB | sievegate CPU s/1000 msg "
          "| clamd CPU s/1000 msg | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (size, rcpts, conc) in sorted(cells):
        runs = cells[(size, rcpts, conc)]
        dc = runs.get("dovecot", [])
        sg = runs.get("sievegate", [])

        def med(rs, key):
            return statistics.median(r[key] for r in rs) if rs else float("nan")

        dc_rate, sg_rate = med(dc, "msgs_per_s"), med(sg, "msgs_per_s")
        dc_p99, sg_p99 = med(dc, "p99_ms"), med(sg, "p99_ms")
        errors = sum(r["errors"] for r in dc + sg)
        if sg:
            rss = max(r["rss_kb"] for r in sg) / 1024
            per_k = [
                r["cpu_ticks"] / r["hz"] / max(r["delivered"], 1) * 1000 for r in sg
            ]
            clamd_k = [
                r["clamd_ticks"] / r["hz"] / max(r["delivered"], 1) * 1000 for r in sg
            ]
            cpu = statistics.median(per_k)
            clamd = statistics.median(clamd_k)
        else:
            rss = cpu = clamd = float("nan")
        ratio = sg_rate / dc_rate if dc and sg and dc_rate else float("nan")
        p99_ratio = sg_p99 / dc_p99 if dc and sg and dc_p99 else float("nan")
        print(f"| {human(size)} | {rcpts} | {conc} | {dc_rate:.0f} | {sg_rate:.0f} | "
              f"{ratio:.2f}x | {dc_p99:.1f} | {sg_p99:.1f} | {p99_ratio:.2f} | {rss:.0f} | "
              f"{cpu:.2f} | {clamd:.2f} | {errors} |")
    n = max((len(v) for c in cells.values() for v in c.values()), default=0)
    print(f"\nMedians of {n} runs per server and cell, servers alternating within each repeat.")


if __name__ == "__main__":
    main(sys.argv[1])
