/**
 * Opara (Chen et al., "Opara: Exploiting Operator Parallelism for Expediting DNN Inference on
 * GPUs", 2023): its stream allocation and its launch order.
 *
 * Streams: in topological order, each op inherits the stream of its first predecessor whose
 * stream has not already been handed on to another successor; an op with no such predecessor
 * gets a new stream. So a chain stays on one stream and every fork opens new ones.
 * Launch order: a topological order that alternates between ready compute-bound and ready
 * memory-bound ops (so co-running kernels use different resources), smallest resource demand
 * first. Demand is the op's measured time where given (ctx.opTimeUs), else the cost model's.
 * Views launch no kernel: they are launched as soon as they are ready and do not take a turn.
 */
import { opClass, opTimeUs } from "../analysis/device_model.ts";
import type { Dag } from "../analysis/dag.ts";
import { capStreams, insertEvents } from "./events.ts";
import type { ScheduleContext } from "./mod.ts";
import type { Schedule } from "./schedule.ts";

/** Opara's stream rule: a stream per node. */
export function oparaStreams(dag: Dag): number[] {
  const stream = new Array<number>(dag.size).fill(-1);
  const handedOn = new Array<boolean>(dag.size).fill(false);
  let streams = 0;
  for (const v of dag.order) {
    const p = dag.preds[v].find((p) => !handedOn[p]);
    if (p === undefined) stream[v] = streams++;
    else {
      stream[v] = stream[p];
      handedOn[p] = true;
    }
  }
  return stream;
}

/** Opara's launch order: alternate compute- and memory-bound ready ops, smallest demand first. */
export function oparaOrder(ctx: ScheduleContext): number[] {
  const { dag, costs, device } = ctx;
  const demand = (v: number) => ctx.opTimeUs?.[v] ?? opTimeUs(costs[v], device);
  const rank = new Array<number>(dag.size);
  dag.order.forEach((v, i) => (rank[v] = i));
  const isView = (v: number) => costs[v].flops === 0 && costs[v].bytes === 0;
  const missing = dag.preds.map((p) => p.length);
  const ready = { compute: [] as number[], memory: [] as number[], view: [] as number[] };
  const enqueue = (v: number) => {
    ready[isView(v) ? "view" : opClass(costs[v], device)].push(v);
  };
  const take = (queue: number[]) => {
    let best = 0;
    for (let i = 1; i < queue.length; i++) {
      const a = queue[i], b = queue[best];
      if (demand(a) < demand(b) || (demand(a) === demand(b) && rank[a] < rank[b])) best = i;
    }
    return queue.splice(best, 1)[0];
  };
  dag.order.forEach((v) => missing[v] === 0 && enqueue(v));
  const order: number[] = [];
  type Kind = "compute" | "memory";
  let last: Kind = "memory";
  while (order.length < dag.size) {
    let v: number;
    if (ready.view.length > 0) v = take(ready.view);
    else {
      const want: Kind = last === "compute" ? "memory" : "compute";
      const kind: Kind = ready[want].length > 0 ? want : last;
      v = take(ready[kind]);
      last = kind;
    }
    order.push(v);
    for (const s of dag.succs[v]) if (--missing[s] === 0) enqueue(s);
  }
  return order;
}

export function oparaSchedule(ctx: ScheduleContext): Schedule {
  const schedule = insertEvents("opara", ctx.dag, oparaOrder(ctx), oparaStreams(ctx.dag));
  if (ctx.maxStreams === undefined) return schedule;
  return capStreams(schedule, ctx.maxStreams, ctx.dag, ctx.costs, ctx.device, "opara");
}
