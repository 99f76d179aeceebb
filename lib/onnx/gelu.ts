/**
 * The exact GELU as exporters spell it before opset 20 has a Gelu op:
 *   y = x · 0.5 · (1 + Erf(x / √2))
 * torch.onnx writes Div(x, √2) → Erf → Add(1) → Mul(x) → Mul(0.5); other exporters multiply by
 * 1/√2, halve x first, or multiply in another association or operand order. Every such chain
 * becomes one node of op type "Gelu" (ONNX opset 20's, approximate="none"), which the importer
 * maps to braid's Gelu. A chain is fused only when its intermediate values feed nothing else.
 */
import type { NodeProto } from "./proto.ts";

/** The scalar value of a constant (initializer or Constant node), if `name` is one. */
export type ScalarOf = (name: string) => number | undefined;

const near = (v: number | undefined, want: number) =>
  v !== undefined && Math.abs(v - want) <= 1e-6 * Math.abs(want);

export function fuseErfGelu(
  nodes: NodeProto[],
  scalarOf: ScalarOf,
  graphOutputs: ReadonlySet<string>,
): { nodes: NodeProto[]; fused: number } {
  const producer = new Map<string, NodeProto>();
  const consumers = new Map<string, NodeProto[]>();
  for (const n of nodes) {
    for (const o of n.output) producer.set(o, n);
    for (const i of n.input) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  }
  /** The one node reading `value`, when exactly one does and it is no graph output. */
  const sole = (value: string, op: string): NodeProto | undefined => {
    const list = consumers.get(value) ?? [];
    return list.length === 1 && list[0].opType === op && !graphOutputs.has(value)
      ? list[0]
      : undefined;
  };
  /** For a binary node reading `value`, its other operand. */
  const other = (n: NodeProto, value: string) =>
    n.input[0] === value ? n.input[1] : n.input[1] === value ? n.input[0] : undefined;

  const removed = new Set<NodeProto>();
  const replacement = new Map<NodeProto, NodeProto>();
  for (const erf of nodes) {
    if (erf.opType !== "Erf" || removed.has(erf)) continue;
    // x / √2, or x · (1/√2).
    const scale = producer.get(erf.input[0]);
    if (!scale || !sole(scale.output[0], "Erf")) continue;
    let x: string | undefined;
    if (scale.opType === "Div" && near(scalarOf(scale.input[1]), Math.SQRT2)) x = scale.input[0];
    if (scale.opType === "Mul") {
      if (near(scalarOf(scale.input[1]), Math.SQRT1_2)) x = scale.input[0];
      else if (near(scalarOf(scale.input[0]), Math.SQRT1_2)) x = scale.input[1];
    }
    if (!x) continue;
    // 1 + Erf(·).
    const plus = sole(erf.output[0], "Add");
    if (!plus || !near(scalarOf(other(plus, erf.output[0])!), 1)) continue;
    // The product of x, 0.5 and (1 + Erf): three ways to associate it.
    const m1 = sole(plus.output[0], "Mul");
    if (!m1) continue;
    const operand = other(m1, plus.output[0])!;
    let chain: NodeProto[] | undefined;
    let out: string | undefined;
    if (operand === x) {
      // (x · p) · 0.5, or (x · p) / 2.
      const m2 = sole(m1.output[0], "Mul") ?? sole(m1.output[0], "Div");
      const factor = m2 && scalarOf(m2.input[1] === m1.output[0] ? m2.input[0] : m2.input[1]);
      if (
        m2 && (m2.opType === "Mul" ? near(factor, 0.5) : m2.input[0] === m1.output[0] &&
          near(scalarOf(m2.input[1]), 2))
      ) {
        chain = [m1, m2];
        out = m2.output[0];
      }
    } else if (near(scalarOf(operand), 0.5)) {
      // (0.5 · p) · x.
      const m2 = sole(m1.output[0], "Mul");
      if (m2 && other(m2, m1.output[0]) === x) {
        chain = [m1, m2];
        out = m2.output[0];
      }
    } else {
      // (x · 0.5) · p.
      const half = producer.get(operand);
      if (
        half?.opType === "Mul" && sole(operand, "Mul") === m1 && other(half, x) !== undefined &&
        near(scalarOf(other(half, x)!), 0.5)
      ) {
        chain = [half, m1];
        out = m1.output[0];
      }
    }
    if (!chain || !out) continue;
    const last = chain[chain.length - 1];
    for (const n of [scale, erf, plus, ...chain]) removed.add(n);
    replacement.set(last, {
      input: [x],
      output: [out],
      name: erf.name ? `${erf.name}:gelu` : `${out}:gelu`,
      opType: "Gelu",
      domain: "",
      attribute: [],
    });
  }
  // The fused node takes the place of the chain's last node: x is defined before the chain began.
  const result: NodeProto[] = [];
  for (const n of nodes) {
    const r = replacement.get(n);
    if (r) result.push(r);
    else if (!removed.has(n)) result.push(n);
  }
  return { nodes: result, fused: replacement.size };
}
