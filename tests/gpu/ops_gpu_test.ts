/**
 * Every op of the op table on the CUDA backend against the CPU backend: one-node graphs run
 * through Session on fresh random inputs (seed printed on failure; BRAID_TEST_SEED reproduces).
 * Strict fp32 (precision "fp32"): ‖cuda − cpu‖ / ‖cpu‖ < 1e-5. Convolutions again with precision
 * "default" (TF32 allowed, PyTorch's default) and products with "tf32": < 3e-3.
 * The cases follow tests/ops_test.ts, plus sizes that reach the CUDA kernels' other paths
 * (16-byte vectors with tails, block-per-row reductions, cuDNN and cuBLASLt at model sizes).
 */
import { Session } from "../../mod.ts";
import { type AttrsByOp, type OpName, OPS } from "../../lib/ir/ops.ts";
import type { PrecisionOption } from "../../lib/runtime/session.ts";
import { Random } from "../../lib/util/random.ts";
import { assert } from "../deps.ts";
import { expectClose, gpuSuite } from "./gpu.ts";
import { caseSeed, rerunHint } from "../helpers.ts";
import {
  ACT,
  addActivationCases,
  addBatchNormCases,
  addBinaryCases,
  addPoolCases,
  addSliceCases,
  addTransposeCases,
  buildCase,
  caseList,
  commonConvCases,
  constant,
  convCases,
  indices,
  type OpCase,
  type Operand,
  u,
} from "../op_cases.ts";

const gpuTest = gpuSuite("ops_gpu_test.ts");

const FP32_TOLERANCE = 1e-5;
const TF32_TOLERANCE = 3e-3;

const { cases: CASES, add } = caseList();

// ------------------------------------------------------------------------------ the cases

const conv = convCases(add);
const CONV_CASES: OpCase[] = [
  ...commonConvCases(conv),
  // Model-sized layers: what cuDNN's fused path and the tuner really see.
  conv("resnet 3x3 64→64 on 28x28 pad 1", [1, 64, 28, 28], [64, 64, 3, 3], {
    pads: [1, 1, 1, 1],
    ...ACT.relu,
  }, { residual: true }),
  conv("resnet 1x1 256→64 on 14x14", [2, 256, 14, 14], [64, 256, 1, 1], ACT.relu),
  conv("stem 7x7 stride 2 pad 3 on 3x64x64", [1, 3, 64, 64], [32, 3, 7, 7], {
    strides: [2, 2],
    pads: [3, 3, 3, 3],
    ...ACT.relu,
  }),
  conv("downsample 1x1 stride 2, bias, no activation", [1, 64, 28, 28], [128, 64, 1, 1], {
    strides: [2, 2],
  }),
  conv("3x3 128→32 no bias, no activation (DenseNet)", [1, 128, 14, 14], [32, 128, 3, 3], {
    pads: [1, 1, 1, 1],
  }, { bias: false }),
];

addBatchNormCases(add, [[2, 32, 28, 28]]); // 16-byte vectors

// The long cases: vectorised kernels with a tail, and a shape past one block per row.
addActivationCases(add, [4099]);
addBinaryCases(add, [[[3, 1027], [3, 1027]]]);

{
  addPoolCases(add, [
    ["k3 s2 ceil on 64x112x112 (GoogLeNet stem)", [1, 64, 112, 112], {
      kernel: [3, 3],
      strides: [2, 2],
      ceilMode: true,
    }],
  ]);
  add("AvgPool2d", "k1 s2 windows inside bottom/right padding (NASNet path_2)", [
    u([1, 96, 164, 164]),
  ], { kernel: [1, 1], strides: [2, 2], pads: [0, 0, 1, 1], countIncludePad: true });
}

add("GlobalAvgPool", "[2, 8, 7, 7]", [u([2, 8, 7, 7])]);
add("GlobalAvgPool", "[3, 5, 4] (rank 3)", [u([3, 5, 4])]);
add("GlobalAvgPool", "[1, 4, 1, 1]", [u([1, 4, 1, 1])]);
add("GlobalAvgPool", "[2, 3, 13, 17]", [u([2, 3, 13, 17])]);
add("GlobalAvgPool", "[2, 3, 64, 65] (block per row)", [u([2, 3, 64, 65])]);

add("Concat", "axis 1, three inputs", [u([2, 3, 4]), u([2, 5, 4]), u([2, 1, 4])], { axis: 1 });
add("Concat", "axis -1", [u([2, 3, 4]), u([2, 3, 2])], { axis: -1 });
add("Concat", "axis 2 of rank 4", [u([2, 3, 4, 5]), u([2, 3, 1, 5])], { axis: 2 });
add("Concat", "axis 0", [u([2, 3]), u([4, 3])], { axis: 0 });
add("Concat", "one input", [u([2, 3, 4])], { axis: 1 });
add("Concat", "axis 1 of [1, c, 28, 28] (16-byte vectors)", [
  u([1, 64, 28, 28]),
  u([1, 32, 28, 28]),
  u([1, 8, 28, 28]),
], { axis: 1 });
add(
  "Concat",
  "axis 1, batch 2, 17 inputs",
  Array.from({ length: 17 }, (_, i) => u([2, i + 1, 4])),
  {
    axis: 1,
  },
);

add("Flatten", "axis 1", [u([2, 3, 4, 5])], { axis: 1 });
add("Flatten", "axis 2", [u([2, 3, 4, 5])], { axis: 2 });
add("Reshape", "[0, -1]", [u([2, 3, 4, 5])], { shape: [0, -1] });
add("Reshape", "[4, -1, 5]", [u([2, 6, 5])], { shape: [4, -1, 5] });

addTransposeCases(add);
addSliceCases(add);

const PRODUCT_CASES: OpCase[] = [];
const product = <K extends "Gemm" | "MatMul">(
  op: K,
  name: string,
  operands: Operand[],
  attrs: Partial<AttrsByOp[K]> = {},
) => {
  add(op, name, operands, attrs);
  PRODUCT_CASES.push(CASES[CASES.length - 1]);
};
product("Gemm", "transB false, bias", [u([6, 8]), u([8, 5]), u([5])]);
product("Gemm", "transB true, alpha 0.5, beta 2, bias", [u([6, 8]), u([5, 8]), u([5])], {
  transB: true,
  alpha: 0.5,
  beta: 2,
});
product("Gemm", "transB false, alpha -1.5, no bias", [u([7, 9]), u([9, 4])], { alpha: -1.5 });
product("Gemm", "transB true, no bias, relu", [u([3, 16]), u([10, 16])], {
  transB: true,
  ...ACT.relu,
});
product("Gemm", "rank 3 A, transB true, relu", [u([2, 3, 8]), u([5, 8]), u([5])], {
  transB: true,
  ...ACT.relu,
});
product("Gemm", "bias [1, 6], beta 0.5, gelu", [u([4, 7]), u([7, 6]), u([1, 6])], {
  beta: 0.5,
  ...ACT.gelu,
});
product("Gemm", "transB true, clamp(-0.25, 0.5), alpha 2", [u([5, 12]), u([3, 12]), u([3])], {
  transB: true,
  alpha: 2,
  ...ACT.clamp,
});
product("Gemm", "K 256, M 33, N 65 (odd sizes)", [u([33, 256]), u([256, 65]), u([65])]);
product("Gemm", "classifier 2048 → 1000, transB, bias", [
  u([2, 2048]),
  u([1000, 2048], -0.05, 0.05),
  u([1000]),
], { transB: true });
product("Gemm", "tanh, no bias, [9, 31] x [31, 17]", [u([9, 31]), u([31, 17])], {
  ...ACT.tanh,
});

product("MatMul", "[2, 3, 4, 5] x [5, 6]", [u([2, 3, 4, 5]), u([5, 6])]);
product("MatMul", "[2, 3, 4, 5] x [2, 3, 6, 5] transB alpha 0.25", [
  u([2, 3, 4, 5]),
  u([2, 3, 6, 5]),
], { transB: true, alpha: 0.25 });
product("MatMul", "[1, 3, 4, 5] x [2, 1, 5, 6] (broadcast batch)", [
  u([1, 3, 4, 5]),
  u([2, 1, 5, 6]),
]);
product("MatMul", "[2, 1, 4, 5] x [1, 3, 7, 5] transB alpha -2", [
  u([2, 1, 4, 5]),
  u([1, 3, 7, 5]),
], { transB: true, alpha: -2 });
product("MatMul", "[4, 5] x [2, 3, 5, 6]", [u([4, 5]), u([2, 3, 5, 6])]);
product("MatMul", "[3, 4, 5] x [3, 5, 2]", [u([3, 4, 5]), u([3, 5, 2])]);
product("MatMul", "[8, 33] x [33, 17]", [u([8, 33]), u([33, 17])]);
product("MatMul", "[2, 2, 2, 3, 4] x [2, 1, 4, 5] (3 batch dims)", [
  u([2, 2, 2, 3, 4]),
  u([2, 1, 4, 5]),
]);
product("MatMul", "attention-like [2, 8, 64, 32] x [2, 8, 64, 32] transB", [
  u([2, 8, 64, 32]),
  u([2, 8, 64, 32]),
], { transB: true, alpha: 0.125 });

add("Softmax", "[2, 3, 4, 5] axis -1", [u([2, 3, 4, 5])], { axis: -1 });
add("Softmax", "[2, 3, 4, 5] axis 1", [u([2, 3, 4, 5])], { axis: 1 });
add("Softmax", "[2, 3, 4, 5] axis 0", [u([2, 3, 4, 5])], { axis: 0 });
add("Softmax", "[4, 100] in [-20, 20] axis -1", [u([4, 100], -20, 20)], { axis: -1 });
add("Softmax", "[3, 7, 2] axis -2", [u([3, 7, 2], -5, 5)], { axis: -2 });
add("Softmax", "[3, 3000] axis -1 (block per row)", [u([3, 3000], -5, 5)], { axis: -1 });

add("LayerNorm", "[2, 5, 16] axis -1", [u([2, 5, 16]), u([16]), u([16])]);
add("LayerNorm", "[2, 5, 16] axis -2", [u([2, 5, 16]), u([5, 16]), u([80])], { axis: -2 });
add("LayerNorm", "[3, 32] epsilon 1e-6, inputs in [2, 3]", [u([3, 32], 2, 3), u([32]), u([32])], {
  epsilon: 1e-6,
});
add("LayerNorm", "[4, 3, 768] axis 2", [u([4, 3, 768]), u([768]), u([768])], { axis: 2 });
add("LayerNorm", "[3, 2, 1536] axis 2 (block per row)", [u([3, 2, 1536]), u([1536]), u([1536])], {
  axis: 2,
});

add("Gather", "axis 0, data [10, 4], indices [2, 3]", [constant(u([10, 4])), indices([2, 3], 10)], {
  axis: 0,
});
add("Gather", "axis 1, data [3, 7, 5], indices [4]", [constant(u([3, 7, 5])), indices([4], 7)], {
  axis: 1,
});
add("Gather", "axis 1, data [3, 7, 5] and indices [3] both inputs", [
  u([3, 7, 5]),
  indices([3], 7),
], { axis: 1 });
add("Gather", "axis -1, data [2, 3, 6], indices [2, 2]", [
  constant(u([2, 3, 6])),
  indices([2, 2], 6),
], { axis: -1 });
add("Gather", "axis 0 embedding, data [50, 16], indices [2, 7]", [
  constant(u([50, 16])),
  indices([2, 7], 50),
], { axis: 0 });

add("Identity", "[2, 3, 4]", [u([2, 3, 4])]);
add("Identity", "[5]", [u([5])]);
add("Dropout", "ratio 0.5 [2, 3, 4]", [u([2, 3, 4])]);
add("Dropout", "ratio 0.1 [4, 9]", [u([4, 9])], { ratio: 0.1 });

// ------------------------------------------------------------------------------ running a case

async function runCase(
  c: OpCase,
  precision: PrecisionOption,
  tolerance: number,
  tune = true,
): Promise<number> {
  const caseName = `${c.op}/${c.name}/${precision}`;
  const { graph, feeds } = buildCase(c, new Random(caseSeed(caseName)));
  const output = graph.outputs[0];
  using cpu = await Session.create(graph, { device: "cpu" });
  using gpu = await Session.create(graph, { device: "cuda", precision, tune });
  const want = cpu.runSync(feeds)[output];
  const got = gpu.runSync(feeds)[output];
  // A second run on the same session (graph replay again) gives the same answer.
  const again = gpu.runSync(feeds)[output];
  const where = `${c.op} "${c.name}" (${precision}${tune ? "" : ", untuned"}) ` +
    rerunHint(caseName);
  assert.deepEqual(again, got, `${where}: a second replay differs`);
  return expectClose(got, want, tolerance, where);
}

gpuTest("every op of the op table has GPU cases", () => {
  const missing = (Object.keys(OPS) as OpName[]).filter((op) =>
    CASES.filter((c) => c.op === op).length < 2
  );
  assert.deepEqual(missing, [], `ops with fewer than 2 cases: ${missing.join(", ")}`);
});

for (const op of Object.keys(OPS) as OpName[]) {
  gpuTest(
    `${op} on CUDA matches the CPU backend in strict fp32 (< ${FP32_TOLERANCE})`,
    async (t) => {
      const cases = CASES.filter((c) => c.op === op);
      assert(cases.length > 0, `op ${op} has no case`);
      for (const c of cases) await t.step(c.name, () => runCase(c, "fp32", FP32_TOLERANCE).then());
    },
  );
}

gpuTest(`Conv2d with TF32 (precision "default") is within ${TF32_TOLERANCE}`, async (t) => {
  const errors: number[] = [];
  for (const c of CONV_CASES) {
    await t.step(c.name, async () => {
      errors.push(await runCase(c, "default", TF32_TOLERANCE));
    });
  }
  console.log(`  TF32 conv: worst relative error ${Math.max(...errors).toExponential(2)}`);
});

gpuTest(`Gemm and MatMul with TF32 (precision "tf32") are within ${TF32_TOLERANCE}`, async (t) => {
  for (const c of PRODUCT_CASES) {
    await t.step(c.name, () => runCase(c, "tf32", TF32_TOLERANCE).then());
  }
});

gpuTest(
  "Conv2d untuned (tune: false, cuDNN's heuristic on the stream's scratch) in fp32",
  async (t) => {
    for (const c of CONV_CASES) {
      await t.step(c.name, () => runCase(c, "fp32", FP32_TOLERANCE, false).then());
    }
  },
);
