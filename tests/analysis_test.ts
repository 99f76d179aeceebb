import { assert } from "./deps.ts";
import {
  buildDag,
  criticalPath,
  reachability,
  slack,
  transitiveReduction,
  width,
} from "../lib/analysis/dag.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import { Random } from "../lib/util/random.ts";
import { randomDag } from "./random_graphs.ts";

/** x → a → {b, c} → d: a diamond with a tail. */
function diamond() {
  const b = new GraphBuilder("diamond");
  const x = b.input("x", [1, 4]);
  const a = b.relu(x, "a");
  const l = b.sigmoid(a, "b");
  const r = b.tanh(a, "c");
  const d = b.add(l, r, "d");
  b.output(b.add(d, a, "e"));
  return b.build();
}

Deno.test("dag: reachability, reduction, critical path and width of a diamond", () => {
  const g = diamond();
  const dag = buildDag(g);
  const reach = reachability(dag);
  const idx = (name: string) => g.nodes.findIndex((n) => n.name === name);
  assert.deepEqual([...reach[idx("a")]].sort(), [idx("b"), idx("c"), idx("d"), idx("e")].sort());
  assert.equal(reach[idx("b")].has(idx("c")), false);
  // a → e is implied by a → b → d → e, so the reduction drops it.
  const reduced = transitiveReduction(dag, reach);
  assert.equal(reduced[idx("a")].includes(idx("e")), false);
  assert.equal(reduced[idx("a")].length, 2);
  assert.equal(criticalPath(dag).length, 4);
  assert.equal(criticalPath(dag, (i) => (g.nodes[i].name === "c" ? 10 : 1)).length, 13);
  assert.equal(width(dag, reach), 2);
  // With c ten times heavier, a, c, d, e are critical and b may start 9 units late.
  const { slack: slacks, length } = slack(dag, (i) => (g.nodes[i].name === "c" ? 10 : 1));
  assert.equal(length, 13);
  assert.deepEqual(
    ["a", "b", "c", "d", "e"].map((name) => slacks[idx(name)]),
    [0, 9, 0, 0, 0],
  );
});

/** Brute force: the largest set of pairwise unreachable nodes. */
function bruteWidth(size: number, reach: ReturnType<typeof reachability>): number {
  let best = 0;
  for (let mask = 1; mask < 1 << size; mask++) {
    const set = [...Array(size).keys()].filter((i) => mask & (1 << i));
    const independent = set.every((i) => set.every((j) => i === j || !reach[i].has(j)));
    if (independent) best = Math.max(best, set.length);
  }
  return best;
}

Deno.test("dag: width equals brute force on 100 seeded random DAGs", () => {
  const random = new Random(7);
  for (let t = 0; t < 100; t++) {
    const g = randomDag(random, random.int(1, 11));
    const dag = buildDag(g);
    const reach = reachability(dag);
    assert.equal(width(dag, reach), bruteWidth(dag.size, reach), `case ${t}`);
  }
});
