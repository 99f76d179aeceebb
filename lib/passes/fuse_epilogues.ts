/**
 * Folds what exporters write after a matrix product back into it:
 *   Gemm (no bias) → Add of a constant [N] vector                ⇒ Gemm with that bias
 *   MatMul, or Gemm without bias → Mul by a constant scalar s     ⇒ alpha · s
 * (torch.onnx writes nn.Linear on a 3-D input as MatMul + Add, and attention's 1/√d as a Mul.)
 * Each applies only when the product's one consumer is that node and no activation is fused.
 */
import { type Graph, type Node, numel } from "../ir/graph.ts";
import type { AttrsByOp, FusedActivation } from "../ir/ops.ts";
import { consumersOf, soleConsumer } from "./util.ts";

export function fuseProductEpilogues(input: Graph): Graph {
  const graph = input.clone();
  const consumers = consumersOf(graph);
  for (const product of [...graph.nodes]) {
    if (product.op !== "Gemm" && product.op !== "MatMul") continue;
    while (absorbNext(graph, consumers, product));
  }
  return graph;
}

/** Absorbs the product's one consumer when it is a bias Add or a scalar Mul; true if it did. */
function absorbNext(graph: Graph, consumers: Map<string, Node[]>, product: Node): boolean {
  if (product.op === "Gemm" && (product.attrs as FusedActivation).activation !== "none") {
    return false;
  }
  const out = product.outputs[0];
  const next = soleConsumer(graph, consumers, out);
  if (!next || (next.op !== "Add" && next.op !== "Mul")) return false;
  if ((next.attrs as FusedActivation).activation !== "none") return false;
  if (next.inputs[0] === next.inputs[1]) return false;
  const operand = next.inputs[0] === out ? next.inputs[1] : next.inputs[0];
  const constant = graph.initializers.get(operand);
  const outShape = graph.values.get(out)?.shape;
  if (!constant || constant.dtype !== "float32" || !outShape) return false;
  // The constant must not broadcast the product's output to a larger shape.
  if (constant.shape.length > outShape.length) return false;
  const biasFree = product.op === "MatMul" || product.inputs.length === 2;
  if (next.op === "Add") {
    const n = outShape.at(-1);
    const isBias = product.op === "Gemm" && biasFree && constant.shape.at(-1) === n &&
      numel(constant.shape) === n;
    if (!isBias) return false;
    product.inputs = [...product.inputs, operand];
    product.attrs = { ...product.attrs, beta: 1 } as AttrsByOp["Gemm"];
  } else {
    if (!biasFree || numel(constant.shape) !== 1) return false;
    const alpha = (product.attrs as { alpha: number }).alpha * constant.data[0];
    product.attrs = { ...product.attrs, alpha } as AttrsByOp["Gemm"];
  }
  // The product now computes the epilogue's output.
  graph.values.delete(out);
  consumers.delete(out);
  product.outputs = [...next.outputs];
  graph.nodes = graph.nodes.filter((n) => n !== next);
  return true;
}
