/**
 * Seeded random DAGs of elementwise ops, for analysis, scheduling and planner tests. With
 * `concats`, some ops are a Concat of two or three earlier values (a value may come twice) followed
 * by a Slice of `features` columns, so that in-place concatenation meets shared and repeated inputs.
 */
import { GraphBuilder } from "../lib/ir/builder.ts";
import type { Graph } from "../lib/ir/graph.ts";
import type { Random } from "../lib/util/random.ts";

export function randomDag(
  random: Random,
  ops: number,
  features = 8,
  options: { concats?: boolean } = {},
): Graph {
  const b = new GraphBuilder(`random_${ops}`);
  const values = [b.input("x", [1, features])];
  const consumed = new Set<string>();
  for (let i = 0; i < ops; i++) {
    const a = random.pick(values);
    const kind = random.int(0, options.concats ? 4 : 3);
    const name = `n${i}`;
    let v: string;
    if (kind === 4) {
      const parts = [a, ...Array.from({ length: random.int(1, 2) }, () => random.pick(values))];
      const joined = b.concat(parts, 1, `${name}_cat`);
      const start = random.int(0, (parts.length - 1) * features);
      v = b.slice(joined, [1], [start], [start + features], name);
      for (const part of parts) consumed.add(part);
    } else if (kind === 0) v = b.relu(a, name);
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
