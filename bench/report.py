#!/usr/bin/env python3
"""Medians and ratios from bench/run's results.jsonl, as Markdown tables.

Each line of the input is one lmtp-load run plus what bench/run measured around it
(label = server, repeat, CPU ticks of the whole machine and of clamd, and for sievegate its
peak RSS and its own CPU ticks). Servers, each a column when the run has it:
dovecot (Dovecot LMTP + Pigeonhole), sievegate (scanning every message with clamd),
sievegate-noscan (`[scanner] enabled = false`), sievegate-base (sievegate built at the
--baseline revision), amavisd (amavisd-new + clamd in front of the same Dovecot, driven
pipelined) and amavisd-nopipe (the same, driven without pipelining); sievegate-pg (the state
in PostgreSQL) and sievegate-pg2 (two processes on that one database), whose stack CPU
includes the PostgreSQL server's.

Only ratios within one run mean anything (the disk's fsync rate swings 2-4x between
minutes), so every table after the first is ratios of medians from this run.
"""
import json
import statistics
import sys
from collections import defaultdict

NAN = float("nan")

# Column order and the names the tables print.
SERVERS = [
    ("dovecot", "Dovecot"),
    ("amavisd", "amavisd+Dovecot"),
    ("amavisd-nopipe", "amavisd+Dovecot no-pipe"),
    ("sievegate", "sievegate"),
    ("sievegate-base", "sievegate-base"),
    ("sievegate-noscan", "sievegate no-scan"),
    ("sievegate-pg", "sievegate-pg"),
    ("sievegate-pg2", "sievegate-pg2"),
]
NAMES = dict(SERVERS)


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


def stack_ticks(server, r):
    """CPU ticks of the processes doing the work for `server`'s column: the server's process
    tree, the Dovecot behind amavisd, and clamd where the column scans. Unlike the machine's
    ticks, this leaves out the load generator and anything else running on the machine."""
    if server == "dovecot":
        keys = ["dovecot_ticks"]
    elif server.startswith("amavisd"):
        keys = ["amavisd_ticks", "dovecot_ticks", "clamd_ticks"]
    else:
        keys = ["cpu_ticks", "clamd_ticks"]
        if server.startswith("sievegate-pg"):
            keys.append("pg_ticks")
    if any(k not in r for k in keys):
        return None
    return sum(r[k] for k in keys)


def stack_per_thousand(server, runs, key=None):
    """Median CPU seconds per 1000 delivered messages of the stack (or of one `key`)."""
    values = []
    for r in runs:
        ticks = stack_ticks(server, r) if key is None else r.get(key)
        if ticks is not None:
            values.append(ticks / r["hz"] / max(r["delivered"], 1) * 1000)
    return statistics.median(values) if values else NAN


def ratio(a, b):
    return a / b if b and b == b and a == a else NAN


def fmt_ratio(x):
    return "-" if x != x else f"{x:.2f}x"


def fmt(x, digits=0):
    return "-" if x != x else f"{x:.{digits}f}"


def table(head, rows):
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def main(path):
    cells = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            cells[(r["size"], r["rcpts"], r["concurrency"])][r["label"]].append(r)
    present = {label for c in cells.values() for label in c}
    servers = [s for s, _ in SERVERS if s in present]
    servers += sorted(present - set(servers))
    keys = sorted(cells)

    def cell_head():
        return ["size", "rcpts", "conc"]

    def cell_row(key):
        size, rcpts, conc = key
        return [human(size), str(rcpts), str(conc)]

    def rate(key, server):
        return med(cells[key].get(server, []), "msgs_per_s")

    def p99(key, server):
        return med(cells[key].get(server, []), "p99_ms")

    print("Throughput, msg/s (medians):\n")
    table(cell_head() + [NAMES.get(s, s) for s in servers] + ["errors"],
          [cell_row(k) + [fmt(rate(k, s)) for s in servers]
           + [str(sum(r["errors"] for runs in cells[k].values() for r in runs))]
           for k in keys])

    others = [s for s in servers if s != "dovecot"]
    if "dovecot" in servers and others:
        print("Throughput against Dovecot alone (server / Dovecot, same run):\n")
        table(cell_head() + [NAMES.get(s, s) for s in others],
              [cell_row(k) + [fmt_ratio(ratio(rate(k, s), rate(k, "dovecot")))
                              for s in others] for k in keys])

    amavis = [s for s in ("amavisd", "amavisd-nopipe") if s in servers]
    if "sievegate" in servers and amavis:
        head = cell_head() + [f"sievegate / {NAMES[a]}" for a in amavis]
        if len(amavis) == 2:
            head.append("amavisd no-pipe / pipelined")
        head += [f"{NAMES[a]} p99 ms" for a in amavis] + ["sievegate p99 ms"]
        rows = []
        for k in keys:
            row = cell_row(k) + [fmt_ratio(ratio(rate(k, "sievegate"), rate(k, a)))
                                 for a in amavis]
            if len(amavis) == 2:
                row.append(fmt_ratio(ratio(rate(k, "amavisd-nopipe"), rate(k, "amavisd"))))
            row += [fmt(p99(k, a), 1) for a in amavis] + [fmt(p99(k, "sievegate"), 1)]
            rows.append(row)
        print("sievegate against amavisd-new + clamd + Dovecot (the stack doing this work "
              "today; throughput ratios, same run):\n")
        table(head, rows)

    if "sievegate" in servers and "sievegate-base" in servers:
        print("Old vs new (sievegate / sievegate-base, same run; 1.00x = no change):\n")
        table(cell_head() + ["base msg/s", "new msg/s", "throughput ratio", "base p99 ms",
                             "new p99 ms", "p99 ratio"],
              [cell_row(k) + [fmt(rate(k, "sievegate-base")), fmt(rate(k, "sievegate")),
                              fmt_ratio(ratio(rate(k, "sievegate"), rate(k, "sievegate-base"))),
                              fmt(p99(k, "sievegate-base"), 1), fmt(p99(k, "sievegate"), 1),
                              fmt(ratio(p99(k, "sievegate"), p99(k, "sievegate-base")), 2)]
               for k in keys])

    pg = [s for s in ("sievegate-pg", "sievegate-pg2") if s in servers]
    if "sievegate" in servers and pg:
        print("PostgreSQL against SQLite (throughput / sievegate's with SQLite, same run; "
              "1.00x = no cost):\n")
        table(cell_head() + [f"{NAMES[s]} / sievegate" for s in pg]
              + [f"{NAMES[s]} errors" for s in pg],
              [cell_row(k) + [fmt_ratio(ratio(rate(k, s), rate(k, "sievegate"))) for s in pg]
               + [str(sum(r["errors"] for r in cells[k].get(s, []))) for s in pg]
               for k in keys])

    print("p99 latency, ms (medians; from MAIL to the last recipient's reply):\n")
    table(cell_head() + [NAMES.get(s, s) for s in servers],
          [cell_row(k) + [fmt(p99(k, s), 1) for s in servers] for k in keys])

    print("CPU seconds per 1000 messages of the whole machine (server, clamd, load generator "
          "and kernel together), of clamd alone, and sievegate's own CPU and peak RSS:\n")
    head = cell_head() + [f"{NAMES.get(s, s)} machine" for s in servers]
    head += [f"{NAMES.get(s, s)} clamd" for s in servers if s != "dovecot"
             and not s.endswith("noscan")]
    sg = [s for s in servers if s.startswith("sievegate")]
    head += [f"{NAMES[s]} process" for s in sg] + [f"{NAMES[s]} peak RSS MB" for s in sg]
    rows = []
    for k in keys:
        runs = cells[k]
        row = cell_row(k) + [fmt(per_thousand(runs.get(s, []), "machine_ticks"), 2)
                             for s in servers]
        row += [fmt(per_thousand(runs.get(s, []), "clamd_ticks"), 2) for s in servers
                if s != "dovecot" and not s.endswith("noscan")]
        row += [fmt(per_thousand(runs.get(s, []), "cpu_ticks"), 2) for s in sg]
        row += [fmt(max((r["rss_kb"] for r in runs.get(s, []) if "rss_kb" in r),
                        default=NAN) / 1024) for s in sg]
        rows.append(row)
    table(head, rows)

    have_stack = any("dovecot_ticks" in r for c in cells.values() for runs in c.values()
                     for r in runs)
    if have_stack:
        print("CPU seconds per 1000 messages of the stack alone (its processes and the ones "
              "they fork; amavisd's column includes its Dovecot and clamd, sievegate's its "
              "clamd; no load generator, no other load of the machine):\n")
        head = cell_head() + [NAMES.get(s, s) for s in servers]
        if "sievegate" in servers:
            head += [f"{NAMES[a]} / sievegate" for a in amavis] + (
                ["Dovecot / sievegate"] if "dovecot" in servers else [])
        head += [f"{NAMES[a]}: amavisd, Dovecot, clamd" for a in amavis]
        rows = []
        for k in keys:
            runs = cells[k]
            row = cell_row(k) + [fmt(stack_per_thousand(s, runs.get(s, [])), 2)
                                 for s in servers]
            if "sievegate" in servers:
                sg_cpu = stack_per_thousand("sievegate", runs.get("sievegate", []))
                row += [fmt_ratio(ratio(stack_per_thousand(a, runs.get(a, [])), sg_cpu))
                        for a in amavis + (["dovecot"] if "dovecot" in servers else [])]
            row += [", ".join(fmt(stack_per_thousand(a, runs.get(a, []), key), 2)
                              for key in ("amavisd_ticks", "dovecot_ticks", "clamd_ticks"))
                    for a in amavis]
            rows.append(row)
        table(head, rows)

    n = max((len(v) for c in cells.values() for v in c.values()), default=0)
    total = sum(len(v) for c in cells.values() for v in c.values())
    print(f"Medians of {n} runs per server and cell ({total} runs), servers alternating "
          "within each repeat.")


if __name__ == "__main__":
    main(sys.argv[1])
