/**
 * Operator test cases as data, shared by tests/ops_test.ts (the CPU backend against the float64
 * reference) and tests/gpu/ops_gpu_test.ts (CUDA against the CPU): an op, its attributes and its
 * operands, each drawn fresh from the case's seed; and the one-node graph a case runs as.
 */
import { GraphBuilder } from "../lib/ir/builder.ts";
import { type Graph, numel } from "../lib/ir/graph.ts";
import { type AttrsByOp, type FusedActivation, type OpName, windowOutput } from "../lib/ir/ops.ts";
import type { Random } from "../lib/util/random.ts";

type Draw = (rng: Random, i: number) => number;

export interface Operand {
  shape: number[];
  dtype: "float32" | "int32";
  draw: Draw;
  /** Make it an initializer even where it could be a graph input. */
  constant?: boolean;
}

export interface OpCase {
  op: OpName;
  name: string;
  /** The node's inputs, each a graph input; null leaves an optional input absent. */
  operands: (Operand | null)[];
  attrs: Record<string, unknown>;
}

export type Feeds = Record<string, Float32Array | Int32Array>;

/** Uniform floats in [lo, hi). */
export const u = (shape: number[], lo = -1, hi = 1): Operand => ({
  shape,
  dtype: "float32",
  draw: (rng) => rng.uniform(lo, hi),
});
/** Floats with |v| in [0.5, 1.5) and a random sign: safe denominators. */
export const away = (shape: number[]): Operand => ({
  shape,
  dtype: "float32",
  draw: (rng) => (rng.next() < 0.5 ? -1 : 1) * rng.uniform(0.5, 1.5),
});
/** The same operand as an initializer (a constant, still drawn fresh from the case's seed). */
export const constant = (o: Operand): Operand => ({ ...o, constant: true });
/** int32 indices into an axis of size `dim`, alternately negative and non-negative. */
export const indices = (shape: number[], dim: number): Operand => ({
  shape,
  dtype: "int32",
  draw: (rng, i) => (i % 2 === 1 ? rng.int(-dim, -1) : rng.int(0, dim - 1)),
});

export type AddCase = <K extends OpName>(
  op: K,
  name: string,
  operands: (Operand | null)[],
  attrs?: Partial<AttrsByOp[K]>,
) => OpCase;

/** A list of cases and its typed `add` (attributes checked against the op). */
export function caseList(): { cases: OpCase[]; add: AddCase } {
  const cases: OpCase[] = [];
  const add: AddCase = (op, name, operands, attrs = {}) => {
    const c = { op, name, operands, attrs };
    cases.push(c);
    return c;
  };
  return { cases, add };
}

/** A pooling case: its name, the input's shape and the window. */
export type PoolCase = [string, number[], Partial<AttrsByOp["MaxPool2d"]>];

/** Pooling windows hanging over the edge in ceil mode, padding, and the divisor rules. */
const POOLS: PoolCase[] = [
  ["k3 s2 p1", [2, 3, 9, 9], { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
  ["k3 s2 p1 ceil (last window over the edge)", [2, 3, 8, 8], {
    kernel: [3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    ceilMode: true,
  }],
  ["k2 s2 ceil on 7x7 (last window of 1 pixel)", [2, 3, 7, 7], {
    kernel: [2, 2],
    strides: [2, 2],
    ceilMode: true,
  }],
  ["k2 s2 p1 ceil on 5x5 (window dropped by the PyTorch rule)", [1, 2, 5, 5], {
    kernel: [2, 2],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    ceilMode: true,
  }],
  ["k3 s1 p1 (same size)", [2, 4, 6, 7], { kernel: [3, 3], pads: [1, 1, 1, 1] }],
  ["k3 s2 floor", [1, 3, 8, 8], { kernel: [3, 3], strides: [2, 2] }],
  ["k3 s2 ceil", [1, 3, 8, 8], { kernel: [3, 3], strides: [2, 2], ceilMode: true }],
  ["k [2, 3] s [1, 2] p [1, 1] ceil", [2, 2, 6, 9], {
    kernel: [2, 3],
    strides: [1, 2],
    pads: [1, 1, 1, 1],
    ceilMode: true,
  }],
  ["k3 s2 asymmetric pads [1, 0, 0, 1]", [1, 2, 7, 8], {
    kernel: [3, 3],
    strides: [2, 2],
    pads: [1, 0, 0, 1],
  }],
  ["global-sized window k7 on 7x7", [2, 8, 7, 7], { kernel: [7, 7], strides: [1, 1] }],
];

/** MaxPool2d and AvgPool2d (the divisor with and without the padding) on POOLS and `extra`. */
export function addPoolCases(add: AddCase, extra: PoolCase[] = []) {
  for (const [name, x, a] of [...POOLS, ...extra]) {
    add("MaxPool2d", name, [u(x)], a);
    for (const countIncludePad of [true, false]) {
      add("AvgPool2d", `${name}, count_include_pad ${countIncludePad}`, [u(x)], {
        ...a,
        countIncludePad,
      });
    }
  }
}

/** Transposes of rank 2 to 4. */
export function addTransposeCases(add: AddCase) {
  for (const perm of [[1, 0], [0, 2, 1], [2, 0, 1], [1, 2, 0]]) {
    const shape = [3, 4, 5].slice(0, perm.length);
    add("Transpose", `[${perm}] of [${shape}]`, [u(shape)], { perm });
  }
  for (const perm of [[0, 2, 3, 1], [0, 3, 1, 2], [3, 2, 1, 0], [0, 1, 3, 2], [2, 0, 3, 1]]) {
    add("Transpose", `[${perm}] of [2, 3, 4, 5]`, [u([2, 3, 4, 5])], { perm });
  }
}

/** Slices of [2, 6, 7, 8]: negative and reversed bounds and steps, clamping, several axes. */
export function addSliceCases(add: AddCase) {
  const slices: [string, number[], number[], number[], number[]][] = [
    ["axis 2 [1:-1]", [2], [1], [-1], [1]],
    ["axes [1, 3] [-4:100], [0:-2:2]", [1, 3], [-4, 0], [100, -2], [1, 2]],
    ["axis 3 reversed [-1:-100:-1]", [3], [-1], [-100], [-1]],
    ["axis 2 [5:0:-2]", [2], [5], [0], [-2]],
    ["axes [-1, 1] [1:7:3], [-2:-7:-1]", [-1, 1], [1, -2], [7, -7], [3, -1]],
    ["axis 2 start past the end, negative step [100:-100:-3]", [2], [100], [-100], [-3]],
    ["axis 0 [-1:2147483647]", [0], [-1], [2147483647], [1]],
    ["all axes", [0, 1, 2, 3], [0, 1, -3, -1], [2, 6, 7, -9], [1, 2, 1, -2]],
  ];
  for (const [name, axes, starts, ends, steps] of slices) {
    add("Slice", `${name} of [2, 6, 7, 8]`, [u([2, 6, 7, 8])], { axes, starts, ends, steps });
  }
}

/** Fused activations, clamp as Relu6 and as an interval around 0. */
export const ACT: Record<string, FusedActivation> = {
  none: { activation: "none", actMin: 0, actMax: 0 },
  relu: { activation: "relu", actMin: 0, actMax: 0 },
  relu6: { activation: "clamp", actMin: 0, actMax: 6 },
  clamp: { activation: "clamp", actMin: -0.25, actMax: 0.5 },
  sigmoid: { activation: "sigmoid", actMin: 0, actMax: 0 },
  tanh: { activation: "tanh", actMin: 0, actMax: 0 },
  gelu: { activation: "gelu", actMin: 0, actMax: 0 },
};

/** Names a fused activation, clamp with its bounds. */
export const actName = (a: FusedActivation) =>
  a.activation === "clamp" ? `clamp(${a.actMin}, ${a.actMax})` : a.activation;

/** BatchNorm: x [n, c, ...], scale, bias, mean [c], var [c] > 0; `extra` inputs too. */
export function addBatchNormCases(add: AddCase, extra: number[][] = []) {
  const bn = (x: number[], epsilon?: number) => {
    const c = [x[1]];
    add("BatchNorm", `[${x}]${epsilon ? ` epsilon ${epsilon}` : ""}`, [
      u(x),
      u(c),
      u(c),
      u(c),
      u(c, 0.25, 1.5),
    ], epsilon ? { epsilon } : {});
  };
  bn([2, 4, 5, 6]);
  bn([3, 6]);
  bn([2, 3, 7], 1e-3);
  bn([1, 16, 3, 3], 0.1);
  for (const x of extra) bn(x);
}

/** Unary ops over ranges that reach their tails, and Clamp's bounds; `long`: a 1-d case too. */
export function addActivationCases(add: AddCase, long?: number[]) {
  for (const [op, range] of [["Relu", 1], ["Sigmoid", 6], ["Tanh", 4], ["Gelu", 5]] as const) {
    add(op, `[2, 3, 4, 5] in [-${range}, ${range}]`, [u([2, 3, 4, 5], -range, range)]);
    add(op, "[7] in [-1, 1]", [u([7])]);
    add(op, "[3, 1000] in [-8, 8]", [u([3, 1000], -8, 8)]);
    if (long) add(op, `[${long}] (vectors and a tail)`, [u(long, -range, range)]);
  }
  add("Clamp", "min -0.5 max 0.5", [u([2, 3, 4, 5])], { min: -0.5, max: 0.5 });
  add("Clamp", "Relu6 (0, 6) on [-8, 8]", [u([2, 50], -8, 8)], { min: 0, max: 6 });
  add("Clamp", "min only (0.25)", [u([3, 17])], { min: 0.25 });
  add("Clamp", "max only (-0.25)", [u([3, 17])], { max: -0.25 });
  add("Clamp", "min = max", [u([4, 5])], { min: 0.125, max: 0.125 });
}

/** Binary ops: broadcasting patterns (and `extra` ones) × fused activations. */
export function addBinaryCases(add: AddCase, extra: [number[], number[]][] = []) {
  const shapes: [number[], number[]][] = [
    [[2, 3, 4, 5], [2, 3, 4, 5]],
    [[2, 3, 4, 5], [3, 1, 1]],
    [[4, 1], [1, 5]],
    [[2, 3, 4], [1]],
    [[1], [2, 3, 4]],
    [[2, 1, 4, 1], [3, 1, 6]],
    [[5], [2, 3, 5]],
    [[2, 3, 4, 5], [1, 3, 1, 5]],
    ...extra,
  ];
  const acts = Object.values(ACT);
  (["Add", "Sub", "Mul", "Div"] as const).forEach((op, o) => {
    shapes.forEach(([a, b], i) => {
      const act = acts[(i + o) % acts.length];
      add(op, `[${a}] ${op} [${b}], ${actName(act)}`, [u(a), op === "Div" ? away(b) : u(b)], act);
    });
  });
}

/**
 * A Conv2d case: x [n, c, h, w], weight [k, c/groups, kh, kw], bias [k] (unless o.bias is
 * false), residual [n, k, oh, ow] (if o.residual).
 */
export type ConvCase = (
  name: string,
  x: number[],
  w: number[],
  a: Partial<AttrsByOp["Conv2d"]>,
  o?: { bias?: boolean; residual?: boolean },
) => OpCase;

export function convCases(add: AddCase): ConvCase {
  return (name, x, w, a, o = {}) => {
    const [n, , h, wd] = x;
    const [k, , kh, kw] = w;
    const [sh, sw] = a.strides ?? [1, 1];
    const [pt, pl, pb, pr] = a.pads ?? [0, 0, 0, 0];
    const [dh, dw] = a.dilations ?? [1, 1];
    const out = [n, k, windowOutput(h, kh, sh, pt, pb, dh), windowOutput(wd, kw, sw, pl, pr, dw)];
    const operands = [u(x), u(w), o.bias ?? true ? u([k]) : null];
    if (o.residual) operands.push(u(out));
    const act = a.activation
      ? `, ${actName({ actMin: 0, actMax: 0, ...a } as FusedActivation)}`
      : "";
    const extras = `${o.bias ?? true ? "" : ", no bias"}${o.residual ? ", residual" : ""}`;
    return add("Conv2d", `${name}${extras}${act}`, operands, a);
  };
}

/**
 * The convolutions every backend is tested on: kernel sizes, strides, padding (asymmetric too),
 * dilation, groups (depthwise, multiplier), bias, residual, every fused activation.
 */
export function commonConvCases(conv: ConvCase): OpCase[] {
  return [
    conv("3x3 pad 1", [2, 4, 9, 9], [8, 4, 3, 3], { pads: [1, 1, 1, 1] }),
    conv("7x7 stride 2 pad 3", [2, 3, 16, 16], [8, 3, 7, 7], {
      strides: [2, 2],
      pads: [3, 3, 3, 3],
      ...ACT.relu,
    }),
    conv("1x1", [2, 16, 5, 6], [8, 16, 1, 1], {}, { bias: false }),
    conv("1x1 stride 2", [1, 8, 7, 7], [12, 8, 1, 1], { strides: [2, 2], ...ACT.relu6 }),
    conv("depthwise 3x3 groups=C pad 1", [2, 8, 10, 10], [8, 1, 3, 3], {
      groups: 8,
      pads: [1, 1, 1, 1],
      ...ACT.relu6,
    }),
    conv("depthwise 3x3 groups=C stride 2 pad 1", [2, 6, 9, 9], [6, 1, 3, 3], {
      groups: 6,
      strides: [2, 2],
      pads: [1, 1, 1, 1],
    }),
    conv("depthwise multiplier 2 (groups=4, 4→8)", [1, 4, 6, 6], [8, 1, 3, 3], {
      groups: 4,
      pads: [1, 1, 1, 1],
      ...ACT.tanh,
    }),
    conv("groups=2 3x3", [2, 4, 7, 8], [6, 2, 3, 3], { groups: 2, ...ACT.sigmoid }),
    conv("dilation 2 pad 2", [2, 3, 11, 11], [5, 3, 3, 3], {
      dilations: [2, 2],
      pads: [2, 2, 2, 2],
      ...ACT.tanh,
    }),
    conv("asymmetric pads [1, 0, 2, 1] stride 2", [2, 3, 8, 9], [4, 3, 3, 3], {
      strides: [2, 2],
      pads: [1, 0, 2, 1],
      ...ACT.gelu,
    }),
    conv(
      "3x5 kernel stride [1, 2] dilation [2, 1] pads [0, 2, 1, 0]",
      [1, 3, 10, 12],
      [4, 3, 3, 5],
      {
        strides: [1, 2],
        dilations: [2, 1],
        pads: [0, 2, 1, 0],
      },
    ),
    conv("3x3 pad 1", [2, 4, 6, 6], [4, 4, 3, 3], { pads: [1, 1, 1, 1], ...ACT.relu }, {
      residual: true,
    }),
    conv("3x3", [2, 4, 6, 6], [3, 4, 3, 3], {}, { bias: false, residual: true }),
    conv("1x1 groups=2", [2, 8, 5, 5], [8, 4, 1, 1], { groups: 2, ...ACT.gelu }, {
      residual: true,
    }),
    conv("3x3 pad 1", [1, 5, 6, 7], [6, 5, 3, 3], { pads: [1, 1, 1, 1], ...ACT.clamp }),
    conv("stride 3 kernel 2 (windows skip pixels)", [1, 2, 10, 11], [3, 2, 2, 2], {
      strides: [3, 3],
    }),
  ];
}

/**
 * A one-node graph. Operands are graph inputs where they can be: a Session gives every graph
 * input the batch of the first, so an operand whose first dimension differs from the first
 * input's (a conv weight, a broadcast operand) becomes an initializer instead (`constants`).
 * Either way its data is drawn here from the case's seed.
 */
export function buildCase(
  c: OpCase,
  rng: Random,
): { graph: Graph; feeds: Feeds; constants: string[] } {
  const b = new GraphBuilder(`${c.op}: ${c.name}`);
  const feeds: Feeds = {};
  const constants: string[] = [];
  let batch: number | undefined;
  const names = c.operands.map((o, i) => {
    if (!o) return "";
    const data = o.dtype === "int32"
      ? new Int32Array(numel(o.shape))
      : new Float32Array(numel(o.shape));
    for (let j = 0; j < data.length; j++) data[j] = o.draw(rng, j);
    const name = `in${i}`;
    if (!o.constant && (batch === undefined || o.shape[0] === batch)) {
      batch ??= o.shape[0];
      feeds[name] = data;
      return b.input(name, o.shape, o.dtype);
    }
    constants.push(name);
    return b.constant(name, { dtype: o.dtype, shape: [...o.shape], data });
  });
  if (batch === undefined) throw new Error(`case ${c.op} "${c.name}" has no graph input`);
  b.output(b.node(c.op, names, c.attrs, "node"));
  return { graph: b.build(), feeds, constants };
}
