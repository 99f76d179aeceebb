#!/usr/bin/env python3
"""Sums BRAID_TRACE_CONV_TUNE's lines (stderr of a `braid tune`): where convolution tuning's host
time went (cuDNN's ranking, the candidates' first runs, timed eager runs, captures, replays) and
how many candidates there were (with BRAID_CONV_LEGACY=implicit, the legacy algorithms deferred
and the time spent on those timed), by SM count; then by kind of candidate (a legacy algorithm,
fused or plain, braid's direct kernel, an engine configuration by SM target, fused or plain, and
rank): how many were timed, ruled out by their eager run or failed, their host time, and how many
won.

Usage: python3 bench/conv_trace.py LOG...
"""
import collections
import re
import sys

LINE = re.compile(
    r"on (\d+) SMs: ranking ([\d.]+) ms, (\d+) algorithms ([\d.]+) ms, (\d+) engines ([\d.]+) ms, "
    r"(\d+) deferred ([\d.]+) ms(?: \(not timed\))? \(first runs ([\d.]+), eager ([\d.]+), graphs "
    r"([\d.]+), replays ([\d.]+); (\d+) ruled out eagerly\), best (-?\d+) \(([\d.]+) ms\)")
FIELDS = ["convs", "ranking", "algorithms", "algorithms_ms", "engines", "engines_ms", "deferred",
          "deferred_ms", "first", "eager", "graphs", "replays", "pruned", "best_ms"]
COUNTS = ("convs", "algorithms", "engines", "deferred", "pruned")
CANDIDATE = re.compile(
    r"candidate (-?\d+) on (\d+) SMs: ([\d.]+) ms .*\), (timed|ruled out|failed),")

# Algorithm ids (csrc/cuda/conv.cu, conv_engine.cuh): 0..7 cuDNN's legacy algorithms, 8 braid's
# direct kernel, 16 + a the legacy algorithm a never fused, engine ids from 32.
ALGO_PLAIN, ALGO_DIRECT, ENGINE_BASE, ENGINE_RANKS = 16, 8, 32, 8


def kind(algo):
    if algo == ALGO_DIRECT:
        return "direct"
    if algo >= ENGINE_BASE:
        v = algo - ENGINE_BASE
        fused = "fused" if (v // ENGINE_RANKS) % 2 else "plain"
        return f"engine @{v // (2 * ENGINE_RANKS)} {fused} r{v % ENGINE_RANKS}"
    if algo >= ALGO_PLAIN:
        return f"legacy {algo - ALGO_PLAIN} plain"
    return f"legacy {algo}"


def main():
    for path in sys.argv[1:]:
        sums = collections.defaultdict(collections.Counter)
        kinds = collections.defaultdict(collections.Counter)
        with open(path, errors="replace") as log:
            for line in log:
                c = CANDIDATE.search(line)
                if c:
                    algo, sms, ms, outcome = int(c[1]), int(c[2]), float(c[3]), c[4]
                    k = kinds[(sms, kind(algo))]
                    k["candidates"] += 1
                    k[outcome] += 1
                    k["ms"] += ms
                    continue
                m = LINE.search(line)
                if not m:
                    continue
                sms, *values = m.groups()
                best = int(values.pop(-2))
                total = sums[int(sms)]
                total["convs"] += 1
                kinds[(int(sms), kind(best))]["won"] += 1
                for name, value in zip(FIELDS[1:], values):
                    total[name] += float(value)
        for sms, total in sorted(sums.items()):
            print(f"== {path}, {sms} SMs: " + ", ".join(
                f"{name} {total[name]:.0f}" if name in COUNTS
                else f"{name} {total[name] / 1000:.2f} s" if name != "best_ms"
                else f"best replays {total[name]:.1f} ms" for name in FIELDS))
        for (sms, name), k in sorted(kinds.items(), key=lambda kv: (kv[0][0], -kv[1]["ms"])):
            print(f"   {sms} SMs {name:<22} {k['candidates']:5d} candidates ({k['timed']} timed, "
                  f"{k['ruled out']} ruled out, {k['failed']} failed), {k['ms'] / 1000:6.2f} s, "
                  f"won {k['won']}")


if __name__ == "__main__":
    main()
