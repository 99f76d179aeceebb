/**
 * A small analytic device model, and a cost-model latency of a whole schedule.
 *
 * One kernel, alone on the device, is a fixed `launchUs` followed by its work. Its work is the
 * roofline: w = max(flops / peakFlops, bytes / bandwidth) microseconds at the whole device's rate.
 * A small kernel cannot fill the device: it has about ceil(sms · w / fillUs) blocks' worth of
 * parallelism, so it uses at most that many of the `sms` multiprocessors (its "cap").
 *
 * `simulate` plays a schedule forward in time (event-driven): each stream runs its launches in
 * order, a launch starts once the previous one on its stream and the launches that recorded the
 * events it waits on have finished. Launch phases of different streams overlap freely. Kernels
 * in their work phase share two resources, the FLOP rate and the bandwidth: every kernel gets
 * the same share of the device (its "level"), raised together until it reaches its cap or a
 * resource it uses runs out (max-min fair water filling), higher-priority streams first.
 * A cost with no flops and no bytes is a view: it launches no kernel and takes no time.
 */
import type { OpCost } from "./cost.ts";
import type { Schedule } from "../schedule/schedule.ts";

export interface DeviceModel {
  name: string;
  /** FLOP/s. */
  peakFlops: number;
  /** Bytes/s. */
  bandwidth: number;
  /** Fixed cost of one kernel (inside a captured graph), µs. */
  launchUs: number;
  /** Multiprocessors (or cores). */
  sms: number;
  /** Work (µs at the whole device's rate) one kernel needs to fill every multiprocessor. */
  fillUs: number;
}

/** NVIDIA H200 SXM: TF32 dense tensor-core rate, HBM3e bandwidth, 132 SMs. */
export const H200: DeviceModel = {
  name: "H200",
  peakFlops: 400e12,
  bandwidth: 4.3e12,
  launchUs: 2.5,
  sms: 132,
  fillUs: 5,
};

/**
 * A generic multicore CPU. Every op already uses all cores (fillUs 0), so concurrent launches
 * gain only by pairing compute-bound with memory-bound work.
 */
export const CPU: DeviceModel = {
  name: "cpu",
  peakFlops: 1e12,
  bandwidth: 50e9,
  launchUs: 2,
  sms: 16,
  fillUs: 0,
};

/** Compute-bound when the op's arithmetic intensity reaches the device's ridge point. */
export function opClass(cost: OpCost, model: DeviceModel): "compute" | "memory" {
  return cost.intensity >= model.peakFlops / model.bandwidth ? "compute" : "memory";
}

const isView = (cost: OpCost) => cost.flops === 0 && cost.bytes === 0;

/** Roofline work, µs at the whole device's rate. */
function workUs(cost: OpCost, model: DeviceModel): { flopsUs: number; bytesUs: number } {
  return {
    flopsUs: 1e6 * cost.flops / model.peakFlops,
    bytesUs: 1e6 * cost.bytes / model.bandwidth,
  };
}

/** The largest share of the device one kernel can use. */
function capOf(work: number, model: DeviceModel): number {
  if (model.fillUs <= 0) return 1;
  return Math.min(model.sms, Math.max(1, Math.ceil(model.sms * work / model.fillUs))) / model.sms;
}

/** Time of one op alone on the device, µs (0 for a view). */
export function opTimeUs(cost: OpCost, model: DeviceModel): number {
  if (isView(cost)) return 0;
  const { flopsUs, bytesUs } = workUs(cost, model);
  const w = Math.max(flopsUs, bytesUs);
  return model.launchUs + (w === 0 ? 0 : w / capOf(w, model));
}

interface Running {
  launch: number;
  priority: number;
  /** Fraction of the work still to do. */
  left: number;
  /** Work at the whole device's rate, and its compute and bandwidth fractions. */
  work: number;
  compute: number;
  memory: number;
  cap: number;
  /** Share of the device given now. */
  share: number;
}

/** Max-min fair shares of the FLOP rate and bandwidth, strictly by priority class. */
function allocate(running: Running[]): void {
  let flopsLeft = 1, bytesLeft = 1;
  const classes = [...new Set(running.map((k) => k.priority))].sort((a, b) => b - a);
  for (const priority of classes) {
    let active = running.filter((k) => k.priority === priority).sort((a, b) => a.cap - b.cap);
    let level = 0;
    while (active.length > 0) {
      const useF = active.reduce((s, k) => s + k.compute, 0);
      const useB = active.reduce((s, k) => s + k.memory, 0);
      const step = Math.max(
        0,
        Math.min(
          active[0].cap - level,
          useF > 0 ? flopsLeft / useF : Infinity,
          useB > 0 ? bytesLeft / useB : Infinity,
        ),
      );
      level += step;
      flopsLeft -= step * useF;
      bytesLeft -= step * useB;
      const frozen = (k: Running) =>
        k.cap <= level + 1e-12 || (flopsLeft <= 1e-12 && k.compute > 0) ||
        (bytesLeft <= 1e-12 && k.memory > 0);
      for (const k of active) if (frozen(k)) k.share = level;
      active = active.filter((k) => !frozen(k));
    }
  }
}

export interface Timeline {
  /** Latency of the whole schedule, µs. */
  latencyUs: number;
  /** Start and end of each launch (by index into schedule.launches), µs. */
  start: number[];
  end: number[];
}

/** Plays a schedule forward under the device model (see the module comment). */
export function timeline(schedule: Schedule, costs: OpCost[], model: DeviceModel): Timeline {
  const { launches } = schedule;
  // The launch each wait refers to: the latest earlier launch recording that event.
  const recorder = new Map<number, number>();
  const after: number[][] = launches.map((l, i) => {
    const deps = l.waits.map((e) => recorder.get(e)!);
    if (l.record !== undefined) recorder.set(l.record, i);
    return deps;
  });
  const queues: number[][] = Array.from({ length: schedule.streams }, () => []);
  launches.forEach((l, i) => queues[l.stream].push(i));
  const head = new Array<number>(schedule.streams).fill(0);
  const start = new Array<number>(launches.length).fill(NaN);
  const end = new Array<number>(launches.length).fill(NaN);
  const launching: { launch: number; until: number }[] = [];
  const working: Running[] = [];
  let now = 0, done = 0;

  const startWork = (i: number) => {
    const cost = costs[launches[i].node];
    const { flopsUs, bytesUs } = workUs(cost, model);
    const work = Math.max(flopsUs, bytesUs);
    if (work === 0) return finish(i);
    const priority = schedule.priorities?.[launches[i].stream] ?? 0;
    working.push({
      launch: i,
      priority,
      left: 1,
      work,
      compute: flopsUs / work,
      memory: bytesUs / work,
      cap: capOf(work, model),
      share: 0,
    });
  };
  const finish = (i: number) => {
    end[i] = now;
    done++;
  };
  const startReady = () => {
    for (let progress = true; progress;) {
      progress = false;
      for (let s = 0; s < queues.length; s++) {
        const i = queues[s][head[s]];
        if (i === undefined || (head[s] > 0 && isNaN(end[queues[s][head[s] - 1]]))) continue;
        if (after[i].some((d) => isNaN(end[d]))) continue;
        head[s]++;
        start[i] = now;
        progress = true;
        if (isView(costs[launches[i].node])) finish(i);
        else launching.push({ launch: i, until: now + model.launchUs });
      }
    }
  };

  startReady();
  while (done < launches.length) {
    allocate(working);
    let next = Infinity;
    for (const l of launching) next = Math.min(next, l.until);
    for (const k of working) {
      if (k.share > 0) next = Math.min(next, now + k.left * k.work / k.share);
    }
    if (next === Infinity) throw new Error(`schedule ${schedule.scheduler} deadlocks`);
    for (const k of working) k.left -= (next - now) * k.share / k.work;
    now = next;
    for (let j = launching.length - 1; j >= 0; j--) {
      if (launching[j].until <= now + 1e-9) startWork(launching.splice(j, 1)[0].launch);
    }
    for (let j = working.length - 1; j >= 0; j--) {
      if (working[j].left <= 1e-9) finish(working.splice(j, 1)[0].launch);
    }
    startReady();
  }
  return { latencyUs: launches.length === 0 ? 0 : Math.max(...end), start, end };
}

/** Cost-model latency of a whole schedule, µs. */
export function simulate(schedule: Schedule, costs: OpCost[], model: DeviceModel): number {
  return timeline(schedule, costs, model).latencyUs;
}

/** Cost-model latency of one stage: each group runs in order on its own stream, µs. */
export function simulateStage(groups: number[][], costs: OpCost[], model: DeviceModel): number {
  return simulate(
    {
      scheduler: "stage",
      streams: groups.length,
      events: 0,
      launches: groups.flatMap((g, stream) => g.map((node) => ({ node, stream, waits: [] }))),
    },
    costs,
    model,
  );
}
