/** Seeded random DAGs of elementwise ops, for analysis, scheduling and planner tests. */
import { GraphBuilder } from "../lib/ir/builder.ts";
import type { Graph } from "../lib/ir/graph.ts";
import type { Random } from "../lib/util/random.ts";

export function randomDag(random: Random, ops: number, features = 8): Graph {
  const b = new GraphBuilder(`random_${ops}`);
  const values = [b.input("x", [1, features])];
  const consumed = new Set<string>();
  for (let i = 0; i < ops; i++) {
    const a = random.pick(values);
    const kind = random.int(0, 3);
    const name = `n${i}`;
    let v: string;
    if (kind === 0) v = b.relu(a, name);
    else if (kind === 1) v = b.tanh(a, name);
    else if (kind === 2) v = b.sigmoid(a, name);
    else v = b.add(a, random.pick(values), name);
    for (const node of b.graph.nodes.at(-1)!.inputs) consumed.add(node);
    values.push(v);
  }
  // Every sink is an output, so no op is dead.
  for (const v of values.slice(1)) if (!consumed.has(v)) b.output(v);
  if (b.graph.outputs.length === 0) b.output(values.at(-1)!);
  return b.build();
}
