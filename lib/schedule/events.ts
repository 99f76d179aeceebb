/**
 * From a launch order and a stream per node to a Schedule, with the fewest events that keep it
 * correct; shared by every scheduler.
 *
 * Waits: a launch waits on its producer p's event only when p does not already happen before it
 * through stream order or the waits added so far. Producers are taken latest-launched first, so
 * no wait is implied by another: a later wait cannot be covered by an earlier-launched producer,
 * and an earlier one was checked after the later ones were merged in.
 * Records: only launches someone waits on record an event. Event ids are reused: an id is free
 * again once the last launch waiting on its current record has been issued (a wait takes the
 * record that precedes it in issue order, as cudaStreamWaitEvent does).
 */
import type { Dag } from "../analysis/dag.ts";
import { type DeviceModel, timeline } from "../analysis/device_model.ts";
import type { OpCost } from "../analysis/cost.ts";
import type { Launch, Schedule } from "./schedule.ts";

export function insertEvents(
  scheduler: string,
  dag: Dag,
  order: readonly number[],
  streamOf: ArrayLike<number>,
  priorities?: readonly number[],
): Schedule {
  const n = dag.size;
  const at = new Array<number>(n).fill(-1);
  order.forEach((v, i) => {
    if (at[v] >= 0) throw new Error(`${scheduler}: node ${v} is launched twice`);
    for (const p of dag.preds[v]) {
      if (at[p] < 0) {
        throw new Error(`${scheduler}: node ${v} is launched before its producer ${p}`);
      }
    }
    at[v] = i;
  });
  if (order.length !== n) throw new Error(`${scheduler}: ${order.length} launches for ${n} nodes`);

  // Dense stream ids; stream 0 (the capture stream, whose priority cannot be set) is the first
  // used stream among those of the lowest priority.
  const used = [...new Set(order.map((v) => streamOf[v]))];
  const priority = (s: number) => priorities?.[s] ?? 0;
  const lowest = Math.min(...used.map(priority));
  const first = used.find((s) => priority(s) === lowest)!;
  const streams = [first, ...used.filter((s) => s !== first)];
  const dense = new Map(streams.map((s, i) => [s, i]));
  const stream = (v: number) => dense.get(streamOf[v])!;

  // Waits, by vector clocks: clock[s] = position of the last launch on stream s ordered before.
  const S = streams.length;
  const streamClock = streams.map(() => new Int32Array(S).fill(-1));
  const count = new Array<number>(S).fill(0);
  const nodeClock: Int32Array[] = new Array(n);
  const position = new Array<number>(n);
  const waitsOn: number[][] = new Array(n);
  for (const v of order) {
    const clock = streamClock[stream(v)];
    waitsOn[v] = [];
    for (const p of [...dag.preds[v]].sort((a, b) => at[b] - at[a])) {
      if (clock[stream(p)] >= position[p]) continue;
      waitsOn[v].push(p);
      const c = nodeClock[p];
      for (let s = 0; s < S; s++) clock[s] = Math.max(clock[s], c[s]);
    }
    position[v] = clock[stream(v)] = count[stream(v)]++;
    nodeClock[v] = clock.slice();
  }

  // Event ids: the smallest free one, freed after the last wait on its record is issued.
  const waiters = new Array<number>(n).fill(0);
  for (const v of order) for (const p of waitsOn[v]) waiters[p]++;
  const eventOf = new Array<number>(n).fill(-1);
  const free: number[] = [];
  let events = 0;
  const launches: Launch[] = order.map((v) => {
    const waits = waitsOn[v].map((p) => eventOf[p]);
    for (const p of waitsOn[v]) {
      if (--waiters[p] === 0) {
        free.push(eventOf[p]);
        free.sort((a, b) => a - b);
      }
    }
    const launch: Launch = { node: v, stream: stream(v), waits };
    if (waiters[v] > 0) launch.record = eventOf[v] = free.shift() ?? events++;
    return launch;
  });
  const schedule: Schedule = { scheduler, streams: S, events, launches };
  if (streams.some((s) => priority(s) !== 0)) schedule.priorities = streams.map(priority);
  return schedule;
}

/** The stream of each node in a schedule. */
export function streamsOf(schedule: Schedule, size: number): number[] {
  const stream = new Array<number>(size).fill(0);
  for (const l of schedule.launches) stream[l.node] = l.stream;
  return stream;
}

/**
 * At most `cap` streams, by merging whole streams: streams are taken by their simulated start
 * and each goes to the merged stream that went idle latest before it starts, else to a new one
 * while fewer than `cap` exist, else to the one that goes idle first. Any merge is safe: the
 * launch order stays topological and events are inserted again.
 */
export function capStreams(
  schedule: Schedule,
  cap: number,
  dag: Dag,
  costs: OpCost[],
  model: DeviceModel,
  scheduler = `${schedule.scheduler}/${cap}`,
): Schedule {
  if (schedule.streams <= cap) return schedule;
  const { start, end } = timeline(schedule, costs, model);
  const span = Array.from({ length: schedule.streams }, () => ({ from: Infinity, to: -Infinity }));
  schedule.launches.forEach((l, i) => {
    span[l.stream].from = Math.min(span[l.stream].from, start[i]);
    span[l.stream].to = Math.max(span[l.stream].to, end[i]);
  });
  const byStart = span.map((_, s) => s).sort((a, b) => span[a].from - span[b].from || a - b);
  const idleAt: number[] = [];
  const merged = new Array<number>(schedule.streams);
  for (const s of byStart) {
    let bin = -1;
    idleAt.forEach((t, b) => {
      if (t <= span[s].from && (bin < 0 || t > idleAt[bin])) bin = b;
    });
    if (bin < 0 && idleAt.length < cap) bin = idleAt.push(-Infinity) - 1;
    if (bin < 0) bin = idleAt.indexOf(Math.min(...idleAt));
    merged[s] = bin;
    idleAt[bin] = Math.max(idleAt[bin], span[s].to);
  }
  const priorities = schedule.priorities && new Array<number>(cap).fill(0);
  schedule.priorities?.forEach((
    p,
    s,
  ) => (priorities![merged[s]] = Math.max(priorities![merged[s]], p)));
  const stream = streamsOf(schedule, dag.size).map((s) => merged[s]);
  return insertEvents(scheduler, dag, schedule.launches.map((l) => l.node), stream, priorities);
}
