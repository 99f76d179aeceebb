/**
 * The two passes the ONNX importer runs on its output (lib/passes/dead_nodes.ts,
 * lib/passes/fuse_epilogues.ts): what they rewrite, what they must leave alone, and that the
 * rewritten graph computes the same values (CPU backend).
 */
import { assert } from "./deps.ts";
import { Session } from "../mod.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import type { Graph } from "../lib/ir/graph.ts";
import { dropDeadNodes, fuseProductEpilogues } from "../lib/passes/mod.ts";
import { Random } from "../lib/util/random.ts";
import * as ref from "./reference.ts";

const ops = (g: Graph) => g.nodes.map((n) => n.op);

async function same(a: Graph, b: Graph, inputs: Record<string, Float32Array>) {
  using sa = await Session.create(a, { device: "cpu", optimize: false });
  using sb = await Session.create(b, { device: "cpu", optimize: false });
  const [ya, yb] = [sa.runSync(inputs), sb.runSync(inputs)];
  for (const name of a.outputs) {
    const error = ref.relativeError(yb[name], ya[name]);
    assert(error < 1e-6, `${name}: relative error ${error}`);
  }
}

Deno.test("fuseProductEpilogues: bias Add into Gemm, scalar Mul into MatMul's alpha", async () => {
  const b = new GraphBuilder("epilogues", 3);
  const x = b.input("x", [2, 3, 4]);
  const y = b.input("y", [2, 4, 5]);
  const w = b.uniform("w", [4, 6], 1);
  const bias = b.uniform("bias", [6], 1);
  const scale = b.constant("scale", { dtype: "float32", shape: [], data: new Float32Array([0.5]) });
  const gemm = b.node("Gemm", [x, w], {}, "proj");
  b.output(b.node("Add", [bias, gemm], {}, "proj_bias"));
  const mm = b.matmul(x, y, {}, "scores");
  b.output(b.node("Mul", [mm, scale], {}, "scaled"));
  const graph = b.build();
  const fused = fuseProductEpilogues(graph);
  assert.deepEqual(ops(fused), ["Gemm", "MatMul"]);
  assert.deepEqual(fused.nodes[0].inputs, [x, w, bias]);
  assert.deepEqual(fused.nodes[0].outputs, ["proj_bias"]);
  assert.equal((fused.nodes[1].attrs as { alpha: number }).alpha, 0.5);
  assert.deepEqual(fused.outputs, graph.outputs);
  assert.deepEqual(ops(graph), ["Gemm", "Add", "MatMul", "Mul"], "the input graph is untouched");
  const rng = new Random(5);
  await same(graph, fused, { x: rng.floats(24), y: rng.floats(40) });
});

Deno.test("fuseProductEpilogues leaves alone what it cannot fold exactly", () => {
  const b = new GraphBuilder("kept", 4);
  const x = b.input("x", [3, 4]);
  const w = b.uniform("w", [4, 5], 1);
  const wide = b.uniform("wide", [2, 3, 5], 1);
  const two = b.uniform("two", [5], 1);
  // The Add would broadcast the product to a larger shape.
  b.output(b.node("Add", [b.node("Gemm", [x, w], {}, "g1"), wide], {}, "a1"));
  // A Gemm with a bias already: a Mul would scale the bias too, and a second Add stays.
  const withBias = b.node("Gemm", [x, w, two], {}, "g2");
  b.output(b.node("Add", [withBias, two], {}, "a2"));
  // A product read twice.
  const g3 = b.node("Gemm", [x, w], {}, "g3");
  b.output(b.node("Add", [g3, two], {}, "a3"));
  b.output(g3);
  // An activation already fused.
  const g4 = b.node("Gemm", [x, w], { activation: "relu", actMin: 0, actMax: 0 }, "g4");
  b.output(b.node("Add", [g4, two], {}, "a4"));
  const graph = b.build();
  assert.deepEqual(ops(fuseProductEpilogues(graph)), ops(graph));
});

Deno.test("dropDeadNodes removes what no output needs, and its initializers", () => {
  const b = new GraphBuilder("dead", 1);
  const x = b.input("x", [2, 4]);
  const unused = b.uniform("unused", [4], 1);
  b.node("Add", [x, unused], {}, "dead_add");
  const r = b.relu(x, "live");
  b.output(b.node("Sigmoid", [r], {}, "out"));
  const graph = b.build();
  const clean = dropDeadNodes(graph);
  assert.deepEqual(ops(clean), ["Relu", "Sigmoid"]);
  assert.ok(!clean.initializers.has(unused) && !clean.values.has(unused));
  assert.ok(!clean.values.has("dead_add"));
  assert.equal(graph.nodes.length, 3, "the input graph is untouched");
});
