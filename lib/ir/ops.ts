/**
 * The op table: for every operator, its attributes and their defaults, its inputs, its shape rule,
 * its cost (FLOPs and bytes moved) and whether its output is a view of its first input.
 * Nothing else in braid keeps per-op knowledge of shapes or costs.
 */
import { BraidError } from "../errors.ts";
import { type DType, DTYPE_SIZE, numel, shapeString, type Value } from "./graph.ts";

export type Activation = "none" | "relu" | "clamp" | "sigmoid" | "tanh" | "gelu";
export const ACTIVATIONS: readonly Activation[] = [
  "none",
  "relu",
  "clamp",
  "sigmoid",
  "tanh",
  "gelu",
];

/** An activation fused at the end of an operator (clamp uses actMin/actMax). */
export interface FusedActivation {
  activation: Activation;
  actMin: number;
  actMax: number;
}
const NO_ACTIVATION: FusedActivation = { activation: "none", actMin: 0, actMax: 0 };

export type Pair = [number, number];
/** Padding as [top, left, bottom, right]. */
export type Pads = [number, number, number, number];

export interface AttrsByOp {
  Conv2d: { strides: Pair; pads: Pads; dilations: Pair; groups: number } & FusedActivation;
  BatchNorm: { epsilon: number };
  Relu: Record<never, never>;
  Clamp: { min: number; max: number };
  Sigmoid: Record<never, never>;
  Tanh: Record<never, never>;
  Gelu: Record<never, never>;
  Add: FusedActivation;
  Sub: FusedActivation;
  Mul: FusedActivation;
  Div: FusedActivation;
  MaxPool2d: { kernel: Pair; strides: Pair; pads: Pads; ceilMode: boolean };
  AvgPool2d: {
    kernel: Pair;
    strides: Pair;
    pads: Pads;
    ceilMode: boolean;
    countIncludePad: boolean;
  };
  GlobalAvgPool: Record<never, never>;
  Concat: { axis: number };
  Flatten: { axis: number };
  /** ONNX semantics: 0 copies the input's dimension, -1 is inferred. */
  Reshape: { shape: number[] };
  Transpose: { perm: number[] };
  /** ONNX semantics: ends clamp to the dimension; negative values count from the end. */
  Slice: { axes: number[]; starts: number[]; ends: number[]; steps: number[] };
  /** y = act(alpha * A · op(B) + beta * bias); A is [..., K], B is [K, N] or [N, K] (transB). */
  Gemm: { transB: boolean; alpha: number; beta: number } & FusedActivation;
  /** Batched y = alpha * A · op(B) with numpy broadcasting of the batch dimensions. */
  MatMul: { transB: boolean; alpha: number };
  Softmax: { axis: number };
  LayerNorm: { axis: number; epsilon: number };
  Gather: { axis: number };
  Identity: Record<never, never>;
  Dropout: { ratio: number };
}

export type OpName = keyof AttrsByOp;
export type Attrs = AttrsByOp[OpName];

/** What a shape rule sees: the node's input values (undefined where an optional one is absent). */
export interface ShapeContext {
  node: string;
  inputNames: string[];
}

export interface OutputSpec {
  dtype: DType;
  shape: number[];
}

export interface OpSpec<A> {
  /** Names of the inputs, for messages; inputs past `minInputs` are optional. */
  inputs: string[];
  minInputs: number;
  /** Inputs that are model buffers, not learnable parameters (BatchNorm's running stats). */
  bufferInputs?: number[];
  defaults: A;
  /** Checks attributes (after defaults are applied); returns a message or undefined. */
  checkAttrs?(attrs: A): string | undefined;
  /** The shape rule: outputs from inputs. Throws through `fail`. */
  infer(inputs: (Value | undefined)[], attrs: A, fail: Fail): OutputSpec[];
  /** Floating-point operations (a multiply-add counts as 2). */
  flops(inputs: (Value | undefined)[], outputs: OutputSpec[], attrs: A): number;
  /** True when the output is the first input's bytes reinterpreted (no kernel runs). */
  view?: boolean;
}

/** Throws a SHAPE_MISMATCH (or BAD_ATTRIBUTE) naming the node and the value. */
export type Fail = (message: string, code?: "SHAPE_MISMATCH" | "BAD_ATTRIBUTE") => never;

// ------------------------------------------------------------------------------ shape helpers

function rankIs(v: Value, rank: number, fail: Fail, what: string) {
  if (v.shape.length !== rank) {
    fail(`${what} "${v.name}" must have rank ${rank}, has shape ${shapeString(v.shape)}`);
  }
}

function normAxis(axis: number, rank: number, fail: Fail): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(`axis ${axis} is out of range for rank ${rank}`, "BAD_ATTRIBUTE");
  return a;
}

/** Numpy broadcasting of two shapes. */
export function broadcastShapes(a: number[], b: number[], fail: Fail): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      fail(`shapes ${shapeString(a)} and ${shapeString(b)} do not broadcast`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Output size of a convolution or pooling window along one axis. */
export function windowOutput(
  size: number,
  kernel: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  dilation = 1,
  ceilMode = false,
): number {
  const span = dilation * (kernel - 1) + 1;
  const room = size + padBegin + padEnd - span;
  if (!ceilMode) return Math.floor(room / stride) + 1;
  let out = Math.ceil(room / stride) + 1;
  // PyTorch: the last window must start inside the input or the left padding.
  if ((out - 1) * stride >= size + padBegin) out--;
  return out;
}

const f32 = (shape: number[]): OutputSpec => ({ dtype: "float32", shape });

const elementwise = (out: OutputSpec[], perElement = 1) => perElement * numel(out[0].shape);

const unary = <A>(defaults: A, flopsPerElement = 1): OpSpec<A> => ({
  inputs: ["x"],
  minInputs: 1,
  defaults,
  infer: ([x]) => [{ dtype: x!.dtype, shape: [...x!.shape] }],
  flops: (_i, out) => elementwise(out, flopsPerElement),
});

const binary: OpSpec<FusedActivation> = {
  inputs: ["a", "b"],
  minInputs: 2,
  defaults: NO_ACTIVATION,
  checkAttrs: checkActivation,
  infer: ([a, b], _attrs, fail) => {
    if (a!.dtype !== b!.dtype) fail(`"${a!.name}" is ${a!.dtype} but "${b!.name}" is ${b!.dtype}`);
    return [{ dtype: a!.dtype, shape: broadcastShapes(a!.shape, b!.shape, fail) }];
  },
  flops: (_i, out) => elementwise(out),
};

function checkActivation(a: FusedActivation): string | undefined {
  if (!ACTIVATIONS.includes(a.activation)) return `unknown activation "${a.activation}"`;
  if (a.activation === "clamp" && !(a.actMin <= a.actMax)) return "clamp needs actMin <= actMax";
}

function checkWindow(
  a: { kernel?: Pair; strides: Pair; pads: Pads; dilations?: Pair },
): string | undefined {
  if (a.kernel && a.kernel.some((k) => !(k >= 1))) return "kernel sizes must be >= 1";
  if (a.strides.length !== 2 || a.strides.some((s) => !(s >= 1))) return "strides must be >= 1";
  if (a.pads.length !== 4 || a.pads.some((p) => !(p >= 0))) return "pads must be 4 values >= 0";
  if (a.dilations && (a.dilations.length !== 2 || a.dilations.some((d) => !(d >= 1)))) {
    return "dilations must be >= 1";
  }
}

function pool<A extends { kernel: Pair; strides: Pair; pads: Pads; ceilMode: boolean }>(
  defaults: A,
): OpSpec<A> {
  return {
    inputs: ["x"],
    minInputs: 1,
    defaults,
    checkAttrs: (a) =>
      checkWindow(a) ??
        (a.pads[0] * 2 > a.kernel[0] || a.pads[1] * 2 > a.kernel[1]
          ? "padding must be at most half the kernel"
          : undefined),
    infer: ([x], a, fail) => {
      rankIs(x!, 4, fail, "input");
      const [n, c, h, w] = x!.shape;
      const oh = windowOutput(h, a.kernel[0], a.strides[0], a.pads[0], a.pads[2], 1, a.ceilMode);
      const ow = windowOutput(w, a.kernel[1], a.strides[1], a.pads[1], a.pads[3], 1, a.ceilMode);
      if (oh < 1 || ow < 1) fail(`pooling window does not fit input ${shapeString(x!.shape)}`);
      return [f32([n, c, oh, ow])];
    },
    flops: (_i, out, a) => numel(out[0].shape) * a.kernel[0] * a.kernel[1],
  };
}

// ------------------------------------------------------------------------------ the table

export const OPS: { [K in OpName]: OpSpec<AttrsByOp[K]> } = {
  Conv2d: {
    inputs: ["x", "weight", "bias", "residual"],
    minInputs: 2,
    defaults: {
      strides: [1, 1],
      pads: [0, 0, 0, 0],
      dilations: [1, 1],
      groups: 1,
      ...NO_ACTIVATION,
    },
    checkAttrs: (a) =>
      checkWindow(a) ?? checkActivation(a) ??
        (Number.isInteger(a.groups) && a.groups >= 1 ? undefined : "groups must be >= 1"),
    infer: ([x, w, b, r], a, fail) => {
      rankIs(x!, 4, fail, "input");
      rankIs(w!, 4, fail, "weight");
      const [n, c, h, wd] = x!.shape;
      const [k, cg, kh, kw] = w!.shape;
      if (c % a.groups !== 0 || k % a.groups !== 0) {
        fail(`groups ${a.groups} must divide input channels ${c} and output channels ${k}`);
      }
      if (cg * a.groups !== c) {
        fail(
          `weight "${w!.name}" ${shapeString(w!.shape)} expects ${cg * a.groups} input ` +
            `channels, input "${x!.name}" has ${c}`,
        );
      }
      if (b && (b.shape.length !== 1 || b.shape[0] !== k)) {
        fail(`bias "${b.name}" must have shape [${k}], has ${shapeString(b.shape)}`);
      }
      const oh = windowOutput(h, kh, a.strides[0], a.pads[0], a.pads[2], a.dilations[0]);
      const ow = windowOutput(wd, kw, a.strides[1], a.pads[1], a.pads[3], a.dilations[1]);
      if (oh < 1 || ow < 1) fail(`kernel does not fit input ${shapeString(x!.shape)}`);
      const shape = [n, k, oh, ow];
      if (r && shapeString(r.shape) !== shapeString(shape)) {
        fail(`residual "${r.name}" must have shape ${shapeString(shape)}`);
      }
      return [f32(shape)];
    },
    flops: ([_x, w], out) => 2 * numel(out[0].shape) * numel(w!.shape.slice(1)),
  },
  BatchNorm: {
    inputs: ["x", "scale", "bias", "mean", "var"],
    minInputs: 5,
    bufferInputs: [3, 4],
    defaults: { epsilon: 1e-5 },
    checkAttrs: (a) => (a.epsilon >= 0 ? undefined : "epsilon must be >= 0"),
    infer: ([x, ...params], _a, fail) => {
      if (x!.shape.length < 2) fail(`input "${x!.name}" must have a channel axis`);
      const c = x!.shape[1];
      for (const p of params) {
        if (numel(p!.shape) !== c) fail(`"${p!.name}" must have ${c} elements (one per channel)`);
      }
      return [f32([...x!.shape])];
    },
    flops: (_i, out) => elementwise(out, 2),
  },
  Relu: unary({}),
  Clamp: {
    ...unary({ min: -Infinity, max: Infinity }),
    checkAttrs: (a) => (a.min <= a.max ? undefined : "min must be <= max"),
  },
  Sigmoid: unary({}, 4),
  Tanh: unary({}, 4),
  Gelu: unary({}, 8),
  Add: binary,
  Sub: binary,
  Mul: binary,
  Div: binary,
  MaxPool2d: pool({ kernel: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], ceilMode: false }),
  AvgPool2d: pool({
    kernel: [1, 1],
    strides: [1, 1],
    pads: [0, 0, 0, 0],
    ceilMode: false,
    countIncludePad: true,
  }),
  GlobalAvgPool: {
    inputs: ["x"],
    minInputs: 1,
    defaults: {},
    infer: ([x], _a, fail) => {
      if (x!.shape.length < 3) fail(`input "${x!.name}" must have spatial axes`);
      return [f32([x!.shape[0], x!.shape[1], ...x!.shape.slice(2).map(() => 1)])];
    },
    flops: ([x]) => numel(x!.shape),
  },
  Concat: {
    inputs: ["x0"],
    minInputs: 1,
    defaults: { axis: 1 },
    infer: (xs, a, fail) => {
      const first = xs[0]!;
      const axis = normAxis(a.axis, first.shape.length, fail);
      const shape = [...first.shape];
      shape[axis] = 0;
      for (const maybe of xs) {
        const x = maybe ?? fail("Concat inputs cannot be absent");
        const same = x.shape.length === first.shape.length &&
          x.shape.every((d, i) => i === axis || d === first.shape[i]);
        if (!same || x.dtype !== first.dtype) {
          fail(
            `"${x.name}" ${shapeString(x.shape)} does not match "${first.name}" ` +
              `${shapeString(first.shape)} outside axis ${axis}`,
          );
        }
        shape[axis] += x.shape[axis];
      }
      return [{ dtype: first.dtype, shape }];
    },
    flops: () => 0,
  },
  Flatten: {
    inputs: ["x"],
    minInputs: 1,
    defaults: { axis: 1 },
    view: true,
    infer: ([x], a, fail) => {
      const axis = a.axis === x!.shape.length ? a.axis : normAxis(a.axis, x!.shape.length, fail);
      return [{
        dtype: x!.dtype,
        shape: [numel(x!.shape.slice(0, axis)), numel(x!.shape.slice(axis))],
      }];
    },
    flops: () => 0,
  },
  Reshape: {
    inputs: ["x"],
    minInputs: 1,
    defaults: { shape: [] },
    view: true,
    infer: ([x], a, fail) => {
      const shape = a.shape.map((d, i) => (d === 0 ? x!.shape[i] : d));
      if (shape.some((d) => d === undefined || d < -1 || !Number.isInteger(d))) {
        fail(`shape ${shapeString(a.shape)} is invalid for input ${shapeString(x!.shape)}`);
      }
      const unknown = shape.filter((d) => d === -1).length;
      const known = numel(shape.filter((d) => d !== -1));
      const total = numel(x!.shape);
      if (unknown > 1) fail(`shape ${shapeString(a.shape)} has more than one -1`);
      if (unknown === 1) {
        if (known === 0 || total % known !== 0) {
          fail(`cannot reshape ${shapeString(x!.shape)} to ${shapeString(a.shape)}`);
        }
        shape[shape.indexOf(-1)] = total / known;
      } else if (known !== total) {
        fail(`cannot reshape ${shapeString(x!.shape)} to ${shapeString(a.shape)}`);
      }
      return [{ dtype: x!.dtype, shape }];
    },
    flops: () => 0,
  },
  Transpose: {
    inputs: ["x"],
    minInputs: 1,
    defaults: { perm: [] },
    infer: ([x], a, fail) => {
      const rank = x!.shape.length;
      const sorted = [...a.perm].sort((p, q) => p - q);
      if (a.perm.length !== rank || sorted.some((p, i) => p !== i)) {
        fail(`perm [${a.perm}] is not a permutation of rank ${rank}`, "BAD_ATTRIBUTE");
      }
      return [{ dtype: x!.dtype, shape: a.perm.map((p) => x!.shape[p]) }];
    },
    flops: () => 0,
  },
  Slice: {
    inputs: ["x"],
    minInputs: 1,
    defaults: { axes: [], starts: [], ends: [], steps: [] },
    infer: ([x], a, fail) => {
      const n = a.axes.length;
      if (a.starts.length !== n || a.ends.length !== n || a.steps.length !== n) {
        fail("axes, starts, ends and steps must have equal lengths", "BAD_ATTRIBUTE");
      }
      const shape = [...x!.shape];
      a.axes.forEach((axis, i) => {
        const d = normAxis(axis, shape.length, fail);
        const { count } = sliceRange(x!.shape[d], a.starts[i], a.ends[i], a.steps[i], fail);
        shape[d] = count;
      });
      return [{ dtype: x!.dtype, shape }];
    },
    flops: () => 0,
  },
  Gemm: {
    inputs: ["a", "b", "bias"],
    minInputs: 2,
    defaults: { transB: false, alpha: 1, beta: 1, ...NO_ACTIVATION },
    checkAttrs: checkActivation,
    infer: ([a, b, bias], attrs, fail) => {
      if (a!.shape.length < 1) fail(`"${a!.name}" must have rank >= 1`);
      rankIs(b!, 2, fail, "weight");
      const k = a!.shape[a!.shape.length - 1];
      const [bk, n] = attrs.transB ? [b!.shape[1], b!.shape[0]] : b!.shape;
      if (bk !== k) {
        fail(
          `"${a!.name}" ${shapeString(a!.shape)} and "${b!.name}" ${shapeString(b!.shape)}` +
            ` disagree on K (${k} vs ${bk})`,
        );
      }
      if (bias && numel(bias.shape) !== n) fail(`bias "${bias.name}" must have ${n} elements`);
      return [f32([...a!.shape.slice(0, -1), n])];
    },
    flops: ([a], out) => 2 * numel(out[0].shape) * a!.shape[a!.shape.length - 1],
  },
  MatMul: {
    inputs: ["a", "b"],
    minInputs: 2,
    defaults: { transB: false, alpha: 1 },
    infer: ([a, b], attrs, fail) => {
      if (a!.shape.length < 2 || b!.shape.length < 2) fail("MatMul inputs must have rank >= 2");
      const [m, k] = a!.shape.slice(-2);
      const [bk, n] = attrs.transB ? b!.shape.slice(-2).reverse() : b!.shape.slice(-2);
      if (k !== bk) {
        fail(
          `"${a!.name}" ${shapeString(a!.shape)} and "${b!.name}" ${shapeString(b!.shape)}` +
            ` disagree on K (${k} vs ${bk})`,
        );
      }
      const batch = broadcastShapes(a!.shape.slice(0, -2), b!.shape.slice(0, -2), fail);
      if (batch.length > 4) fail("MatMul supports at most 4 batch dimensions");
      return [f32([...batch, m, n])];
    },
    flops: ([a], out) => 2 * numel(out[0].shape) * a!.shape[a!.shape.length - 1],
  },
  Softmax: {
    inputs: ["x"],
    minInputs: 1,
    defaults: { axis: -1 },
    infer: ([x], a, fail) => {
      normAxis(a.axis, x!.shape.length, fail);
      return [f32([...x!.shape])];
    },
    flops: (_i, out) => elementwise(out, 5),
  },
  LayerNorm: {
    inputs: ["x", "scale", "bias"],
    minInputs: 3,
    defaults: { axis: -1, epsilon: 1e-5 },
    infer: ([x, scale, bias], a, fail) => {
      const axis = normAxis(a.axis, x!.shape.length, fail);
      const cols = numel(x!.shape.slice(axis));
      for (const p of [scale!, bias!]) {
        if (numel(p.shape) !== cols) fail(`"${p.name}" must have ${cols} elements`);
      }
      return [f32([...x!.shape])];
    },
    flops: (_i, out) => elementwise(out, 8),
  },
  Gather: {
    inputs: ["data", "indices"],
    minInputs: 2,
    defaults: { axis: 0 },
    infer: ([data, idx], a, fail) => {
      const axis = normAxis(a.axis, data!.shape.length, fail);
      if (idx!.dtype !== "int32" && idx!.dtype !== "int64") {
        fail(`indices "${idx!.name}" must be int32 or int64, not ${idx!.dtype}`);
      }
      const shape = [...data!.shape.slice(0, axis), ...idx!.shape, ...data!.shape.slice(axis + 1)];
      return [{ dtype: data!.dtype, shape }];
    },
    flops: () => 0,
  },
  Identity: { ...unary({}, 0), view: true },
  Dropout: { ...unary({ ratio: 0.5 }, 0), view: true },
};

/** Resolves one Slice axis (ONNX clamping rules): first index, step and element count. */
export function sliceRange(
  dim: number,
  start: number,
  end: number,
  step: number,
  fail: Fail,
): { start: number; step: number; count: number } {
  if (!Number.isInteger(step) || step === 0) fail("slice steps must be non-zero integers");
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = clamp(s, 0, dim);
    e = clamp(e, 0, dim);
  } else {
    s = clamp(s, -1, dim - 1);
    e = clamp(e, -1, dim - 1);
  }
  const count = Math.max(0, Math.ceil((e - s) / step));
  return { start: s, step, count };
}

export function isOpName(op: string): op is OpName {
  return Object.hasOwn(OPS, op);
}

export function opSpec(op: OpName): OpSpec<Attrs> {
  return OPS[op] as unknown as OpSpec<Attrs>;
}

/** Bytes an op moves at least: each input read once, each output written once. */
export function bytesMoved(inputs: (Value | undefined)[], outputs: OutputSpec[]): number {
  let bytes = 0;
  for (const v of [...inputs, ...outputs]) {
    if (v) bytes += numel(v.shape) * DTYPE_SIZE[v.dtype];
  }
  return bytes;
}

/** Fills in defaults for missing attributes. */
export function withDefaults<K extends OpName>(
  op: K,
  attrs: Partial<AttrsByOp[K]>,
): AttrsByOp[K] {
  return { ...OPS[op].defaults, ...attrs } as AttrsByOp[K];
}

/** A BraidError factory for a node's shape rule. */
export function failFor(node: string): Fail {
  return (message, code = "SHAPE_MISMATCH") => {
    throw new BraidError(code, `node "${node}": ${message}`);
  };
}
