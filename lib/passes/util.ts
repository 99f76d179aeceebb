/** Small queries the graph rewrites share. */
import type { Graph, Node } from "../ir/graph.ts";

/** Nodes reading each value. */
export function consumersOf(graph: Graph): Map<string, Node[]> {
  const consumers = new Map<string, Node[]>();
  for (const node of graph.nodes) {
    for (const input of node.inputs) {
      if (input === "") continue;
      const list = consumers.get(input) ?? [];
      if (!list.includes(node)) list.push(node);
      consumers.set(input, list);
    }
  }
  return consumers;
}

/** The one node that reads `value`, when exactly one does and it is not a graph output. */
export function soleConsumer(
  graph: Graph,
  consumers: Map<string, Node[]>,
  value: string,
): Node | undefined {
  const list = consumers.get(value) ?? [];
  return list.length === 1 && !graph.outputs.includes(value) ? list[0] : undefined;
}

/** Removes `node`, renaming its input `from` to its output everywhere (value names are edges). */
export function bypass(graph: Graph, node: Node, kept: string, removed: string): void {
  graph.nodes = graph.nodes.filter((n) => n !== node);
  graph.values.delete(removed);
  for (const n of graph.nodes) n.inputs = n.inputs.map((i) => (i === removed ? kept : i));
}
