/**
 * IOS operator merge (lib/passes/merge_convs.ts): sibling convolutions of one input become one
 * convolution and channel slices. Checked on optimize()'s output, as the runtime will run it:
 * in float64 on small hand-built graphs and on the CPU backend for GoogLeNet and Inception v3.
 */
import { assert } from "./deps.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import { type Graph, type Node, numel } from "../lib/ir/graph.ts";
import { validateGraph } from "../lib/ir/validate.ts";
import { buildZooModel } from "../lib/models/index.ts";
import { mergeCandidates, mergeSiblingConvs, optimize } from "../lib/passes/mod.ts";
import { Random } from "../lib/util/random.ts";
import { caseSeed, rerunHint } from "./helpers.ts";
import { Session } from "../mod.ts";
import { evaluateGraph, relativeError } from "./reference.ts";

const count = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;
const names = (groups: Node[][]) => groups.map((g) => g.map((n) => n.name));

/** Every initializer's bytes, copied, to check that a pass modifies none of them. */
function snapshot(g: Graph): Map<string, Float32Array | Int32Array> {
  return new Map([...g.initializers].map(([k, t]) => [k, t.data.slice()]));
}

function assertUntouched(g: Graph, before: Map<string, Float32Array | Int32Array>) {
  assert.equal(g.initializers.size, before.size);
  for (const [k, t] of g.initializers) assert.deepEqual(t.data, before.get(k), k);
}

/** Three 3x3 siblings (3, 5 and 2 outputs; with, without, with bias; ReLU) and three that differ. */
function siblings(): Graph {
  const b = new GraphBuilder("siblings", 11);
  const x = b.input("x", [2, 4, 7, 7]);
  const conv = (name: string, out: number, bias: boolean) =>
    b.relu(b.conv2d(x, { name, out, kernel: 3, padding: 1, bias }), `${name}.relu`);
  b.output(conv("a", 3, true)); // a graph output, read by nothing else
  const bb = conv("bb", 5, false);
  const c = conv("c", 2, true);
  // Siblings that must stay apart: another stride, depthwise, no activation.
  const strided = b.relu(b.conv2d(x, { name: "s2", out: 3, kernel: 3, padding: 1, stride: 2 }));
  const depthwise = b.relu(b.conv2d(x, { name: "dw", out: 4, kernel: 3, padding: 1, groups: 4 }));
  const linear = b.conv2d(x, { name: "lin", out: 3, kernel: 3, padding: 1 });
  b.output(b.maxPool(bb, { kernel: 3, stride: 1, padding: 1, name: "pool" }));
  b.output(b.conv2d(c, { name: "after", out: 4, kernel: 1 })); // reads a slice; not a sibling
  b.output(b.add(bb, b.conv2d(depthwise, { name: "pw", out: 5, kernel: 1 }), "sum"));
  b.output(strided);
  b.output(linear);
  return b.build();
}

/** Siblings read only by Concats: a reordered run, a whole Concat, and a broken run. */
function concats(): Graph {
  const b = new GraphBuilder("concats", 12);
  const x = b.input("x", [1, 6, 5, 5]);
  const conv = (name: string, out: number, kernel: number, bias = true) =>
    b.relu(
      b.conv2d(x, { name, out, kernel, padding: (kernel - 1) / 2, bias }),
      `${name}.relu`,
    );
  const p = conv("p", 3, 1);
  const q = conv("q", 5, 1, false);
  const r = conv("r", 2, 1);
  const s = conv("s", 4, 3);
  const t = conv("t", 3, 3, false);
  const u = conv("u", 2, 5);
  const v = conv("v", 3, 5);
  const y = b.maxPool(x, { kernel: 3, stride: 1, padding: 1, name: "y" });
  b.output(b.concat([y, r, p, q], 1, "run")); // run in another order than the nodes
  b.output(b.concat([s, t], 1, "whole")); // the merged conv is the Concat
  b.output(b.concat([u, y, v], -3, "broken")); // not contiguous: slices stay
  return b.build();
}

/** Nothing here may merge: other strides, groups > 1, a residual input, other activations. */
function apart(): Graph {
  const b = new GraphBuilder("apart", 13);
  const x = b.input("x", [1, 4, 6, 6]);
  const r = b.input("r", [1, 4, 6, 6]);
  b.output(b.relu(b.conv2d(x, { name: "k3s1", out: 4, kernel: 3, padding: 1 })));
  b.output(b.relu(b.conv2d(x, { name: "k3s2", out: 4, kernel: 3, padding: 1, stride: 2 })));
  b.output(b.relu(b.conv2d(x, { name: "dw1", out: 4, kernel: 5, padding: 2, groups: 4 })));
  b.output(b.relu(b.conv2d(x, { name: "dw2", out: 8, kernel: 5, padding: 2, groups: 2 })));
  // 1x1: one with a residual (fused from the Add), one with ReLU, one with ReLU6.
  b.output(b.add(b.conv2d(x, { name: "res", out: 4, kernel: 1 }), r, "res_add"));
  b.output(b.relu(b.conv2d(x, { name: "k1relu", out: 4, kernel: 1 })));
  b.output(b.clamp(b.conv2d(x, { name: "k1relu6", out: 4, kernel: 1 }), 0, 6));
  return b.build();
}

function inputsOf(g: Graph, seed: number): Record<string, Float32Array> {
  const random = new Random(seed);
  return Object.fromEntries(
    g.inputs.map((name) => [name, random.floats(numel(g.value(name).shape))]),
  );
}

/** Float64 evaluation of both graphs on the same inputs: same outputs, same names. */
function assertSameFunction(before: Graph, after: Graph, tolerance = 1e-12) {
  assert.deepEqual(after.outputs, before.outputs, "graph outputs keep their names");
  for (let seed = 1; seed <= 3; seed++) {
    const inputs = inputsOf(before, caseSeed(`${before.name} merged, seed ${seed}`));
    const ref = evaluateGraph(before, inputs);
    const got = evaluateGraph(after, inputs);
    for (const name of before.outputs) {
      const e = relativeError(got[name], ref[name]);
      const hint = rerunHint(`${before.name} merged, seed ${seed}`);
      assert.ok(e <= tolerance, `seed ${seed}: output ${name} relative error ${e} ${hint}`);
    }
  }
}

Deno.test("merge: three siblings become one conv and three channel slices (float64)", () => {
  const g = optimize(siblings());
  const before = snapshot(g);
  assert.deepEqual(names(mergeCandidates(g)), [["a", "bb", "c"]]);
  const m = mergeSiblingConvs(g);
  validateGraph(m);
  assertUntouched(g, before);
  assert.equal(count(m, "Conv2d"), count(g, "Conv2d") - 2);
  assert.equal(count(m, "Slice"), 3);

  const merged = m.nodes.find((n) => n.name === "a+merged")!;
  assert.ok(merged, m.nodes.map((n) => n.name).join(", "));
  assert.equal((merged.attrs as { activation: string }).activation, "relu");
  const w = m.initializers.get(merged.inputs[1])!;
  const bias = m.initializers.get(merged.inputs[2])!;
  assert.deepEqual(w.shape, [10, 4, 3, 3]);
  for (const t of g.initializers.values()) assert.notEqual(w.data.buffer, t.data.buffer);
  // Biases concatenated, zeros for bb's missing one.
  const biasOf = (name: string) => [...g.initializers.get(`${name}.bias`)!.data];
  assert.deepEqual([...bias.data], [...biasOf("a"), 0, 0, 0, 0, 0, ...biasOf("c")]);
  const slices = m.nodes.filter((n) => n.op === "Slice");
  assert.deepEqual(
    slices.map((n) => [n.outputs[0], n.attrs]),
    [
      ["a.relu", { axes: [1], starts: [0], ends: [3], steps: [1] }],
      ["bb.relu", { axes: [1], starts: [3], ends: [8], steps: [1] }],
      ["c.relu", { axes: [1], starts: [8], ends: [10], steps: [1] }],
    ],
  );
  assertSameFunction(g, m);

  // Deterministic: the same graph in, the same names and the same weights out.
  const again = mergeSiblingConvs(g);
  assert.deepEqual(
    again.nodes.map((n) => [n.name, n.inputs, n.outputs]),
    m.nodes.map((n) => [n.name, n.inputs, n.outputs]),
  );
  assert.deepEqual([...again.initializers.keys()], [...m.initializers.keys()]);
});

Deno.test("merge: a Concat of exactly the siblings reads the merged output (float64)", () => {
  const g = optimize(concats());
  assert.deepEqual(names(mergeCandidates(g)), [["r", "p", "q"], ["s", "t"], ["u", "v"]]);
  const m = mergeSiblingConvs(g);
  validateGraph(m);
  assert.equal(count(m, "Conv2d"), 3);
  assert.equal(count(m, "Slice"), 2, "only the broken run keeps slices");
  assert.equal(count(m, "Concat"), 2, "the whole Concat became the merged conv");
  const run = m.nodes.find((n) => n.name === "run")!;
  assert.deepEqual(run.inputs, ["y", "r+merged"]);
  const whole = m.nodes.find((n) => n.outputs[0] === "whole")!;
  assert.equal(whole.op, "Conv2d");
  assert.equal(whole.name, "s+merged");
  for (const gone of ["p.relu", "q.relu", "r.relu", "s.relu", "t.relu"]) {
    assert.ok(!m.values.has(gone), gone);
  }
  assertSameFunction(g, m);
});

Deno.test("merge: other strides, groups > 1, a residual or another activation do not merge", () => {
  const g = optimize(apart());
  assert.ok(g.nodes.find((n) => n.name === "res")!.inputs[3], "the residual Add was fused");
  assert.deepEqual(mergeCandidates(g), []);
  const m = mergeSiblingConvs(g);
  validateGraph(m);
  assert.equal(count(m, "Conv2d"), count(g, "Conv2d"));
  assert.equal(count(m, "Slice"), 0);
  assertSameFunction(g, m, 0);
});

Deno.test("merge: minGroup and filter choose the groups", () => {
  const g = optimize(buildZooModel("googlenet"));
  const groups = mergeCandidates(g);
  assert.equal(mergeCandidates(g, { minGroup: 4 }).length, 0);
  const seen: Node[][] = [];
  const one = mergeSiblingConvs(g, {
    filter: (convs) => {
      seen.push(convs);
      return convs[0].name === "inception4a.branch1.conv";
    },
  });
  validateGraph(one);
  assert.deepEqual(names(seen), names(groups));
  assert.ok(seen.every((grp) => grp.every((n) => g.nodes.includes(n))), "the input's nodes");
  assert.equal(count(one, "Conv2d"), count(g, "Conv2d") - 2);
  assert.equal(count(mergeSiblingConvs(g, { filter: () => false }), "Conv2d"), count(g, "Conv2d"));
});

for (const [model, expected] of [["googlenet", 9], ["inception_v3", 10]] as const) {
  Deno.test(`merge: ${model} after optimize() computes the same function on the CPU`, async () => {
    const g = optimize(buildZooModel(model));
    const before = snapshot(g);
    const groups = mergeCandidates(g);
    const m = mergeSiblingConvs(g);
    validateGraph(m);
    assertUntouched(g, before);
    console.log(
      `${model}: ${groups.length} groups, Conv2d ${count(g, "Conv2d")} -> ${count(m, "Conv2d")}` +
        `, ${count(m, "Slice")} slices\n` +
        groups.map((grp) => `  ${grp.map((n) => n.name).join(" + ")}`).join("\n"),
    );
    assert.equal(groups.length, expected);
    // Every Inception block's 1x1 convolutions of the block input are found.
    const branch1 = model === "googlenet" ? ".branch1.conv" : ".branch1x1.conv";
    const firsts = g.nodes.filter((n) => n.op === "Conv2d" && n.name.endsWith(branch1));
    for (const conv of firsts) {
      assert.ok(groups.some((grp) => grp.includes(conv)), `${conv.name} is in a group`);
    }
    const saved = groups.reduce((s, grp) => s + grp.length - 1, 0);
    assert.equal(count(m, "Conv2d"), count(g, "Conv2d") - saved);
    assert.deepEqual(m.outputs, g.outputs);

    const input = new Random(20210405).floats(numel(g.value("input").shape), 0, 1);
    using plain = await Session.create(g, { device: "cpu", optimize: false });
    using merged = await Session.create(m, { device: "cpu", optimize: false });
    const ref = (await plain.run({ input }))[g.outputs[0]];
    const got = (await merged.run({ input }))[g.outputs[0]];
    const e = relativeError(got, ref);
    console.log(`${model}: relative error merged vs unmerged ${e.toExponential(2)}`);
    assert.ok(e < 1e-5, `relative error ${e}`);
  });
}

Deno.test("Session({ merge: true }) runs the merged googlenet with the same outputs", async () => {
  const graph = buildZooModel("googlenet");
  const x = new Random(caseSeed("merged googlenet session")).floats(3 * 224 * 224, 0, 1);
  using plain = await Session.create(graph, { device: "cpu", merge: false });
  using merged = await Session.create(graph, { device: "cpu", merge: true });
  const a = (await plain.run({ input: x })).logits;
  const b = (await merged.run({ input: x })).logits;
  assert.ok(merged.report().kernelLaunches !== plain.report().kernelLaunches);
  assert.ok(relativeError(b, a) < 1e-5);
});
