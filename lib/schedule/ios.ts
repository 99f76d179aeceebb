/**
 * IOS (Ding et al., "IOS: Inter-Operator Scheduler for CNN Acceleration", MLSys 2021): a dynamic
 * program over "endings".
 *
 * A schedule is a sequence of stages; a stage is a set of groups; a group is a set of ops run one
 * after another (in topological order) on one stream; the groups of a stage run concurrently,
 * so no op of one group depends on an op of another; and the stages run one after another (a
 * stage boundary is a join of all streams).
 *
 *   State:      S, a set of ops closed under predecessors (S holds every producer of its ops):
 *               the ops that run first, before the rest of the graph.
 *   Ending:     E ⊆ S, non-empty, with no successor in S outside E: ops that can run last in S.
 *   Recurrence: cost[∅] = 0
 *               cost[S] = min over endings E of S of  cost[S − E] + stage_cost(E)
 *   Stage cost: stage_cost(E) = min over the ways to split E into at most s groups of at most r
 *               ops (each group a union of E's connected components) of the stage's time:
 *               measured as a captured graph on a GPU (ctx.measureStage), else simulated with
 *               the cost model. The answer is cost[all ops], and its stages by backtracking.
 *
 * Pruning, for graphs too big to search exactly:
 *   - r (ops per group) and s (groups per stage) bound every ending to r·s ops;
 *   - blocks: the DAG is cut at every op that all others come before or after (articulation
 *     ops, as at the concat closing each Inception module); no stage can span such an op with
 *     two groups, so solving the blocks apart loses nothing under the cost model. A block still
 *     too large (more than maxBlockOps ops or more than maxStates states) is split in two at the
 *     point of its topological order that the fewest ops feed across;
 *   - in a block of more than exactOps ops, at most maxEndings endings are tried per state (the
 *     largest first, and every single sink), and each ending is split into groups one way only:
 *     one group per connected component, packed into s groups by time when there are more.
 * On a block of at most exactOps ops nothing is pruned but r and s: the DP is exact.
 */
import { type Dag, reachability } from "../analysis/dag.ts";
import { opTimeUs, simulateStage } from "../analysis/device_model.ts";
import { check } from "../errors.ts";
import { insertEvents } from "./events.ts";
import type { ScheduleContext } from "./mod.ts";
import type { Schedule } from "./schedule.ts";

export interface IosOptions {
  /** Most ops in one group. */
  r?: number;
  /** Most groups in one stage (and so streams). */
  s?: number;
  /** Blocks of at most this many ops are searched exactly. */
  exactOps?: number;
  /** Most endings tried per state in a larger block. */
  maxEndings?: number;
  /** Largest block searched whole (at most 30: one bit per op). */
  maxBlockOps?: number;
  /** Most states of one block. */
  maxStates?: number;
}

export const IOS_DEFAULTS: Required<IosOptions> = {
  r: 3,
  s: 8,
  exactOps: 8,
  maxEndings: 128,
  maxBlockOps: 20,
  maxStates: 512,
};

/** A stage's groups of node indices → its time (any unit, the same for every stage). */
export type StageCost = (groups: number[][]) => number;

export interface IosResult {
  /** Stages, each a list of groups of node indices (each group in topological order). */
  stages: number[][][];
  /** Sum of the stages' costs. */
  cost: number;
}

/** The IOS search over a whole DAG, block by block. */
export function iosStages(dag: Dag, stageCost: StageCost, options: IosOptions = {}): IosResult {
  const o = { ...IOS_DEFAULTS, ...options };
  o.maxBlockOps = Math.min(o.maxBlockOps, 30);
  for (const key of ["r", "s", "maxEndings", "maxBlockOps", "maxStates"] as const) {
    check(o[key] >= 1, "BAD_OPTION", () => `ios: ${key} must be at least 1, got ${o[key]}`);
  }
  const cache = new Map<string, number>();
  const cost = (groups: number[][]) => {
    const key = groups.map((g) => g.join(",")).sort().join("|");
    let c = cache.get(key);
    if (c === undefined) cache.set(key, c = stageCost(groups));
    return c;
  };
  const result: IosResult = { stages: [], cost: 0 };
  for (const block of blocks(dag, o)) {
    const { stages, cost: c } = new BlockSearch(dag, block, cost, o).solve();
    result.stages.push(...stages);
    result.cost += c;
  }
  return result;
}

/** Contiguous pieces of the topological order, cut after every articulation op, then by size. */
function blocks(dag: Dag, o: Required<IosOptions>): number[][] {
  const reach = reachability(dag);
  const ancestors = new Array<number>(dag.size).fill(0);
  for (const r of reach) for (const d of r) ancestors[d]++;
  const pieces: number[][] = [[]];
  for (const v of dag.order) {
    pieces.at(-1)!.push(v);
    if (ancestors[v] + reach[v].count() === dag.size - 1) pieces.push([]);
  }
  return pieces.filter((p) => p.length > 0).flatMap((p) => splitLarge(dag, p, o));
}

function splitLarge(dag: Dag, block: number[], o: Required<IosOptions>): number[][] {
  if (block.length <= o.maxBlockOps && countStates(dag, block, o.maxStates) <= o.maxStates) {
    return [block];
  }
  // Cut where the fewest ops of the first part feed the second, near the middle.
  const at = new Map(block.map((v, i) => [v, i]));
  let best = -1, bestCross = Infinity;
  const lo = Math.max(1, Math.floor(block.length / 4));
  const hi = Math.min(block.length - 1, Math.ceil((3 * block.length) / 4));
  for (let k = lo; k <= hi; k++) {
    const cross = block.slice(0, k).filter((v) => dag.succs[v].some((w) => at.get(w)! >= k));
    const score = cross.length + Math.abs(k - block.length / 2) / block.length;
    if (score < bestCross) [best, bestCross] = [k, score];
  }
  return [block.slice(0, best), block.slice(best)].flatMap((b) => splitLarge(dag, b, o));
}

/** Predecessor-closed subsets of a block, counted up to limit + 1. */
function countStates(dag: Dag, block: number[], limit: number): number {
  const local = new Map(block.map((v, i) => [v, i]));
  const preds = block.map((v) => dag.preds[v].flatMap((p) => local.has(p) ? [local.get(p)!] : []));
  const inS = new Array<boolean>(block.length).fill(false);
  let count = 0;
  const walk = (i: number) => {
    if (count > limit) return;
    if (i === block.length) return void count++;
    walk(i + 1);
    if (preds[i].every((p) => inS[p])) {
      inS[i] = true;
      walk(i + 1);
      inS[i] = false;
    }
  };
  walk(0);
  return count;
}

interface Stage {
  cost: number;
  groups: number[][]; // local indices
}

/** The DP on one block; ops are local indices 0..m−1 in topological order, sets are bitmasks. */
class BlockSearch {
  readonly m: number;
  readonly exact: boolean;
  readonly predMask: number[];
  readonly succMask: number[];
  readonly memo = new Map<number, { cost: number; ending: number; stage: Stage }>();
  readonly stages = new Map<number, Stage | null>();

  constructor(
    readonly dag: Dag,
    readonly block: number[],
    readonly stageCost: StageCost,
    readonly o: Required<IosOptions>,
  ) {
    this.m = block.length;
    this.exact = this.m <= o.exactOps;
    const local = new Map(block.map((v, i) => [v, i]));
    const mask = (nodes: number[]) =>
      nodes.reduce((m, v) => (local.has(v) ? m | (1 << local.get(v)!) : m), 0);
    this.predMask = block.map((v) => mask(dag.preds[v]));
    this.succMask = block.map((v) => mask(dag.succs[v]));
  }

  solve(): IosResult {
    const all = this.m === 0 ? 0 : (2 ** this.m) - 1;
    const cost = this.cost(all);
    const stages: number[][][] = [];
    for (let S = all; S !== 0;) {
      const { ending, stage } = this.memo.get(S)!;
      stages.unshift(stage.groups.map((g) => g.map((i) => this.block[i])));
      S &= ~ending;
    }
    return { stages, cost };
  }

  /** cost[S] = min over endings E of S of cost[S − E] + stage_cost(E). */
  cost(S: number): number {
    if (S === 0) return 0;
    const known = this.memo.get(S);
    if (known) return known.cost;
    let best: { cost: number; ending: number; stage: Stage } | undefined;
    for (const E of this.endings(S)) {
      const stage = this.stage(E);
      if (!stage) continue;
      const c = this.cost(S & ~E) + stage.cost;
      if (!best || c < best.cost) best = { cost: c, ending: E, stage };
    }
    this.memo.set(S, best!); // a single sink is always an ending that fits
    return best!.cost;
  }

  /** Endings of S with at most r·s ops: subsets closed under successors within S. */
  endings(S: number): number[] {
    const { r, s, maxEndings } = this.o;
    const limit = this.exact ? Infinity : maxEndings;
    const found: number[] = [];
    const walk = (i: number, E: number, size: number) => {
      if (found.length >= limit) return;
      if (i < 0) return void (E !== 0 && found.push(E));
      const bit = 1 << i;
      if ((S & bit) && size < r * s && (this.succMask[i] & S & ~E) === 0) {
        walk(i - 1, E | bit, size + 1);
      }
      walk(i - 1, E, size);
    };
    walk(this.m - 1, 0, 0);
    if (!this.exact) { // every single sink, so the pruned search can always go one op at a time
      for (let i = 0; i < this.m; i++) {
        const bit = 1 << i;
        if ((S & bit) && (this.succMask[i] & S) === 0 && !found.includes(bit)) found.push(bit);
      }
    }
    return found;
  }

  /** The cheapest split of ending E into at most s groups of at most r ops. */
  stage(E: number): Stage | null {
    let known = this.stages.get(E);
    if (known !== undefined) return known;
    const components = this.components(E);
    const { r, s } = this.o;
    known = null;
    if (components.every((c) => c.length <= r)) {
      const splits = this.exact ? partitions(components, r, s) : [this.pack(components)];
      for (const groups of splits) {
        if (!groups) continue;
        const cost = this.stageCost(groups.map((g) => g.map((i) => this.block[i])));
        if (!known || cost < known.cost) known = { cost, groups };
      }
    }
    this.stages.set(E, known);
    return known;
  }

  /** Connected components of E under its internal edges, each in topological order. */
  components(E: number): number[][] {
    const seen = new Set<number>();
    const out: number[][] = [];
    for (let i = 0; i < this.m; i++) {
      if (!(E & (1 << i)) || seen.has(i)) continue;
      const component: number[] = [];
      const stack = [i];
      seen.add(i);
      while (stack.length > 0) {
        const v = stack.pop()!;
        component.push(v);
        const next = (this.predMask[v] | this.succMask[v]) & E;
        for (let j = 0; j < this.m; j++) {
          if ((next & (1 << j)) && !seen.has(j)) {
            seen.add(j);
            stack.push(j);
          }
        }
      }
      out.push(component.sort((a, b) => a - b));
    }
    return out;
  }

  /** One component per group, or, past s of them, longest first into the least busy group. */
  pack(components: number[][]): number[][] | null {
    const { r, s } = this.o;
    if (components.length <= s) return components;
    const time = (c: number[]) => this.stageCost([c.map((i) => this.block[i])]);
    const sorted = components.map((c) => ({ c, t: time(c) })).sort((a, b) => b.t - a.t);
    const groups = Array.from({ length: s }, () => ({ ops: [] as number[], t: 0 }));
    for (const { c, t } of sorted) {
      const fits = groups.filter((g) => g.ops.length + c.length <= r);
      if (fits.length === 0) return null;
      const g = fits.reduce((a, b) => (b.t < a.t ? b : a));
      g.ops.push(...c);
      g.t += t;
    }
    return groups.filter((g) => g.ops.length > 0).map((g) => g.ops.sort((a, b) => a - b));
  }
}

/** Every way to put the components into at most s groups of at most r ops. */
function partitions(components: number[][], r: number, s: number): number[][][] {
  const out: number[][][] = [];
  const groups: number[][] = [];
  const place = (k: number) => {
    if (k === components.length) {
      out.push(groups.map((g) => [...g].sort((a, b) => a - b)));
      return;
    }
    const c = components[k];
    for (const g of groups) {
      if (g.length + c.length > r) continue;
      g.push(...c);
      place(k + 1);
      g.length -= c.length;
    }
    if (groups.length < s) {
      groups.push([...c]);
      place(k + 1);
      groups.pop();
    }
  };
  place(0);
  return out;
}

export function iosSchedule(ctx: ScheduleContext, options: IosOptions = ctx.ios ?? {}): Schedule {
  const { dag, costs, device } = ctx;
  const s = Math.min(options.s ?? IOS_DEFAULTS.s, ctx.maxStreams ?? Infinity);
  const stageCost: StageCost = ctx.measureStage ?? ((g) => simulateStage(g, costs, device));
  const { stages } = iosStages(dag, stageCost, { ...options, s });
  // Each stage's groups on distinct streams, each preferring the stream of its latest producer.
  const stream = new Array<number>(dag.size).fill(-1);
  const at = new Array<number>(dag.size).fill(-1);
  const order: number[] = [];
  for (const stage of stages) {
    const taken = new Set<number>();
    const byWork = [...stage].sort((a, b) => work(b) - work(a));
    for (const group of byWork) {
      const producers = group.flatMap((v) => dag.preds[v]).filter((p) => at[p] >= 0);
      producers.sort((a, b) => at[b] - at[a]);
      let st = producers.map((p) => stream[p]).find((x) => !taken.has(x));
      if (st === undefined) { for (st = 0; taken.has(st); st++); }
      taken.add(st);
      for (const v of group) {
        stream[v] = st;
        at[v] = order.push(v) - 1;
      }
    }
  }
  return insertEvents("ios", dag, order, stream);

  function work(group: number[]): number {
    return group.reduce((t, v) => t + (ctx.opTimeUs?.[v] ?? opTimeUs(costs[v], device)), 0);
  }
}
