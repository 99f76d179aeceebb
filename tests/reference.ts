/**
 * A float64 reference interpreter for every operator of the op table (lib/ir/ops.ts).
 *
 * It is written to be read as a specification, not to be fast: one small function per op, plain
 * loops over multi-indices, and double precision everywhere. Tests run a graph on a backend and
 * compare against `evaluateGraph` with `relativeError`.
 *
 * Semantics followed (see ops.ts and csrc/include/braid.h):
 * - Conv2d: NCHW, weights [k, c/groups, kh, kw], pads [top, left, bottom, right], dilation,
 *   groups; y = act(conv(x, w) + bias[k] + residual).
 * - Pooling: PyTorch. Output sizes from `windowOutput` (ceil mode included). Average pooling
 *   divides by the window clipped to the padded input [-pad, size + pad) when countIncludePad,
 *   else by the window clipped to the input. Padding never wins a max.
 * - Binary ops: numpy broadcasting, then the fused activation.
 * - Gemm: y = act(alpha * A · op(B) + beta * bias), A [..., K], B [K, N] or [N, K] (transB).
 * - MatMul: y = alpha * A · op(B) with numpy broadcasting of the batch dimensions.
 * - Slice: ONNX clamping (`sliceRange`), negative starts, ends and steps.
 * - Gather: indices (int32) may be negative and count from the end.
 * - Gelu: exact, x/2 · (1 + erf(x/√2)).
 */
import { type Graph, type Node, numel, stridesOf } from "../lib/ir/graph.ts";
import {
  type Activation,
  type AttrsByOp,
  type FusedActivation,
  type OpName,
  sliceRange,
  windowOutput,
} from "../lib/ir/ops.ts";
import { topologicalOrder } from "../lib/ir/validate.ts";

export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

// ------------------------------------------------------------------------------ helpers

export function tensor(shape: number[], data?: ArrayLike<number>): RefTensor {
  const out = new Float64Array(numel(shape));
  if (data) {
    if (data.length !== out.length) {
      throw new Error(`tensor of shape [${shape}] needs ${out.length} values, got ${data.length}`);
    }
    out.set(Array.from(data));
  }
  return { shape: [...shape], data: out };
}

/** Calls fn with every multi-index of `shape`, in row-major order, and the flat index. */
function forEachIndex(shape: number[], fn: (index: number[], flat: number) => void): void {
  const total = numel(shape);
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < total; flat++) {
    fn(index, flat);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

/** Flat offset of a multi-index in a row-major tensor of `shape`. */
function offsetOf(index: number[], shape: number[]): number {
  let offset = 0;
  for (let d = 0; d < shape.length; d++) offset = offset * shape[d] + index[d];
  return offset;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

function map(x: RefTensor, fn: (v: number) => number): RefTensor {
  return { shape: [...x.shape], data: x.data.map(fn) };
}

function copy(x: RefTensor, shape = x.shape): RefTensor {
  return { shape: [...shape], data: Float64Array.from(x.data) };
}

function need(x: RefTensor | undefined, what: string): RefTensor {
  if (!x) throw new Error(`missing input ${what}`);
  return x;
}

// ------------------------------------------------------------------------------ erf, activations

const SQRT_PI = Math.sqrt(Math.PI);

/**
 * erf(x) for |x| < 3 by the series erf(x) = 2/√π · e^(-x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)),
 * whose terms are all positive (no cancellation): relative error ~1e-16.
 */
function erfSeries(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 500; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / SQRT_PI) * Math.exp(-x * x) * sum;
}

/**
 * erfc(x) for x >= 2.5 by the continued fraction
 * erfc(x) = e^(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated with
 * the modified Lentz method.
 */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 1000; n++) {
    const a = n / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = x + a / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / SQRT_PI / f;
}

/** The complementary error function, accurate to ~1e-15 relative over the whole real line. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2.5) return 1 - erfSeries(x);
  if (x > 27) return 0;
  return erfcContinuedFraction(x);
}

/** The error function, accurate to ~1e-15. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return -erf(-x);
  if (x < 2.5) return erfSeries(x);
  return 1 - erfc(x);
}

/** PyTorch's exact GELU, x/2 · (1 + erf(x/√2)) = x/2 · erfc(-x/√2). */
export function gelu(x: number): number {
  return 0.5 * x * erfc(-x / Math.SQRT2);
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** One activation applied to one value (clamp uses min/max). */
export function activate(kind: Activation, v: number, min = -Infinity, max = Infinity): number {
  switch (kind) {
    case "none":
      return v;
    case "relu":
      return Math.max(v, 0);
    case "clamp":
      return Math.min(Math.max(v, min), max);
    case "sigmoid":
      return sigmoid(v);
    case "tanh":
      return Math.tanh(v);
    case "gelu":
      return gelu(v);
  }
}

// ------------------------------------------------------------------------------ convolution

export function conv2d(
  x: RefTensor,
  w: RefTensor,
  bias: RefTensor | undefined,
  residual: RefTensor | undefined,
  a: AttrsByOp["Conv2d"],
): RefTensor {
  const [n, c, h, wd] = x.shape;
  const [k, cg, kh, kw] = w.shape;
  const [sh, sw] = a.strides;
  const [pt, pl, pb, pr] = a.pads;
  const [dh, dw] = a.dilations;
  const kPerGroup = k / a.groups;
  if (cg * a.groups !== c || !Number.isInteger(kPerGroup)) throw new Error("bad conv groups");
  const oh = windowOutput(h, kh, sh, pt, pb, dh);
  const ow = windowOutput(wd, kw, sw, pl, pr, dw);
  const y = tensor([n, k, oh, ow]);
  forEachIndex(y.shape, ([b, o, i, j], flat) => {
    const g = Math.floor(o / kPerGroup);
    let sum = bias ? bias.data[o] : 0;
    for (let ci = 0; ci < cg; ci++) {
      const channel = g * cg + ci;
      for (let u = 0; u < kh; u++) {
        const row = i * sh - pt + u * dh;
        if (row < 0 || row >= h) continue;
        for (let v = 0; v < kw; v++) {
          const col = j * sw - pl + v * dw;
          if (col < 0 || col >= wd) continue;
          sum += x.data[offsetOf([b, channel, row, col], x.shape)] *
            w.data[offsetOf([o, ci, u, v], w.shape)];
        }
      }
    }
    if (residual) sum += residual.data[flat];
    y.data[flat] = activate(a.activation, sum, a.actMin, a.actMax);
  });
  return y;
}

// ------------------------------------------------------------------------------ normalisation

/** Inference batch norm over the channel axis 1: (x - mean) / √(var + ε) · scale + bias. */
export function batchNorm(
  x: RefTensor,
  scale: RefTensor,
  bias: RefTensor,
  mean: RefTensor,
  variance: RefTensor,
  a: AttrsByOp["BatchNorm"],
): RefTensor {
  const y = tensor(x.shape);
  forEachIndex(x.shape, (index, flat) => {
    const ch = index[1];
    y.data[flat] = (x.data[flat] - mean.data[ch]) / Math.sqrt(variance.data[ch] + a.epsilon) *
        scale.data[ch] + bias.data[ch];
  });
  return y;
}

/** Normalises over the axes from `axis` on (biased variance), then scale and bias. */
export function layerNorm(
  x: RefTensor,
  scale: RefTensor,
  bias: RefTensor,
  a: AttrsByOp["LayerNorm"],
): RefTensor {
  const axis = normAxis(a.axis, x.shape.length);
  const cols = numel(x.shape.slice(axis));
  const rows = numel(x.shape) / cols;
  const y = tensor(x.shape);
  for (let r = 0; r < rows; r++) {
    const row = x.data.subarray(r * cols, (r + 1) * cols);
    const mean = row.reduce((s, v) => s + v, 0) / cols;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / cols;
    const inv = 1 / Math.sqrt(variance + a.epsilon);
    for (let i = 0; i < cols; i++) {
      y.data[r * cols + i] = (row[i] - mean) * inv * scale.data[i] + bias.data[i];
    }
  }
  return y;
}

/** exp(x - max) / Σ exp(x - max) along one axis. */
export function softmax(x: RefTensor, a: AttrsByOp["Softmax"]): RefTensor {
  const axis = normAxis(a.axis, x.shape.length);
  const size = x.shape[axis];
  const stride = stridesOf(x.shape)[axis];
  const y = tensor(x.shape);
  forEachIndex(x.shape, (index, flat) => {
    if (index[axis] !== 0) return; // one pass per line along the axis, from its first element
    let max = -Infinity;
    for (let i = 0; i < size; i++) max = Math.max(max, x.data[flat + i * stride]);
    let sum = 0;
    for (let i = 0; i < size; i++) sum += Math.exp(x.data[flat + i * stride] - max);
    for (let i = 0; i < size; i++) {
      y.data[flat + i * stride] = Math.exp(x.data[flat + i * stride] - max) / sum;
    }
  });
  return y;
}

// ------------------------------------------------------------------------------ elementwise

/** Numpy broadcasting: the output shape of two operand shapes. */
export function broadcastShape(a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length);
  return Array.from({ length: rank }, (_, i) => {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`[${a}] and [${b}] do not broadcast`);
    return da === 1 ? db : da;
  });
}

/** The element of `x` that output index `index` (of a broadcast shape) reads. */
function broadcastRead(x: RefTensor, index: number[]): number {
  const skip = index.length - x.shape.length;
  let offset = 0;
  for (let d = 0; d < x.shape.length; d++) {
    offset = offset * x.shape[d] + (x.shape[d] === 1 ? 0 : index[skip + d]);
  }
  return x.data[offset];
}

const BINARY: Record<"Add" | "Sub" | "Mul" | "Div", (p: number, q: number) => number> = {
  Add: (p, q) => p + q,
  Sub: (p, q) => p - q,
  Mul: (p, q) => p * q,
  Div: (p, q) => p / q,
};

export function binary(
  op: keyof typeof BINARY,
  a: RefTensor,
  b: RefTensor,
  act: FusedActivation,
): RefTensor {
  const y = tensor(broadcastShape(a.shape, b.shape));
  forEachIndex(y.shape, (index, flat) => {
    const v = BINARY[op](broadcastRead(a, index), broadcastRead(b, index));
    y.data[flat] = activate(act.activation, v, act.actMin, act.actMax);
  });
  return y;
}

// ------------------------------------------------------------------------------ pooling

type PoolAttrs = AttrsByOp["MaxPool2d"] & { countIncludePad?: boolean };

/** The rows (or columns) a pooling window covers along one axis, PyTorch-style. */
function poolWindow(
  i: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  kernel: number,
  size: number,
) {
  const start = i * stride - padBegin;
  const end = Math.min(start + kernel, size + padEnd); // clipped to the padded input
  return {
    padded: end - start, // the window's extent inside the padded input
    begin: Math.max(start, 0), // the window clipped to the input itself
    end: Math.min(end, size),
  };
}

function pool2d(x: RefTensor, a: PoolAttrs, kind: "max" | "avg"): RefTensor {
  const [n, c, h, w] = x.shape;
  const [kh, kw] = a.kernel;
  const [sh, sw] = a.strides;
  const [pt, pl, pb, pr] = a.pads;
  const oh = windowOutput(h, kh, sh, pt, pb, 1, a.ceilMode);
  const ow = windowOutput(w, kw, sw, pl, pr, 1, a.ceilMode);
  const y = tensor([n, c, oh, ow]);
  forEachIndex(y.shape, ([b, ch, i, j], flat) => {
    const rows = poolWindow(i, sh, pt, pb, kh, h);
    const cols = poolWindow(j, sw, pl, pr, kw, w);
    let max = -Infinity;
    let sum = 0;
    for (let r = rows.begin; r < rows.end; r++) {
      for (let q = cols.begin; q < cols.end; q++) {
        const v = x.data[offsetOf([b, ch, r, q], x.shape)];
        max = Math.max(max, v);
        sum += v;
      }
    }
    if (kind === "max") {
      y.data[flat] = max;
    } else {
      const divisor = a.countIncludePad
        ? rows.padded * cols.padded
        : (rows.end - rows.begin) * (cols.end - cols.begin);
      y.data[flat] = sum / divisor;
    }
  });
  return y;
}

export function maxPool2d(x: RefTensor, a: AttrsByOp["MaxPool2d"]): RefTensor {
  return pool2d(x, a, "max");
}

export function avgPool2d(x: RefTensor, a: AttrsByOp["AvgPool2d"]): RefTensor {
  return pool2d(x, a, "avg");
}

/** Mean over every axis after the channel axis; those axes become 1. */
export function globalAvgPool(x: RefTensor): RefTensor {
  const [n, c] = x.shape;
  const spatial = numel(x.shape.slice(2));
  const y = tensor([n, c, ...x.shape.slice(2).map(() => 1)]);
  for (let i = 0; i < n * c; i++) {
    let sum = 0;
    for (let s = 0; s < spatial; s++) sum += x.data[i * spatial + s];
    y.data[i] = sum / spatial;
  }
  return y;
}

// ------------------------------------------------------------------------------ data movement

export function concat(xs: RefTensor[], a: AttrsByOp["Concat"]): RefTensor {
  const axis = normAxis(a.axis, xs[0].shape.length);
  const shape = [...xs[0].shape];
  shape[axis] = xs.reduce((s, x) => s + x.shape[axis], 0);
  const y = tensor(shape);
  let base = 0; // where along the axis the current input starts
  for (const x of xs) {
    forEachIndex(x.shape, (index, flat) => {
      const at = [...index];
      at[axis] += base;
      y.data[offsetOf(at, shape)] = x.data[flat];
    });
    base += x.shape[axis];
  }
  return y;
}

export function flatten(x: RefTensor, a: AttrsByOp["Flatten"]): RefTensor {
  const axis = a.axis < 0 ? a.axis + x.shape.length : a.axis;
  return copy(x, [numel(x.shape.slice(0, axis)), numel(x.shape.slice(axis))]);
}

/** ONNX Reshape: 0 copies the input's dimension, -1 is inferred. */
export function reshape(x: RefTensor, a: AttrsByOp["Reshape"]): RefTensor {
  const shape = a.shape.map((d, i) => (d === 0 ? x.shape[i] : d));
  const known = numel(shape.filter((d) => d !== -1));
  const inferred = shape.map((d) => (d === -1 ? numel(x.shape) / known : d));
  if (numel(inferred) !== numel(x.shape)) throw new Error(`cannot reshape to [${a.shape}]`);
  return copy(x, inferred);
}

/** y[i0, …, ir] = x[j] where j[perm[d]] = i[d]. */
export function transpose(x: RefTensor, a: AttrsByOp["Transpose"]): RefTensor {
  const y = tensor(a.perm.map((p) => x.shape[p]));
  forEachIndex(y.shape, (index, flat) => {
    const source = new Array<number>(x.shape.length);
    a.perm.forEach((p, d) => (source[p] = index[d]));
    y.data[flat] = x.data[offsetOf(source, x.shape)];
  });
  return y;
}

export function slice(x: RefTensor, a: AttrsByOp["Slice"]): RefTensor {
  const fail = (m: string): never => {
    throw new Error(m);
  };
  // Per axis: first index and step (axes not named keep everything).
  const first = x.shape.map(() => 0);
  const step = x.shape.map(() => 1);
  const shape = [...x.shape];
  a.axes.forEach((axis, i) => {
    const d = normAxis(axis, x.shape.length);
    const r = sliceRange(x.shape[d], a.starts[i], a.ends[i], a.steps[i], fail);
    [first[d], step[d], shape[d]] = [r.start, r.step, r.count];
  });
  const y = tensor(shape);
  forEachIndex(shape, (index, flat) => {
    const source = index.map((v, d) => first[d] + v * step[d]);
    y.data[flat] = x.data[offsetOf(source, x.shape)];
  });
  return y;
}

/** Gathers slices of `data` along `axis`; negative indices count from the end. */
export function gather(data: RefTensor, indices: RefTensor, a: AttrsByOp["Gather"]): RefTensor {
  const axis = normAxis(a.axis, data.shape.length);
  const dim = data.shape[axis];
  const shape = [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)];
  const y = tensor(shape);
  const rank = indices.shape.length;
  forEachIndex(shape, (index, flat) => {
    const position = offsetOf(index.slice(axis, axis + rank), indices.shape);
    let k = indices.data[position];
    if (k < 0) k += dim;
    if (!(k >= 0 && k < dim)) throw new Error(`index ${indices.data[position]} out of range`);
    const source = [...index.slice(0, axis), k, ...index.slice(axis + rank)];
    y.data[flat] = data.data[offsetOf(source, data.shape)];
  });
  return y;
}

// ------------------------------------------------------------------------------ matrix products

/** act(alpha · A · op(B) + beta · bias); A [..., K], B [K, N] or [N, K] when transB. */
export function gemm(
  a: RefTensor,
  b: RefTensor,
  bias: RefTensor | undefined,
  attrs: AttrsByOp["Gemm"],
): RefTensor {
  const k = a.shape[a.shape.length - 1];
  const n = attrs.transB ? b.shape[0] : b.shape[1];
  const m = numel(a.shape) / k;
  const y = tensor([...a.shape.slice(0, -1), n]);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let p = 0; p < k; p++) {
        const bv = attrs.transB ? b.data[j * k + p] : b.data[p * n + j];
        dot += a.data[i * k + p] * bv;
      }
      const v = attrs.alpha * dot + (bias ? attrs.beta * bias.data[j] : 0);
      y.data[i * n + j] = activate(attrs.activation, v, attrs.actMin, attrs.actMax);
    }
  }
  return y;
}

/** alpha · A · op(B) per batch index, the batch dimensions broadcast as in numpy. */
export function matmul(a: RefTensor, b: RefTensor, attrs: AttrsByOp["MatMul"]): RefTensor {
  const [m, k] = a.shape.slice(-2);
  const [bRows, bCols] = b.shape.slice(-2);
  const n = attrs.transB ? bRows : bCols;
  if ((attrs.transB ? bCols : bRows) !== k) throw new Error("MatMul K mismatch");
  const batch = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const y = tensor([...batch, m, n]);
  // The batch offset (in matrices) of operand `shape` at broadcast batch index t.
  const batchOffset = (shape: number[], t: number[]) => {
    const skip = t.length - shape.length;
    return offsetOf(shape.map((d, i) => (d === 1 ? 0 : t[skip + i])), shape);
  };
  let flat = 0;
  forEachIndex(batch, (t) => {
    const aBase = batchOffset(a.shape.slice(0, -2), t) * m * k;
    const bBase = batchOffset(b.shape.slice(0, -2), t) * bRows * bCols;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let p = 0; p < k; p++) {
          const bv = attrs.transB ? b.data[bBase + j * k + p] : b.data[bBase + p * n + j];
          dot += a.data[aBase + i * k + p] * bv;
        }
        y.data[flat++] = attrs.alpha * dot;
      }
    }
  });
  return y;
}

// ------------------------------------------------------------------------------ dispatch

/** One evaluator per op of the table, given the node's attributes and its inputs. */
type Evaluators = {
  [K in OpName]: (a: AttrsByOp[K], x: (RefTensor | undefined)[]) => RefTensor;
};

export const EVALUATORS: Evaluators = {
  Conv2d: (a, [x, w, b, r]) => conv2d(need(x, "x"), need(w, "weight"), b, r, a),
  BatchNorm: (a, [x, s, b, m, v]) =>
    batchNorm(need(x, "x"), need(s, "scale"), need(b, "bias"), need(m, "mean"), need(v, "var"), a),
  Relu: (_a, [x]) => map(need(x, "x"), (v) => Math.max(v, 0)),
  Clamp: (a, [x]) => map(need(x, "x"), (v) => Math.min(Math.max(v, a.min), a.max)),
  Sigmoid: (_a, [x]) => map(need(x, "x"), sigmoid),
  Tanh: (_a, [x]) => map(need(x, "x"), Math.tanh),
  Gelu: (_a, [x]) => map(need(x, "x"), gelu),
  Add: (a, [p, q]) => binary("Add", need(p, "a"), need(q, "b"), a),
  Sub: (a, [p, q]) => binary("Sub", need(p, "a"), need(q, "b"), a),
  Mul: (a, [p, q]) => binary("Mul", need(p, "a"), need(q, "b"), a),
  Div: (a, [p, q]) => binary("Div", need(p, "a"), need(q, "b"), a),
  MaxPool2d: (a, [x]) => maxPool2d(need(x, "x"), a),
  AvgPool2d: (a, [x]) => avgPool2d(need(x, "x"), a),
  GlobalAvgPool: (_a, [x]) => globalAvgPool(need(x, "x")),
  Concat: (a, xs) => concat(xs.map((x, i) => need(x, `x${i}`)), a),
  Flatten: (a, [x]) => flatten(need(x, "x"), a),
  Reshape: (a, [x]) => reshape(need(x, "x"), a),
  Transpose: (a, [x]) => transpose(need(x, "x"), a),
  Slice: (a, [x]) => slice(need(x, "x"), a),
  Gemm: (a, [p, q, bias]) => gemm(need(p, "a"), need(q, "b"), bias, a),
  MatMul: (a, [p, q]) => matmul(need(p, "a"), need(q, "b"), a),
  Softmax: (a, [x]) => softmax(need(x, "x"), a),
  LayerNorm: (a, [x, s, b]) => layerNorm(need(x, "x"), need(s, "scale"), need(b, "bias"), a),
  Gather: (a, [d, i]) => gather(need(d, "data"), need(i, "indices"), a),
  Identity: (_a, [x]) => copy(need(x, "x")),
  Dropout: (_a, [x]) => copy(need(x, "x")), // inference: the identity
};

/** Evaluates one node on float64 inputs (undefined where an optional input is absent). */
export function evaluateNode(node: Node, inputs: (RefTensor | undefined)[]): RefTensor {
  if (!Object.hasOwn(EVALUATORS, node.op)) {
    throw new Error(`the reference has no evaluator for op "${node.op}"`);
  }
  const evaluate = EVALUATORS[node.op] as (a: unknown, x: (RefTensor | undefined)[]) => RefTensor;
  return evaluate(node.attrs, inputs);
}

/**
 * Evaluates a graph in float64, in topological order. Graph inputs take the shapes declared in
 * the graph, except that the first (batch) dimension follows the data's length.
 * Returns each graph output's data.
 */
export function evaluateGraph(
  graph: Graph,
  inputs: Record<string, Float32Array | Int32Array>,
): Record<string, Float64Array> {
  const values = new Map<string, RefTensor>();
  for (const name of graph.inputs) {
    const data = inputs[name];
    if (!data) throw new Error(`graph input "${name}" is missing`);
    const shape = [...graph.value(name).shape];
    if (shape.length > 0) shape[0] = data.length / numel(shape.slice(1));
    values.set(name, tensor(shape, data));
  }
  for (const [name, t] of graph.initializers) values.set(name, tensor(t.shape, t.data));
  for (const i of topologicalOrder(graph)) {
    const node = graph.nodes[i];
    const x = node.inputs.map((name) => {
      if (name === "") return undefined;
      const v = values.get(name);
      if (!v) throw new Error(`node "${node.name}" reads "${name}", which has no value`);
      return v;
    });
    values.set(node.outputs[0], evaluateNode(node, x));
  }
  return Object.fromEntries(graph.outputs.map((name) => [name, values.get(name)!.data]));
}

export { relativeError } from "../lib/util/relative_error.ts";
