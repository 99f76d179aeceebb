/**
 * Nimble (Kwon et al., "Nimble: Lightweight and Parallel GPU Task Scheduling for Deep Learning",
 * NeurIPS 2020): the fewest streams that keep all logical concurrency, as a minimum path cover
 * of the transitive reduction. A maximum bipartite matching between the "out" and "in" copies of
 * the nodes over the reduction's edges picks, for each node, at most one successor to continue
 * its stream; the n − |matching| unmatched heads start the streams (one chain each). Two nodes
 * that may run concurrently are never on one chain, because every chain edge is a dependency.
 * Launch order: topological.
 */
import { maximumMatching, reachability, transitiveReduction } from "../analysis/dag.ts";
import type { Dag } from "../analysis/dag.ts";
import { capStreams, insertEvents } from "./events.ts";
import type { ScheduleContext } from "./mod.ts";
import type { Schedule } from "./schedule.ts";

/** Nimble's chains as a stream per node; chains are numbered by their head's topological rank. */
export function nimbleStreams(dag: Dag): number[] {
  const next = maximumMatching(dag.size, transitiveReduction(dag, reachability(dag)));
  const continued = new Set(next.filter((j) => j >= 0));
  const stream = new Array<number>(dag.size).fill(-1);
  let streams = 0;
  for (const head of dag.order) {
    if (continued.has(head)) continue;
    const s = streams++;
    for (let v = head; v >= 0; v = next[v]) stream[v] = s;
  }
  return stream;
}

export function nimbleSchedule(ctx: ScheduleContext): Schedule {
  const schedule = insertEvents("nimble", ctx.dag, ctx.dag.order, nimbleStreams(ctx.dag));
  if (ctx.maxStreams === undefined) return schedule;
  return capStreams(schedule, ctx.maxStreams, ctx.dag, ctx.costs, ctx.device, "nimble");
}
