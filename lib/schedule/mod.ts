/**
 * The schedulers by name. Each takes a ScheduleContext (the graph, its shapes, its DAG, a cost
 * per node and a device model, plus measurements where a GPU can give them) and returns a
 * Schedule; auto may return a promise when its measure does.
 *
 *   const ctx = scheduleContext(graph, shapes, H200);
 *   const schedule = await makeSchedule("auto", ctx);
 */
import { buildDag, type Dag } from "../analysis/dag.ts";
import { type OpCost, opCost } from "../analysis/cost.ts";
import { type DeviceModel, H200 } from "../analysis/device_model.ts";
import { BraidError, check } from "../errors.ts";
import type { Graph, Value } from "../ir/graph.ts";
import { opSpec } from "../ir/ops.ts";
import { autoSchedule } from "./auto.ts";
import { type IosOptions, iosSchedule } from "./ios.ts";
import { nimbleSchedule } from "./nimble.ts";
import { oparaSchedule } from "./opara.ts";
import type { Schedule } from "./schedule.ts";
import { sequentialSchedule } from "./sequential.ts";

export interface ScheduleContext {
  graph: Graph;
  shapes: Map<string, Value>;
  dag: Dag;
  /** Cost of each node (by index); views cost nothing (no flops, no bytes). */
  costs: OpCost[];
  device: DeviceModel;
  /** Measured time of each node alone, µs (on a GPU); else the cost model's. */
  opTimeUs?: number[];
  /** Times one IOS stage (groups of node indices) as a captured graph (on a GPU). */
  measureStage?: (stage: number[][]) => number;
  /** Times a whole schedule, ms (for auto; on a GPU, the runtime captures and replays it). */
  measure?: (schedule: Schedule) => number | Promise<number>;
  /** Most streams any schedule may use. */
  maxStreams?: number;
  /** IOS's pruning knobs (for ios, and for auto's ios candidate). */
  ios?: IosOptions;
}

export type SchedulerName = "sequential" | "opara" | "nimble" | "ios" | "auto";

export const SCHEDULERS: Record<
  SchedulerName,
  (ctx: ScheduleContext) => Schedule | Promise<Schedule>
> = {
  sequential: (ctx) => sequentialSchedule(ctx.dag),
  opara: oparaSchedule,
  nimble: nimbleSchedule,
  ios: (ctx) => iosSchedule(ctx),
  auto: (ctx) => autoSchedule(ctx),
};

export function isSchedulerName(name: string): name is SchedulerName {
  return Object.hasOwn(SCHEDULERS, name);
}

export function makeSchedule(
  name: SchedulerName,
  ctx: ScheduleContext,
): Schedule | Promise<Schedule> {
  if (!isSchedulerName(name)) {
    throw new BraidError(
      "BAD_OPTION",
      `scheduler "${name}" is unknown (have: ${Object.keys(SCHEDULERS).join(", ")})`,
    );
  }
  const cap = ctx.maxStreams;
  check(
    cap === undefined || (Number.isInteger(cap) && cap >= 1),
    "BAD_OPTION",
    () => `maxStreams must be a positive integer, got ${cap}`,
  );
  return SCHEDULERS[name](ctx);
}

/** Each node's cost; views launch no kernel and cost nothing. */
export function kernelCosts(graph: Graph, shapes: Map<string, Value>): OpCost[] {
  return graph.nodes.map((node) =>
    opSpec(node.op).view ? { flops: 0, bytes: 0, intensity: 0 } : opCost(node, shapes)
  );
}

/** A context from a graph and its shapes, costed by the model (H200 unless given). */
export function scheduleContext(
  graph: Graph,
  shapes: Map<string, Value>,
  device: DeviceModel = H200,
  extra: Partial<ScheduleContext> = {},
): ScheduleContext {
  return {
    graph,
    shapes,
    dag: buildDag(graph),
    costs: kernelCosts(graph, shapes),
    device,
    ...extra,
  };
}
