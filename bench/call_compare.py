#!/usr/bin/env python3
"""Backend calls' host time (BRAID_PROFILE_CALLS=1) of a sequential and a pooled `braid tune
--json` report side by side: the sequential arm's sum over its models, the pool's over its
workers' jobs, and their quotient (k), the largest first.

Usage: python3 bench/call_compare.py SEQUENTIAL.json POOLED.json [--top N]
"""
import argparse
import json


def sequential_calls(report):
    total = {}
    for result in report["results"]:
        for call, ms in result.get("callMs", {}).items():
            total[call] = total.get(call, 0) + ms
    return total


def pooled_calls(report):
    total = {}
    for calls in report["pool"].get("callMs", {}).values():
        for call, ms in calls.items():
            total[call] = total.get(call, 0) + ms
    return total


def main():
    parser = argparse.ArgumentParser(description="Backend calls' host time, arm by arm.")
    parser.add_argument("sequential")
    parser.add_argument("pooled")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    seq = sequential_calls(json.load(open(args.sequential)))
    pool_report = json.load(open(args.pooled))
    pool = pooled_calls(pool_report)
    print(f"backend calls' host time, s: sequential {sum(seq.values()) / 1000:.2f}, "
          f"pooled {sum(pool.values()) / 1000:.2f} (worker time by job kind: "
          + ", ".join(f"{k} {v / 1000:.2f}" for k, v in pool_report["pool"]["kindMs"].items()) + ")")
    for call in sorted(set(seq) | set(pool), key=lambda c: -max(seq.get(c, 0), pool.get(c, 0)))[:args.top]:
        s, p = seq.get(call, 0), pool.get(call, 0)
        k = f"{p / s:5.2f}" if s > 0 else "    -"
        print(f"  {call:28s} sequential {s / 1000:7.3f}  pooled {p / 1000:7.3f}  k {k}")


if __name__ == "__main__":
    main()
