/**
 * Constant folding: ONNX operators evaluated at import time on constant inputs.
 *
 * Exporters compute shapes, paddings, masks and position ids with small integer graphs
 * (Shape → Gather → Unsqueeze → Concat → Reshape, ConstantOfShape/Equal/Where/Expand, Range, ...).
 * With the input shapes fixed, all of it is constant: the importer evaluates any node whose inputs
 * are all constants with the folder of its op type here, and only what remains runs in braid.
 * Folders follow the ONNX operator specification (opset 13-21; older attribute forms of Slice,
 * Squeeze, Unsqueeze, Reduce* and Clip too). Values are computed in float64 and stored back in the
 * output's element type (float32 rounding for FLOAT, truncation for integer division).
 */
import { BraidError } from "../errors.ts";
import { numel, shapeString, stridesOf } from "../ir/graph.ts";
import { sliceRange } from "../ir/ops.ts";
import type { NodeAttributes } from "./attributes.ts";
import { DataType, type TensorProto } from "./proto.ts";
import { asIntegers, type ConstTensor } from "./tensor.ts";

export interface FoldContext {
  attrs: NodeAttributes;
  opset: number;
  /** Decodes a tensor attribute (Constant's value). */
  decode(t: TensorProto): ConstTensor;
}

type Inputs = (ConstTensor | undefined)[];
type Folder = (inputs: Inputs, ctx: FoldContext) => ConstTensor[];

const INTEGER_TYPES: ReadonlySet<number> = new Set([
  DataType.UINT8,
  DataType.INT8,
  DataType.UINT16,
  DataType.INT16,
  DataType.INT32,
  DataType.INT64,
  DataType.BOOL,
  DataType.UINT32,
  DataType.UINT64,
]);

/** A tensor of `type` holding `values` (float32 for FLOAT, else float64). */
export function makeTensor(type: number, shape: number[], values: ArrayLike<number>): ConstTensor {
  const data = type === DataType.FLOAT ? Float32Array.from(values) : Float64Array.from(values);
  return { type, shape: [...shape], data };
}

const int64 = (values: number[], shape = [values.length]) =>
  makeTensor(DataType.INT64, shape, values);

/** What messages and argument forms need of a context: the node and the opset. */
type Where = Pick<FoldContext, "attrs" | "opset">;

function fail(ctx: Where, message: string): never {
  throw new BraidError("BAD_NODE", `${ctx.attrs.what}: ${message}`);
}

function need(inputs: Inputs, i: number, ctx: Where, what: string): ConstTensor {
  return inputs[i] ?? fail(ctx, `input ${i} (${what}) is missing`);
}

const normAxis = (axis: number, rank: number, ctx: Where) => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= Math.max(rank, 1)) fail(ctx, `axis ${axis} is out of range for rank ${rank}`);
  return a;
};

// ------------------------------------------------------------------------------ broadcasting

/** Numpy broadcasting of several shapes. */
export function broadcastAll(shapes: number[][], ctx?: FoldContext): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      if (s[i] === out[o] || s[i] === 1) continue;
      if (out[o] !== 1) {
        const message = `shapes ${shapes.map(shapeString).join(", ")} do not broadcast`;
        if (ctx) fail(ctx, message);
        throw new BraidError("SHAPE_MISMATCH", message);
      }
      out[o] = s[i];
    }
  }
  return out;
}

/** For each element of `out`, the flat index into a tensor of `shape` broadcast to it. */
function broadcastIndex(shape: number[], out: number[]): Int32Array {
  const total = numel(out);
  const strides = stridesOf(shape);
  const map = new Int32Array(total);
  const index = new Array<number>(out.length).fill(0);
  const offset = out.length - shape.length;
  for (let flat = 0; flat < total; flat++) {
    let at = 0;
    for (let d = 0; d < shape.length; d++) {
      if (shape[d] !== 1) at += index[d + offset] * strides[d];
    }
    map[flat] = at;
    for (let d = out.length - 1; d >= 0; d--) {
      if (++index[d] < out[d]) break;
      index[d] = 0;
    }
  }
  return map;
}

/** An elementwise op over broadcast inputs. */
function elementwise(
  inputs: ConstTensor[],
  type: number,
  fn: (...values: number[]) => number,
  ctx: FoldContext,
): ConstTensor {
  const shape = broadcastAll(inputs.map((t) => t.shape), ctx);
  const maps = inputs.map((t) => broadcastIndex(t.shape, shape));
  const values = new Float64Array(numel(shape));
  const args = new Array<number>(inputs.length);
  for (let i = 0; i < values.length; i++) {
    for (let k = 0; k < inputs.length; k++) args[k] = inputs[k].data[maps[k][i]];
    values[i] = fn(...args);
  }
  return makeTensor(type, shape, values);
}

const binary = (fn: (a: number, b: number, integer: boolean) => number): Folder => (xs, ctx) => {
  const a = need(xs, 0, ctx, "A");
  const b = need(xs, 1, ctx, "B");
  const integer = INTEGER_TYPES.has(a.type);
  return [elementwise([a, b], a.type, (p, q) => fn(p, q, integer), ctx)];
};

const compare = (fn: (a: number, b: number) => boolean): Folder => (xs, ctx) => [
  elementwise(
    [need(xs, 0, ctx, "A"), need(xs, 1, ctx, "B")],
    DataType.BOOL,
    (a, b) => fn(a, b) ? 1 : 0,
    ctx,
  ),
];

const unary = (fn: (v: number) => number): Folder => (xs, ctx) => {
  const x = need(xs, 0, ctx, "X");
  return [makeTensor(x.type, x.shape, Array.from(x.data, fn))];
};

const variadic = (fn: (values: number[]) => number): Folder => (xs, ctx) => {
  const present = xs.filter((x): x is ConstTensor => x !== undefined);
  if (present.length === 0) fail(ctx, "needs at least one input");
  return [elementwise(present, present[0].type, (...v) => fn(v), ctx)];
};

// ------------------------------------------------------------------------------ data movement

/** Gathers along one axis: output shape data[:axis] + indices + data[axis+1:]. */
function gather(data: ConstTensor, indices: ConstTensor, axis: number, ctx: FoldContext) {
  const ax = normAxis(axis, data.shape.length, ctx);
  const outer = numel(data.shape.slice(0, ax));
  const dim = data.shape[ax];
  const inner = numel(data.shape.slice(ax + 1));
  const values = new Float64Array(outer * indices.data.length * inner);
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const raw of indices.data) {
      const i = raw < 0 ? raw + dim : raw;
      if (!(i >= 0 && i < dim)) fail(ctx, `index ${raw} is out of range for dimension ${dim}`);
      const from = (o * dim + i) * inner;
      for (let k = 0; k < inner; k++) values[at++] = data.data[from + k];
    }
  }
  const shape = [...data.shape.slice(0, ax), ...indices.shape, ...data.shape.slice(ax + 1)];
  return makeTensor(data.type, shape, values);
}

function gatherElements(data: ConstTensor, indices: ConstTensor, axis: number, ctx: FoldContext) {
  const ax = normAxis(axis, data.shape.length, ctx);
  const dataStrides = stridesOf(data.shape);
  const idxStrides = stridesOf(indices.shape);
  const values = new Float64Array(indices.data.length);
  for (let flat = 0; flat < values.length; flat++) {
    let rest = flat;
    let at = 0;
    for (let d = 0; d < indices.shape.length; d++) {
      const coord = Math.floor(rest / idxStrides[d]);
      rest -= coord * idxStrides[d];
      let c = coord;
      if (d === ax) {
        const raw = indices.data[flat];
        c = raw < 0 ? raw + data.shape[d] : raw;
        if (!(c >= 0 && c < data.shape[d])) fail(ctx, `index ${raw} is out of range`);
      }
      at += c * dataStrides[d];
    }
    values[flat] = data.data[at];
  }
  return makeTensor(data.type, indices.shape, values);
}

/** Copies the elements of `x` at the given per-axis coordinates (a strided selection). */
function select(x: ConstTensor, coords: number[][]): ConstTensor {
  const shape = coords.map((c) => c.length);
  const strides = stridesOf(x.shape);
  const values = new Float64Array(numel(shape));
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < values.length; flat++) {
    let at = 0;
    for (let d = 0; d < shape.length; d++) at += coords[d][index[d]] * strides[d];
    values[flat] = x.data[at];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return makeTensor(x.type, shape, values);
}

/** ONNX Reshape's target shape: 0 copies the input's dimension (unless allowzero), -1 is inferred. */
export function reshapeTarget(
  input: number[],
  target: number[],
  allowzero: boolean,
  what: string,
): number[] {
  const shape = target.map((d, i) => (d === 0 && !allowzero ? input[i] : d));
  const unknown = shape.indexOf(-1);
  const known = numel(shape.filter((d) => d !== -1));
  const total = numel(input);
  if (unknown >= 0 && known > 0) shape[unknown] = total / known;
  if (
    shape.some((d) => d === undefined || !Number.isInteger(d) || d < 0) ||
    numel(shape) !== total || shape.filter((d) => d === -1).length > 0
  ) {
    throw new BraidError(
      "SHAPE_MISMATCH",
      `${what}: cannot reshape ${shapeString(input)} to ${shapeString(target)}`,
    );
  }
  return shape;
}

/** Axes of Squeeze/Unsqueeze/Reduce*: an input from `inputFrom` on, an attribute before. */
function axesOf(
  xs: Inputs,
  ctx: FoldContext,
  index: number,
  inputFrom: number,
): number[] | undefined {
  if (ctx.opset >= inputFrom) return xs[index] ? asIntegers(xs[index]!) : undefined;
  return ctx.attrs.has("axes") ? ctx.attrs.ints("axes") : undefined;
}

/** Shape of Unsqueeze's output. */
export function unsqueezeShape(shape: number[], axes: number[], what: string): number[] {
  const rank = shape.length + axes.length;
  const norm = axes.map((a) => (a < 0 ? a + rank : a));
  if (norm.some((a) => a < 0 || a >= rank) || new Set(norm).size !== norm.length) {
    throw new BraidError("BAD_ATTRIBUTE", `${what}: invalid axes [${axes}] for rank ${rank}`);
  }
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(norm.includes(i) ? 1 : shape[k++]);
  return out;
}

/** Shape of Squeeze's output (no axes: every dimension of size 1 goes). */
export function squeezeShape(shape: number[], axes: number[] | undefined, what: string): number[] {
  if (!axes) return shape.filter((d) => d !== 1);
  const norm = axes.map((a) => (a < 0 ? a + shape.length : a));
  for (const a of norm) {
    if (shape[a] !== 1) {
      throw new BraidError(
        "BAD_ATTRIBUTE",
        `${what}: cannot squeeze axis ${a} of shape ${shapeString(shape)}`,
      );
    }
  }
  return shape.filter((_, i) => !norm.includes(i));
}

/** Shape's output for an input shape (opset 15's start and end attributes included). */
export function shapeOf(shape: number[], attrs: NodeAttributes): ConstTensor {
  const rank = shape.length;
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
  const start = clamp(attrs.int("start", 0));
  const end = clamp(attrs.int("end", rank));
  return int64(shape.slice(start, Math.max(start, end)));
}

/** Slice's per-axis arguments from inputs (opset 10+) or attributes (before). */
export function sliceArguments(
  xs: Inputs,
  ctx: Where,
  rank: number,
): { axes: number[]; starts: number[]; ends: number[]; steps: number[] } {
  let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
  if (ctx.opset >= 10) {
    starts = asIntegers(need(xs, 1, ctx, "starts"));
    ends = asIntegers(need(xs, 2, ctx, "ends"));
    axes = xs[3] ? asIntegers(xs[3]) : undefined;
    steps = xs[4] ? asIntegers(xs[4]) : undefined;
  } else {
    starts = ctx.attrs.ints("starts");
    ends = ctx.attrs.ints("ends");
    axes = ctx.attrs.has("axes") ? ctx.attrs.ints("axes") : undefined;
  }
  axes ??= starts.map((_, i) => i);
  steps ??= starts.map(() => 1);
  return { axes: axes.map((a) => normAxis(a, rank, ctx)), starts, ends, steps };
}

function slice(xs: Inputs, ctx: FoldContext): ConstTensor {
  const x = need(xs, 0, ctx, "data");
  const { axes, starts, ends, steps } = sliceArguments(xs, ctx, x.shape.length);
  const coords = x.shape.map((d) => Array.from({ length: d }, (_, i) => i));
  axes.forEach((axis, i) => {
    const r = sliceRange(x.shape[axis], starts[i], ends[i], steps[i], (m) => fail(ctx, m));
    coords[axis] = Array.from({ length: r.count }, (_, k) => r.start + k * r.step);
  });
  return select(x, coords);
}

function transpose(x: ConstTensor, perm: number[]): ConstTensor {
  const shape = perm.map((p) => x.shape[p]);
  const strides = stridesOf(x.shape);
  const values = new Float64Array(numel(shape));
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < values.length; flat++) {
    let at = 0;
    for (let d = 0; d < shape.length; d++) at += index[d] * strides[perm[d]];
    values[flat] = x.data[at];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return makeTensor(x.type, shape, values);
}

function concat(xs: Inputs, ctx: FoldContext): ConstTensor {
  const parts = xs.filter((x): x is ConstTensor => x !== undefined);
  const first = parts[0] ?? fail(ctx, "needs at least one input");
  const axis = normAxis(ctx.attrs.int("axis"), first.shape.length, ctx);
  const outer = numel(first.shape.slice(0, axis));
  const shape = [...first.shape];
  shape[axis] = parts.reduce((s, p) => s + p.shape[axis], 0);
  const values: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const chunk = numel(p.shape.slice(axis));
      for (let k = 0; k < chunk; k++) values.push(p.data[o * chunk + k]);
    }
  }
  return makeTensor(first.type, shape, values);
}

function reduce(
  init: number,
  step: (acc: number, v: number) => number,
  finish: (acc: number, count: number) => number = (acc) => acc,
  axesInputFrom = 18,
): Folder {
  return (xs, ctx) => {
    const x = need(xs, 0, ctx, "data");
    const rank = x.shape.length;
    const given = axesOf(xs, ctx, 1, axesInputFrom);
    const noop = ctx.attrs.int("noop_with_empty_axes", 0) === 1;
    if ((!given || given.length === 0) && noop) return [x];
    const axes = (given && given.length ? given : x.shape.map((_, i) => i)).map((a) =>
      normAxis(a, rank, ctx)
    );
    const keep = ctx.attrs.int("keepdims", 1) === 1;
    const outShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const acc = new Float64Array(numel(outShape)).fill(init);
    const outStrides = stridesOf(outShape);
    const index = new Array<number>(rank).fill(0);
    for (let flat = 0; flat < x.data.length; flat++) {
      let at = 0;
      for (let d = 0; d < rank; d++) if (!axes.includes(d)) at += index[d] * outStrides[d];
      acc[at] = step(acc[at], x.data[flat]);
      for (let d = rank - 1; d >= 0; d--) {
        if (++index[d] < x.shape[d]) break;
        index[d] = 0;
      }
    }
    const count = numel(axes.map((a) => x.shape[a]));
    const shape = keep ? outShape : x.shape.filter((_, i) => !axes.includes(i));
    return [makeTensor(x.type, shape, Array.from(acc, (v) => finish(v, count)))];
  };
}

/** Cast's conversion of one value to an element type. */
function castValue(v: number, to: number): number {
  if (to === DataType.BOOL) return v !== 0 ? 1 : 0;
  if (INTEGER_TYPES.has(to)) return Number.isFinite(v) ? Math.trunc(v) : 0;
  return v;
}

function cast(x: ConstTensor, to: number): ConstTensor {
  // FLOAT16 and BFLOAT16 are held as FLOAT (see tensor.ts).
  const type = to === DataType.FLOAT16 || to === DataType.BFLOAT16 ? DataType.FLOAT : to;
  return makeTensor(type, x.shape, Array.from(x.data, (v) => castValue(v, type)));
}

/** Round half to even, as ONNX's Round. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ------------------------------------------------------------------------------ the table

export const FOLDERS: Record<string, Folder> = {
  Constant: (_xs, ctx) => {
    const a = ctx.attrs;
    const t = a.tensor("value");
    if (t) return [ctx.decode(t)];
    if (a.has("value_float")) return [makeTensor(DataType.FLOAT, [], [a.float("value_float")])];
    if (a.has("value_floats")) {
      const v = a.floats("value_floats");
      return [makeTensor(DataType.FLOAT, [v.length], v)];
    }
    if (a.has("value_int")) return [int64([a.int("value_int")], [])];
    if (a.has("value_ints")) return [int64(a.ints("value_ints"))];
    return fail(ctx, "has no numeric value (sparse and string constants are not supported)");
  },
  Identity: (xs, ctx) => [need(xs, 0, ctx, "input")],
  Dropout: (xs, ctx) => [need(xs, 0, ctx, "data")],
  Cast: (xs, ctx) => [cast(need(xs, 0, ctx, "input"), ctx.attrs.int("to"))],
  CastLike: (xs, ctx) => [cast(need(xs, 0, ctx, "input"), need(xs, 1, ctx, "target").type)],
  Gather: (xs, ctx) => [
    gather(need(xs, 0, ctx, "data"), need(xs, 1, ctx, "indices"), ctx.attrs.int("axis", 0), ctx),
  ],
  GatherElements: (xs, ctx) => [
    gatherElements(
      need(xs, 0, ctx, "data"),
      need(xs, 1, ctx, "indices"),
      ctx.attrs.int("axis", 0),
      ctx,
    ),
  ],
  Unsqueeze: (xs, ctx) => {
    const x = need(xs, 0, ctx, "data");
    const axes = axesOf(xs, ctx, 1, 13) ?? fail(ctx, "needs axes");
    return [{ ...x, shape: unsqueezeShape(x.shape, axes, ctx.attrs.what) }];
  },
  Squeeze: (xs, ctx) => {
    const x = need(xs, 0, ctx, "data");
    return [{ ...x, shape: squeezeShape(x.shape, axesOf(xs, ctx, 1, 13), ctx.attrs.what) }];
  },
  Concat: (xs, ctx) => [concat(xs, ctx)],
  Reshape: (xs, ctx) => {
    const x = need(xs, 0, ctx, "data");
    const target = asIntegers(need(xs, 1, ctx, "shape"));
    const allowzero = ctx.attrs.int("allowzero", 0) === 1;
    return [{ ...x, shape: reshapeTarget(x.shape, target, allowzero, ctx.attrs.what) }];
  },
  Flatten: (xs, ctx) => {
    const x = need(xs, 0, ctx, "input");
    const axis = ctx.attrs.int("axis", 1);
    const a = axis < 0 ? axis + x.shape.length : axis;
    return [{ ...x, shape: [numel(x.shape.slice(0, a)), numel(x.shape.slice(a))] }];
  },
  Transpose: (xs, ctx) => {
    const x = need(xs, 0, ctx, "data");
    const perm = ctx.attrs.ints("perm", x.shape.map((_, i) => x.shape.length - 1 - i));
    return [transpose(x, perm)];
  },
  Slice: (xs, ctx) => [slice(xs, ctx)],
  Expand: (xs, ctx) => {
    const x = need(xs, 0, ctx, "input");
    const shape = broadcastAll([x.shape, asIntegers(need(xs, 1, ctx, "shape"))], ctx);
    const map = broadcastIndex(x.shape, shape);
    return [makeTensor(x.type, shape, Array.from(map, (i) => x.data[i]))];
  },
  Tile: (xs, ctx) => {
    const x = need(xs, 0, ctx, "input");
    const repeats = asIntegers(need(xs, 1, ctx, "repeats"));
    const coords = x.shape.map((d, i) => Array.from({ length: d * repeats[i] }, (_, k) => k % d));
    return [select(x, coords)];
  },
  ConstantOfShape: (xs, ctx) => {
    const shape = asIntegers(need(xs, 0, ctx, "input"));
    const t = ctx.attrs.tensor("value");
    const fill = t ? ctx.decode(t) : makeTensor(DataType.FLOAT, [1], [0]);
    return [makeTensor(fill.type, shape, new Float64Array(numel(shape)).fill(fill.data[0]))];
  },
  Range: (xs, ctx) => {
    const [start, limit, delta] = [0, 1, 2].map((i) => need(xs, i, ctx, "start/limit/delta"));
    const [s, l, d] = [start.data[0], limit.data[0], delta.data[0]];
    const n = Math.max(Math.ceil((l - s) / d), 0);
    return [makeTensor(start.type, [n], Array.from({ length: n }, (_, i) => s + i * d))];
  },
  Where: (xs, ctx) => {
    const [c, x, y] = [0, 1, 2].map((i) => need(xs, i, ctx, "condition/X/Y"));
    return [elementwise([c, x, y], x.type, (p, q, r) => (p ? q : r), ctx)];
  },
  Add: binary((a, b) => a + b),
  Sub: binary((a, b) => a - b),
  Mul: binary((a, b) => a * b),
  Div: binary((a, b, integer) => (integer ? Math.trunc(a / b) : a / b)),
  Pow: binary((a, b) => a ** b),
  Mod: (xs, ctx) => {
    const fmod = ctx.attrs.int("fmod", 0) === 1;
    return binary((a, b) => (fmod ? a % b : a - b * Math.floor(a / b)))(xs, ctx);
  },
  Equal: compare((a, b) => a === b),
  Less: compare((a, b) => a < b),
  Greater: compare((a, b) => a > b),
  LessOrEqual: compare((a, b) => a <= b),
  GreaterOrEqual: compare((a, b) => a >= b),
  And: compare((a, b) => a !== 0 && b !== 0),
  Or: compare((a, b) => a !== 0 || b !== 0),
  Xor: compare((a, b) => (a !== 0) !== (b !== 0)),
  Max: variadic((v) => Math.max(...v)),
  Min: variadic((v) => Math.min(...v)),
  Sum: variadic((v) => v.reduce((s, x) => s + x, 0)),
  Mean: variadic((v) => v.reduce((s, x) => s + x, 0) / v.length),
  Neg: unary((v) => -v),
  Abs: unary(Math.abs),
  Ceil: unary(Math.ceil),
  Floor: unary(Math.floor),
  Round: unary(roundHalfEven),
  Sqrt: unary(Math.sqrt),
  Exp: unary(Math.exp),
  Log: unary(Math.log),
  Reciprocal: unary((v) => 1 / v),
  Sign: unary(Math.sign),
  Relu: unary((v) => Math.max(v, 0)),
  Sigmoid: unary((v) => 1 / (1 + Math.exp(-v))),
  Tanh: unary(Math.tanh),
  Not: (xs, ctx) => {
    const x = need(xs, 0, ctx, "X");
    return [makeTensor(DataType.BOOL, x.shape, Array.from(x.data, (v) => (v ? 0 : 1)))];
  },
  Clip: (xs, ctx) => {
    const x = need(xs, 0, ctx, "input");
    const [lo, hi] = ctx.opset >= 11
      ? [xs[1]?.data[0] ?? -Infinity, xs[2]?.data[0] ?? Infinity]
      : [ctx.attrs.float("min", -Infinity), ctx.attrs.float("max", Infinity)];
    return [makeTensor(x.type, x.shape, Array.from(x.data, (v) => Math.min(Math.max(v, lo), hi)))];
  },
  ReduceSum: reduce(0, (a, v) => a + v, undefined, 13),
  ReduceProd: reduce(1, (a, v) => a * v),
  ReduceMax: reduce(-Infinity, Math.max),
  ReduceMin: reduce(Infinity, Math.min),
  ReduceMean: reduce(0, (a, v) => a + v, (a, n) => a / n),
};

/** Whether `op` can be evaluated at import time when all its inputs are constants. */
export function canFold(op: string): boolean {
  return Object.hasOwn(FOLDERS, op);
}
