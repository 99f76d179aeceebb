/**
 * Several sessions timed side by side: `rounds` rounds, each session in turn profiled once a
 * round (median of CUDA-event-timed graph replays), so drifts of the device (clocks, heat, a
 * neighbour's load) fall on all of them alike; each session's median over the rounds, ms.
 */
import type { HostTensor, Session } from "../mod.ts";
import { median } from "./report.ts";

export function interleavedMs(
  sessions: Session[],
  inputs: Record<string, HostTensor>[],
  rounds = 3,
): number[] {
  const samples = sessions.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    sessions.forEach((s, i) => {
      samples[i].push(s.profile(inputs[i], { warmup: 10, runs: 100 }).gpu.medianMs);
    });
  }
  return samples.map(median);
}
