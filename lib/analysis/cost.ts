/**
 * Per-op and per-graph cost: FLOPs, bytes moved, parameters, and the compute- or memory-bound class.
 */
import { type Graph, type Node, numel, type Value } from "../ir/graph.ts";
import { bytesMoved, opSpec } from "../ir/ops.ts";

export interface OpCost {
  flops: number;
  bytes: number;
  /** FLOPs per byte moved. */
  intensity: number;
}

export function opCost(node: Node, shapes: Map<string, Value>): OpCost {
  const spec = opSpec(node.op);
  const inputs = node.inputs.map((n) => (n === "" ? undefined : shapes.get(n)));
  const outputs = node.outputs.map((n) => shapes.get(n)!);
  const flops = spec.flops(inputs, outputs, node.attrs);
  const bytes = spec.view ? 0 : bytesMoved(inputs, outputs);
  return { flops, bytes, intensity: bytes === 0 ? 0 : flops / bytes };
}

/** Total FLOPs of a graph. */
export function graphFlops(graph: Graph, shapes: Map<string, Value>): number {
  return graph.nodes.reduce((sum, n) => sum + opCost(n, shapes).flops, 0);
}

/**
 * Learnable parameters, counted as PyTorch's `sum(p.numel() for p in model.parameters())`:
 * every initializer a node reads, except buffers such as BatchNorm's running statistics.
 */
export function parameterCount(graph: Graph): number {
  const params = new Set<string>();
  const buffers = new Set<string>();
  for (const node of graph.nodes) {
    const bufferInputs = opSpec(node.op).bufferInputs ?? [];
    node.inputs.forEach((name, i) => {
      if (!graph.initializers.has(name)) return;
      (bufferInputs.includes(i) ? buffers : params).add(name);
    });
  }
  let total = 0;
  for (const name of params) {
    if (!buffers.has(name)) total += numel(graph.initializers.get(name)!.shape);
  }
  return total;
}
