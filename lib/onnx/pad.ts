/** Applying a pending Pad that no consumer folded into its own padding (context.ts). */
import { numel } from "../ir/graph.ts";
import type { PendingPad } from "./context.ts";
import type { GraphEmitter } from "./emit.ts";

/**
 * Applies a pending pad (once; `done` caches it): a Slice removes negative pads, then a Concat
 * with constant blocks adds the positive ones, axis by axis.
 */
export function applyPad(
  emitter: GraphEmitter,
  done: Map<PendingPad, string>,
  p: PendingPad,
): string {
  const cached = done.get(p);
  if (cached) return cached;
  let x = p.source;
  const shape = [...emitter.value(x).shape];
  const rank = shape.length;
  const nodeName = `${p.node}:apply`;
  if (p.begins.some((b) => b < 0) || p.ends.some((e) => e < 0)) {
    const axes = [...Array(rank).keys()];
    x = emitter.node("Slice", `${nodeName}:crop`, [x], {
      axes,
      starts: p.begins.map((b) => Math.max(0, -b)),
      ends: p.ends.map((e, d) => shape[d] + Math.min(0, e)),
      steps: axes.map(() => 1),
    }, `${p.output}:cropped`);
  }
  for (let d = 0; d < rank; d++) {
    const [b, e] = [Math.max(0, p.begins[d]), Math.max(0, p.ends[d])];
    if (b === 0 && e === 0) continue;
    const current = emitter.value(x).shape;
    const block = (size: number, side: string) => {
      const s = current.map((v, i) => (i === d ? size : v));
      const data = new Float32Array(numel(s)).fill(p.value);
      return emitter.constant(`${p.node}:pad${d}${side}`, { dtype: "float32", shape: s, data });
    };
    const parts = [...(b ? [block(b, "before")] : []), x, ...(e ? [block(e, "after")] : [])];
    x = emitter.node("Concat", `${nodeName}:axis${d}`, parts, { axis: d }, `${p.output}:axis${d}`);
  }
  done.set(p, x);
  return x;
}
