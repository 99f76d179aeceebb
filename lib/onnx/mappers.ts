/**
 * ONNX operators → braid's IR, one mapper per op type. A mapper reads the node's inputs and
 * attributes through the MapContext and emits braid nodes; it throws Unsupported for forms braid
 * cannot run (the importer lists them all in one error). Constant inputs are folded before a
 * mapper is reached (fold.ts), so mappers see run-time data plus constant arguments.
 *
 * Numerics follow the ONNX specification (opset 13-21, and the older attribute forms where they
 * differ): Conv/pool pads are [x1_begin, x2_begin, x1_end, x2_end] = braid's [top, left, bottom,
 * right]; AveragePool's count_include_pad defaults to 0; Softmax (opset >= 13) works on one axis.
 */
import { numel } from "../ir/graph.ts";
import { type AttrsByOp, type OpName, OPS, type Pads, type Pair } from "../ir/ops.ts";
import { type MapContext, type PendingPad, type Slot, Unsupported } from "./context.ts";
import {
  broadcastAll,
  makeTensor,
  reshapeTarget,
  sliceArguments,
  squeezeShape,
  unsqueezeShape,
} from "./fold.ts";
import { DataType } from "./proto.ts";

export type Mapper = (ctx: MapContext) => void;

// ------------------------------------------------------------------------------ helpers

/** Whether attributes pass the op's own checks (e.g. pool padding at most half the kernel). */
function fits<K extends OpName>(op: K, attrs: Partial<AttrsByOp[K]>): boolean {
  const spec = OPS[op];
  return !spec.checkAttrs?.({ ...spec.defaults, ...attrs } as AttrsByOp[K]);
}

const pair = (v: number[], what: string): Pair => {
  if (v.length !== 2) throw new Unsupported(`${v.length}-D ${what}`);
  return [v[0], v[1]];
};

function requireFloat(ctx: MapContext, i: number) {
  if (ctx.dtype(i) !== "float32") {
    throw new Unsupported(`${ctx.dtype(i)} data at run time (braid computes in float32)`);
  }
}

/** A scalar float32 constant as an initializer. */
const scalar = (ctx: MapContext, suffix: string, v: number) =>
  ctx.constantValue(`${ctx.name}:${suffix}`, makeTensor(DataType.FLOAT, [], [v]));

/**
 * Padding of a 2-D window op, from `pads` or `auto_pad` (SAME_UPPER, SAME_LOWER, VALID), as
 * braid's [top, left, bottom, right].
 */
function windowPads(
  ctx: MapContext,
  input: number[],
  kernel: Pair,
  strides: Pair,
  dilations: Pair,
): Pads {
  const autoPad = ctx.attrs.string("auto_pad", "NOTSET");
  if (autoPad === "NOTSET") {
    const p = ctx.attrs.ints("pads", [0, 0, 0, 0]);
    if (p.length !== 4) throw new Unsupported(`pads of length ${p.length}`);
    return [p[0], p[1], p[2], p[3]];
  }
  if (autoPad === "VALID") return [0, 0, 0, 0];
  const pads: number[] = [0, 0, 0, 0];
  for (const d of [0, 1]) {
    const size = input[d + 2];
    const out = Math.ceil(size / strides[d]);
    const total = Math.max(0, (out - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - size);
    const small = Math.floor(total / 2);
    const [begin, end] = autoPad === "SAME_LOWER" ? [total - small, small] : [small, total - small];
    pads[d] = begin;
    pads[d + 2] = end;
  }
  return pads as Pads;
}

/** A pending Pad on the spatial axes of a 4-D tensor, with `value`, that padding can absorb. */
function spatialPad(slot: Slot | undefined, value: number): PendingPad | undefined {
  if (slot?.kind !== "pad" || slot.begins.length !== 4) return undefined;
  const { begins: b, ends: e } = slot;
  const spatialOnly = b[0] === 0 && b[1] === 0 && e[0] === 0 && e[1] === 0;
  const nonNegative = [b[2], b[3], e[2], e[3]].every((p) => p >= 0);
  const sameValue = slot.value === value || (Number.isNaN(value) && Number.isNaN(slot.value));
  return spatialOnly && nonNegative && sameValue ? slot : undefined;
}

const addPads = (p: Pads, pad: PendingPad): Pads => [
  p[0] + pad.begins[2],
  p[1] + pad.begins[3],
  p[2] + pad.ends[2],
  p[3] + pad.ends[3],
];

function requireRank(ctx: MapContext, i: number, rank: number, what: string) {
  const r = ctx.shape(i).length;
  if (r !== rank) throw new Unsupported(`${what} of rank ${r} (braid's is ${rank}-D)`);
}

// ------------------------------------------------------------------------------ convolution, pooling

const conv: Mapper = (ctx) => {
  requireRank(ctx, 0, 4, "input");
  const w = ctx.shape(1);
  const kernel = pair(ctx.attrs.ints("kernel_shape", w.slice(2)), "kernel");
  const strides = pair(ctx.attrs.ints("strides", [1, 1]), "strides");
  const dilations = pair(ctx.attrs.ints("dilations", [1, 1]), "dilations");
  let pads = windowPads(ctx, ctx.shape(0), kernel, strides, dilations);
  // A zero Pad before a convolution is the convolution's own padding.
  const pad = spatialPad(ctx.slot(0), 0);
  let x: string;
  if (pad) {
    pads = addPads(pads, pad);
    x = pad.source;
    ctx.foldedPad();
  } else x = ctx.value(0);
  const inputs = [x, ctx.value(1)];
  if (ctx.slot(2)) inputs.push(ctx.value(2));
  ctx.emit("Conv2d", inputs, { strides, pads, dilations, groups: ctx.attrs.int("group", 1) });
};

function pool(op: "MaxPool2d" | "AvgPool2d"): Mapper {
  return (ctx) => {
    requireRank(ctx, 0, 4, "input");
    const kernel = pair(ctx.attrs.ints("kernel_shape"), "kernel");
    const strides = pair(ctx.attrs.ints("strides", [1, 1]), "strides");
    const dilations = pair(ctx.attrs.ints("dilations", [1, 1]), "dilations");
    if (dilations[0] !== 1 || dilations[1] !== 1) throw new Unsupported("dilated pooling");
    const pads = windowPads(ctx, ctx.shape(0), kernel, strides, dilations);
    const ceilMode = ctx.attrs.int("ceil_mode", 0) === 1;
    const countIncludePad = ctx.attrs.int("count_include_pad", 0) === 1;
    const attrs = { kernel, strides, pads, ceilMode, countIncludePad };
    // Padding with -inf never wins a max; explicit zeros averaged over the padded window are
    // braid's count_include_pad (when the pool has no padding of its own).
    const pad = op === "MaxPool2d"
      ? spatialPad(ctx.slot(0), -Infinity)
      : pads.every((p) => p === 0)
      ? spatialPad(ctx.slot(0), 0)
      : undefined;
    if (pad) {
      const folded = { ...attrs, pads: addPads(pads, pad), countIncludePad: true };
      if (fits(op, folded)) {
        ctx.foldedPad();
        ctx.emit(op, [pad.source], folded);
        return;
      }
    }
    if (!fits(op, attrs)) throw new Unsupported("padding larger than half the window");
    ctx.emit(op, [ctx.value(0)], attrs);
  };
}

// ------------------------------------------------------------------------------ elementwise

const simple = (op: "Relu" | "Sigmoid" | "Tanh"): Mapper => (ctx) => {
  requireFloat(ctx, 0);
  ctx.emit(op, [ctx.value(0)], {});
};

function binary(op: "Add" | "Sub" | "Mul" | "Div"): Mapper {
  return (ctx) => {
    requireFloat(ctx, 0);
    requireFloat(ctx, 1);
    ctx.emit(op, [ctx.value(0, "float32"), ctx.value(1, "float32")], {});
  };
}

const clip: Mapper = (ctx) => {
  requireFloat(ctx, 0);
  let min = -Infinity;
  let max = Infinity;
  if (ctx.opset >= 11) {
    for (
      const [i, set] of [[1, (v: number) => (min = v)], [2, (v: number) => (max = v)]] as const
    ) {
      if (!ctx.slot(i)) continue;
      const c = ctx.constant(i);
      if (!c) throw new Unsupported("bounds computed at run time");
      set(c.data[0]);
    }
  } else {
    min = ctx.attrs.float("min", -Infinity);
    max = ctx.attrs.float("max", Infinity);
  }
  ctx.emit("Clamp", [ctx.value(0)], { min, max });
};

/** HardSigmoid(x) = clamp(alpha·x + beta, 0, 1): a Mul, then an Add with a fused clamp. */
function hardSigmoid(ctx: MapContext, alpha: number, beta: number, final: boolean): string {
  const scaled = ctx.emit("Mul", [ctx.value(0), scalar(ctx, "alpha", alpha)], {}, {
    temp: "scaled",
  });
  return ctx.emit(
    "Add",
    [scaled, scalar(ctx, "beta", beta)],
    { activation: "clamp", actMin: 0, actMax: 1 },
    final ? {} : { temp: "hard_sigmoid" },
  );
}

const gelu: Mapper = (ctx) => {
  const approximate = ctx.attrs.string("approximate", "none");
  if (approximate !== "none") throw new Unsupported(`approximate="${approximate}"`);
  requireFloat(ctx, 0);
  ctx.emit("Gelu", [ctx.value(0)], {});
};

const pow: Mapper = (ctx) => {
  requireFloat(ctx, 0);
  const e = ctx.constant(1);
  if (!e || numel(e.shape) !== 1) throw new Unsupported("exponent computed at run time");
  const x = ctx.value(0);
  if (e.data[0] === 1) ctx.define(0, { kind: "value", name: x });
  else if (e.data[0] === 2) ctx.emit("Mul", [x, x], {});
  else throw new Unsupported(`exponent ${e.data[0]}`);
};

// ------------------------------------------------------------------------------ shapes and data movement

const reshape: Mapper = (ctx) => {
  const target = ctx.ints(1, "shape");
  const allowzero = ctx.attrs.int("allowzero", 0) === 1;
  // braid's Reshape has ONNX's default semantics (0 copies, -1 is inferred); with allowzero the
  // shape is resolved here.
  const shape = allowzero ? reshapeTarget(ctx.shape(0), target, true, ctx.name) : target;
  ctx.emit("Reshape", [ctx.value(0)], { shape });
};

/** A run-time reshape to a shape computed here (Squeeze, Unsqueeze, MatMul's vector cases). */
const reshapeTo = (ctx: MapContext, shape: number[]) =>
  ctx.emit("Reshape", [ctx.value(0)], { shape });

const squeeze: Mapper = (ctx) => {
  const axes = ctx.opset >= 13
    ? (ctx.slot(1) ? ctx.ints(1, "axes") : undefined)
    : (ctx.attrs.has("axes") ? ctx.attrs.ints("axes") : undefined);
  reshapeTo(ctx, squeezeShape(ctx.shape(0), axes, ctx.name));
};

const unsqueeze: Mapper = (ctx) => {
  const axes = ctx.opset >= 13 ? ctx.ints(1, "axes") : ctx.attrs.ints("axes");
  reshapeTo(ctx, unsqueezeShape(ctx.shape(0), axes, ctx.name));
};

const flatten: Mapper = (ctx) => {
  const axis = ctx.attrs.int("axis", 1);
  ctx.emit("Flatten", [ctx.value(0)], { axis: axis < 0 ? axis + ctx.shape(0).length : axis });
};

const transpose: Mapper = (ctx) => {
  const rank = ctx.shape(0).length;
  const perm = ctx.attrs.ints("perm", Array.from({ length: rank }, (_, i) => rank - 1 - i));
  ctx.emit("Transpose", [ctx.value(0)], { perm });
};

const slice: Mapper = (ctx) => {
  const shape = ctx.shape(0);
  for (let i = 1; i < ctx.node.input.length; i++) {
    if (ctx.slot(i) && !ctx.constant(i)) throw new Unsupported("bounds computed at run time");
  }
  const constants = ctx.node.input.map((_, i) => (i === 0 ? undefined : ctx.constant(i)));
  const args = sliceArguments(constants, ctx, shape.length);
  // ±2^63 ("to the end") clamps to just beyond the axis: same slice, and it fits the file format.
  const clamp = (v: number, axis: number) =>
    Math.min(Math.max(v, -shape[axis] - 1), shape[axis] + 1);
  ctx.emit("Slice", [ctx.value(0)], {
    axes: args.axes,
    starts: args.starts.map((v, i) => clamp(v, args.axes[i])),
    ends: args.ends.map((v, i) => clamp(v, args.axes[i])),
    steps: args.steps,
  });
};

const split: Mapper = (ctx) => {
  const shape = ctx.shape(0);
  const axis = ctx.attrs.int("axis", 0);
  const ax = axis < 0 ? axis + shape.length : axis;
  const outputs = ctx.node.output.length;
  let sizes: number[];
  if (ctx.opset >= 13 && ctx.slot(1)) sizes = ctx.ints(1, "split");
  else if (ctx.opset < 13 && ctx.attrs.has("split")) sizes = ctx.attrs.ints("split");
  else {
    const n = ctx.attrs.int("num_outputs", outputs);
    const chunk = Math.ceil(shape[ax] / n);
    sizes = Array.from({ length: n }, (_, i) => Math.min(chunk, shape[ax] - i * chunk));
  }
  let start = 0;
  sizes.forEach((size, k) => {
    if (ctx.node.output[k]) {
      ctx.emit("Slice", [ctx.value(0)], {
        axes: [ax],
        starts: [start],
        ends: [start + size],
        steps: [1],
      }, { output: k });
    }
    start += size;
  });
};

const concat: Mapper = (ctx) => {
  const inputs = ctx.node.input.map((_, i) => ctx.value(i, ctx.dtype(0)));
  ctx.emit("Concat", inputs, { axis: ctx.attrs.int("axis") });
};

const gather: Mapper = (ctx) => {
  if (ctx.constant(0) && ctx.dtype(0) !== "float32") throw new Unsupported("integer table");
  if (ctx.dtype(1) !== "int32") throw new Unsupported(`${ctx.dtype(1)} indices`);
  const indices = ctx.value(1, "int32");
  ctx.emit("Gather", [ctx.value(0), indices], { axis: ctx.attrs.int("axis", 0) });
};

const expand: Mapper = (ctx) => {
  const shape = broadcastAll([ctx.shape(0), ctx.ints(1, "shape")]);
  if (shape.join() === ctx.shape(0).join()) {
    ctx.define(0, ctx.slot(0)!);
    return;
  }
  requireFloat(ctx, 0);
  // x + 0 broadcast to the target shape: exact, and braid's Add broadcasts.
  const zeros = makeTensor(DataType.FLOAT, shape, new Float32Array(numel(shape)));
  ctx.emit("Add", [ctx.value(0), ctx.constantValue(`${ctx.name}:zeros`, zeros)], {});
};

const cast: Mapper = (ctx) => {
  const to = ctx.attrs.int("to");
  const from = ctx.dtype(0);
  const floatTarget = to === DataType.FLOAT || to === DataType.DOUBLE ||
    to === DataType.FLOAT16 || to === DataType.BFLOAT16;
  const intTarget = to === DataType.INT32 || to === DataType.INT64;
  // braid holds run-time floats as float32 and integers as int32: these casts change nothing.
  if ((from === "float32" && floatTarget) || (from === "int32" && intTarget)) {
    ctx.define(0, ctx.slot(0)!);
  } else throw new Unsupported(`cast of ${from} to data type ${to} at run time`);
};

const alias: Mapper = (ctx) => ctx.define(0, ctx.slot(0)!);

/** Pad (constant mode) becomes a pending pad: folded into the consumer or materialised. */
const pad: Mapper = (ctx) => {
  const mode = ctx.attrs.string("mode", "constant");
  if (mode !== "constant") throw new Unsupported(`mode "${mode}"`);
  const rank = ctx.shape(0).length;
  let pads: number[];
  let value = 0;
  if (ctx.opset >= 11) {
    pads = ctx.ints(1, "pads");
    if (ctx.slot(2)) {
      const v = ctx.constant(2);
      if (!v) throw new Unsupported("pad value computed at run time");
      value = v.data.length ? v.data[0] : 0;
    }
    if (ctx.slot(3)) {
      const axes = ctx.ints(3, "axes").map((a) => (a < 0 ? a + rank : a));
      const full = new Array<number>(2 * rank).fill(0);
      axes.forEach((a, i) => {
        full[a] = pads[i];
        full[a + rank] = pads[i + axes.length];
      });
      pads = full;
    }
  } else {
    pads = ctx.attrs.ints("pads");
    value = ctx.attrs.float("value", 0);
  }
  if (pads.length !== 2 * rank) throw new Unsupported(`${pads.length} pads for rank ${rank}`);
  ctx.define(0, {
    kind: "pad",
    source: ctx.value(0),
    output: ctx.node.output[0],
    node: ctx.name,
    begins: pads.slice(0, rank),
    ends: pads.slice(rank),
    value,
  });
};

// ------------------------------------------------------------------------------ products, normalisation

const gemm: Mapper = (ctx) => {
  requireFloat(ctx, 0);
  const transA = ctx.attrs.int("transA", 0) === 1;
  const transB = ctx.attrs.int("transB", 0) === 1;
  const alpha = ctx.attrs.float("alpha", 1);
  const beta = ctx.attrs.float("beta", 1);
  let a = ctx.value(0);
  if (transA) a = ctx.emit("Transpose", [a], { perm: [1, 0] }, { temp: "a_t" });
  const b = ctx.value(1);
  const n = transB ? ctx.shape(1)[0] : ctx.shape(1)[1];
  const c = ctx.slot(2) ? ctx.shape(2) : undefined;
  const isBias = c && numel(c) === n && (c.length === 1 || (c.length === 2 && c[0] === 1));
  if (!c || isBias) {
    const inputs = c ? [a, b, ctx.value(2)] : [a, b];
    ctx.emit("Gemm", inputs, { transB, alpha, beta });
    return;
  }
  // C broadcasts over rows too: a bias-free product, then beta·C added.
  const product = ctx.emit("Gemm", [a, b], { transB, alpha }, { temp: "product" });
  let addend: string;
  const constant = ctx.constant(2);
  if (constant) {
    const scaled = makeTensor(
      DataType.FLOAT,
      constant.shape,
      Array.from(constant.data, (v) => beta * v),
    );
    addend = ctx.constantValue(`${ctx.node.input[2]}:beta`, scaled);
  } else if (beta === 1) addend = ctx.value(2);
  else throw new Unsupported("beta != 1 with a run-time C");
  ctx.emit("Add", [product, addend], {});
};

const matmul: Mapper = (ctx) => {
  requireFloat(ctx, 0);
  const [sa, sb] = [ctx.shape(0), ctx.shape(1)];
  let a = ctx.value(0);
  let b = ctx.value(1);
  // ONNX MatMul is numpy's: a vector operand gains a unit dimension, dropped from the result.
  if (sa.length === 1) a = ctx.emit("Reshape", [a], { shape: [1, sa[0]] }, { temp: "a_row" });
  if (sb.length === 1) b = ctx.emit("Reshape", [b], { shape: [sb[0], 1] }, { temp: "b_col" });
  const vector = sa.length === 1 || sb.length === 1;
  const options = vector ? { temp: "matrix" } : {};
  // A product with a constant matrix is a linear layer: braid's Gemm ([..., K] · [K, N]).
  const out = sb.length === 2 && ctx.constant(1)
    ? ctx.emit("Gemm", [a, b], {}, options)
    : ctx.emit("MatMul", [a, b], {}, options);
  if (vector) {
    const shape = ctx.valueShape(out).filter((_, d, all) =>
      !(sa.length === 1 && d === all.length - 2) && !(sb.length === 1 && d === all.length - 1)
    );
    ctx.emit("Reshape", [out], { shape });
  }
};

const softmax: Mapper = (ctx) => {
  const rank = ctx.shape(0).length;
  const axis = ctx.attrs.int("axis", ctx.opset >= 13 ? -1 : 1);
  const a = axis < 0 ? axis + rank : axis;
  // Before opset 13 Softmax flattens to 2-D at `axis`: the same only when axis is the last.
  if (ctx.opset < 13 && a !== rank - 1) throw new Unsupported(`opset ${ctx.opset} axis ${axis}`);
  ctx.emit("Softmax", [ctx.value(0)], { axis: a });
};

const batchNorm: Mapper = (ctx) => {
  if (ctx.attrs.int("training_mode", 0) === 1) throw new Unsupported("training mode");
  const inputs = [0, 1, 2, 3, 4].map((i) => ctx.value(i, "float32"));
  ctx.emit("BatchNorm", inputs, { epsilon: ctx.attrs.float("epsilon", 1e-5) });
};

const layerNorm: Mapper = (ctx) => {
  const rank = ctx.shape(0).length;
  const axis = ctx.attrs.int("axis", -1);
  const scale = ctx.value(1, "float32");
  const bias = ctx.slot(2) ? ctx.value(2, "float32") : ctx.constantValue(
    `${ctx.name}:bias`,
    makeTensor(DataType.FLOAT, ctx.shape(1), new Float32Array(numel(ctx.shape(1)))),
  );
  ctx.emit("LayerNorm", [ctx.value(0), scale, bias], {
    axis: axis < 0 ? axis + rank : axis,
    epsilon: ctx.attrs.float("epsilon", 1e-5),
  });
};

/** ReduceMean over every spatial axis of a feature map is a global average pool. */
const reduceMean: Mapper = (ctx) => {
  const shape = ctx.shape(0);
  const axes =
    (ctx.opset >= 18 ? (ctx.slot(1) ? ctx.ints(1, "axes") : []) : ctx.attrs.ints("axes", [])).map((
      a,
    ) => (a < 0 ? a + shape.length : a)).sort();
  const spatial = shape.slice(2).map((_, i) => i + 2);
  if (shape.length < 3 || axes.join() !== spatial.join()) {
    throw new Unsupported(`mean over axes [${axes}] at run time`);
  }
  if (ctx.attrs.int("keepdims", 1) === 1) {
    ctx.emit("GlobalAvgPool", [ctx.value(0)], {});
    return;
  }
  const pooled = ctx.emit("GlobalAvgPool", [ctx.value(0)], {}, { temp: "pooled" });
  ctx.emit("Reshape", [pooled], { shape: shape.slice(0, 2) });
};

// ------------------------------------------------------------------------------ the table

export const MAPPERS: Record<string, Mapper> = {
  Conv: conv,
  MaxPool: pool("MaxPool2d"),
  AveragePool: pool("AvgPool2d"),
  GlobalAveragePool: (ctx) => ctx.emit("GlobalAvgPool", [ctx.value(0)], {}),
  BatchNormalization: batchNorm,
  LayerNormalization: layerNorm,
  Relu: simple("Relu"),
  Sigmoid: simple("Sigmoid"),
  Tanh: simple("Tanh"),
  Gelu: gelu,
  Clip: clip,
  HardSigmoid: (ctx) => {
    requireFloat(ctx, 0);
    hardSigmoid(ctx, ctx.attrs.float("alpha", 0.2), ctx.attrs.float("beta", 0.5), true);
  },
  HardSwish: (ctx) => {
    requireFloat(ctx, 0);
    ctx.emit("Mul", [ctx.value(0), hardSigmoid(ctx, 1 / 6, 0.5, false)], {});
  },
  Add: binary("Add"),
  Sub: binary("Sub"),
  Mul: binary("Mul"),
  Div: binary("Div"),
  Neg: (ctx) => {
    requireFloat(ctx, 0);
    ctx.emit("Mul", [ctx.value(0), scalar(ctx, "minus_one", -1)], {});
  },
  Pow: pow,
  Concat: concat,
  Flatten: flatten,
  Reshape: reshape,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Transpose: transpose,
  Slice: slice,
  Split: split,
  Gather: gather,
  Expand: expand,
  Cast: cast,
  Pad: pad,
  Gemm: gemm,
  MatMul: matmul,
  Softmax: softmax,
  ReduceMean: reduceMean,
  Identity: alias,
  Dropout: alias,
};
