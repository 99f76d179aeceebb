/**
 * Removes nodes whose outputs no graph output depends on (what an importer leaves behind when a
 * pattern replaced part of a chain, e.g. the Div feeding an Erf that became a Gelu), then the
 * initializers only they read.
 */
import type { Graph } from "../ir/graph.ts";
import { dropUnusedInitializers } from "./fold_batchnorm.ts";

export function dropDeadNodes(input: Graph): Graph {
  const graph = input.clone();
  const live = new Set(graph.outputs);
  // Nodes are visited consumers first: walk the stored order backwards until nothing changes
  // (one pass when the order is topological, as built).
  let changed = true;
  const kept = new Set<number>();
  while (changed) {
    changed = false;
    for (let i = graph.nodes.length - 1; i >= 0; i--) {
      const node = graph.nodes[i];
      if (kept.has(i) || !node.outputs.some((o) => live.has(o))) continue;
      kept.add(i);
      changed = true;
      for (const name of node.inputs) if (name !== "") live.add(name);
    }
  }
  const dead = graph.nodes.filter((_, i) => !kept.has(i));
  for (const node of dead) for (const o of node.outputs) graph.values.delete(o);
  graph.nodes = graph.nodes.filter((_, i) => kept.has(i));
  return dropUnusedInitializers(graph);
}
