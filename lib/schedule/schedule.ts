/**
 * Schedules: an ordered list of launches, each on a stream, waiting on events and recording one.
 * The happens-before relation of a schedule comes from stream order and event edges, computed
 * with vector clocks. `verify` proves a schedule and a memory plan race-free against the graph.
 */
import { BraidError } from "../errors.ts";
import type { Graph } from "../ir/graph.ts";
import { opSpec } from "../ir/ops.ts";
import type { MemoryPlan } from "../memory/planner.ts";

export interface Launch {
  /** Index of the node in graph.nodes. */
  node: number;
  /** Logical stream, 0-based; stream 0 is the capture stream. */
  stream: number;
  /** Events this launch waits on before it starts. */
  waits: number[];
  /** An event recorded right after this launch. */
  record?: number;
}

export interface Schedule {
  scheduler: string;
  streams: number;
  events: number;
  launches: Launch[];
  /** Priority of each stream (higher runs first where the device supports it); default 0. */
  priorities?: number[];
}

/**
 * Happens-before between launches (indices into schedule.launches), by vector clocks:
 * clock[l][s] is the position on stream s of the last launch there that happens before or is l.
 */
export class HappensBefore {
  readonly #clock: Int32Array[];
  readonly #position: number[];
  readonly #stream: number[];

  constructor(schedule: Schedule) {
    const streamClock = Array.from(
      { length: schedule.streams },
      () => new Int32Array(schedule.streams).fill(-1),
    );
    const eventClock = new Map<number, Int32Array>();
    const count = new Array<number>(schedule.streams).fill(0);
    this.#clock = [];
    this.#position = [];
    this.#stream = [];
    schedule.launches.forEach((launch, l) => {
      const clock = streamClock[launch.stream];
      for (const e of launch.waits) {
        const recorded = eventClock.get(e);
        if (!recorded) {
          const node = launch.node;
          throw new BraidError(
            "UNSAFE_SCHEDULE",
            `schedule ${schedule.scheduler}: launch ${l} (node ${node}) waits on event ${e} before it is recorded`,
          );
        }
        for (let s = 0; s < clock.length; s++) clock[s] = Math.max(clock[s], recorded[s]);
      }
      clock[launch.stream] = count[launch.stream]++;
      this.#clock.push(clock.slice());
      this.#position.push(clock[launch.stream]);
      this.#stream.push(launch.stream);
      if (launch.record !== undefined) eventClock.set(launch.record, clock.slice());
    });
  }

  /** True when launch a happens before launch b (or a === b). */
  ordered(a: number, b: number): boolean {
    return this.#clock[b][this.#stream[a]] >= this.#position[a];
  }
}

/** Launch index of each node. */
export function launchIndex(schedule: Schedule): Map<number, number> {
  return new Map(schedule.launches.map((l, i) => [l.node, i]));
}

/** Which launch index writes each value's storage, and which launches read it. */
export interface Access {
  writer: number; // -1: written before the graph runs (graph inputs)
  readers: number[]; // Infinity stands for "read after the graph ends" (graph outputs)
}

export function accessesOf(graph: Graph, schedule: Schedule): Map<string, Access> {
  const at = launchIndex(schedule);
  const access = new Map<string, Access>();
  const get = (v: string) => {
    let a = access.get(v);
    if (!a) access.set(v, a = { writer: -1, readers: [] });
    return a;
  };
  for (const name of graph.inputs) get(name);
  graph.nodes.forEach((node, i) => {
    const l = at.get(i)!;
    node.inputs.forEach((v) => v && !graph.initializers.has(v) && get(v).readers.push(l));
    node.outputs.forEach((v) => (get(v).writer = l));
  });
  // Outputs are read after the graph. Inputs are kept to its end too: a replay of the kernels
  // alone (profile()'s kernels-only graph) copies nothing in and must find them intact.
  for (const name of [...graph.outputs, ...graph.inputs]) get(name).readers.push(Infinity);
  return access;
}

/** The launches that write a storage's bytes, and every launch that touches them. */
export interface StorageUse {
  writers: number[];
  all: number[];
}

/**
 * Writers and accesses of each storage (`members`: root → the values living in it). A value is
 * written by its producer unless it is a view or the output of a Concat done in place (`elided`),
 * whose bytes its inputs' producers wrote.
 */
export function storageUses(
  graph: Graph,
  schedule: Schedule,
  members: Map<string, string[]>,
  elided: Set<string>,
): Map<string, StorageUse> {
  const access = accessesOf(graph, schedule);
  const viewOutputs = new Set(
    graph.nodes.filter((n) => opSpec(n.op).view).map((n) => n.outputs[0]),
  );
  const uses = new Map<string, StorageUse>();
  for (const [root, values] of members) {
    const writers = values
      .filter((v) => !viewOutputs.has(v) && !elided.has(v))
      .map((v) => access.get(v)?.writer ?? -1);
    const readers = values.flatMap((v) => access.get(v)?.readers ?? []);
    uses.set(root, { writers, all: [...writers, ...readers] });
  }
  return uses;
}

/**
 * Proves that every read-after-write, write-after-read and write-after-write on each buffer is
 * ordered by stream order or an event chain. Throws BraidError naming the first race found.
 */
export function verify(graph: Graph, schedule: Schedule, plan: MemoryPlan): void {
  const fail = (message: string): never => {
    throw new BraidError("UNSAFE_SCHEDULE", `schedule ${schedule.scheduler} is unsafe: ${message}`);
  };
  if (schedule.launches.length !== graph.nodes.length) {
    fail(`${schedule.launches.length} launches for ${graph.nodes.length} nodes`);
  }
  const seen = new Set<number>();
  for (const l of schedule.launches) {
    if (seen.has(l.node) || !graph.nodes[l.node]) {
      fail(`node ${l.node} is launched twice or unknown`);
    }
    if (l.stream < 0 || l.stream >= schedule.streams) fail(`stream ${l.stream} is out of range`);
    seen.add(l.node);
  }
  const hb = new HappensBefore(schedule);
  const before = (a: number, b: number) =>
    a === -1 || b === Infinity || (a !== Infinity && b !== -1 && hb.ordered(a, b));
  const at = launchIndex(schedule);

  // Data dependencies: each node's producers happen before it (read-after-write of values,
  // including those of view ops, which launch no kernel but still order their consumers).
  const producer = new Map<string, number>();
  graph.nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  graph.nodes.forEach((node, i) => {
    for (const v of node.inputs) {
      const p = producer.get(v);
      if (p !== undefined && !before(at.get(p)!, at.get(i)!)) {
        fail(
          `read-after-write race on "${v}": "${graph.nodes[p].name}" is not ordered before ` +
            `"${node.name}"`,
        );
      }
    }
  });

  // Buffer reuse: two storages whose bytes overlap must have one's every access before each of
  // the other's writers (write-after-read and write-after-write).
  const uses = storageUses(graph, schedule, plan.members, plan.elided);
  const usesOf = (root: string) => uses.get(root) ?? { writers: [-1], all: [-1] };
  const precedes = (A: StorageUse, B: StorageUse) =>
    B.writers.every((w) => A.all.every((x) => x !== w && before(x, w)));
  const storages = [...plan.storage.values()];
  for (let i = 0; i < storages.length; i++) {
    for (let j = i + 1; j < storages.length; j++) {
      const a = storages[i], b = storages[j];
      if (a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset) continue;
      const A = usesOf(a.value), B = usesOf(b.value);
      if (!precedes(A, B) && !precedes(B, A)) {
        fail(
          `"${a.value}" and "${b.value}" share bytes [${Math.max(a.offset, b.offset)}, ` +
            `${Math.min(a.offset + a.bytes, b.offset + b.bytes)}) but their uses are not ordered`,
        );
      }
    }
  }
  verifyAliases(graph, plan, fail);
}

/**
 * Values sharing a storage: views at their source's bytes, an in-place Concat's inputs back to back
 * inside its output, and no two written values of one storage overlapping.
 */
function verifyAliases(graph: Graph, plan: MemoryPlan, fail: (message: string) => never): void {
  const span = (v: string): [string, number] => [plan.rootOf(v), plan.offsetOf(v) ?? 0];
  const written: Map<string, [number, number, string][]> = new Map();
  graph.nodes.forEach((node) => {
    const y = node.outputs[0];
    const [root, at] = span(y);
    if (opSpec(node.op).view) {
      const [sourceRoot, sourceAt] = span(node.inputs[0]);
      if (root !== sourceRoot || at !== sourceAt) {
        fail(`view "${node.name}" does not alias its input`);
      }
      return;
    }
    if (plan.elided.has(y)) {
      if (node.op !== "Concat") fail(`"${node.name}" (${node.op}) cannot be elided`);
      let expected = at;
      for (const x of node.inputs) {
        const [xRoot, xAt] = span(x);
        if (xRoot !== root || xAt !== expected) {
          fail(`in-place concat "${node.name}": input "${x}" is not at its slice of "${y}"`);
        }
        expected += plan.bytesOf(x);
      }
      return;
    }
    if (!plan.storage.has(root)) return; // not in the arena
    const list = written.get(root) ?? [];
    list.push([at, at + plan.bytesOf(y), y]);
    written.set(root, list);
  });
  for (const list of written.values()) {
    list.sort((p, q) => p[0] - q[0]);
    for (let k = 1; k < list.length; k++) {
      if (list[k][0] < list[k - 1][1]) {
        fail(`"${list[k - 1][2]}" and "${list[k][2]}" are written to overlapping bytes`);
      }
    }
  }
}
