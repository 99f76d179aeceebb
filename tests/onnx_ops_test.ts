/**
 * ONNX import, op by op: for every ONNX operator the importer maps, small ONNX files built here
 * (tests/onnx_encoder.ts), imported, run on the CPU backend and compared with the float64
 * reference (tests/reference.ts), evaluated with ONNX's semantics written out in each case:
 * ‖out − ref‖₂ / ‖ref‖₂ < 1e-5.
 *
 * Operands are drawn fresh from a seed printed in failure messages; rerun a failure with
 * BRAID_TEST_SEED=<seed>.
 */
import { assert } from "./deps.ts";
import { importOnnx, Session } from "../mod.ts";
import { OPS } from "../lib/ir/ops.ts";
import { MAPPERS } from "../lib/onnx/mappers.ts";
import { Random } from "../lib/util/random.ts";
import * as ref from "./reference.ts";
import { caseSeed, rerunHint } from "./helpers.ts";
import {
  DataType,
  encodeOnnx,
  float,
  int,
  ints,
  node,
  type NodeObject,
  str,
  tensor,
  type TensorObject,
  valueInfo,
} from "./onnx_encoder.ts";

const TOLERANCE = 1e-5;

// ------------------------------------------------------------------------------ case description

interface Operand {
  shape: number[];
  /** Fixed values; otherwise uniform floats in [lo, hi) (default [-1, 1)). */
  values?: number[];
  lo?: number;
  hi?: number;
  /** int64 operands hold `values` (or integers in [lo, hi]). */
  type?: "float" | "int64";
  /** An initializer rather than a graph input. */
  constant?: boolean;
}

interface Case {
  /** The ONNX op under test. */
  op: string;
  name: string;
  opset?: number;
  operands: Record<string, Operand>;
  nodes: NodeObject[];
  outputs: string[];
  /** The expected outputs, from the operands' values (as the model saw them: float32). */
  expect(v: Record<string, ref.RefTensor>): Record<string, ref.RefTensor>;
}

const CASES: Case[] = [];
const add = (c: Case) => CASES.push(c);

const f = (shape: number[], lo = -1, hi = 1): Operand => ({ shape, lo, hi });
const c = (shape: number[], lo = -1, hi = 1): Operand => ({ shape, lo, hi, constant: true });
const i64 = (values: number[], shape = [values.length]): Operand => ({
  shape,
  values,
  type: "int64",
  constant: true,
});
const scalarF = (v: number): Operand => ({ shape: [], values: [v], constant: true });

const map = (x: ref.RefTensor, fn: (v: number, i: number) => number): ref.RefTensor => ({
  shape: [...x.shape],
  data: x.data.map(fn),
});
const NONE = { activation: "none", actMin: 0, actMax: 0 } as const;
const conv = (a: Partial<typeof OPS.Conv2d.defaults>) => ({ ...OPS.Conv2d.defaults, ...a });
const pool = (a: Partial<typeof OPS.AvgPool2d.defaults>) => ({ ...OPS.AvgPool2d.defaults, ...a });

// ------------------------------------------------------------------------------ the cases

add({
  op: "Conv",
  name: "asymmetric pads, stride 2x1, dilation 1x2, bias",
  operands: { x: f([2, 3, 9, 10]), w: c([4, 3, 3, 2]), b: c([4]) },
  nodes: [
    node("Conv", ["x", "w", "b"], ["y"], [
      ints("pads", [1, 0, 2, 1]),
      ints("strides", [2, 1]),
      ints("dilations", [1, 2]),
      ints("kernel_shape", [3, 2]),
    ]),
  ],
  outputs: ["y"],
  expect: (v) => ({
    y: ref.conv2d(
      v.x,
      v.w,
      v.b,
      undefined,
      conv({
        pads: [1, 0, 2, 1],
        strides: [2, 1],
        dilations: [1, 2],
      }),
    ),
  }),
});
add({
  op: "Conv",
  name: "groups 2, no bias, auto_pad SAME_UPPER, stride 2",
  operands: { x: f([1, 4, 7, 8]), w: c([6, 2, 3, 3]) },
  nodes: [
    node("Conv", ["x", "w"], ["y"], [
      int("group", 2),
      str("auto_pad", "SAME_UPPER"),
      ints("strides", [2, 2]),
    ]),
  ],
  outputs: ["y"],
  // 7 rows → 4 outputs needs 2 rows of padding (1 + 1), 8 columns → 4 needs 1 (0 + 1).
  expect: (v) => ({
    y: ref.conv2d(
      v.x,
      v.w,
      undefined,
      undefined,
      conv({
        groups: 2,
        strides: [2, 2],
        pads: [1, 0, 1, 1],
      }),
    ),
  }),
});
add({
  op: "BatchNormalization",
  name: "epsilon 1e-3",
  operands: {
    x: f([2, 3, 4, 5]),
    s: c([3], 0.5, 1.5),
    b: c([3]),
    m: c([3]),
    var: c([3], 0.5, 2),
  },
  nodes: [node("BatchNormalization", ["x", "s", "b", "m", "var"], ["y"], [float("epsilon", 1e-3)])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.batchNorm(v.x, v.s, v.b, v.m, v.var, { epsilon: Math.fround(1e-3) }) }),
});
for (
  const [op, fn] of [["Relu", (x: number) => Math.max(x, 0)], ["Sigmoid", ref.sigmoid], [
    "Tanh",
    Math.tanh,
  ]] as const
) {
  add({
    op,
    name: "rank 3",
    operands: { x: f([2, 3, 4], -3, 3) },
    nodes: [node(op, ["x"], ["y"])],
    outputs: ["y"],
    expect: (v) => ({ y: map(v.x, fn) }),
  });
}
add({
  op: "Clip",
  name: "min and max inputs (opset 13)",
  operands: { x: f([3, 5]), lo: scalarF(-0.3), hi: scalarF(0.4) },
  nodes: [node("Clip", ["x", "lo", "hi"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({
    y: map(v.x, (x) => Math.min(Math.max(x, Math.fround(-0.3)), Math.fround(0.4))),
  }),
});
add({
  op: "Clip",
  name: "max only (min absent)",
  operands: { x: f([3, 5]), hi: scalarF(0.25) },
  nodes: [node("Clip", ["x", "", "hi"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: map(v.x, (x) => Math.min(x, 0.25)) }),
});
add({
  op: "Gelu",
  name: "opset 20 Gelu",
  opset: 20,
  operands: { x: f([2, 8], -4, 4) },
  nodes: [node("Gelu", ["x"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: map(v.x, ref.gelu) }),
});
add({
  op: "HardSigmoid",
  name: "alpha 0.25, beta 0.4",
  operands: { x: f([4, 6], -5, 5) },
  nodes: [node("HardSigmoid", ["x"], ["y"], [float("alpha", 0.25), float("beta", 0.4)])],
  outputs: ["y"],
  expect: (v) => ({
    y: map(v.x, (x) => Math.min(Math.max(Math.fround(0.25) * x + Math.fround(0.4), 0), 1)),
  }),
});
add({
  op: "HardSwish",
  name: "x · clamp(x/6 + 1/2, 0, 1)",
  operands: { x: f([4, 6], -5, 5) },
  nodes: [node("HardSwish", ["x"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: map(v.x, (x) => x * Math.min(Math.max(x / 6 + 0.5, 0), 1)) }),
});
for (const op of ["Add", "Sub", "Mul", "Div"] as const) {
  const b = op === "Div" ? { ...c([3, 1], 0.5, 1.5) } : c([3, 1]);
  add({
    op,
    name: "run-time A, broadcast constant B",
    operands: { a: f([2, 3, 4]), b },
    nodes: [node(op, ["a", "b"], ["y"])],
    outputs: ["y"],
    expect: (v) => ({ y: ref.binary(op, v.a, v.b, NONE) }),
  });
  add({
    op,
    name: "two run-time inputs broadcast both ways",
    // Graph inputs share their first (batch) dimension, as braid requires.
    operands: { a: f([2, 1, 4]), b: op === "Div" ? f([2, 3, 1], 0.5, 1.5) : f([2, 3, 1]) },
    nodes: [node(op, ["a", "b"], ["y"])],
    outputs: ["y"],
    expect: (v) => ({ y: ref.binary(op, v.a, v.b, NONE) }),
  });
}
add({
  op: "Neg",
  name: "negation",
  operands: { x: f([5, 3]) },
  nodes: [node("Neg", ["x"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: map(v.x, (x) => -x) }),
});
add({
  op: "Pow",
  name: "square",
  operands: { x: f([5, 3]), e: scalarF(2) },
  nodes: [node("Pow", ["x", "e"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: map(v.x, (x) => x * x) }),
});
add({
  op: "MaxPool",
  name: "3x3 stride 2 pads 1 ceil_mode",
  operands: { x: f([1, 2, 8, 9]) },
  nodes: [
    node("MaxPool", ["x"], ["y"], [
      ints("kernel_shape", [3, 3]),
      ints("strides", [2, 2]),
      ints("pads", [1, 1, 1, 1]),
      int("ceil_mode", 1),
    ]),
  ],
  outputs: ["y"],
  expect: (v) => ({
    y: ref.maxPool2d(v.x, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceilMode: true }),
  }),
});
for (const include of [0, 1]) {
  add({
    op: "AveragePool",
    name: `3x3 stride 1 pads 1, count_include_pad ${include}`,
    operands: { x: f([2, 3, 6, 5]) },
    nodes: [
      node("AveragePool", ["x"], ["y"], [
        ints("kernel_shape", [3, 3]),
        ints("pads", [1, 1, 1, 1]),
        int("count_include_pad", include),
      ]),
    ],
    outputs: ["y"],
    expect: (v) => ({
      y: ref.avgPool2d(
        v.x,
        pool({
          kernel: [3, 3],
          strides: [1, 1],
          pads: [1, 1, 1, 1],
          countIncludePad: include === 1,
        }),
      ),
    }),
  });
}
add({
  op: "GlobalAveragePool",
  name: "4-D",
  operands: { x: f([2, 3, 5, 4]) },
  nodes: [node("GlobalAveragePool", ["x"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.globalAvgPool(v.x) }),
});
add({
  op: "ReduceMean",
  name: "spatial axes, keepdims 0",
  operands: { x: f([2, 3, 5, 4]) },
  nodes: [node("ReduceMean", ["x"], ["y"], [ints("axes", [2, 3]), int("keepdims", 0)])],
  outputs: ["y"],
  expect: (v) => ({ y: { shape: [2, 3], data: ref.globalAvgPool(v.x).data } }),
});
add({
  op: "Concat",
  name: "a run-time input and a constant, axis 1",
  operands: { a: f([2, 3, 4]), b: c([2, 2, 4]) },
  nodes: [node("Concat", ["a", "b"], ["y"], [int("axis", 1)])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.concat([v.a, v.b], { axis: 1 }) }),
});
add({
  op: "Concat",
  name: "three inputs, axis -1",
  operands: { a: f([2, 3]), b: f([2, 1]), d: c([2, 2]) },
  nodes: [node("Concat", ["a", "b", "d"], ["y"], [int("axis", -1)])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.concat([v.a, v.b, v.d], { axis: -1 }) }),
});
add({
  op: "Flatten",
  name: "axis 2",
  operands: { x: f([2, 3, 4, 5]) },
  nodes: [node("Flatten", ["x"], ["y"], [int("axis", 2)])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.flatten(v.x, { axis: 2 }) }),
});
add({
  op: "Reshape",
  name: "0 copies, -1 is inferred",
  operands: { x: f([2, 3, 4]), s: i64([0, -1, 2]) },
  nodes: [node("Reshape", ["x", "s"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.reshape(v.x, { shape: [2, 6, 2] }) }),
});
add({
  op: "Transpose",
  name: "perm [2, 0, 1]",
  operands: { x: f([2, 3, 4]) },
  nodes: [node("Transpose", ["x"], ["y"], [ints("perm", [2, 0, 1])])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.transpose(v.x, { perm: [2, 0, 1] }) }),
});
add({
  op: "Transpose",
  name: "default perm reverses",
  operands: { x: f([2, 3, 4]) },
  nodes: [node("Transpose", ["x"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.transpose(v.x, { perm: [2, 1, 0] }) }),
});
add({
  op: "Slice",
  name: "negative step to the start, ±2^63 bounds",
  operands: {
    x: f([3, 10]),
    st: i64([-1, 0]),
    en: i64([-9223372036854775807, 9223372036854775807]),
    ax: i64([1, 0]),
    sp: i64([-3, 2]),
  },
  nodes: [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({
    y: ref.slice(v.x, { axes: [1, 0], starts: [-1, 0], ends: [-100, 100], steps: [-3, 2] }),
  }),
});
add({
  op: "Slice",
  name: "starts and ends only",
  operands: { x: f([4, 6]), st: i64([1]), en: i64([-1]) },
  nodes: [node("Slice", ["x", "st", "en"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.slice(v.x, { axes: [0], starts: [1], ends: [-1], steps: [1] }) }),
});
add({
  op: "Split",
  name: "sizes [1, 2] on axis 1",
  operands: { x: f([2, 3, 4]), sizes: i64([1, 2]) },
  nodes: [node("Split", ["x", "sizes"], ["p", "q"], [int("axis", 1)])],
  outputs: ["p", "q"],
  expect: (v) => ({
    p: ref.slice(v.x, { axes: [1], starts: [0], ends: [1], steps: [1] }),
    q: ref.slice(v.x, { axes: [1], starts: [1], ends: [3], steps: [1] }),
  }),
});
add({
  op: "Squeeze",
  name: "axes input",
  operands: { x: f([2, 1, 3, 1]), ax: i64([1, -1]) },
  nodes: [node("Squeeze", ["x", "ax"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: { shape: [2, 3], data: v.x.data } }),
});
add({
  op: "Unsqueeze",
  name: "axes input",
  operands: { x: f([2, 3]), ax: i64([0, 3]) },
  nodes: [node("Unsqueeze", ["x", "ax"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: { shape: [1, 2, 3, 1], data: v.x.data } }),
});
add({
  op: "Expand",
  name: "[3, 1] to [2, 3, 4]",
  operands: { x: f([3, 1]), s: i64([2, 3, 4]) },
  nodes: [node("Expand", ["x", "s"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.binary("Add", v.x, ref.tensor([2, 3, 4]), NONE) }),
});
add({
  op: "Gather",
  name: "run-time data, constant int64 indices (negative), axis 1",
  operands: { x: f([2, 5, 3]), idx: i64([-1, 0, 2, 2], [2, 2]) },
  nodes: [node("Gather", ["x", "idx"], ["y"], [int("axis", 1)])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.gather(v.x, v.idx, { axis: 1 }) }),
});
add({
  op: "Gather",
  name: "embedding: constant table, int64 ids as a graph input",
  operands: { table: c([10, 4]), ids: { shape: [2, 3], lo: 0, hi: 9, type: "int64" } },
  nodes: [node("Gather", ["table", "ids"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.gather(v.table, v.ids, { axis: 0 }) }),
});
add({
  op: "Gemm",
  name: "transA, transB, alpha 0.5, beta 2, C of [N]",
  operands: { a: f([4, 3]), b: c([5, 4]), bias: c([5]) },
  nodes: [
    node("Gemm", ["a", "b", "bias"], ["y"], [
      int("transA", 1),
      int("transB", 1),
      float("alpha", 0.5),
      float("beta", 2),
    ]),
  ],
  outputs: ["y"],
  expect: (v) => ({
    y: ref.gemm(ref.transpose(v.a, { perm: [1, 0] }), v.b, v.bias, {
      ...OPS.Gemm.defaults,
      transB: true,
      alpha: 0.5,
      beta: 2,
    }),
  }),
});
add({
  op: "Gemm",
  name: "C of [M, N], beta 0.5",
  operands: { a: f([3, 4]), b: c([4, 2]), cc: c([3, 2]) },
  nodes: [node("Gemm", ["a", "b", "cc"], ["y"], [float("beta", 0.5)])],
  outputs: ["y"],
  expect: (v) => ({
    y: ref.binary(
      "Add",
      ref.gemm(v.a, v.b, undefined, OPS.Gemm.defaults),
      map(v.cc, (x) => 0.5 * x),
      NONE,
    ),
  }),
});
add({
  op: "MatMul",
  name: "batched, both at run time, broadcast batch",
  operands: { a: f([2, 3, 4, 5]), b: f([2, 1, 5, 2]) },
  nodes: [node("MatMul", ["a", "b"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.matmul(v.a, v.b, { transB: false, alpha: 1 }) }),
});
add({
  op: "MatMul",
  name: "3-D by a constant matrix (a linear layer)",
  operands: { a: f([2, 3, 5]), b: c([5, 4]) },
  nodes: [node("MatMul", ["a", "b"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.matmul(v.a, v.b, { transB: false, alpha: 1 }) }),
});
add({
  op: "MatMul",
  name: "matrix by a vector",
  operands: { a: f([2, 3, 5]), b: c([5]) },
  nodes: [node("MatMul", ["a", "b"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({
    y: {
      shape: [2, 3],
      data: ref.matmul(v.a, { shape: [5, 1], data: v.b.data }, { transB: false, alpha: 1 }).data,
    },
  }),
});
add({
  op: "Softmax",
  name: "axis 1 of 3",
  operands: { x: f([2, 3, 4], -3, 3) },
  nodes: [node("Softmax", ["x"], ["y"], [int("axis", 1)])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.softmax(v.x, { axis: 1 }) }),
});
add({
  op: "LayerNormalization",
  name: "last axis, with bias",
  operands: { x: f([2, 3, 8]), s: c([8], 0.5, 1.5), b: c([8]) },
  nodes: [node("LayerNormalization", ["x", "s", "b"], ["y"], [float("epsilon", 1e-5)])],
  outputs: ["y"],
  expect: (v) => ({ y: ref.layerNorm(v.x, v.s, v.b, { axis: -1, epsilon: Math.fround(1e-5) }) }),
});
add({
  op: "LayerNormalization",
  name: "axis 1, no bias",
  operands: { x: f([2, 3, 4]), s: c([3, 4], 0.5, 1.5) },
  nodes: [node("LayerNormalization", ["x", "s"], ["y"], [int("axis", 1)])],
  outputs: ["y"],
  expect: (v) => ({
    y: ref.layerNorm(v.x, v.s, ref.tensor([3, 4]), { axis: 1, epsilon: Math.fround(1e-5) }),
  }),
});
for (const op of ["Identity", "Dropout"]) {
  add({
    op,
    name: "between two ops",
    operands: { x: f([3, 4]) },
    nodes: [node("Relu", ["x"], ["r"]), node(op, ["r"], ["d"]), node("Neg", ["d"], ["y"])],
    outputs: ["y"],
    expect: (v) => ({ y: map(v.x, (x) => -Math.max(x, 0)) }),
  });
}
add({
  op: "Cast",
  name: "float to float at run time",
  operands: { x: f([3, 4]) },
  nodes: [node("Cast", ["x"], ["k"], [int("to", DataType.FLOAT)]), node("Relu", ["k"], ["y"])],
  outputs: ["y"],
  expect: (v) => ({ y: map(v.x, (x) => Math.max(x, 0)) }),
});
add({
  op: "Pad",
  name: "crop and pad with 0.5, materialised (no consumer to fold into)",
  operands: { x: f([1, 2, 4, 5]), p: i64([0, 0, -1, 2, 0, 1, 1, -2]), val: scalarF(0.5) },
  nodes: [node("Pad", ["x", "p", "val"], ["y"])],
  outputs: ["y"],
  // Axis 1: +1 channel after; axis 2: one row removed before, one added after; axis 3: two
  // columns added before, two removed after.
  expect: (v) => {
    const [n, ch, h, w] = [1, 3, 4, 5];
    const y = ref.tensor([n, ch, h, w]);
    for (let cc = 0; cc < ch; cc++) {
      for (let r = 0; r < h; r++) {
        for (let col = 0; col < w; col++) {
          const [sr, sc] = [r + 1, col - 2];
          const inside = cc < 2 && sr < 4 && sc >= 0 && sc < 5;
          y.data[(cc * h + r) * w + col] = inside ? v.x.data[(cc * 4 + sr) * 5 + sc] : 0.5;
        }
      }
    }
    return { y };
  },
});

// ------------------------------------------------------------------------------ running a case

function draw(o: Operand, rng: Random): number[] {
  if (o.values) return o.values;
  const n = o.shape.reduce((a, b) => a * b, 1);
  if (o.type === "int64") return Array.from({ length: n }, () => rng.int(o.lo ?? 0, o.hi ?? 9));
  return Array.from(rng.floats(n, o.lo ?? -1, o.hi ?? 1));
}

async function runCase(k: Case): Promise<void> {
  const caseName = `${k.op}/${k.name}`;
  const rng = new Random(caseSeed(caseName));
  const inputs: Record<string, unknown>[] = [];
  const initializers: TensorObject[] = [];
  const feeds: Record<string, Float32Array | Int32Array> = {};
  const values: Record<string, ref.RefTensor> = {};
  for (const [name, o] of Object.entries(k.operands)) {
    const raw = draw(o, rng);
    const int64 = o.type === "int64";
    // What the model computes with: float32 values, or the integers themselves (int64
    // constants keep their full range; int64 graph inputs are fed to braid as int32).
    const data = int64 ? raw : Float32Array.from(raw);
    values[name] = ref.tensor(o.shape, data);
    const type = int64 ? DataType.INT64 : DataType.FLOAT;
    if (o.constant) initializers.push(tensor(name, type, o.shape, data));
    else {
      inputs.push(valueInfo(name, o.shape, type));
      feeds[name] = int64 ? Int32Array.from(raw) : Float32Array.from(raw);
    }
  }
  const bytes = encodeOnnx({
    nodes: k.nodes,
    inputs,
    outputs: k.outputs,
    initializers,
    opset: k.opset,
  });
  const where = `${k.op} "${k.name}" ${rerunHint(caseName)}`;
  const { graph } = await importOnnx(bytes);
  using session = await Session.create(graph, { device: "cpu" });
  const got = await session.run(feeds);
  const want = k.expect(values);
  for (const name of k.outputs) {
    assert(got[name], `${where}: no output "${name}"`);
    assert.deepEqual(
      session.outputs.find((o) => o.name === name)!.shape,
      want[name].shape,
      `${where}: output "${name}" shape`,
    );
    const error = ref.relativeError(got[name], want[name].data);
    assert(error < TOLERANCE, `${where}: "${name}" relative error ${error} >= ${TOLERANCE}`);
  }
}

Deno.test("every ONNX op the importer maps has a test case", () => {
  const tested = new Set(CASES.map((k) => k.op));
  const missing = Object.keys(MAPPERS).filter((op) => !tested.has(op));
  assert.deepEqual(missing, [], `ONNX ops without a case: ${missing.join(", ")}`);
});

for (const op of [...new Set(CASES.map((k) => k.op))]) {
  Deno.test(`ONNX ${op} matches the float64 reference on the CPU backend`, async (t) => {
    for (const k of CASES.filter((x) => x.op === op)) await t.step(k.name, () => runCase(k));
  });
}
