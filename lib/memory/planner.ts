/**
 * The memory planner: places every intermediate tensor in one device arena. Two tensors may share
 * bytes only when every use of one happens before the other is written, under the schedule's
 * happens-before relation (stream order and events), so the same planner serves one stream or many.
 * Views (Flatten, Reshape, Identity, Dropout) share their source's storage.
 * Placement is greedy by size, first fit (as TFLite's arena planner).
 */
import { DTYPE_SIZE, type Graph, numel, type Value } from "../ir/graph.ts";
import { opSpec } from "../ir/ops.ts";
import { accessesOf, HappensBefore, type Schedule } from "../schedule/schedule.ts";

export const ALIGNMENT = 256;

export interface Region {
  /** The storage's root value. */
  value: string;
  offset: number;
  bytes: number;
}

export class MemoryPlan {
  constructor(
    /** Arena size in bytes. */
    readonly arenaBytes: number,
    /** Arena regions by root value (initializers live elsewhere and are not here). */
    readonly storage: Map<string, Region>,
    /** Values sharing each root's storage, the root included. */
    readonly members: Map<string, string[]>,
    readonly roots: Map<string, string>,
  ) {}

  /** The value whose storage `value` uses (itself unless it is a view). */
  rootOf(value: string): string {
    return this.roots.get(value) ?? value;
  }

  /** Byte offset of a value in the arena, or undefined for initializers. */
  offsetOf(value: string): number | undefined {
    return this.storage.get(this.rootOf(value))?.offset;
  }

  /** What the arena would need with no reuse at all. */
  get noReuseBytes(): number {
    let total = 0;
    for (const r of this.storage.values()) total += r.bytes;
    return total;
  }
}

const align = (n: number) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

export function planMemory(
  graph: Graph,
  shapes: Map<string, Value>,
  schedule: Schedule,
  options: { reuse?: boolean } = {},
): MemoryPlan {
  // Storage roots: views share their source's storage.
  const roots = new Map<string, string>();
  const rootOf = (v: string): string => roots.get(v) ?? v;
  const producer = new Map(schedule.launches.map((l) => [graph.nodes[l.node].outputs[0], l]));
  for (const launch of schedule.launches) {
    const node = graph.nodes[launch.node];
    if (opSpec(node.op).view) roots.set(node.outputs[0], rootOf(node.inputs[0]));
  }
  const members = new Map<string, string[]>();
  const arenaValues = [...graph.inputs, ...[...producer.keys()]];
  for (const v of arenaValues) {
    const root = rootOf(v);
    if (graph.initializers.has(root)) continue;
    members.set(root, [...(members.get(root) ?? []), v]);
  }

  // Every access of each storage, as launch indices (-1 before the graph, Infinity after it).
  const access = accessesOf(graph, schedule);
  const uses = new Map<string, { writer: number; all: number[] }>();
  for (const [root, values] of members) {
    const writer = access.get(root)?.writer ?? -1;
    const readers = values.flatMap((v) => access.get(v)?.readers ?? []);
    uses.set(root, { writer, all: [writer, ...readers] });
  }
  const hb = new HappensBefore(schedule);
  const before = (a: number, b: number) =>
    a !== b && a !== Infinity && b !== -1 && (a === -1 || hb.ordered(a, b));
  const disjointInTime = (u: string, v: string) => {
    const U = uses.get(u)!, V = uses.get(v)!;
    return U.all.every((x) => before(x, V.writer)) || V.all.every((x) => before(x, U.writer));
  };

  const sizeOf = (v: string) => {
    const s = shapes.get(v)!;
    return align(Math.max(1, numel(s.shape) * DTYPE_SIZE[s.dtype]));
  };
  const order = [...members.keys()].sort((a, b) => sizeOf(b) - sizeOf(a) || a.localeCompare(b));
  const placed: Region[] = [];
  let arenaBytes = 0;
  for (const value of order) {
    const bytes = sizeOf(value);
    const conflicts = options.reuse === false
      ? placed
      : placed.filter((r) => !disjointInTime(r.value, value));
    conflicts.sort((a, b) => a.offset - b.offset);
    let offset = 0;
    for (const r of conflicts) {
      if (r.offset >= offset + bytes) break;
      offset = Math.max(offset, r.offset + r.bytes);
    }
    placed.push({ value, offset, bytes });
    arenaBytes = Math.max(arenaBytes, offset + bytes);
  }
  return new MemoryPlan(arenaBytes, new Map(placed.map((r) => [r.value, r])), members, roots);
}
