/**
 * The memory planner: places every intermediate tensor in one device arena. Two tensors may share
 * bytes only when every use of one happens before the other is written, under the schedule's
 * happens-before relation (stream order and events), so the same planner serves one stream or many.
 * Views share their source's storage, and Concats whose inputs are contiguous slices of their output
 * are done in place (lib/memory/aliases.ts): a storage may then have several writers, and it is
 * free only once every access of every value inside it is over.
 * Placement is greedy by size, first fit (as TFLite's arena planner).
 */
import { DTYPE_SIZE, type Graph, numel, type Value } from "../ir/graph.ts";
import { HappensBefore, type Schedule, storageUses } from "../schedule/schedule.ts";
import { type Alias, findAliases } from "./aliases.ts";

export const ALIGNMENT = 256;

export interface Region {
  /** The storage's root value. */
  value: string;
  offset: number;
  bytes: number;
}

export class MemoryPlan {
  /** Arena size in bytes. */
  readonly arenaBytes: number;
  /** Arena regions by root value (initializers live elsewhere and are not here). */
  readonly storage: Map<string, Region>;
  /** Values sharing each root's storage, the root included. */
  readonly members: Map<string, string[]>;
  /** Values living inside another value's storage (views, in-place concat inputs). */
  readonly aliases: Map<string, Alias>;
  /** Outputs of the Concats done in place, which launch no kernel. */
  readonly elided: Set<string>;
  /** Exact bytes of every value in the arena. */
  readonly valueBytes: Map<string, number>;

  constructor(fields: Omit<MemoryPlan, "rootOf" | "offsetOf" | "bytesOf" | "noReuseBytes">) {
    this.arenaBytes = fields.arenaBytes;
    this.storage = fields.storage;
    this.members = fields.members;
    this.aliases = fields.aliases;
    this.elided = fields.elided;
    this.valueBytes = fields.valueBytes;
  }

  /** The value whose storage `value` uses (itself unless it lives in another's). */
  rootOf(value: string): string {
    return this.aliases.get(value)?.root ?? value;
  }

  /** Byte offset of a value in the arena, or undefined for initializers. */
  offsetOf(value: string): number | undefined {
    const base = this.storage.get(this.rootOf(value))?.offset;
    return base === undefined ? undefined : base + (this.aliases.get(value)?.offset ?? 0);
  }

  /** Exact bytes of a value (0 when it is not in the arena). */
  bytesOf(value: string): number {
    return this.valueBytes.get(value) ?? 0;
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
  options: { reuse?: boolean; concatInPlace?: boolean } = {},
): MemoryPlan {
  const order = schedule.launches.map((l) => l.node);
  const { alias, elided } = findAliases(graph, shapes, order, options);
  const rootOf = (v: string): string => alias.get(v)?.root ?? v;
  const members = new Map<string, string[]>();
  const arenaValues = [...graph.inputs, ...order.flatMap((n) => graph.nodes[n].outputs)];
  for (const v of arenaValues) {
    const root = rootOf(v);
    if (graph.initializers.has(root)) continue;
    members.set(root, [...(members.get(root) ?? []), v]);
  }

  // Every write and access of each storage, as launch indices (-1 before the graph, Infinity
  // after it). Two storages may share bytes when one's accesses all precede the other's writes.
  const uses = storageUses(graph, schedule, members, elided);
  const hb = new HappensBefore(schedule);
  const before = (a: number, b: number) =>
    a !== b && a !== Infinity && b !== -1 && (a === -1 || hb.ordered(a, b));
  const precedes = (u: string, v: string) => {
    const U = uses.get(u)!, V = uses.get(v)!;
    return V.writers.every((w) => U.all.every((x) => before(x, w)));
  };
  const disjointInTime = (u: string, v: string) => precedes(u, v) || precedes(v, u);

  const valueBytes = new Map(arenaValues.map((v) => {
    const s = shapes.get(v)!;
    return [v, numel(s.shape) * DTYPE_SIZE[s.dtype]];
  }));
  const sizeOf = (v: string) => align(Math.max(1, valueBytes.get(v)!));
  const bySize = [...members.keys()].sort((a, b) => sizeOf(b) - sizeOf(a) || a.localeCompare(b));
  const placed: Region[] = [];
  let arenaBytes = 0;
  for (const value of bySize) {
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
  const storage = new Map(placed.map((r) => [r.value, r]));
  return new MemoryPlan({ arenaBytes, storage, members, aliases: alias, elided, valueBytes });
}
