/**
 * The zoo's non-torchvision models: NASNet-A Large (timm `nasnetalarge`), RandWire-WS (small
 * regime, seeded wiring) and BERT-base (HuggingFace BertModel). Structure, shapes at batch 1
 * and 2, exact parameter counts, state_dict names, DAG figures, and one CPU run each.
 *
 * The reference figures were read off timm 1.0.29 and transformers 5.18 (torch 2.13, CPU):
 * sum(p.numel() for p in model.parameters()) and the state_dict keys (without
 * num_batches_tracked). With braid's random weights loaded into those models, their outputs
 * matched braid's CPU backend to ~1e-6 relative (nasnetalarge logits; BertModel with
 * attn_implementation="eager" last_hidden_state and pooler_output).
 */
import { assert } from "./deps.ts";
import type { Graph } from "../lib/ir/graph.ts";
import { numel } from "../lib/ir/graph.ts";
import type { AttrsByOp } from "../lib/ir/ops.ts";
import { inferShapes, validateGraph } from "../lib/ir/validate.ts";
import { parameterCount } from "../lib/analysis/cost.ts";
import { buildDag, criticalPath, width } from "../lib/analysis/dag.ts";
import { buildZooModel, ZOO } from "../lib/models/index.ts";
import {
  RANDWIRE_DEFAULT_SEED,
  RANDWIRE_SMALL,
  randwireWiring,
  stageDag,
  wattsStrogatz,
} from "../lib/models/randwire.ts";
import { BERT_BASE_CONFIG } from "../lib/models/bert.ts";
import { Session } from "../mod.ts";
import { Random } from "../lib/util/random.ts";

type Name = "nasnet_large" | "randwire" | "bert_base";

const built = new Map<Name, Graph>();
function graphOf(name: Name): Graph {
  if (!built.has(name)) built.set(name, ZOO[name].build());
  return built.get(name)!;
}

const countOps = (graph: Graph) => {
  const c: Record<string, number> = {};
  for (const n of graph.nodes) c[n.op] = (c[n.op] ?? 0) + 1;
  return c;
};

const nodeNamed = (graph: Graph, name: string) => {
  const node = graph.nodes.find((n) => n.name === name);
  assert.ok(node, `no node "${name}"`);
  return node;
};

/** A state_dict key: a dotted module path, then a parameter or buffer name. */
const STATE_DICT_KEY = /^[A-Za-z_]\w*(\.\w+)*\.(weight|bias|running_mean|running_var)$/;

/** Every initializer is a finite float32 state_dict key read by the node named after its module. */
function checkNames(graph: Graph, keys: Record<string, number[]>) {
  const owners = new Map<string, string>();
  for (const n of graph.nodes) for (const i of n.inputs) owners.set(i, n.name);
  for (const [key, tensor] of graph.initializers) {
    assert.match(key, STATE_DICT_KEY);
    assert.equal(tensor.dtype, "float32", key);
    assert.ok(tensor.data.every(Number.isFinite), key);
    assert.equal(owners.get(key), key.slice(0, key.lastIndexOf(".")), key);
  }
  for (const [key, shape] of Object.entries(keys)) {
    assert.deepEqual(graph.initializers.get(key)?.shape, shape, key);
  }
}

/** Prepares a CPU session, runs it once, checks every output, logs the figures. */
async function runOnCpu(
  name: Name,
  graph: Graph,
  inputs: Record<string, Float32Array | Int32Array>,
  batch = 1,
): Promise<Record<string, Float32Array>> {
  const t0 = performance.now();
  using session = await Session.create(graph, { device: "cpu", batch });
  const prepareMs = performance.now() - t0;
  const t1 = performance.now();
  const out = (await session.run(inputs)) as Record<string, Float32Array>;
  const runMs = performance.now() - t1;
  const stds: string[] = [];
  for (const [k, v] of Object.entries(out)) {
    assert.ok(v.every(Number.isFinite), `${k} is finite`);
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
    assert.ok(std > 1e-3 && std < 1e4, `${k} std ${std}`);
    stds.push(`${k} std ${std.toFixed(3)}`);
  }
  console.log(
    `${name} on the CPU at batch ${batch}: prepared in ${prepareMs.toFixed(0)} ms, ` +
      `run ${runMs.toFixed(0)} ms; ${stds.join(", ")}`,
  );
  return out;
}

function imageInput(graph: Graph, batch = 1): Float32Array {
  return new Random(42).floats(batch * numel(graph.value("input").shape.slice(1)), 0, 1);
}

function dagFigures(graph: Graph): { criticalPath: number; width: number } {
  const dag = buildDag(graph);
  return { criticalPath: criticalPath(dag).length, width: width(dag) };
}

// ------------------------------------------------------------------------------ NASNet-A Large

Deno.test('nasnet_large: validates, "input" [1, 3, 331, 331] → "logits" [1, 1000]', () => {
  const graph = graphOf("nasnet_large");
  const shapes = validateGraph(graph);
  assert.deepEqual(graph.inputs, ["input"]);
  assert.deepEqual(graph.outputs, ["logits"]);
  assert.deepEqual(graph.value("input").shape, [1, 3, 331, 331]);
  assert.deepEqual(shapes.get("logits")!.shape, [1, 1000]);
  // Stem 96@165, stem cells 168@83 and 336@42, stacks of 1008@42, 2016@21, 4032@11.
  const at = (node: string) => shapes.get(nodeNamed(graph, node).outputs[0])!.shape;
  assert.deepEqual(at("conv0.bn"), [1, 96, 165, 165]);
  assert.deepEqual(at("cell_stem_0.cat"), [1, 168, 83, 83]);
  assert.deepEqual(at("cell_stem_1.cat_1"), [1, 336, 42, 42]);
  assert.deepEqual(at("cell_5.cat"), [1, 1008, 42, 42]);
  assert.deepEqual(at("reduction_cell_0.cat"), [1, 1344, 21, 21]);
  assert.deepEqual(at("cell_11.cat"), [1, 2016, 21, 21]);
  assert.deepEqual(at("reduction_cell_1.cat"), [1, 2688, 11, 11]);
  assert.deepEqual(at("act"), [1, 4032, 11, 11]);
  assert.deepEqual(inferShapes(graph, 3).get("logits")!.shape, [3, 1000]);
});

Deno.test("nasnet_large: batch 2 gives [2, 1000]", () => {
  const graph = buildZooModel("nasnet_large", { batch: 2 });
  assert.deepEqual(graph.value("input").shape, [2, 3, 331, 331]);
  assert.deepEqual(validateGraph(graph).get("logits")!.shape, [2, 1000]);
});

Deno.test("nasnet_large: 88,753,150 parameters and 1546 state_dict keys, as timm", () => {
  const graph = graphOf("nasnet_large");
  assert.equal(parameterCount(graph), 88_753_150);
  assert.equal(ZOO.nasnet_large.parameters, 88_753_150);
  assert.equal(graph.initializers.size, 1546);
});

Deno.test("nasnet_large: 1238 nodes; BN eps 1e-3; convs without bias", () => {
  const graph = graphOf("nasnet_large");
  assert.equal(graph.nodes.length, 1238);
  assert.deepEqual(countOps(graph), {
    Conv2d: 488,
    BatchNorm: 264,
    Relu: 264,
    Add: 110,
    MaxPool2d: 8,
    AvgPool2d: 70,
    Concat: 26,
    Slice: 4,
    GlobalAvgPool: 1,
    Flatten: 1,
    Dropout: 1,
    Gemm: 1,
  });
  for (const n of graph.nodes) {
    if (n.op === "BatchNorm") assert.equal((n.attrs as { epsilon: number }).epsilon, 1e-3);
    if (n.op === "Conv2d") assert.equal(n.inputs.length, 2, `${n.name} has no bias`);
  }
  assert.equal((nodeNamed(graph, "head_drop").attrs as { ratio: number }).ratio, 0);
});

Deno.test("nasnet_large: TF-SAME padding and the shifted path as timm computes them", () => {
  const graph = graphOf("nasnet_large");
  const attrs = <K extends "Conv2d" | "AvgPool2d" | "MaxPool2d">(name: string) =>
    nodeNamed(graph, name).attrs as AttrsByOp[K];
  // Stride 2 at 42x42: asymmetric SAME pads (more after than before).
  const r0 = "reduction_cell_0";
  assert.deepEqual(attrs(`${r0}.comb_iter_0_left.separable_1.depthwise_conv2d`).pads, [1, 1, 2, 2]);
  assert.deepEqual(
    attrs(`${r0}.comb_iter_0_right.separable_1.depthwise_conv2d`).pads,
    [2, 2, 3, 3],
  );
  assert.deepEqual(attrs(`${r0}.comb_iter_1_left`).pads, [0, 0, 1, 1]);
  // AvgPool2dSame pads with zeros before pooling: they count in the divisor.
  const sameAvg = attrs<"AvgPool2d">(`${r0}.comb_iter_2_left`);
  assert.deepEqual([sameAvg.pads, sameAvg.countIncludePad], [[0, 0, 1, 1], true]);
  // Stride 2 at 165, 83 and 21: symmetric.
  assert.deepEqual(
    attrs("cell_stem_0.comb_iter_0_right.separable_1.depthwise_conv2d").pads,
    [3, 3, 3, 3],
  );
  assert.deepEqual(attrs("reduction_cell_1.comb_iter_1_left").pads, [1, 1, 1, 1]);
  // Stride-1 pools: nn.AvgPool2d(3, 1, padding=1, count_include_pad=False).
  const plain = attrs<"AvgPool2d">("cell_1.comb_iter_2_left");
  assert.deepEqual([plain.pads, plain.countIncludePad], [[1, 1, 1, 1], false]);
  // path_2: crop one row and column; append a zero row/column (odd sizes) as the 1x1 pool's
  // bottom/right padding, counted in its divisor so the pool gives 0 there; the conv is unpadded.
  for (
    const [cell, pads] of [["cell_stem_1", [0, 0, 1, 1]], ["cell_0", [0, 0, 1, 1]], [
      "cell_6",
      [0, 0, 0, 0],
    ], ["cell_12", [0, 0, 1, 1]]] as const
  ) {
    const crop = nodeNamed(graph, `${cell}.path_2.pad`).attrs as AttrsByOp["Slice"];
    assert.deepEqual([crop.axes, crop.starts], [[2, 3], [1, 1]], cell);
    const pool = attrs<"AvgPool2d">(`${cell}.path_2.avgpool`);
    assert.deepEqual([pool.pads, pool.countIncludePad], [[...pads], true], cell);
    assert.deepEqual(attrs(`${cell}.path_2.conv`).pads, [0, 0, 0, 0], cell);
  }
});

Deno.test("nasnet_large: weights are named and shaped like timm's state_dict", () => {
  checkNames(graphOf("nasnet_large"), {
    "conv0.conv.weight": [96, 3, 3, 3],
    "conv0.bn.running_var": [96],
    "cell_stem_0.conv_1x1.conv.weight": [42, 96, 1, 1],
    "cell_stem_0.comb_iter_0_right.separable_1.depthwise_conv2d.weight": [96, 1, 7, 7],
    "cell_stem_0.comb_iter_0_right.separable_1.pointwise_conv2d.weight": [42, 96, 1, 1],
    "cell_stem_1.path_2.conv.weight": [42, 96, 1, 1],
    "cell_stem_1.final_path_bn.running_var": [84],
    "cell_0.comb_iter_0_left.separable_1.depthwise_conv2d.weight": [168, 1, 5, 5],
    "cell_0.path_1.conv.weight": [84, 168, 1, 1],
    "cell_0.final_path_bn.running_var": [168],
    "reduction_cell_0.conv_prev_1x1.conv.weight": [336, 1008, 1, 1],
    "reduction_cell_0.comb_iter_0_right.separable_2.depthwise_conv2d.weight": [336, 1, 7, 7],
    "cell_6.path_1.conv.weight": [168, 1008, 1, 1],
    "cell_7.conv_prev_1x1.conv.weight": [336, 1344, 1, 1],
    "reduction_cell_1.conv_1x1.conv.weight": [672, 2016, 1, 1],
    "cell_12.path_2.conv.weight": [336, 2016, 1, 1],
    "cell_17.comb_iter_4_left.bn_sep_2.bias": [672],
    "last_linear.weight": [1000, 4032],
    "last_linear.bias": [1000],
  });
});

Deno.test("nasnet_large: DAG critical path 329, width 16", () => {
  const figures = dagFigures(graphOf("nasnet_large"));
  console.log("nasnet_large DAG:", figures);
  assert.deepEqual(figures, { criticalPath: 329, width: 16 });
});

Deno.test("nasnet_large runs end to end on the CPU with finite, non-constant logits", async () => {
  const graph = graphOf("nasnet_large");
  const { logits } = await runOnCpu("nasnet_large", graph, { input: imageInput(graph) });
  assert.equal(logits.length, 1000);
});

// ------------------------------------------------------------------------------ RandWire

const { nodes: N, k: K, channels: C } = RANDWIRE_SMALL;

Deno.test("randwire: Watts–Strogatz graphs are simple, K·N/2 edges, min degree K/2", () => {
  for (const seed of [1, 2, 3]) {
    const edges = wattsStrogatz(N, K, 0.75, new Random(seed));
    assert.equal(edges.length, (N * K) / 2);
    const keys = new Set(edges.map(([u, v]) => `${u}-${v}`));
    assert.equal(keys.size, edges.length, "no duplicate edges");
    const degree = new Array<number>(N).fill(0);
    for (const [u, v] of edges) {
      assert.ok(u < v && u >= 0 && v < N, "sorted, in range, no self-loops");
      degree[u]++;
      degree[v]++;
    }
    assert.ok(degree.every((d) => d >= K / 2), "every node keeps its K/2 own edges");
  }
  // P = 0 leaves the ring lattice.
  const lattice = wattsStrogatz(8, 4, 0, new Random(1)).map(([u, v]) => `${u}-${v}`);
  assert.deepEqual(lattice, [
    "0-1",
    "0-2",
    "0-6",
    "0-7",
    "1-2",
    "1-3",
    "1-7",
    "2-3",
    "2-4",
    "3-4",
    "3-5",
    "4-5",
    "4-6",
    "5-6",
    "5-7",
    "6-7",
  ]);
});

Deno.test("randwire: the seed fixes the wiring and the weights; another seed rewires", () => {
  const a = buildZooModel("randwire", { seed: 5 });
  const b = buildZooModel("randwire", { seed: 5 });
  const c = buildZooModel("randwire", { seed: 6 });
  const structure = (g: Graph) => JSON.stringify(g.nodes.map((n) => [n.name, n.inputs]));
  assert.equal(structure(a), structure(b));
  assert.equal(parameterCount(a), parameterCount(b));
  for (const [k, t] of a.initializers) assert.deepEqual(t.data, b.initializers.get(k)!.data, k);
  assert.notEqual(structure(a), structure(c));
  assert.deepEqual(randwireWiring(5), randwireWiring(5));
  assert.notDeepEqual(randwireWiring(5), randwireWiring(6));
  // The default seed is the registered one.
  assert.equal(
    structure(graphOf("randwire")),
    structure(buildZooModel("randwire", {
      seed: RANDWIRE_DEFAULT_SEED,
    })),
  );
});

/** The parameter count implied by a wiring: only the number of input nodes per stage matters. */
function expectedRandwireParameters(wiring: [number, number][][]): number {
  let total = (C / 2) * 3 * 9 + C + C * (C / 2) * 9 + 2 * C; // conv1, bn1, conv2, bn2
  let cin = C;
  wiring.forEach((edges, s) => {
    const c = C * 2 ** s;
    const inputs = stageDag(N, edges).filter((p) => p.length === 0).length;
    total += inputs * (9 * cin + cin * c + 2 * c) + (N - inputs) * (9 * c + c * c + 2 * c);
    cin = c;
  });
  return total + 1280 * cin + 2 * 1280 + 1280 * 1000 + 1000; // conv6, bn6, fc
}

Deno.test("randwire: 5,614,549 parameters at the default seed, as the wiring implies", () => {
  const graph = graphOf("randwire");
  assert.equal(parameterCount(graph), 5_614_549);
  assert.equal(ZOO.randwire.parameters, 5_614_549);
  assert.equal(expectedRandwireParameters(randwireWiring()), 5_614_549);
  for (const seed of [1, 2]) {
    assert.equal(
      parameterCount(buildZooModel("randwire", { seed })),
      expectedRandwireParameters(randwireWiring(seed)),
    );
  }
});

Deno.test('randwire: validates, "input" [1, 3, 224, 224] → "logits"; batch 2', () => {
  const graph = graphOf("randwire");
  const shapes = validateGraph(graph);
  assert.deepEqual(graph.inputs, ["input"]);
  assert.deepEqual(graph.outputs, ["logits"]);
  assert.deepEqual(shapes.get("logits")!.shape, [1, 1000]);
  assert.deepEqual(inferShapes(graph, 4).get("logits")!.shape, [4, 1000]);
  const two = buildZooModel("randwire", { batch: 2 });
  assert.deepEqual(two.value("input").shape, [2, 3, 224, 224]);
  assert.deepEqual(validateGraph(two).get("logits")!.shape, [2, 1000]);
  // Stages at 28, 14 and 7 pixels with C, 2C, 4C channels.
  const at = (node: string) => shapes.get(nodeNamed(graph, node).outputs[0])!.shape;
  assert.deepEqual(at("bn2"), [1, C, 56, 56]);
  assert.deepEqual(at("conv3.nodes.31.bn"), [1, C, 28, 28]);
  assert.deepEqual(at("conv4.nodes.31.bn"), [1, 2 * C, 14, 14]);
  assert.deepEqual(at("conv5.nodes.31.bn"), [1, 4 * C, 7, 7]);
});

Deno.test("randwire: nodes follow the wiring (sum → ReLU → sepconv → BN, stride 2 at inputs)", () => {
  const graph = graphOf("randwire");
  const wiring = randwireWiring();
  let expectedNodes = 5 + 7; // conv1, bn1, relu2, conv2, bn2; relu6 … fc
  wiring.forEach((edges, s) => {
    const stage = `conv${s + 3}`;
    const preds = stageDag(N, edges);
    const outputs = new Set(preds.keys());
    for (const [u] of edges) outputs.delete(u);
    expectedNodes += 4 * N + edges.length - preds.filter((p) => p.length > 0).length +
      outputs.size - 1;
    preds.forEach((p, i) => {
      const node = `${stage}.nodes.${i}`;
      const dw = nodeNamed(graph, `${node}.conv.depthwise`).attrs as AttrsByOp["Conv2d"];
      assert.deepEqual(dw.strides, p.length === 0 ? [2, 2] : [1, 1], node);
      if (p.length > 0) {
        // The sum reads exactly the predecessors' BN outputs.
        const reads = new Set<string>();
        const visit = (value: string) => {
          const producer = graph.nodes.find((n) => n.outputs.includes(value))!;
          if (producer.op === "Add") producer.inputs.forEach(visit);
          else reads.add(producer.name);
        };
        visit(nodeNamed(graph, `${node}.relu`).inputs[0]);
        assert.deepEqual([...reads].sort(), p.map((j) => `${stage}.nodes.${j}.bn`).sort(), node);
      }
    });
  });
  assert.equal(graph.nodes.length, expectedNodes);
  assert.equal(graph.nodes.length, 528);
});

Deno.test("randwire: weights are named like a PyTorch state_dict", () => {
  checkNames(graphOf("randwire"), {
    "conv1.weight": [C / 2, 3, 3, 3],
    "bn1.running_var": [C / 2],
    "conv2.weight": [C, C / 2, 3, 3],
    "conv3.nodes.0.conv.depthwise.weight": [C, 1, 3, 3],
    "conv3.nodes.0.conv.pointwise.weight": [C, C, 1, 1],
    "conv4.nodes.0.conv.pointwise.weight": [2 * C, C, 1, 1],
    "conv4.nodes.31.conv.pointwise.weight": [2 * C, 2 * C, 1, 1],
    "conv5.nodes.31.bn.running_var": [4 * C],
    "conv6.weight": [1280, 4 * C, 1, 1],
    "bn6.weight": [1280],
    "fc.weight": [1000, 1280],
    "fc.bias": [1000],
  });
});

Deno.test("randwire: DAG critical path 127, width 16 at the default seed", () => {
  const figures = dagFigures(graphOf("randwire"));
  console.log("randwire DAG:", figures);
  assert.deepEqual(figures, { criticalPath: 127, width: 16 });
});

Deno.test("randwire runs end to end on the CPU with finite, non-constant logits", async () => {
  const graph = graphOf("randwire");
  const { logits } = await runOnCpu("randwire", graph, { input: imageInput(graph) });
  assert.equal(logits.length, 1000);
});

// ------------------------------------------------------------------------------ BERT-base

/** BertModel's state_dict keys (transformers 5: no position_ids / token_type_ids buffers). */
function bertKeys(): string[] {
  const keys = [
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
  ];
  for (let i = 0; i < 12; i++) {
    for (
      const m of [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
      ]
    ) {
      keys.push(`encoder.layer.${i}.${m}.weight`, `encoder.layer.${i}.${m}.bias`);
    }
  }
  return [...keys, "pooler.dense.weight", "pooler.dense.bias"];
}

Deno.test('bert_base: validates, int32 "input_ids" [1, 128] → two outputs; batch 2 and 3', () => {
  const graph = graphOf("bert_base");
  const shapes = validateGraph(graph);
  assert.deepEqual(graph.inputs, ["input_ids"]);
  assert.deepEqual(graph.value("input_ids"), {
    name: "input_ids",
    dtype: "int32",
    shape: [1, 128],
  });
  assert.deepEqual(graph.outputs, ["last_hidden_state", "pooler_output"]);
  assert.deepEqual(ZOO.bert_base.outputs, graph.outputs);
  assert.deepEqual(shapes.get("last_hidden_state")!.shape, [1, 128, 768]);
  assert.deepEqual(shapes.get("pooler_output")!.shape, [1, 768]);
  const three = inferShapes(graph, 3);
  assert.deepEqual(three.get("last_hidden_state")!.shape, [3, 128, 768]);
  assert.deepEqual(three.get("pooler_output")!.shape, [3, 768]);
  const two = buildZooModel("bert_base", { batch: 2 });
  const twoShapes = validateGraph(two);
  assert.deepEqual(two.value("input_ids").shape, [2, 128]);
  assert.deepEqual(twoShapes.get("last_hidden_state")!.shape, [2, 128, 768]);
  assert.deepEqual(twoShapes.get("pooler_output")!.shape, [2, 768]);
});

Deno.test("bert_base: 109,482,240 parameters; the state_dict keys of BertModel", () => {
  const graph = graphOf("bert_base");
  assert.equal(parameterCount(graph), 109_482_240);
  assert.equal(ZOO.bert_base.parameters, 109_482_240);
  assert.deepEqual([...graph.initializers.keys()].sort(), bertKeys().sort());
  checkNames(graph, {
    "embeddings.word_embeddings.weight": [30522, 768],
    "embeddings.position_embeddings.weight": [512, 768],
    "embeddings.token_type_embeddings.weight": [2, 768],
    "encoder.layer.0.attention.self.query.weight": [768, 768],
    "encoder.layer.0.attention.output.LayerNorm.bias": [768],
    "encoder.layer.11.intermediate.dense.weight": [3072, 768],
    "encoder.layer.11.output.dense.weight": [768, 3072],
    "pooler.dense.weight": [768, 768],
  });
});

Deno.test("bert_base: 274 nodes; attention as BertSelfAttention; batch-free reshapes", () => {
  const graph = graphOf("bert_base");
  assert.equal(graph.nodes.length, 274);
  assert.deepEqual(countOps(graph), {
    Gather: 1,
    Slice: 3,
    Add: 26,
    LayerNorm: 25,
    Gemm: 73,
    Reshape: 49,
    Transpose: 48,
    MatMul: 24,
    Softmax: 12,
    Gelu: 12,
    Tanh: 1,
  });
  const self = "encoder.layer.3.attention.self";
  assert.deepEqual(nodeNamed(graph, `${self}.matmul`).attrs, { transB: true, alpha: 1 / 8 });
  assert.deepEqual(nodeNamed(graph, `${self}.matmul_1`).attrs, { transB: false, alpha: 1 });
  assert.deepEqual(nodeNamed(graph, `${self}.view`).attrs, { shape: [0, 128, 12, 64] });
  assert.deepEqual(nodeNamed(graph, `${self}.transpose_1`).attrs, { perm: [0, 2, 1, 3] });
  assert.deepEqual(nodeNamed(graph, `${self}.softmax`).attrs, { axis: -1 });
  for (const n of graph.nodes) {
    if (n.op === "Reshape") assert.equal((n.attrs as { shape: number[] }).shape[0], 0, n.name);
    if (n.op === "LayerNorm") {
      assert.equal((n.attrs as { epsilon: number }).epsilon, BERT_BASE_CONFIG.layerNormEps);
    }
  }
  // Position ids 0..127 and token type 0: rows of the tables.
  const pos = nodeNamed(graph, "embeddings.position_embeddings").attrs as AttrsByOp["Slice"];
  assert.deepEqual([pos.axes, pos.starts, pos.ends], [[0], [0], [128]]);
  const type = nodeNamed(graph, "embeddings.token_type_embeddings").attrs as AttrsByOp["Slice"];
  assert.deepEqual([type.axes, type.starts, type.ends], [[0], [0], [1]]);
});

Deno.test("bert_base: DAG critical path 200, width 3", () => {
  const figures = dagFigures(graphOf("bert_base"));
  console.log("bert_base DAG:", figures);
  assert.deepEqual(figures, { criticalPath: 200, width: 3 });
});

Deno.test("bert_base runs end to end on the CPU at batch 2, rows independent", async () => {
  const graph = graphOf("bert_base");
  const random = new Random(7);
  const ids = Int32Array.from({ length: 2 * 128 }, () => random.int(0, 30521));
  const out = await runOnCpu("bert_base", graph, { input_ids: ids }, 2);
  assert.equal(out.last_hidden_state.length, 2 * 128 * 768);
  assert.equal(out.pooler_output.length, 2 * 768);
  // Two different sequences give different pooled outputs, each in (-1, 1) after tanh …
  assert.ok(out.pooler_output.every((v) => v > -1 && v < 1));
  const row = (a: Float32Array, i: number, n: number) => a.subarray(i * n, (i + 1) * n);
  assert.notDeepEqual(row(out.pooler_output, 0, 768), row(out.pooler_output, 1, 768));
  const token = out.last_hidden_state.subarray(0, 768);
  assert.ok(Math.max(...token) - Math.min(...token) > 0.5);
  // The batch dimension is only carried along: row 1 alone at batch 1 gives the same results.
  using single = await Session.create(graph, { device: "cpu", batch: 1 });
  const one = (await single.run({ input_ids: ids.slice(128) })) as Record<string, Float32Array>;
  for (const [name, size] of [["last_hidden_state", 128 * 768], ["pooler_output", 768]] as const) {
    const a = row(out[name], 1, size);
    const b = one[name];
    const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const diff = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    assert.ok(diff <= 1e-4 * scale, `${name}: batch 2 row 1 vs batch 1 differ by ${diff}`);
  }
});
