/**
 * Which values share another value's storage, and where inside it, before any placement.
 *
 * - Views (Flatten, Reshape, Identity, Dropout) live at their source's first byte.
 * - In-place concatenation (as TensorRT's concat elimination): when a Concat's inputs are
 *   contiguous slices of its output (every axis before the concat axis has size 1, as for channels
 *   at batch 1), each producer writes straight into its slice and the Concat launches no kernel.
 *   Concats are taken in reverse launch order, so an outer concat places its inputs first and a
 *   nested one (Inception's branch concats) places its own inputs inside its slice. A concat whose
 *   inputs already sit, in order and back to back, inside one storage becomes a view of that span:
 *   DenseNet's concats of a growing list of features are all prefixes of the block's last one.
 *   A concat whose inputs cannot be placed so (a graph input or weight, a view, one value twice,
 *   an input already placed elsewhere, a slice off the alignment) keeps its copy kernel.
 */
import { DTYPE_SIZE, type Graph, numel, type Value } from "../ir/graph.ts";
import { type AttrsByOp, opSpec } from "../ir/ops.ts";

/** Slices start on this many bytes, so the kernels' 16-byte vector paths stay open. */
export const SLICE_ALIGNMENT = 16;

export interface Alias {
  /** The value whose storage this one lives in. */
  root: string;
  /** Byte offset inside the root's storage. */
  offset: number;
}

export interface Aliases {
  /** Every value that lives in another's storage (values absent here are their own root). */
  alias: Map<string, Alias>;
  /** Outputs of the Concats that need no kernel. */
  elided: Set<string>;
}

/** `order`: node indices in a topological order (a schedule's launch order). */
export function findAliases(
  graph: Graph,
  shapes: Map<string, Value>,
  order: number[],
  options: { concatInPlace?: boolean } = {},
): Aliases {
  const alias = new Map<string, Alias>();
  const elided = new Set<string>();
  const resolve = (v: string): Alias => {
    const a = alias.get(v);
    if (!a) return { root: v, offset: 0 };
    const r = resolve(a.root);
    return { root: r.root, offset: r.offset + a.offset };
  };
  const producer = new Map<string, number>();
  graph.nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  const bytesOf = (v: string) => {
    const s = shapes.get(v)!;
    return numel(s.shape) * DTYPE_SIZE[s.dtype];
  };

  if (options.concatInPlace !== false) {
    for (const i of [...order].reverse()) {
      const node = graph.nodes[i];
      if (node.op !== "Concat") continue;
      const y = node.outputs[0];
      const shape = shapes.get(y)!.shape;
      const axis = (node.attrs as AttrsByOp["Concat"]).axis;
      if (numel(shape.slice(0, axis < 0 ? axis + shape.length : axis)) !== 1) continue;
      const starts: number[] = [];
      let at = 0;
      for (const x of node.inputs) {
        starts.push(at);
        at += bytesOf(x);
      }
      const writable = (x: string) => {
        const p = producer.get(x);
        return p !== undefined && !opSpec(graph.nodes[p].op).view;
      };
      if (
        new Set(node.inputs).size !== node.inputs.length || !node.inputs.every(writable) ||
        starts.some((s) => s % SLICE_ALIGNMENT !== 0)
      ) continue;
      const placed = node.inputs.map((x) => alias.has(x));
      if (placed.every((p) => !p)) {
        // Fresh inputs: each goes into its slice of the output (wherever the output lives).
        node.inputs.forEach((x, k) => alias.set(x, { root: y, offset: starts[k] }));
        elided.add(y);
      } else if (placed.every((p) => p) && !alias.has(y)) {
        // Inputs already back to back inside one storage: the output is a view of that span.
        const first = resolve(node.inputs[0]);
        const contiguous = node.inputs.every((x, k) => {
          const r = resolve(x);
          return r.root === first.root && r.offset === first.offset + starts[k];
        });
        if (contiguous) {
          alias.set(y, first);
          elided.add(y);
        }
      }
    }
  }
  // Views last: a view of a value placed inside a concat lives at that value's place.
  for (const i of order) {
    const node = graph.nodes[i];
    if (opSpec(node.op).view) alias.set(node.outputs[0], { root: node.inputs[0], offset: 0 });
  }
  // Flatten every chain to its final root.
  for (const v of [...alias.keys()]) alias.set(v, resolve(v));
  return { alias, elided };
}
