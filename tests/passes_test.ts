/** Each rewrite must compute the same function: checked in float64 with the reference interpreter. */
import { assert } from "./deps.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import type { Graph } from "../lib/ir/graph.ts";
import { numel } from "../lib/ir/graph.ts";
import { validateGraph } from "../lib/ir/validate.ts";
import { dedupeNodes, optimize } from "../lib/passes/mod.ts";
import { Random } from "../lib/util/random.ts";
import { caseSeed, rerunHint } from "./helpers.ts";
import { evaluateGraph, relativeError } from "./reference.ts";
import { buildZooModel } from "../lib/models/index.ts";

/** conv → bn → relu; a ResNet-style residual; a Relu6 head; dropout; a graph output via Identity. */
function sample(): Graph {
  const b = new GraphBuilder("sample", 3);
  const x = b.input("x", [1, 3, 9, 9]);
  const c1 = b.relu(
    b.batchNorm(b.conv2d(x, { name: "c1", out: 8, kernel: 3, padding: 1, bias: false }), "bn1"),
  );
  const c2 = b.batchNorm(b.conv2d(c1, { name: "c2", out: 8, kernel: 3, padding: 1 }), "bn2", 1e-3);
  const res = b.relu(b.add(c2, c1, "residual"), "res_relu");
  const head = b.clamp(b.conv2d(res, { name: "c3", out: 4, kernel: 1 }), 0, 6, "relu6");
  const pooled = b.flatten(b.globalAvgPool(b.dropout(head, 0.2, "drop")), 1, "flat");
  b.output(b.node("Identity", [b.linear(pooled, "fc", 5)], {}, "out"));
  return b.build();
}

Deno.test("optimize folds BatchNorm, fuses activations and residuals, drops identities", () => {
  const g = sample();
  const opt = optimize(g);
  validateGraph(opt);
  const ops = opt.nodes.map((n) => n.op);
  assert.ok(!ops.includes("BatchNorm") && !ops.includes("Relu") && !ops.includes("Clamp"));
  assert.ok(!ops.includes("Dropout") && !ops.includes("Add"), ops.join(","));
  assert.deepEqual(opt.outputs, g.outputs, "graph outputs keep their names");
  const c2 = opt.nodes.find((n) => n.name === "c2")!;
  assert.equal(c2.inputs.length, 4, "the residual add became the conv's fourth input");
  assert.equal((c2.attrs as { activation: string }).activation, "relu");
  // The original graph and its weights are untouched.
  assert.equal(g.nodes.filter((n) => n.op === "BatchNorm").length, 2);
});

Deno.test("optimized graphs compute the same function (float64 reference; folded weights are float32)", () => {
  for (let seed = 1; seed <= 5; seed++) {
    const g = sample();
    const x = new Random(caseSeed(`optimized sample, seed ${seed}`)).floats(numel([1, 3, 9, 9]));
    const ref = evaluateGraph(g, { x });
    const got = evaluateGraph(optimize(g), { x });
    for (const name of g.outputs) {
      const e = relativeError(got[name], ref[name]);
      assert.ok(
        e < 1e-6,
        `seed ${seed}: ${name} ${e} ${rerunHint(`optimized sample, seed ${seed}`)}`,
      );
    }
  }
});

/** NASNet-style: three branches each apply their own ReLU to x, two then pool the same way. */
function repeated(): Graph {
  const b = new GraphBuilder("repeated", 3);
  const x = b.input("x", [1, 4, 8, 8]);
  const r1 = b.relu(x, "r1"), r2 = b.relu(x, "r2"), r3 = b.relu(x, "r3");
  const p1 = b.node("MaxPool2d", [r1], {
    kernel: [3, 3],
    strides: [1, 1],
    pads: [1, 1, 1, 1],
    ceilMode: false,
  }, "p1");
  const p2 = b.node("MaxPool2d", [r2], {
    kernel: [3, 3],
    strides: [1, 1],
    pads: [1, 1, 1, 1],
    ceilMode: false,
  }, "p2");
  const c = b.conv2d(r3, { name: "c", out: 4, kernel: 1 });
  b.output(b.add(b.add(p1, p2, "sum"), c, "out"));
  b.output(p2);
  return b.build();
}

Deno.test("dedupeNodes merges repeated work, chains included, and keeps graph outputs", () => {
  const g = repeated();
  const opt = dedupeNodes(g);
  validateGraph(opt);
  const ops = opt.nodes.map((n) => n.op);
  assert.equal(ops.filter((o) => o === "Relu").length, 1, ops.join(","));
  // p2 equals p1 once the ReLUs are one, but it is a graph output, so it stays.
  assert.equal(ops.filter((o) => o === "MaxPool2d").length, 2);
  assert.deepEqual(opt.outputs, g.outputs);
  const x = new Random(caseSeed("deduped relus")).floats(numel([1, 4, 8, 8]), -1, 1);
  const ref = evaluateGraph(g, { x });
  const got = evaluateGraph(opt, { x });
  for (const name of g.outputs) assert.deepEqual(got[name], ref[name], name);
  // Without the output, the second pool goes too.
  const inner = repeated();
  inner.outputs = inner.outputs.slice(0, 1);
  assert.equal(dedupeNodes(inner).nodes.filter((n) => n.op === "MaxPool2d").length, 1);
});

Deno.test("optimize is idempotent on the tuned zoo models: a second run changes nothing", () => {
  // What lets an optimized graph stand in for its model (its tuning keys are the same).
  const describe = (g: Graph) =>
    JSON.stringify({
      nodes: g.nodes.map((n) => [n.op, n.name, n.inputs, n.outputs, n.attrs]),
      inputs: g.inputs,
      outputs: g.outputs,
      initializers: [...g.initializers].map(([name, t]) => [name, t.shape]),
    });
  for (const name of ["googlenet", "inception_v3", "resnet50", "densenet121"]) {
    const once = optimize(buildZooModel(name));
    const twice = optimize(once);
    assert.equal(describe(twice), describe(once), name);
    for (const [tensor, t] of once.initializers) {
      assert.deepEqual(twice.initializers.get(tensor)!.data, t.data, `${name}: ${tensor}`);
    }
  }
});
