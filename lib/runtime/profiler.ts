/**
 * Latency statistics. GPU time comes from device events around graph replays; the host overhead
 * of run() is its wall time minus that GPU time (medians of each).
 */
import type { Backend, Handle } from "../../ffi/backend.ts";

export interface Stats {
  runs: number;
  medianMs: number;
  p10Ms: number;
  p90Ms: number;
  minMs: number;
}

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { runs: s.length, medianMs: at(0.5), p10Ms: at(0.1), p90Ms: at(0.9), minMs: s[0] ?? NaN };
}

export interface Profile {
  /** One captured-graph replay (input copies, schedule, output copies), timed with device events. */
  gpu: Stats;
  /** The same schedule's graph without the input and output copies (kernels only), events. */
  compute: Stats;
  /**
   * Wall time of run() on the caller's arrays, the same ones each call: copied to the device
   * straight from them once they are page-locked (SessionOptions.pinInputs), one replay, the
   * output copies.
   */
  run: Stats;
  /** The same with the caller's arrays copied into the page-locked `io.inputs` first. */
  runCopied: Stats;
  /** Wall time of run() given the session's own page-locked `io.inputs` (nothing to copy in). */
  runPinned: Stats;
  /** Wall time of launch(): one replay on the page-locked buffers as they are. */
  launch: Stats;
  /** Median over run() calls of wall time minus that call's replay GPU time, in microseconds. */
  hostOverheadUs: number;
  /** The same for run() with the copy into `io.inputs`, in microseconds. */
  copiedOverheadUs: number;
  /** The same for run() on `io.inputs`, in microseconds. */
  pinnedOverheadUs: number;
  /** The same for launch(), in microseconds. */
  launchOverheadUs: number;
}

/** `runs` replays of a captured graph, each between two device events, after `warmup` untimed. */
export function replayStats(
  backend: Backend,
  ctx: Handle,
  graph: Handle,
  { warmup = 0, runs }: { warmup?: number; runs: number },
): Stats {
  const [start, end] = [backend.eventCreate(ctx), backend.eventCreate(ctx)];
  try {
    for (let i = 0; i < warmup; i++) backend.graphLaunch(ctx, graph, 0n);
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      backend.eventRecord(ctx, start, 0n);
      backend.graphLaunch(ctx, graph, 0n);
      backend.eventRecord(ctx, end, 0n);
      backend.streamSynchronize(ctx, 0n);
      samples.push(backend.eventElapsed(ctx, start, end));
    }
    return stats(samples);
  } finally {
    backend.eventDestroy(ctx, start);
    backend.eventDestroy(ctx, end);
  }
}

/** How roundStats() replays a graph. */
export interface RoundOptions {
  /** Untimed replays first; together they also size the rounds. */
  warmup?: number;
  /** Timed rounds; the median round counts. */
  rounds?: number;
  /** How long a round should last, ms (its replays: at least one, at most maxReplays). */
  roundMs?: number;
  maxReplays?: number;
}

/**
 * A captured graph's replay time from back-to-back replays: `rounds` rounds between device
 * events, each the mean of its replays, as many as make a round last about `roundMs` (sized by
 * the warm-up's replays); the stats of the rounds. The host never waits between replays, so the
 * device is never idle inside a round and the host's own delays (its launch calls, a thread
 * woken late, other threads holding the driver's locks) are not in the time; a long graph is
 * replayed fewer times for the same device time per round.
 */
export function roundStats(
  backend: Backend,
  ctx: Handle,
  graph: Handle,
  { warmup = 2, rounds = 9, roundMs = 1, maxReplays = 5 }: RoundOptions = {},
): Stats & { replays: number } {
  const events = Array.from({ length: rounds + 1 }, () => backend.eventCreate(ctx));
  try {
    backend.eventRecord(ctx, events[0], 0n);
    for (let i = 0; i < Math.max(1, warmup); i++) backend.graphLaunch(ctx, graph, 0n);
    backend.eventRecord(ctx, events[1], 0n);
    backend.eventSynchronize(ctx, events[1]);
    const warmMs = backend.eventElapsed(ctx, events[0], events[1]) / Math.max(1, warmup);
    // A warm-up too short to time (0 ms) fills a round with the most replays.
    const replays = warmMs > 0
      ? Math.min(maxReplays, Math.max(1, Math.ceil(roundMs / warmMs)))
      : maxReplays;
    backend.eventRecord(ctx, events[0], 0n);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < replays; k++) backend.graphLaunch(ctx, graph, 0n);
      backend.eventRecord(ctx, events[r + 1], 0n);
    }
    backend.eventSynchronize(ctx, events[rounds]);
    const samples = Array.from(
      { length: rounds },
      (_, r) => backend.eventElapsed(ctx, events[r], events[r + 1]) / replays,
    );
    return { ...stats(samples), replays };
  } finally {
    for (const e of events) backend.eventDestroy(ctx, e);
  }
}
