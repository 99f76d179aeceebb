/** The baseline: every node on stream 0, in topological order, with no events. */
import type { Dag } from "../analysis/dag.ts";
import type { Schedule } from "./schedule.ts";

export function sequentialSchedule(dag: Dag): Schedule {
  return {
    scheduler: "sequential",
    streams: 1,
    events: 0,
    launches: dag.order.map((node) => ({ node, stream: 0, waits: [] })),
  };
}
