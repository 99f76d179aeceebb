/**
 * auto: builds candidate schedules, measures each, keeps the fastest, and never ends slower than
 * sequential: a candidate replaces sequential only when it is faster by more than `margin` in
 * two measurements; among candidates within `tie` of the fastest, the one with the fewest streams
 * is kept. Candidates: sequential, opara, nimble, ios; opara and nimble capped at 2, 4
 * and 8 streams by merging streams; and each multi-stream candidate again with its critical
 * path (by op time) moved onto its own high-priority stream, and again with its streams ranked
 * in priority by the slack of their ops.
 * `measure` is ctx.measure (on a GPU, the runtime captures and times the schedule), else the
 * cost model's simulated latency. It may return a promise; auto then returns one too.
 */
import { criticalPath, slack } from "../analysis/dag.ts";
import { opTimeUs, simulate } from "../analysis/device_model.ts";
import { capStreams, insertEvents, streamsOf } from "./events.ts";
import { iosSchedule } from "./ios.ts";
import type { ScheduleContext } from "./mod.ts";
import { nimbleSchedule } from "./nimble.ts";
import { oparaSchedule } from "./opara.ts";
import type { Schedule } from "./schedule.ts";
import { sequentialSchedule } from "./sequential.ts";

export interface AutoOptions {
  /** Relative speed-up a candidate needs over sequential (default 2%). */
  margin?: number;
  /** Candidates within this of the fastest count as tied; the fewest streams wins (0.5%). */
  tie?: number;
  /** Stream caps tried on opara and nimble. */
  caps?: number[];
}

export interface AutoResult {
  schedule: Schedule;
  /** Every candidate with its first measurement, ms. */
  trials: { scheduler: string; streams: number; ms: number }[];
}

type MaybePromise<T> = T | Promise<T>;
const then = <T, U>(x: MaybePromise<T>, f: (t: T) => MaybePromise<U>): MaybePromise<U> =>
  x instanceof Promise ? x.then(f) : f(x);
const all = <T>(xs: MaybePromise<T>[]): MaybePromise<T[]> =>
  xs.some((x) => x instanceof Promise) ? Promise.all(xs) : (xs as T[]);

/** Each op's time, µs: measured where the context has it, else the cost model's. */
const opWeight = (ctx: ScheduleContext) => (v: number) =>
  ctx.opTimeUs?.[v] ?? opTimeUs(ctx.costs[v], ctx.device);

/** The critical path (by measured op time where given) moved onto one more stream, of priority 1. */
export function prioritizeCriticalPath(schedule: Schedule, ctx: ScheduleContext): Schedule {
  const { dag } = ctx;
  const { path } = criticalPath(dag, opWeight(ctx));
  const stream = streamsOf(schedule, dag.size);
  const critical = schedule.streams;
  for (const v of path) stream[v] = critical;
  const priorities = new Array<number>(schedule.streams + 1).fill(0);
  schedule.priorities?.forEach((p, s) => (priorities[s] = p));
  priorities[critical] = 1;
  const order = schedule.launches.map((l) => l.node);
  return insertEvents(`${schedule.scheduler}+priority`, dag, order, stream, priorities);
}

/**
 * The same streams and order, each stream's priority set from the least slack of its ops (by
 * measured op time where given): 3 where an op is on the critical path (slack within 0.5% of its
 * length), 2 within 5%, 1 within 20%, 0 beyond. Null when every stream would get the same.
 */
export function prioritizeBySlack(schedule: Schedule, ctx: ScheduleContext): Schedule | null {
  const { dag } = ctx;
  const { slack: slacks, length } = slack(dag, opWeight(ctx));
  const stream = streamsOf(schedule, dag.size);
  const least = new Array<number>(schedule.streams).fill(Infinity);
  stream.forEach((s, v) => (least[s] = Math.min(least[s], slacks[v])));
  const level = (x: number) =>
    x <= 0.005 * length ? 3 : x <= 0.05 * length ? 2 : x <= 0.2 * length ? 1 : 0;
  const priorities = least.map(level);
  if (priorities.every((p) => p === priorities[0])) return null;
  const order = schedule.launches.map((l) => l.node);
  return insertEvents(`${schedule.scheduler}+slack`, dag, order, stream, priorities);
}

/**
 * auto's candidates, each once. With `withIos` false, ios and the candidates made from it are left
 * out: the rest depend on the DAG, the cost model and the op times alone, never on stage times, so
 * a tuning pool can time them while the stages are still being measured.
 */
export function autoCandidates(
  ctx: ScheduleContext,
  options: AutoOptions = {},
  withIos = true,
): Schedule[] {
  const { dag, costs, device } = ctx;
  const base = [oparaSchedule(ctx), nimbleSchedule(ctx), ...(withIos ? [iosSchedule(ctx)] : [])];
  const capped = base.slice(0, 2).flatMap((s) =>
    (options.caps ?? [2, 4, 8]).filter((cap) => s.streams > cap)
      .map((cap) => capStreams(s, cap, dag, costs, device))
  );
  const multi = [...base, ...capped].filter((s) => s.streams > 1);
  const candidates = [
    sequentialSchedule(dag),
    ...multi,
    ...multi.map((s) => prioritizeCriticalPath(s, ctx)),
    ...multi.flatMap((s) => prioritizeBySlack(s, ctx) ?? []),
  ]
    .filter((s) => s.streams <= (ctx.maxStreams ?? Infinity));
  // The same launches under two names are measured once.
  const seen = new Set<string>();
  return candidates.filter((s) => {
    const key = JSON.stringify([s.launches.map((l) => [l.node, l.stream]), s.priorities]);
    return !seen.has(key) && seen.add(key);
  });
}

export function autoSearch(
  ctx: ScheduleContext,
  options: AutoOptions = {},
): MaybePromise<AutoResult> {
  const margin = options.margin ?? 0.02;
  const tie = options.tie ?? 0.005;
  const measure = ctx.measure ??
    ((schedule: Schedule) => simulate(schedule, ctx.costs, ctx.device) / 1000);
  const candidates = autoCandidates(ctx, options);
  const sequential = candidates[0];
  return then(all(candidates.map((c) => measure(c))), (times) => {
    const trials = candidates.map((c, i) => ({
      scheduler: c.scheduler,
      streams: c.streams,
      ms: times[i],
    }));
    const result = (chosen: Schedule) => ({
      schedule: { ...chosen, scheduler: `auto:${chosen.scheduler}` },
      trials,
    });
    // The fastest; of those within `tie` of it, the one with the fewest streams.
    const fastest = Math.min(...times);
    const tied = times.flatMap((t, i) => (t <= fastest * (1 + tie) ? [i] : []));
    const best = tied.reduce((a, b) => (candidates[b].streams < candidates[a].streams ? b : a));
    if (best === 0 || !(times[best] < times[0] * (1 - margin))) return result(sequential);
    // Confirm with a second measurement of both, so one lucky timing cannot win.
    return then(
      all([measure(sequential), measure(candidates[best])]),
      ([seq, cand]) => result(cand < seq * (1 - margin) ? candidates[best] : sequential),
    );
  });
}

export function autoSchedule(
  ctx: ScheduleContext,
  options: AutoOptions = {},
): MaybePromise<Schedule> {
  return then(autoSearch(ctx, options), (r) => r.schedule);
}
