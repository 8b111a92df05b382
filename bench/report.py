#!/usr/bin/env python3
"""Medians and sievegate/Dovecot ratios from bench/run's results.jsonl, as Markdown tables.

Each line of the input is one lmtp-load run plus what bench/run measured around it
(label = server, repeat, CPU ticks of the whole machine and of clamd, and for sievegate its
peak RSS and its own CPU ticks). Servers: dovecot, sievegate (scanning every message with
clamd) and sievegate-noscan (`[scanner] enabled = false`).
"""
import json
import statistics
import sys
from collections import defaultdict

NAN = float("nan")


def human(size):
    if size >= 1 << 20:
        return f"{size / (1 << 20):g} MB"
    if size >= 1 << 10:
        return f"{size / (1 << 10):g} KB"
    return f"{size} B"


def med(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else NAN


def per_thousand(runs, key):
    """Median CPU seconds per 1000 delivered messages of the `key` tick counter."""
    values = [
        r[key] / r["hz"] / max(r["delivered"], 1) * 1000 for r in runs if key in r
    ]
    return statistics.median(values) if values else NAN


def ratio(a, b):
    return a / b if b and b == b and a == a else NAN


def main(path):
    cells = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            cells[(r["size"], r["rcpts"], r["concurrency"])][r["label"]].append(r)

    print("Throughput and latency (medians; ratio = sievegate / Dovecot, same run):\n")
    print("| size | rcpts | conc | Dovecot msg/s | sievegate msg/s | ratio "
          "| sievegate no-scan msg/s | ratio | Dovecot p99 ms | sievegate p99 ms "
          "| p99 ratio | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (size, rcpts, conc) in sorted(cells):
        runs = cells[(size, rcpts, conc)]
        dc, sg, ns = (runs.get(k, []) for k in ("dovecot", "sievegate", "sievegate-noscan"))
        dc_rate, sg_rate, ns_rate = (med(x, "msgs_per_s") for x in (dc, sg, ns))
        dc_p99, sg_p99 = med(dc, "p99_ms"), med(sg, "p99_ms")
        errors = sum(r["errors"] for r in dc + sg + ns)
        print(f"| {human(size)} | {rcpts} | {conc} | {dc_rate:.0f} | {sg_rate:.0f} | "
              f"{ratio(sg_rate, dc_rate):.2f}x | {ns_rate:.0f} | {ratio(ns_rate, dc_rate):.2f}x | "
              f"{dc_p99:.1f} | {sg_p99:.1f} | {ratio(sg_p99, dc_p99):.2f} | {errors} |")

    print("\nCPU seconds per 1000 messages (whole machine: server + load generator + kernel "
          "+ clamd) and sievegate's peak RSS:\n")
    print("| size | rcpts | conc | Dovecot machine | sievegate machine | sievegate process "
          "| clamd | no-scan machine | sievegate peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (size, rcpts, conc) in sorted(cells):
        runs = cells[(size, rcpts, conc)]
        dc, sg, ns = (runs.get(k, []) for k in ("dovecot", "sievegate", "sievegate-noscan"))
        rss = max((r["rss_kb"] for r in sg if "rss_kb" in r), default=NAN) / 1024
        print(f"| {human(size)} | {rcpts} | {conc} | {per_thousand(dc, 'machine_ticks'):.2f} | "
              f"{per_thousand(sg, 'machine_ticks'):.2f} | {per_thousand(sg, 'cpu_ticks'):.2f} | "
              f"{per_thousand(sg, 'clamd_ticks'):.2f} | {per_thousand(ns, 'machine_ticks'):.2f} | "
              f"{rss:.0f} |")
    n = max((len(v) for c in cells.values() for v in c.values()), default=0)
    print(f"\nMedians of {n} runs per server and cell, servers alternating within each repeat.")


if __name__ == "__main__":
    main(sys.argv[1])
