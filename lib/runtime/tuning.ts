/**
 * The tuning cache: measured choices, keyed by everything that can change the answer: device
 * name, SM budget (a partition's SMs, or the whole device's), runtime and library versions, and
 * what was measured. Four kinds of entry:
 * - conv2d: a convolution's algorithm and workspace, keyed by its full parameter record;
 * - stage costs: the time of one IOS stage (groups of ops run concurrently), keyed by what it
 *   runs (stageStructure: ops, attributes, shapes, batch, precision), and of every op alone,
 *   keyed by the graph's signature (graphSignature);
 * - schedule choices: the schedule auto measured fastest, with its time and the trials;
 * - schedule trials: one candidate schedule's measured time, keyed by the graph's signature and
 *   the schedule's launches (a tuning pool times auto's candidates ahead of its choice).
 * A session running under an SM budget reads and writes the entries of that budget only, so a
 * model tuned inside a 32-SM partition runs with what was fastest on 32 SMs. Saved to and loaded
 * from a JSON file ("braid-tuning/2"; files of format 1 hold conv entries only and still load).
 */
import { BraidError } from "../errors.ts";
import { readFile, writeFile } from "../platform.ts";
import type { DeviceInfo } from "../../ffi/backend.ts";
import type { Graph, Value } from "../ir/graph.ts";
import type { Schedule } from "../schedule/schedule.ts";

export interface ConvChoice {
  algorithm: number;
  workspaceBytes: number;
  ms: number;
}

/** One candidate schedule auto measured: its name, streams and median replay time. */
export interface ScheduleTrial {
  scheduler: string;
  streams: number;
  ms: number;
}

/** The schedule auto chose for a graph under a budget. */
export interface ScheduleChoice {
  schedule: Schedule;
  /** Its measured replay time. */
  ms: number;
  trials: ScheduleTrial[];
}

const FORMAT = "braid-tuning/2";
type Kind = "entries" | "stages" | "opTimes" | "schedules" | "trials";
const FORMATS = ["braid-tuning/1", FORMAT];

interface CacheFile {
  format: string;
  entries: Record<string, ConvChoice>;
  stages?: Record<string, number>;
  opTimes?: Record<string, number[]>;
  schedules?: Record<string, ScheduleChoice>;
  trials?: Record<string, number>;
}

export class TuningCache {
  readonly #entries = new Map<string, ConvChoice>();
  readonly #stages = new Map<string, number>();
  readonly #opTimes = new Map<string, number[]>();
  readonly #schedules = new Map<string, ScheduleChoice>();
  readonly #trials = new Map<string, number>();
  /** Every key set, in order (with repeats): what since() reports. */
  readonly #journal: [Kind, string][] = [];

  /** Entries of every kind. */
  get size(): number {
    return this.#entries.size + this.#stages.size + this.#opTimes.size + this.#schedules.size +
      this.#trials.size;
  }

  /** The key of an op signature on a device under an SM budget. */
  static key(device: DeviceInfo, smBudget: number, op: string, signature: string): string {
    return [
      device.name,
      `sms=${smBudget}`,
      `runtime=${device.runtimeVersion}`,
      `library=${device.libraryVersion}`,
      op,
      signature,
    ].join("|");
  }

  /** The key of one stage, by its structure's hash (stageStructure) under a precision's hash. */
  static stageKey(device: DeviceInfo, smBudget: number, structure: string): string {
    return TuningCache.key(device, smBudget, "stage", structure);
  }

  /** The key of every op's time alone in a graph. */
  static opTimesKey(device: DeviceInfo, smBudget: number, graph: string): string {
    return TuningCache.key(device, smBudget, "optimes", graph);
  }

  /** The key of a scheduler's choice for a graph. */
  static scheduleKey(
    device: DeviceInfo,
    smBudget: number,
    graph: string,
    scheduler: string,
  ): string {
    return TuningCache.key(device, smBudget, "schedule", `${graph}:${scheduler}`);
  }

  /** The key of one candidate schedule's time for a graph (scheduleStructure). */
  static trialKey(device: DeviceInfo, smBudget: number, graph: string, schedule: string): string {
    return TuningCache.key(device, smBudget, "trial", `${graph}:${schedule}`);
  }

  /** The SM budget a key was made for. */
  static budgetOf(key: string): number {
    return Number(/\|sms=(\d+)\|/.exec(key)?.[1] ?? NaN);
  }

  get(key: string): ConvChoice | undefined {
    return this.#entries.get(key);
  }

  set(key: string, choice: ConvChoice): void {
    this.#entries.set(key, choice);
    this.#journal.push(["entries", key]);
  }

  /** A stage's measured time, µs. */
  getStage(key: string): number | undefined {
    return this.#stages.get(key);
  }

  setStage(key: string, us: number): void {
    this.#stages.set(key, us);
    this.#journal.push(["stages", key]);
  }

  /** Every op's measured time alone, µs (0 for views). */
  getOpTimes(key: string): number[] | undefined {
    return this.#opTimes.get(key);
  }

  setOpTimes(key: string, us: number[]): void {
    this.#opTimes.set(key, us);
    this.#journal.push(["opTimes", key]);
  }

  getSchedule(key: string): ScheduleChoice | undefined {
    return this.#schedules.get(key);
  }

  setSchedule(key: string, choice: ScheduleChoice): void {
    this.#schedules.set(key, choice);
    this.#journal.push(["schedules", key]);
  }

  /** A candidate schedule's measured replay time, ms. */
  getTrial(key: string): number | undefined {
    return this.#trials.get(key);
  }

  setTrial(key: string, ms: number): void {
    this.#trials.set(key, ms);
    this.#journal.push(["trials", key]);
  }

  /** A point in this cache's history, for since(). */
  mark(): number {
    return this.#journal.length;
  }

  /** The entries set after `mark` (their current values), as a cache of their own. */
  since(mark: number): TuningCache {
    const out = new TuningCache();
    for (const [kind, key] of this.#journal.slice(mark)) {
      if (kind === "entries") out.set(key, this.#entries.get(key)!);
      else if (kind === "stages") out.setStage(key, this.#stages.get(key)!);
      else if (kind === "opTimes") out.setOpTimes(key, this.#opTimes.get(key)!);
      else if (kind === "schedules") out.setSchedule(key, this.#schedules.get(key)!);
      else out.setTrial(key, this.#trials.get(key)!);
    }
    return out;
  }

  /** Keys of every kind. */
  keys(): string[] {
    return [
      ...this.#entries.keys(),
      ...this.#stages.keys(),
      ...this.#opTimes.keys(),
      ...this.#schedules.keys(),
      ...this.#trials.keys(),
    ];
  }

  /** How many entries each SM budget has. */
  budgets(): Map<number, number> {
    const count = new Map<number, number>();
    for (const key of this.keys()) {
      const sms = TuningCache.budgetOf(key);
      count.set(sms, (count.get(sms) ?? 0) + 1);
    }
    return count;
  }

  /**
   * Adds another cache's entries; where both have a key, theirs win, or with `prefer: "ours"`
   * ours stay (the tuning pool's parent: the first choice of a convolution two workers measured
   * at once stays the one every later stage time is measured with).
   */
  merge(other: TuningCache, prefer: "theirs" | "ours" = "theirs"): void {
    const data = other.toJSON();
    const take = <T>(
      ours: Map<string, T>,
      theirs: Record<string, T>,
      set: (k: string, v: T) => void,
    ) => {
      for (const [k, v] of Object.entries(theirs)) {
        if (prefer === "theirs" || !ours.has(k)) set(k, v);
      }
    };
    take(this.#entries, data.entries, (k, v) => this.set(k, v));
    take(this.#stages, data.stages ?? {}, (k, v) => this.setStage(k, v));
    take(this.#opTimes, data.opTimes ?? {}, (k, v) => this.setOpTimes(k, v));
    take(this.#schedules, data.schedules ?? {}, (k, v) => this.setSchedule(k, v));
    take(this.#trials, data.trials ?? {}, (k, v) => this.setTrial(k, v));
  }

  toJSON(): CacheFile {
    return {
      format: FORMAT,
      entries: Object.fromEntries(this.#entries),
      stages: Object.fromEntries(this.#stages),
      opTimes: Object.fromEntries(this.#opTimes),
      schedules: Object.fromEntries(this.#schedules),
      trials: Object.fromEntries(this.#trials),
    };
  }

  static fromJSON(text: string, source = "<memory>"): TuningCache {
    let data: Partial<CacheFile>;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new BraidError("MALFORMED_FILE", `${source}: not JSON (${(e as Error).message})`);
    }
    if (
      !FORMATS.includes(data?.format as string) || typeof data.entries !== "object" ||
      data.entries === null
    ) {
      throw new BraidError("MALFORMED_FILE", `${source}: not a ${FORMAT} tuning cache`);
    }
    const bad = (key: string) => new BraidError("MALFORMED_FILE", `${source}: bad entry "${key}"`);
    const cache = new TuningCache();
    for (const [key, c] of Object.entries(data.entries)) {
      const valid = Number.isInteger(c?.algorithm) && Number.isInteger(c?.workspaceBytes) &&
        c.workspaceBytes >= 0 && typeof c.ms === "number";
      if (!valid) throw bad(key);
      cache.set(key, { algorithm: c.algorithm, workspaceBytes: c.workspaceBytes, ms: c.ms });
    }
    for (const [key, us] of Object.entries(data.stages ?? {})) {
      if (!isTime(us)) throw bad(key);
      cache.setStage(key, us);
    }
    for (const [key, us] of Object.entries(data.opTimes ?? {})) {
      if (!Array.isArray(us) || !us.every(isTime)) throw bad(key);
      cache.setOpTimes(key, us);
    }
    for (const [key, choice] of Object.entries(data.schedules ?? {})) {
      if (!isScheduleChoice(choice)) throw bad(key);
      cache.setSchedule(key, choice);
    }
    for (const [key, ms] of Object.entries(data.trials ?? {})) {
      if (!isTime(ms)) throw bad(key);
      cache.setTrial(key, ms);
    }
    return cache;
  }

  static async load(path: string): Promise<TuningCache> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch {
      return new TuningCache(); // no file yet: start empty
    }
    return TuningCache.fromJSON(new TextDecoder().decode(bytes), path);
  }

  async save(path: string): Promise<void> {
    await writeFile(path, new TextEncoder().encode(JSON.stringify(this.toJSON(), null, 1)));
  }
}

const isTime = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0;
const isCount = (x: unknown, min = 0): x is number => Number.isInteger(x) && (x as number) >= min;

function isScheduleChoice(c: unknown): c is ScheduleChoice {
  const choice = c as ScheduleChoice;
  const s = choice?.schedule;
  return typeof s?.scheduler === "string" && isCount(s.streams, 1) && isCount(s.events) &&
    Array.isArray(s.launches) &&
    s.launches.every((l) =>
      isCount(l?.node) && isCount(l.stream) && l.stream < s.streams && Array.isArray(l.waits) &&
      l.waits.every((e) => isCount(e)) && (l.record === undefined || isCount(l.record))
    ) &&
    (s.priorities === undefined ||
      (Array.isArray(s.priorities) && s.priorities.every((p) => Number.isInteger(p)))) &&
    isTime(choice.ms) && Array.isArray(choice.trials) &&
    choice.trials.every((t) => typeof t?.scheduler === "string" && isTime(t.ms));
}

/**
 * A graph's identity for op times and schedule choices: its ops with their operands and
 * attributes, every value's shape at the session's batch, and the precision.
 */
export function graphSignature(
  graph: Graph,
  shapes: Map<string, Value>,
  precision: unknown,
): string {
  return hash64(JSON.stringify([
    graph.nodes.map((n) => [n.op, n.inputs, n.outputs, n.attrs]),
    graph.inputs,
    graph.outputs,
    [...shapes].map(([name, v]) => [name, v.dtype, v.shape]),
    precision,
  ]));
}

/** A schedule's identity for its trial time: its launches (streams, waits, records) and priorities. */
export function scheduleStructure(schedule: Schedule): string {
  return hash64(JSON.stringify([schedule.streams, schedule.launches, schedule.priorities ?? []]));
}

/**
 * A stage by what it runs rather than where, for its cost's key: per group, each op's type and
 * attributes, its inputs (a shape, or the stage position of the op producing it), its output
 * shapes, and whether it launches a kernel at all. The identical stages of repeated blocks
 * (resnet's bottlenecks, bert's layers, nasnet's cells) share one key and are measured once, and
 * the merged-convolution variant of a graph shares the stages it has in common with the graph.
 */
export function stageStructure(
  graph: Graph,
  shapes: Map<string, Value>,
  groups: number[][],
  launchesKernel: (node: number) => boolean = () => true,
): string {
  const producedAt = new Map<string, string>();
  groups.forEach((group, g) =>
    group.forEach((v, i) => graph.nodes[v].outputs.forEach((o) => producedAt.set(o, `@${g}.${i}`)))
  );
  const shapeOf = (value: string) => {
    const v = shapes.get(value);
    return v ? `${v.dtype}[${v.shape}]` : "";
  };
  return JSON.stringify(groups.map((group) =>
    group.map((v) => {
      const node = graph.nodes[v];
      const inputs = node.inputs.map((x) => producedAt.get(x) ?? shapeOf(x));
      return [node.op, node.attrs, inputs, node.outputs.map(shapeOf), launchesKernel(v)];
    })
  ));
}

/** 64 bits of two FNV-1a-style lanes over a string, as 16 hex digits. */
function hash64(text: string): string {
  let a = 0x811c9dc5, b = 0x01000193 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  const hex = (x: number) => (x >>> 0).toString(16).padStart(8, "0");
  return hex(a) + hex(b);
}

/**
 * The cache entries of one graph under one SM budget, for the scheduling of a session: stage
 * costs and op times are read from the cache or measured (and stored), and auto's choice is
 * looked up before anything is measured. Counts what it found and what it measured.
 */
export class BudgetTuning {
  readonly signature: string;
  readonly counts = {
    stagesCached: 0,
    stagesMeasured: 0,
    trialsCached: 0,
    trialsMeasured: 0,
    scheduleCached: false,
  };
  readonly #precision: string;

  constructor(
    readonly cache: TuningCache,
    readonly device: DeviceInfo,
    readonly smBudget: number,
    readonly graph: Graph,
    readonly shapes: Map<string, Value>,
    precision: unknown,
  ) {
    this.signature = graphSignature(graph, shapes, precision);
    this.#precision = hash64(JSON.stringify(precision));
  }

  /**
   * A stage's time, µs: cached (under its structure: an identical stage elsewhere counts), or
   * measured now and stored. `launchesKernel` tells views and in-place concats (no kernel).
   */
  stage(
    groups: number[][],
    measure: () => number,
    launchesKernel?: (node: number) => boolean,
  ): number {
    return this.stageAt(this.stageKey(groups, launchesKernel), measure);
  }

  /** The same, for a stage whose key (stageKey) is already known. */
  stageAt(key: string, measure: () => number): number {
    const cached = this.cache.getStage(key);
    return this.#counted("stages", cached, measure, (us) => this.cache.setStage(key, us));
  }

  /** The cache key of a stage's cost under this budget (by its structure). */
  stageKey(groups: number[][], launchesKernel?: (node: number) => boolean): string {
    const structure = stageStructure(this.graph, this.shapes, groups, launchesKernel);
    return TuningCache.stageKey(
      this.device,
      this.smBudget,
      `${this.#precision}:${hash64(structure)}`,
    );
  }

  /** Every op's time alone, µs: cached, or measured now and stored. */
  opTimes(measure: () => number[]): number[] {
    const key = TuningCache.opTimesKey(this.device, this.smBudget, this.signature);
    const cached = this.cache.getOpTimes(key);
    if (cached) return [...cached];
    const us = measure();
    this.cache.setOpTimes(key, us);
    return us;
  }

  /** The cache key of a candidate schedule's time under this budget. */
  trialKey(schedule: Schedule): string {
    const structure = scheduleStructure(schedule);
    return TuningCache.trialKey(this.device, this.smBudget, this.signature, structure);
  }

  /** A candidate schedule's replay time, ms: cached, or measured now and stored. */
  trialAt(key: string, measure: () => number): number {
    const cached = this.cache.getTrial(key);
    return this.#counted("trials", cached, measure, (ms) => this.cache.setTrial(key, ms));
  }

  /** `cached`, or `measure()` stored; counted as cached or measured. */
  #counted(
    kind: "stages" | "trials",
    cached: number | undefined,
    measure: () => number,
    store: (value: number) => void,
  ): number {
    if (cached !== undefined) {
      this.counts[`${kind}Cached`]++;
      return cached;
    }
    const value = measure();
    this.counts[`${kind}Measured`]++;
    store(value);
    return value;
  }

  /** The stored choice of a scheduler (e.g. "auto", "merged:auto"), if any. */
  schedule(scheduler: string): ScheduleChoice | undefined {
    const key = TuningCache.scheduleKey(this.device, this.smBudget, this.signature, scheduler);
    const choice = this.cache.getSchedule(key);
    if (choice) this.counts.scheduleCached = true;
    return choice;
  }

  putSchedule(scheduler: string, choice: ScheduleChoice): void {
    const key = TuningCache.scheduleKey(this.device, this.smBudget, this.signature, scheduler);
    this.cache.setSchedule(key, choice);
  }
}
