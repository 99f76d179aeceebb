/**
 * Operator correctness: every op of the op table, in several configurations, run as a one-node
 * graph on the CPU backend through the public Session API and compared with the float64
 * reference interpreter (tests/reference.ts): ‖out − ref‖₂ / ‖ref‖₂ < 1e-5.
 *
 * Operands are graph inputs, drawn fresh on every run from a seed printed in failure messages;
 * rerun a failure with BRAID_TEST_SEED=<seed>. The reference itself is checked first, against
 * hand-computed cases and independent formulations (im2col convolution, brute-force pooling).
 */
import { assert } from "./deps.ts";
import { Session } from "../mod.ts";
import { GraphBuilder } from "../lib/ir/builder.ts";
import { numel } from "../lib/ir/graph.ts";
import { type Activation, type AttrsByOp, type OpName, OPS, windowOutput } from "../lib/ir/ops.ts";
import { Random } from "../lib/util/random.ts";
import * as ref from "./reference.ts";
import { caseSeed, rerunHint, worstElements } from "./helpers.ts";
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
  u,
} from "./op_cases.ts";

const TOLERANCE = 1e-5;

const { cases: CASES, add } = caseList();

// ------------------------------------------------------------------------------ the cases

// Conv2d: x [n, c, h, w], weight [k, c/groups, kh, kw], bias [k], residual [n, k, oh, ow].
commonConvCases(convCases(add));

addBatchNormCases(add);

addActivationCases(add);
addBinaryCases(add);

// Pooling: windows hanging over the edge in ceil mode, padding, divisor rules.
{
  addPoolCases(add);
  // Windows lying wholly in explicit bottom/right padding average the padded zeros (NASNet's
  // shifted path: crop, then a zero row and column appended before a 1x1 stride-2 pool).
  add("AvgPool2d", "k1 s2 windows inside bottom/right padding", [u([1, 3, 6, 8])], {
    kernel: [1, 1],
    strides: [2, 2],
    pads: [0, 0, 1, 1],
    countIncludePad: true,
  });
}

add("GlobalAvgPool", "[2, 8, 7, 7]", [u([2, 8, 7, 7])]);
add("GlobalAvgPool", "[3, 5, 4] (rank 3)", [u([3, 5, 4])]);
add("GlobalAvgPool", "[1, 4, 1, 1]", [u([1, 4, 1, 1])]);
add("GlobalAvgPool", "[2, 3, 13, 17]", [u([2, 3, 13, 17])]);

add("Concat", "axis 1, three inputs", [u([2, 3, 4]), u([2, 5, 4]), u([2, 1, 4])], { axis: 1 });
add("Concat", "axis -1", [u([2, 3, 4]), u([2, 3, 2])], { axis: -1 });
add("Concat", "axis 2 of rank 4", [u([2, 3, 4, 5]), u([2, 3, 1, 5])], { axis: 2 });
add("Concat", "axis 0", [u([2, 3]), u([4, 3])], { axis: 0 });
add("Concat", "one input", [u([2, 3, 4])], { axis: 1 });

add("Flatten", "axis 1", [u([2, 3, 4, 5])], { axis: 1 });
add("Flatten", "axis 2", [u([2, 3, 4, 5])], { axis: 2 });
add("Flatten", "axis 0", [u([2, 3, 4])], { axis: 0 });
add("Flatten", "axis = rank", [u([2, 3, 4])], { axis: 3 });
add("Flatten", "axis -1", [u([2, 3, 4])], { axis: -1 });

add("Reshape", "[0, -1]", [u([2, 3, 4, 5])], { shape: [0, -1] });
add("Reshape", "[0, 0, 20]", [u([2, 3, 4, 5])], { shape: [0, 0, 20] });
add("Reshape", "[2, 60] → [2, 3, 20]", [u([2, 60])], { shape: [2, 3, 20] });
add("Reshape", "[-1]", [u([2, 3, 4])], { shape: [-1] });
add("Reshape", "[4, -1, 5]", [u([2, 6, 5])], { shape: [4, -1, 5] });

addTransposeCases(add);
addSliceCases(add);

add("Gemm", "transB false, bias", [u([6, 8]), u([8, 5]), u([5])]);
add("Gemm", "transB true, alpha 0.5, beta 2, bias", [u([6, 8]), u([5, 8]), u([5])], {
  transB: true,
  alpha: 0.5,
  beta: 2,
});
add("Gemm", "transB false, alpha -1.5, no bias", [u([7, 9]), u([9, 4])], { alpha: -1.5 });
add("Gemm", "transB true, no bias", [u([3, 16]), u([10, 16])], { transB: true });
add("Gemm", "rank 3 A, transB true, relu", [u([2, 3, 8]), u([5, 8]), u([5])], {
  transB: true,
  ...ACT.relu,
});
add("Gemm", "bias [1, 6], beta 0.5, gelu", [u([4, 7]), u([7, 6]), u([1, 6])], {
  beta: 0.5,
  ...ACT.gelu,
});
add("Gemm", "transB true, clamp(-0.25, 0.5), alpha 2", [u([5, 12]), u([3, 12]), u([3])], {
  transB: true,
  alpha: 2,
  ...ACT.clamp,
});
add("Gemm", "K 256, M 33, N 65 (odd sizes)", [u([33, 256]), u([256, 65]), u([65])]);

add("MatMul", "[2, 3, 4, 5] x [5, 6]", [u([2, 3, 4, 5]), u([5, 6])]);
add("MatMul", "[2, 3, 4, 5] x [2, 3, 6, 5] transB alpha 0.25", [
  u([2, 3, 4, 5]),
  u([2, 3, 6, 5]),
], { transB: true, alpha: 0.25 });
add("MatMul", "[1, 3, 4, 5] x [2, 1, 5, 6] (broadcast batch)", [u([1, 3, 4, 5]), u([2, 1, 5, 6])]);
add("MatMul", "[2, 1, 4, 5] x [1, 3, 7, 5] transB alpha -2", [u([2, 1, 4, 5]), u([1, 3, 7, 5])], {
  transB: true,
  alpha: -2,
});
add("MatMul", "[4, 5] x [2, 3, 5, 6]", [u([4, 5]), u([2, 3, 5, 6])]);
add("MatMul", "[3, 4, 5] x [3, 5, 2]", [u([3, 4, 5]), u([3, 5, 2])]);
add("MatMul", "[8, 33] x [33, 17]", [u([8, 33]), u([33, 17])]);
add("MatMul", "[2, 2, 2, 3, 4] x [2, 1, 4, 5] (3 batch dims)", [
  u([2, 2, 2, 3, 4]),
  u([2, 1, 4, 5]),
]);

add("Softmax", "[2, 3, 4, 5] axis -1", [u([2, 3, 4, 5])], { axis: -1 });
add("Softmax", "[2, 3, 4, 5] axis 1", [u([2, 3, 4, 5])], { axis: 1 });
add("Softmax", "[2, 3, 4, 5] axis 0", [u([2, 3, 4, 5])], { axis: 0 });
add("Softmax", "[4, 100] in [-20, 20] axis -1", [u([4, 100], -20, 20)], { axis: -1 });
add("Softmax", "[3, 7, 2] axis -2", [u([3, 7, 2], -5, 5)], { axis: -2 });

add("LayerNorm", "[2, 5, 16] axis -1", [u([2, 5, 16]), u([16]), u([16])]);
add("LayerNorm", "[2, 5, 16] axis -2", [u([2, 5, 16]), u([5, 16]), u([80])], { axis: -2 });
add("LayerNorm", "[3, 32] epsilon 1e-6, inputs in [2, 3]", [u([3, 32], 2, 3), u([32]), u([32])], {
  epsilon: 1e-6,
});
add("LayerNorm", "[4, 3, 768] axis 2", [u([4, 3, 768]), u([768]), u([768])], { axis: 2 });

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
], {
  axis: -1,
});
add("Gather", "axis 1, data [2, 5, 3, 2], indices [1]", [
  constant(u([2, 5, 3, 2])),
  indices([1], 5),
], {
  axis: 1,
});
add("Gather", "axis 0 embedding, data [50, 16], indices [2, 7]", [
  constant(u([50, 16])),
  indices([2, 7], 50),
], { axis: 0 });

add("Identity", "[2, 3, 4]", [u([2, 3, 4])]);
add("Identity", "[5]", [u([5])]);
add("Dropout", "ratio 0.5 [2, 3, 4]", [u([2, 3, 4])]);
add("Dropout", "ratio 0.1 [4, 9]", [u([4, 9])], { ratio: 0.1 });

// ------------------------------------------------------------------------------ running a case

async function runCase(c: OpCase): Promise<void> {
  const caseName = `${c.op}/${c.name}`;
  const { graph, feeds, constants } = buildCase(c, new Random(caseSeed(caseName)));
  const output = graph.outputs[0];
  const want = ref.evaluateGraph(graph, feeds)[output];
  using session = await Session.create(graph, { device: "cpu" });
  const got = (await session.run(feeds))[output];
  const where = `${c.op} "${c.name}"` +
    (constants.length ? ` (operands ${constants.join(", ")} as initializers)` : "") +
    ` ${rerunHint(caseName)}`;
  assert(got, `${where}: no output "${output}"`);
  assert(
    got.length === want.length,
    `${where}: output has ${got.length} elements, the reference ${want.length}`,
  );
  const error = ref.relativeError(got, want);
  assert(
    error < TOLERANCE,
    `${where}: relative error ${error} >= ${TOLERANCE}; worst: ${worstElements(got, want)}`,
  );
}

// ------------------------------------------------------------------------------ the reference

const near = (got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-12, what = "") => {
  assert(
    got.length === want.length && ref.relativeError(got, want) <= tol,
    `${what} got [${Array.from(got)}], want [${Array.from(want)}]`,
  );
};
const seq = (shape: number[]) =>
  ref.tensor(shape, Array.from({ length: numel(shape) }, (_, i) => i + 1));
const randomTensor = (rng: Random, shape: number[]) => ref.tensor(shape, rng.floats(numel(shape)));
const convAttrs = (a: Partial<AttrsByOp["Conv2d"]>): AttrsByOp["Conv2d"] => ({
  ...OPS.Conv2d.defaults,
  ...a,
});
const poolAttrs = (a: Partial<AttrsByOp["AvgPool2d"]>): AttrsByOp["AvgPool2d"] => ({
  ...OPS.AvgPool2d.defaults,
  ...a,
});

Deno.test("reference: erf, erfc and exact GELU against known values", () => {
  const known: [number, number][] = [
    [0, 0],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [-1, -0.8427007929497149],
  ];
  for (const [x, want] of known) near([ref.erf(x)], [want], 1e-15, `erf(${x})`);
  near([ref.erfc(3)], [2.209049699858544e-5], 1e-12, "erfc(3)");
  near([ref.erfc(5)], [1.5374597944280349e-12], 1e-12, "erfc(5)");
  near([ref.erfc(-1)], [1.8427007929497148], 1e-15, "erfc(-1)");
  // GELU(x) = x·Φ(x): Φ(1) = 0.8413447460685429, Φ(-1) = 0.15865525393145707.
  near([ref.gelu(1), ref.gelu(-1)], [0.8413447460685429, -0.15865525393145707], 1e-14, "gelu");
  near([ref.gelu(-10)], [-10 * 7.619853024160527e-24], 1e-10, "gelu(-10)");
  near([ref.sigmoid(0), ref.activate("clamp", 7, 0, 6), ref.activate("relu", -2)], [0.5, 6, 0]);
});

Deno.test("reference: relativeError", () => {
  assert(ref.relativeError([1, 2, 3], [1, 2, 3]) === 0);
  near([ref.relativeError([3, 4], [0, 5])], [Math.sqrt(10) / 5]);
  assert(ref.relativeError([1, NaN], [1, 2]) === Infinity);
  assert(ref.relativeError([1, 2], [1, NaN]) === Infinity);
  assert(ref.relativeError([1, 2], [1, 2, 3]) === Infinity);
  assert(ref.relativeError([Infinity], [Infinity]) === Infinity);
});

Deno.test("reference: convolution by hand", () => {
  // x = 1..9 as 3x3; w = [[1, 0], [0, 1]]: y[i, j] = x[i, j] + x[i + 1, j + 1].
  const x = seq([1, 1, 3, 3]);
  const y = ref.conv2d(
    x,
    ref.tensor([1, 1, 2, 2], [1, 0, 0, 1]),
    undefined,
    undefined,
    convAttrs({}),
  );
  assert.deepEqual(y.shape, [1, 1, 2, 2]);
  near(y.data, [6, 8, 12, 14]);
  // All-ones 3x3, pad 1, stride 2: sums of the 2x2 corners; bias 1, residual, relu.
  const ones = ref.tensor([1, 1, 3, 3], new Array(9).fill(1));
  const strided = ref.conv2d(
    x,
    ones,
    ref.tensor([1], [1]),
    ref.tensor([1, 1, 2, 2], [0, 0, 0, -100]),
    convAttrs({ strides: [2, 2], pads: [1, 1, 1, 1], activation: "relu" }),
  );
  near(strided.data, [13, 17, 25, 0]);
  // Two groups of one channel each: channel 0 scaled by 2, channel 1 by -1, then clamp(0, 6).
  const two = ref.tensor([1, 2, 1, 2], [1, 2, 3, 4]);
  const grouped = ref.conv2d(
    two,
    ref.tensor([2, 1, 1, 1], [2, -1]),
    undefined,
    undefined,
    convAttrs({ groups: 2, activation: "clamp", actMin: -3.5, actMax: 3 }),
  );
  near(grouped.data, [2, 3, -3, -3.5]);
  // Dilation 2 on a 1x5 row: y[j] = x[j] + x[j + 2] + x[j + 4] (kernel of ones, 1x3).
  const row = ref.conv2d(
    seq([1, 1, 1, 5]),
    ref.tensor([1, 1, 1, 3], [1, 1, 1]),
    undefined,
    undefined,
    convAttrs({ dilations: [1, 2], pads: [0, 2, 0, 0] }),
  );
  near(row.data, [1 + 3, 2 + 4, 1 + 3 + 5]);
});

/** Convolution written differently: explicit zero padding, im2col, then a matrix product. */
function convByIm2col(x: ref.RefTensor, w: ref.RefTensor, a: AttrsByOp["Conv2d"]): ref.RefTensor {
  const [n, c, h, wd] = x.shape;
  const [k, cg, kh, kw] = w.shape;
  const [pt, pl, pb, pr] = a.pads;
  const ph = h + pt + pb;
  const pw = wd + pl + pr;
  const padded = new Float64Array(n * c * ph * pw);
  for (let i = 0; i < n * c; i++) {
    for (let r = 0; r < h; r++) {
      for (let q = 0; q < wd; q++) {
        padded[(i * ph + r + pt) * pw + q + pl] = x.data[(i * h + r) * wd + q];
      }
    }
  }
  const oh = Math.floor((ph - a.dilations[0] * (kh - 1) - 1) / a.strides[0]) + 1;
  const ow = Math.floor((pw - a.dilations[1] * (kw - 1) - 1) / a.strides[1]) + 1;
  const kg = k / a.groups;
  const rows = cg * kh * kw;
  const y = ref.tensor([n, k, oh, ow]);
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < a.groups; g++) {
      const cols = ref.tensor([rows, oh * ow]);
      for (let ci = 0; ci < cg; ci++) {
        for (let u = 0; u < kh; u++) {
          for (let v = 0; v < kw; v++) {
            const row = (ci * kh + u) * kw + v;
            for (let i = 0; i < oh; i++) {
              for (let j = 0; j < ow; j++) {
                const r = i * a.strides[0] + u * a.dilations[0];
                const q = j * a.strides[1] + v * a.dilations[1];
                cols.data[row * oh * ow + i * ow + j] =
                  padded[((b * c + g * cg + ci) * ph + r) * pw + q];
              }
            }
          }
        }
      }
      const weights = ref.tensor([kg, rows], w.data.subarray(g * kg * rows, (g + 1) * kg * rows));
      const product = ref.matmul(weights, cols, { transB: false, alpha: 1 });
      y.data.set(product.data, (b * k + g * kg) * oh * ow);
    }
  }
  return y;
}

Deno.test("reference: convolution agrees with im2col + matmul", () => {
  const rng = new Random(7);
  const configs: [number[], number[], Partial<AttrsByOp["Conv2d"]>][] = [
    [[2, 4, 9, 9], [8, 4, 3, 3], { pads: [1, 1, 1, 1] }],
    [[1, 3, 16, 16], [4, 3, 7, 7], { strides: [2, 2], pads: [3, 3, 3, 3] }],
    [[2, 6, 7, 7], [6, 1, 3, 3], { groups: 6, pads: [1, 1, 1, 1], strides: [2, 2] }],
    [[1, 4, 8, 9], [6, 2, 3, 3], { groups: 2, dilations: [2, 2], pads: [2, 2, 2, 2] }],
    [[1, 3, 8, 9], [4, 3, 3, 5], { strides: [2, 1], pads: [1, 0, 2, 3], dilations: [1, 2] }],
  ];
  for (const [xs, ws, a] of configs) {
    const x = randomTensor(rng, xs);
    const w = randomTensor(rng, ws);
    const attrs = convAttrs(a);
    const direct = ref.conv2d(x, w, undefined, undefined, attrs);
    const im2col = convByIm2col(x, w, attrs);
    assert.deepEqual(direct.shape, im2col.shape);
    near(direct.data, im2col.data, 1e-13, `conv [${xs}] * [${ws}]`);
  }
});

Deno.test("reference: pooling by hand (PyTorch's ceil-mode and padding divisors)", () => {
  // avg_pool2d(1..9 as 3x3, 2, ceil_mode=True) = [[3, 4.5], [7.5, 9]] in PyTorch.
  const x = seq([1, 1, 3, 3]);
  const ceil = poolAttrs({ kernel: [2, 2], strides: [2, 2], ceilMode: true });
  near(ref.avgPool2d(x, ceil).data, [3, 4.5, 7.5, 9]);
  near(ref.maxPool2d(x, ceil).data, [5, 6, 8, 9]);
  near(ref.avgPool2d(x, { ...ceil, ceilMode: false }).data, [3]);
  // avg_pool1d([1, 2, 3, 4], 3, 2, padding=1, ceil_mode=True): 3 windows,
  // [-1, 2) → (0+1+2)/3 or /2; [1, 4) → 9/3; [3, 5) (clipped to the padded end) → 4/2 or /1.
  const row = seq([1, 1, 1, 4]);
  const a = poolAttrs({ kernel: [1, 3], strides: [1, 2], pads: [0, 1, 0, 1], ceilMode: true });
  near(ref.avgPool2d(row, a).data, [1, 3, 2]);
  near(ref.avgPool2d(row, { ...a, countIncludePad: false }).data, [1.5, 3, 4]);
  near(ref.maxPool2d(row, a).data, [2, 4, 4]);
  near(ref.avgPool2d(row, { ...a, ceilMode: false }).data, [1, 3]);
  // Negative values: padding never wins a max.
  const negative = ref.tensor([1, 1, 2, 2], [-1, -2, -3, -4]);
  near(ref.maxPool2d(negative, poolAttrs({ kernel: [2, 2], pads: [1, 1, 1, 1] })).data, [
    -1,
    -1,
    -2,
    -1,
    -1,
    -2,
    -3,
    -3,
    -4,
  ]);
  near(ref.globalAvgPool(seq([1, 2, 2, 2])).data, [2.5, 6.5]);
});

/** Pooling written differently: classify every kernel cell as input, padding or beyond. */
function poolBruteForce(x: ref.RefTensor, a: AttrsByOp["AvgPool2d"], kind: "max" | "avg") {
  const [n, c, h, w] = x.shape;
  const [pt, pl, pb, pr] = a.pads;
  const oh = windowOutput(h, a.kernel[0], a.strides[0], pt, pb, 1, a.ceilMode);
  const ow = windowOutput(w, a.kernel[1], a.strides[1], pl, pr, 1, a.ceilMode);
  const out: number[] = [];
  for (let p = 0; p < n * c; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const seen: number[] = [];
        let inPadded = 0;
        for (let u = 0; u < a.kernel[0]; u++) {
          for (let v = 0; v < a.kernel[1]; v++) {
            const r = i * a.strides[0] - pt + u;
            const q = j * a.strides[1] - pl + v;
            if (r >= -pt && r < h + pb && q >= -pl && q < w + pr) inPadded++;
            if (r >= 0 && r < h && q >= 0 && q < w) seen.push(x.data[(p * h + r) * w + q]);
          }
        }
        const sum = seen.reduce((s, v) => s + v, 0);
        out.push(
          kind === "max" ? Math.max(...seen) : sum / (a.countIncludePad ? inPadded : seen.length),
        );
      }
    }
  }
  return out;
}

Deno.test("reference: pooling agrees with a brute-force formulation", () => {
  const rng = new Random(11);
  for (let trial = 0; trial < 200; trial++) {
    const kernel: [number, number] = [rng.int(1, 4), rng.int(1, 4)];
    const strides: [number, number] = [rng.int(1, 3), rng.int(1, 3)];
    const pad = (k: number) => rng.int(0, Math.floor(k / 2));
    const pads: [number, number, number, number] = [
      pad(kernel[0]),
      pad(kernel[1]),
      pad(kernel[0]),
      pad(kernel[1]),
    ];
    const x = randomTensor(rng, [1, 2, rng.int(kernel[0], 9), rng.int(kernel[1], 9)]);
    const a = poolAttrs({
      kernel,
      strides,
      pads,
      ceilMode: rng.next() < 0.5,
      countIncludePad: rng.next() < 0.5,
    });
    const what = `pool ${JSON.stringify(a)} on [${x.shape}]`;
    near(ref.avgPool2d(x, a).data, poolBruteForce(x, a, "avg"), 1e-14, what);
    near(ref.maxPool2d(x, a).data, poolBruteForce(x, a, "max"), 0, what);
  }
});

Deno.test("reference: elementwise ops, broadcasting and fused activations by hand", () => {
  const a = ref.tensor([2, 1], [1, 2]);
  const b = ref.tensor([1, 3], [10, 20, 30]);
  const none = ACT.none;
  const sum = ref.binary("Add", a, b, none);
  assert.deepEqual(sum.shape, [2, 3]);
  near(sum.data, [11, 21, 31, 12, 22, 32]);
  near(ref.binary("Sub", a, b, ACT.relu).data, [0, 0, 0, 0, 0, 0]);
  near(ref.binary("Sub", b, a, ACT.relu6).data, [6, 6, 6, 6, 6, 6]);
  near(ref.binary("Div", b, ref.tensor([1], [4]), none).data, [2.5, 5, 7.5]);
  const scaled = ref.binary(
    "Mul",
    ref.tensor([2, 3, 1, 1], [1, 2, 3, 4, 5, 6]),
    ref.tensor([3, 1, 1], [1, 0, -1]),
    none,
  );
  near(scaled.data, [1, 0, -3, 4, 0, -6]);
  near(ref.binary("Add", ref.tensor([1], [0]), ref.tensor([1], [1]), ACT.sigmoid).data, [
    1 / (1 + Math.exp(-1)),
  ]);
  const bn = ref.batchNorm(
    ref.tensor([1, 2, 1, 2], [1, 2, 3, 4]),
    ref.tensor([2], [1, 2]),
    ref.tensor([2], [0, 1]),
    ref.tensor([2], [1, 3]),
    ref.tensor([2], [4, 1]),
    { epsilon: 0 },
  );
  near(bn.data, [0, 0.5, 1, 3]);
});

Deno.test("reference: data movement by hand", () => {
  const x = seq([2, 3]);
  near(ref.transpose(x, { perm: [1, 0] }).data, [1, 4, 2, 5, 3, 6]);
  const t = ref.transpose(seq([2, 3, 4]), { perm: [2, 0, 1] });
  assert.deepEqual(t.shape, [4, 2, 3]);
  near(t.data.subarray(0, 6), [1, 5, 9, 13, 17, 21]);
  const ten = ref.tensor([10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const s = (starts: number, ends: number, steps: number) =>
    Array.from(ref.slice(ten, { axes: [0], starts: [starts], ends: [ends], steps: [steps] }).data);
  assert.deepEqual(s(-1, -100, -3), [9, 6, 3, 0]);
  assert.deepEqual(s(8, 2, -2), [8, 6, 4]);
  assert.deepEqual(s(-3, 100, 1), [7, 8, 9]);
  assert.deepEqual(s(1, -1, 4), [1, 5]);
  assert.deepEqual(s(5, 5, 1), []);
  assert.deepEqual(s(100, -100, -4), [9, 5, 1]);
  const two = ref.slice(seq([3, 4]), {
    axes: [1, 0],
    starts: [-1, 0],
    ends: [-5, 3],
    steps: [-2, 2],
  });
  assert.deepEqual(two.shape, [2, 2]);
  near(two.data, [4, 2, 12, 10]);
  const data = ref.tensor([3, 2], [1, 2, 3, 4, 5, 6]);
  near(ref.gather(data, ref.tensor([2], [-1, 0]), { axis: 0 }).data, [5, 6, 1, 2]);
  const column = ref.gather(data, ref.tensor([1], [-1]), { axis: 1 });
  assert.deepEqual(column.shape, [3, 1]);
  near(column.data, [2, 4, 6]);
  const cat = ref.concat([seq([2, 1]), ref.tensor([2, 2], [7, 8, 9, 10])], { axis: -1 });
  near(cat.data, [1, 7, 8, 2, 9, 10]);
  assert.deepEqual(ref.flatten(seq([2, 3, 4]), { axis: 3 }).shape, [24, 1]);
  assert.deepEqual(ref.flatten(seq([2, 3, 4]), { axis: 0 }).shape, [1, 24]);
  assert.deepEqual(ref.reshape(seq([2, 3, 4]), { shape: [0, -1] }).shape, [2, 12]);
});

Deno.test("reference: matrix products, softmax and layer norm by hand", () => {
  const a = ref.tensor([2, 2], [1, 2, 3, 4]);
  const b = ref.tensor([2, 2], [5, 6, 7, 8]);
  near(ref.matmul(a, b, { transB: false, alpha: 1 }).data, [19, 22, 43, 50]);
  near(ref.matmul(a, b, { transB: true, alpha: 0.5 }).data, [8.5, 11.5, 19.5, 26.5]);
  const gemm = ref.gemm(a, b, ref.tensor([2], [1, -100]), {
    ...OPS.Gemm.defaults,
    transB: true,
    alpha: 2,
    beta: 0.5,
    activation: "relu",
  });
  near(gemm.data, [34.5, 0, 78.5, 56]);
  // Batch broadcasting: [2, 1, 1, 2] x [1, 3, 2, 1] → [2, 3, 1, 1].
  const batched = ref.matmul(seq([2, 1, 1, 2]), ref.tensor([1, 3, 2, 1], [1, 0, 0, 1, 1, 1]), {
    transB: false,
    alpha: 1,
  });
  assert.deepEqual(batched.shape, [2, 3, 1, 1]);
  near(batched.data, [1, 2, 3, 3, 4, 7]);
  near(ref.softmax(ref.tensor([1, 2], [0, Math.log(3)]), { axis: -1 }).data, [0.25, 0.75]);
  near(ref.softmax(ref.tensor([2, 1], [0, Math.log(3)]), { axis: 0 }).data, [0.25, 0.75]);
  near(ref.softmax(ref.tensor([1, 2], [1000, 1000]), { axis: 1 }).data, [0.5, 0.5]);
  const ln = ref.layerNorm(
    seq([1, 4]),
    ref.tensor([4], [1, 1, 2, 2]),
    ref.tensor([4], [0, 0, 0, 1]),
    {
      axis: -1,
      epsilon: 0,
    },
  );
  const sd = Math.sqrt(1.25);
  near(ln.data, [-1.5 / sd, -0.5 / sd, 1 / sd, 3 / sd + 1]);
});

Deno.test("reference: evaluateGraph walks a graph in topological order", () => {
  const b = new GraphBuilder("two nodes");
  const x = b.input("x", [1, 4]);
  const y = b.input("y", [1, 4]);
  // Nodes stored out of order: the Relu reads the Sub's output.
  const sub = "sub";
  b.graph.values.set(sub, { name: sub, dtype: "float32", shape: [1, 4] });
  b.graph.nodes.push({ name: "relu", op: "Relu", inputs: [sub], outputs: ["out"], attrs: {} });
  b.graph.values.set("out", { name: "out", dtype: "float32", shape: [1, 4] });
  b.graph.nodes.push({ name: sub, op: "Sub", inputs: [x, y], outputs: [sub], attrs: ACT.none });
  b.output("out");
  const result = ref.evaluateGraph(b.build(), {
    x: new Float32Array([1, 2, 3, 4]),
    y: new Float32Array([2, 2, 2, 2]),
  });
  near(result.out, [0, 0, 1, 2]);
});

// ------------------------------------------------------------------------------ the backend

Deno.test("every op of the op table has test cases", () => {
  const missing = (Object.keys(OPS) as OpName[]).filter((op) =>
    CASES.filter((c) => c.op === op).length < 2
  );
  assert.deepEqual(missing, [], `ops with fewer than 2 cases: ${missing.join(", ")}`);
  const unknown = CASES.filter((c) => !(c.op in OPS)).map((c) => c.op);
  assert.deepEqual(unknown, []);
  const activations = new Set(CASES.map((c) => c.attrs.activation as Activation | undefined));
  for (const act of ["relu", "clamp", "sigmoid", "tanh", "gelu"]) {
    assert(activations.has(act as Activation), `no case fuses ${act}`);
  }
});

for (const op of Object.keys(OPS) as OpName[]) {
  Deno.test(`${op} matches the float64 reference on the CPU backend`, async (t) => {
    const cases = CASES.filter((c) => c.op === op);
    assert(cases.length > 0, `op ${op} has no test case`);
    for (const c of cases) await t.step(c.name, () => runCase(c));
  });
}
