#!/usr/bin/env python3
"""Sums BRAID_TRACE_CONV_TUNE's lines (stderr of a `braid tune`): where convolution tuning's host
time went (cuDNN's ranking, the candidates' first runs, timed eager runs, captures, replays) and
how many candidates there were (with BRAID_CONV_LEGACY=implicit, the legacy algorithms deferred
and the time spent on those timed), by SM count.

Usage: python3 bench/conv_trace.py LOG...
"""
import collections
import re
import sys

LINE = re.compile(
    r"on (\d+) SMs: ranking ([\d.]+) ms, (\d+) algorithms ([\d.]+) ms, (\d+) engines ([\d.]+) ms, "
    r"(\d+) deferred ([\d.]+) ms(?: \(not timed\))? \(first runs ([\d.]+), eager ([\d.]+), graphs ([\d.]+), replays ([\d.]+); (\d+) ruled out "
    r"eagerly\), best -?\d+ \(([\d.]+) ms\)")
FIELDS = ["convs", "ranking", "algorithms", "algorithms_ms", "engines", "engines_ms", "deferred",
          "deferred_ms", "first", "eager", "graphs", "replays", "pruned", "best_ms"]
COUNTS = ("convs", "algorithms", "engines", "deferred", "pruned")


def main():
    for path in sys.argv[1:]:
        sums = collections.defaultdict(lambda: collections.Counter())
        with open(path, errors="replace") as log:
            for line in log:
                m = LINE.search(line)
                if not m:
                    continue
                sms, *values = m.groups()
                total = sums[int(sms)]
                total["convs"] += 1
                for name, value in zip(FIELDS[1:], values):
                    total[name] += float(value)
        for sms, total in sorted(sums.items()):
            print(f"== {path}, {sms} SMs: " + ", ".join(
                f"{name} {total[name]:.0f}" if name in COUNTS
                else f"{name} {total[name] / 1000:.2f} s" if name != "best_ms"
                else f"best replays {total[name]:.1f} ms" for name in FIELDS))


if __name__ == "__main__":
    main()
