/**
 * Latency statistics. GPU time comes from device events around graph replays; the host overhead
 * of run() is its wall time minus that GPU time (medians of each).
 */
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
  /** Wall time of run(): the caller's inputs into page-locked buffers, one replay, output copies. */
  run: Stats;
  /** Wall time of run() given the session's own page-locked `io.inputs` (nothing to copy in). */
  runPinned: Stats;
  /** Wall time of launch(): one replay on the page-locked buffers as they are. */
  launch: Stats;
  /** Median over run() calls of wall time minus that call's replay GPU time, in microseconds. */
  hostOverheadUs: number;
  /** The same for run() on `io.inputs`, in microseconds. */
  pinnedOverheadUs: number;
  /** The same for launch(), in microseconds. */
  launchOverheadUs: number;
}
