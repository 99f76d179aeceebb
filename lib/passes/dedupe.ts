/**
 * Common-subexpression elimination: a node computing exactly what an earlier node computes (same
 * op, same attributes, same inputs) is dropped, and its readers read the earlier node's output.
 * Exporters and cell-based models repeat work this way: each NASNet branch applies its own ReLU
 * to a shared input, so one cell computes the same ReLU up to four times. Walking in topological
 * order with renamed inputs also merges chains that become equal once their inputs are merged.
 * A node whose output is a graph output is kept, so every output keeps its own name.
 */
import type { Graph } from "../ir/graph.ts";
import { topologicalOrder } from "../ir/validate.ts";

export function dedupeNodes(input: Graph): Graph {
  const graph = input.clone();
  const renamed = new Map<string, string>();
  const first = new Map<string, string[]>();
  const dropped = new Set<number>();
  for (const i of topologicalOrder(graph)) {
    const node = graph.nodes[i];
    node.inputs = node.inputs.map((v) => renamed.get(v) ?? v);
    const key = JSON.stringify([node.op, node.attrs, node.inputs]);
    const earlier = first.get(key);
    if (!earlier) {
      first.set(key, node.outputs);
      continue;
    }
    if (node.outputs.some((o) => graph.outputs.includes(o))) continue;
    node.outputs.forEach((o, k) => {
      renamed.set(o, earlier[k]);
      graph.values.delete(o);
    });
    dropped.add(i);
  }
  if (dropped.size === 0) return graph;
  graph.nodes = graph.nodes.filter((_, i) => !dropped.has(i));
  for (const node of graph.nodes) node.inputs = node.inputs.map((v) => renamed.get(v) ?? v);
  return graph;
}
