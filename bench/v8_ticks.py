#!/usr/bin/env python3
"""Summarizes V8 tick logs (`deno run --v8-flags=--prof`, one isolate-*.log per thread).

Node's `--prof-process` cannot read Deno 2.9's logs (V8 15's code states), so this reads them
directly: each tick's program counter and stack are mapped to the code objects the log created,
and the ticks are counted by V8 state (JavaScript, GC, compilers, native calls), by braid's
innermost function on the stack (its self time, native calls included), and by every braid
function on the stack (inclusive).

Usage: python3 bench/v8_ticks.py LOG... [--top N]
"""
import argparse
import bisect
import collections
import sys

# V8's StateTag, in order (include/v8-unwinder.h).
STATES = ["js", "gc", "parser", "bytecode-compiler", "compiler", "other", "external",
          "atomics-wait", "idle", "logging", "idle-external"]


def load(path):
    starts, code, ticks = [], {}, []
    with open(path, errors="replace") as log:
        for line in log:
            if line.startswith("code-creation,"):
                # code-creation,TYPE,KIND,TIMESTAMP,ADDRESS,SIZE,NAME[,SFI,STATE]: the name may hold
                # commas, escaped as \x2C.
                fields = line.rstrip("\n").split(",")
                if len(fields) < 7:
                    continue
                address, size = int(fields[4], 16), int(fields[5])
                code[address] = (size, fields[6])
            elif line.startswith("code-move,"):
                fields = line.split(",")
                moved = code.pop(int(fields[1], 16), None)
                if moved:
                    code[int(fields[2], 16)] = moved
            elif line.startswith("tick,"):
                fields = line.rstrip("\n").split(",")
                frames = [fields[1]] + [f for f in fields[6:] if f.startswith("0x")]
                ticks.append((int(fields[5]), [int(f, 16) for f in frames]))
    starts = sorted(code)
    return starts, code, ticks


def name_at(starts, code, address):
    i = bisect.bisect_right(starts, address) - 1
    if i < 0:
        return None
    size, name = code[starts[i]]
    return name if address < starts[i] + size else None


def ours(name):
    return name is not None and "file://" in name and "node_modules" not in name


def short(name):
    # "fn file:///…/lib/x/y.ts:12:3" → "fn lib/x/y.ts:12"
    fn, _, where = name.rpartition(" ")
    for root in ("/lib/", "/ffi/", "/bench/", "/tests/"):
        if root in where:
            where = root[1:] + where.split(root, 1)[1]
            break
    return f"{fn or '(anonymous)'} {where.rsplit(':', 1)[0]}"


def summarize(path, top):
    starts, code, ticks = load(path)
    states = collections.Counter()
    innermost = collections.Counter()
    inclusive = collections.Counter()
    for state, frames in ticks:
        states[STATES[state] if state < len(STATES) else str(state)] += 1
        names = [name_at(starts, code, f) for f in frames]
        braid = [short(n) for n in names if ours(n)]
        innermost[(braid[0] if braid else "(no braid frame)",
                   "native" if state == 6 else "js/vm")] += 1
        for name in set(braid):
            inclusive[name] += 1
    total = len(ticks) or 1
    print(f"== {path}: {len(ticks)} ticks")
    print("  states: " + ", ".join(f"{k} {v} ({100 * v / total:.0f}%)" for k, v in states.most_common()))
    print("  innermost braid frame (self, native calls apart):")
    for (name, kind), n in innermost.most_common(top):
        print(f"    {n:6d} {100 * n / total:5.1f}%  {kind:6s} {name}")
    print("  inclusive:")
    for name, n in inclusive.most_common(top):
        print(f"    {n:6d} {100 * n / total:5.1f}%  {name}")


def main():
    parser = argparse.ArgumentParser(description="Summarizes Deno's V8 tick logs.")
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    for path in args.logs:
        summarize(path, args.top)


if __name__ == "__main__":
    main()
