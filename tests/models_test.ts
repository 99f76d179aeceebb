/**
 * The model zoo's torchvision classifiers against torchvision: structure, shapes, parameter
 * counts and state_dict names. The expected figures were read off torchvision 0.28
 * (weights=None, aux_logits=False). The timm, HuggingFace and random-wiring models
 * (nasnet_large, bert_base, randwire) are tested in models_extra_test.ts.
 */
import { assert } from "./deps.ts";
import { BraidError } from "../lib/errors.ts";
import type { Graph } from "../lib/ir/graph.ts";
import { inferShapes, validateGraph } from "../lib/ir/validate.ts";
import { parameterCount } from "../lib/analysis/cost.ts";
import { buildZooModel, ZOO, type ZooName, zooNames } from "../lib/models/index.ts";

interface Expected {
  /** sum(p.numel() for p in model.parameters()). */
  parameters: number;
  /** len(state_dict()) without the num_batches_tracked buffers. */
  stateDictKeys: number;
  nodes: number;
  convs: number;
  /** BatchNorm epsilon (0.001 in BasicConv2d). */
  bnEpsilon?: number;
  dropout?: number;
  /** Some state_dict keys and their shapes. */
  keys: Record<string, number[]>;
}

type TorchvisionName = Exclude<ZooName, "nasnet_large" | "randwire" | "bert_base">;

const EXPECTED: Record<TorchvisionName, Expected> = {
  googlenet: {
    parameters: 6_624_904,
    stateDictKeys: 287,
    nodes: 197,
    convs: 57,
    bnEpsilon: 0.001,
    dropout: 0.2,
    keys: {
      "conv1.conv.weight": [64, 3, 7, 7],
      "conv1.bn.running_var": [64],
      "inception3a.branch2.0.conv.weight": [96, 192, 1, 1],
      // torchvision's branch3 uses a 3x3 kernel, not 5x5.
      "inception3a.branch3.1.conv.weight": [32, 16, 3, 3],
      "inception3a.branch4.1.bn.bias": [32],
      "inception5b.branch1.conv.weight": [384, 832, 1, 1],
      "fc.weight": [1000, 1024],
      "fc.bias": [1000],
    },
  },
  inception_v3: {
    parameters: 23_834_568,
    stateDictKeys: 472,
    nodes: 314,
    convs: 94,
    bnEpsilon: 0.001,
    dropout: 0.5,
    keys: {
      "Conv2d_1a_3x3.conv.weight": [32, 3, 3, 3],
      "Conv2d_1a_3x3.bn.running_var": [32],
      "Mixed_5b.branch_pool.conv.weight": [32, 192, 1, 1],
      "Mixed_6b.branch7x7_2.conv.weight": [128, 128, 1, 7],
      "Mixed_6e.branch7x7dbl_4.conv.weight": [192, 192, 7, 1],
      "Mixed_7a.branch7x7x3_4.conv.weight": [192, 192, 3, 3],
      "Mixed_7c.branch3x3dbl_3b.conv.weight": [384, 384, 3, 1],
      "fc.weight": [1000, 2048],
    },
  },
  squeezenet1_1: {
    parameters: 1_235_496,
    stateDictKeys: 52,
    nodes: 66,
    convs: 26,
    dropout: 0.5,
    keys: {
      "features.0.weight": [64, 3, 3, 3],
      "features.3.squeeze.weight": [16, 64, 1, 1],
      "features.12.expand3x3.bias": [256],
      "classifier.1.weight": [1000, 512, 1, 1],
    },
  },
  resnet50: {
    parameters: 25_557_032,
    stateDictKeys: 267,
    nodes: 175,
    convs: 53,
    bnEpsilon: 1e-5,
    keys: {
      "conv1.weight": [64, 3, 7, 7],
      "bn1.running_mean": [64],
      "layer1.0.downsample.0.weight": [256, 64, 1, 1],
      "layer1.0.downsample.1.running_var": [256],
      "layer2.0.conv2.weight": [128, 128, 3, 3],
      "layer4.2.bn3.weight": [2048],
      "fc.weight": [1000, 2048],
    },
  },
  densenet121: {
    parameters: 7_978_856,
    stateDictKeys: 606,
    nodes: 427,
    convs: 120,
    bnEpsilon: 1e-5,
    keys: {
      "features.conv0.weight": [64, 3, 7, 7],
      "features.denseblock1.denselayer1.conv1.weight": [128, 64, 1, 1],
      "features.denseblock1.denselayer6.norm1.running_var": [224],
      "features.transition1.conv.weight": [128, 256, 1, 1],
      "features.denseblock4.denselayer16.conv2.weight": [32, 128, 3, 3],
      "features.norm5.weight": [1024],
      "classifier.weight": [1000, 1024],
    },
  },
};

/** A torchvision state_dict key: a dotted module path, then a parameter or buffer name. */
const STATE_DICT_KEY = /^[A-Za-z_]\w*(\.\w+)*\.(weight|bias|running_mean|running_var)$/;

const TORCHVISION = Object.keys(EXPECTED) as TorchvisionName[];

const built = new Map<ZooName, Graph>();
function graphOf(name: ZooName): Graph {
  if (!built.has(name)) built.set(name, ZOO[name].build());
  return built.get(name)!;
}

Deno.test("the zoo lists its eight models", () => {
  assert.deepEqual(
    zooNames().sort(),
    [...TORCHVISION, "nasnet_large", "randwire", "bert_base"].sort(),
  );
});

for (const name of TORCHVISION) {
  const expected = EXPECTED[name];

  Deno.test(`${name}: validates, "input" → "logits" [1, 1000]`, () => {
    const graph = graphOf(name);
    const shapes = validateGraph(graph);
    assert.deepEqual(graph.inputs, ["input"]);
    assert.deepEqual(graph.outputs, ["logits"]);
    assert.deepEqual(graph.value("input").shape, ZOO[name].inputShape);
    assert.deepEqual(shapes.get("logits")!.shape, [1, 1000]);
    assert.deepEqual(inferShapes(graph, 4).get("logits")!.shape, [4, 1000]);
  });

  Deno.test(`${name}: batch 2 gives [2, 1000]`, () => {
    const graph = buildZooModel(name, { batch: 2 });
    const shapes = validateGraph(graph);
    assert.deepEqual(graph.value("input").shape, [2, ...ZOO[name].inputShape.slice(1)]);
    assert.deepEqual(shapes.get("logits")!.shape, [2, 1000]);
  });

  Deno.test(`${name}: ${expected.parameters} parameters, as torchvision`, () => {
    assert.equal(parameterCount(graphOf(name)), expected.parameters);
    assert.equal(ZOO[name].parameters, expected.parameters);
  });

  Deno.test(`${name}: ${expected.nodes} nodes, ${expected.convs} convolutions`, () => {
    const graph = graphOf(name);
    const count = (op: string) => graph.nodes.filter((n) => n.op === op).length;
    assert.equal(graph.nodes.length, expected.nodes);
    assert.equal(count("Conv2d"), expected.convs);
    // SqueezeNet classifies with a 1x1 convolution; the others end in one nn.Linear.
    assert.equal(count("Gemm"), name === "squeezenet1_1" ? 0 : 1);
    assert.equal(count("GlobalAvgPool"), 1);
    assert.equal(count("Flatten"), 1);
    const dropouts = graph.nodes.filter((n) => n.op === "Dropout");
    assert.deepEqual(
      dropouts.map((n) => (n.attrs as { ratio: number }).ratio),
      expected.dropout === undefined ? [] : [expected.dropout],
    );
    if (expected.bnEpsilon !== undefined) {
      for (const n of graph.nodes.filter((n) => n.op === "BatchNorm")) {
        assert.equal((n.attrs as { epsilon: number }).epsilon, expected.bnEpsilon, n.name);
      }
    }
  });

  Deno.test(`${name}: weights are named and shaped like torchvision's state_dict`, () => {
    const graph = graphOf(name);
    assert.equal(graph.initializers.size, expected.stateDictKeys);
    for (const [key, tensor] of graph.initializers) {
      assert.match(key, STATE_DICT_KEY);
      assert.equal(tensor.dtype, "float32");
      assert.ok(tensor.data.every(Number.isFinite), key);
      // The weight belongs to the node named after its module.
      const module = key.slice(0, key.lastIndexOf("."));
      const owner = graph.nodes.find((n) => n.inputs.includes(key));
      assert.equal(owner?.name, module, key);
    }
    for (const [key, shape] of Object.entries(expected.keys)) {
      assert.deepEqual(graph.initializers.get(key)?.shape, shape, key);
    }
  });
}

Deno.test("zoo weights are seeded: the same seed repeats, another differs", () => {
  const a = buildZooModel("squeezenet1_1", { seed: 7 }).initializers.get("features.0.weight")!;
  const b = buildZooModel("squeezenet1_1", { seed: 7 }).initializers.get("features.0.weight")!;
  const c = buildZooModel("squeezenet1_1", { seed: 8 }).initializers.get("features.0.weight")!;
  const d = buildZooModel("squeezenet1_1").initializers.get("features.0.weight")!;
  assert.deepEqual(a.data, b.data);
  assert.notDeepEqual(a.data, c.data);
  assert.deepEqual(d.data, graphOf("squeezenet1_1").initializers.get("features.0.weight")!.data);
});

Deno.test("buildZooModel rejects an unknown name, listing the valid ones", () => {
  assert.throws(
    () => buildZooModel("resnet51"),
    (e: unknown) =>
      e instanceof BraidError && e.code === "USAGE" &&
      zooNames().every((n) => e.message.includes(n)),
  );
});
