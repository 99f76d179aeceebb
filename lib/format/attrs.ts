/**
 * Node attributes in the model file: one codec per op between `AttrsByOp` (lib/ir/ops.ts) and
 * the schema's attribute tables (lib/format/model.fbs, union `Attrs`).
 *
 * Every scalar field of an attribute table is optional: the writer stores all of them, and the
 * reader keeps those present and fills the rest with the op's defaults (`withDefaults`), so files
 * from producers that leave defaults out still load.
 */
import type * as flatbuffers from "flatbuffers";
import {
  type Activation,
  type AttrsByOp,
  type FusedActivation,
  isOpName,
  type OpName,
  type Pads,
  type Pair,
  withDefaults,
} from "../ir/ops.ts";
import * as fb from "./generated/model_generated.ts";

/** Reports a problem with one attribute (the caller adds the node and the file). */
export type Fail = (message: string) => never;

type Builder = flatbuffers.Builder;
type Offset = flatbuffers.Offset;

interface Codec<K extends OpName> {
  /** The union member holding this op's attributes. */
  type: fb.Attrs;
  /** Writes the table (full attributes in) and returns its offset. */
  encode(b: Builder, a: AttrsByOp[K], fail: Fail): Offset;
  /** Reads the fields present in the table; `withDefaults` fills the rest. */
  decode(node: fb.Node, fail: Fail): Partial<AttrsByOp[K]>;
}

// ------------------------------------------------------------------------------ scalars

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function int32(v: number, what: string, fail: Fail): number {
  if (!Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) {
    fail(`${what} must be a 32-bit integer, is ${v}`);
  }
  return v;
}

/** An integer as int64; values beyond its range clamp to it (ONNX uses ±2^63 for "to the end"). */
function int64(v: number, what: string, fail: Fail): bigint {
  if (!Number.isInteger(v)) fail(`${what} must be an integer, is ${v}`);
  const big = BigInt(v);
  return big < INT64_MIN ? INT64_MIN : big > INT64_MAX ? INT64_MAX : big;
}

function bool(v: boolean, what: string, fail: Fail): boolean {
  if (typeof v !== "boolean") fail(`${what} must be a boolean, is ${v}`);
  return v;
}

function float(v: number, what: string, fail: Fail): number {
  if (typeof v !== "number") fail(`${what} must be a number, is ${v}`);
  return v;
}

function list(v: readonly number[], what: string, fail: Fail): readonly number[] {
  if (!Array.isArray(v)) fail(`${what} must be an array`);
  return v;
}

/** Copies the fields that are present (not null) into a partial attribute object. */
function present<T extends object>(fields: { [P in keyof T]: T[P] | null }): Partial<T> {
  const out: Partial<T> = {};
  for (const key of Object.keys(fields) as (keyof T)[]) {
    const v = fields[key];
    if (v !== null) out[key] = v as T[keyof T];
  }
  return out;
}

// ------------------------------------------------------------------------------ shared parts

const ACTIVATION_TO_FB: Record<Activation, fb.Activation> = {
  none: fb.Activation.None,
  relu: fb.Activation.Relu,
  clamp: fb.Activation.Clamp,
  sigmoid: fb.Activation.Sigmoid,
  tanh: fb.Activation.Tanh,
  gelu: fb.Activation.Gelu,
};
const FB_TO_ACTIVATION = new Map(
  Object.entries(ACTIVATION_TO_FB).map(([k, v]) => [v, k as Activation]),
);

/** A table class with the three fused-activation fields. */
interface ActivationTable {
  addActivation(b: Builder, v: fb.Activation): void;
  addActMin(b: Builder, v: number): void;
  addActMax(b: Builder, v: number): void;
}

function encodeActivation(b: Builder, t: ActivationTable, a: FusedActivation, fail: Fail) {
  const act = Object.hasOwn(ACTIVATION_TO_FB, a.activation)
    ? ACTIVATION_TO_FB[a.activation]
    : fail(`unknown activation "${a.activation}"`);
  t.addActivation(b, act);
  t.addActMin(b, float(a.actMin, "actMin", fail));
  t.addActMax(b, float(a.actMax, "actMax", fail));
}

function decodeActivation(
  t: { activation(): fb.Activation | null; actMin(): number | null; actMax(): number | null },
  fail: Fail,
): Partial<FusedActivation> {
  const code = t.activation();
  let activation: Activation | null = null;
  if (code !== null) {
    activation = FB_TO_ACTIVATION.get(code) ?? fail(`unknown activation code ${code}`);
  }
  return present<FusedActivation>({ activation, actMin: t.actMin(), actMax: t.actMax() });
}

const pair = (b: Builder, p: Pair, what: string, fail: Fail): Offset => {
  if (!Array.isArray(p) || p.length !== 2) fail(`${what} must be 2 integers`);
  return fb.Pair.createPair(b, int32(p[0], what, fail), int32(p[1], what, fail));
};
const pads = (b: Builder, p: Pads, fail: Fail): Offset => {
  if (!Array.isArray(p) || p.length !== 4) fail(`pads must be 4 integers`);
  const [t, l, bo, r] = p.map((v) => int32(v, "pads", fail));
  return fb.Pads.createPads(b, t, l, bo, r);
};
const readPair = (p: fb.Pair | null): Pair | null => (p ? [p.h(), p.w()] : null);
const readPads = (p: fb.Pads | null): Pads | null =>
  p ? [p.top(), p.left(), p.bottom(), p.right()] : null;

/** Reads an int vector through its accessors; null when the field is absent. */
function readInts(
  length: number,
  has: boolean,
  at: (i: number) => number | bigint | null,
): number[] | null {
  if (!has) return null;
  const out: number[] = [];
  for (let i = 0; i < length; i++) out.push(Number(at(i)));
  return out;
}

/** The windowed ops share kernel/strides/pads. */
interface WindowTable {
  addKernel(b: Builder, o: Offset): void;
  addStrides(b: Builder, o: Offset): void;
  addPads(b: Builder, o: Offset): void;
  addCeilMode(b: Builder, v: boolean): void;
}

function encodeWindow(
  b: Builder,
  t: WindowTable,
  a: AttrsByOp["MaxPool2d"],
  fail: Fail,
): void {
  t.addKernel(b, pair(b, a.kernel, "kernel", fail));
  t.addStrides(b, pair(b, a.strides, "strides", fail));
  t.addPads(b, pads(b, a.pads, fail));
  t.addCeilMode(b, bool(a.ceilMode, "ceilMode", fail));
}

/** A table holding one int32 axis (Concat, Flatten, Softmax, Gather). */
function axisCodec<K extends "Concat" | "Flatten" | "Softmax" | "Gather">(
  type: fb.Attrs,
  table: {
    start(b: Builder): void;
    add(b: Builder, axis: number): void;
    end(b: Builder): Offset;
    read(node: fb.Node): { axis(): number | null } | null;
  },
): Codec<K> {
  return {
    type,
    encode(b, a, fail) {
      table.start(b);
      table.add(b, int32(a.axis, "axis", fail));
      return table.end(b);
    },
    decode(node) {
      return present<{ axis: number }>({ axis: table.read(node)!.axis() }) as Partial<
        AttrsByOp[K]
      >;
    },
  };
}

// ------------------------------------------------------------------------------ the codecs

const binary: Codec<"Add"> = {
  type: fb.Attrs.BinaryAttrs,
  encode(b, a, fail) {
    fb.BinaryAttrs.startBinaryAttrs(b);
    encodeActivation(b, fb.BinaryAttrs, a, fail);
    return fb.BinaryAttrs.endBinaryAttrs(b);
  },
  decode: (node, fail) => decodeActivation(node.attrs(new fb.BinaryAttrs())!, fail),
};

/** One entry per op; null for ops without attributes (their union member is NONE). */
const CODECS: { [K in OpName]: Codec<K> | null } = {
  Conv2d: {
    type: fb.Attrs.Conv2dAttrs,
    encode(b, a, fail) {
      const T = fb.Conv2dAttrs;
      T.startConv2dAttrs(b);
      T.addStrides(b, pair(b, a.strides, "strides", fail));
      T.addPads(b, pads(b, a.pads, fail));
      T.addDilations(b, pair(b, a.dilations, "dilations", fail));
      T.addGroups(b, int32(a.groups, "groups", fail));
      encodeActivation(b, T, a, fail);
      return T.endConv2dAttrs(b);
    },
    decode(node, fail) {
      const t = node.attrs(new fb.Conv2dAttrs())!;
      return {
        ...present({
          strides: readPair(t.strides()),
          pads: readPads(t.pads()),
          dilations: readPair(t.dilations()),
          groups: t.groups(),
        }),
        ...decodeActivation(t, fail),
      };
    },
  },
  BatchNorm: {
    type: fb.Attrs.BatchNormAttrs,
    encode(b, a, fail) {
      fb.BatchNormAttrs.startBatchNormAttrs(b);
      fb.BatchNormAttrs.addEpsilon(b, float(a.epsilon, "epsilon", fail));
      return fb.BatchNormAttrs.endBatchNormAttrs(b);
    },
    decode: (node) =>
      present<AttrsByOp["BatchNorm"]>({
        epsilon: node.attrs(new fb.BatchNormAttrs())!.epsilon(),
      }),
  },
  Relu: null,
  Clamp: {
    type: fb.Attrs.ClampAttrs,
    encode(b, a, fail) {
      fb.ClampAttrs.startClampAttrs(b);
      fb.ClampAttrs.addMin(b, float(a.min, "min", fail));
      fb.ClampAttrs.addMax(b, float(a.max, "max", fail));
      return fb.ClampAttrs.endClampAttrs(b);
    },
    decode(node) {
      const t = node.attrs(new fb.ClampAttrs())!;
      return present<AttrsByOp["Clamp"]>({ min: t.min(), max: t.max() });
    },
  },
  Sigmoid: null,
  Tanh: null,
  Gelu: null,
  Add: binary,
  Sub: binary,
  Mul: binary,
  Div: binary,
  MaxPool2d: {
    type: fb.Attrs.MaxPool2dAttrs,
    encode(b, a, fail) {
      fb.MaxPool2dAttrs.startMaxPool2dAttrs(b);
      encodeWindow(b, fb.MaxPool2dAttrs, a, fail);
      return fb.MaxPool2dAttrs.endMaxPool2dAttrs(b);
    },
    decode(node) {
      const t = node.attrs(new fb.MaxPool2dAttrs())!;
      return present({
        kernel: readPair(t.kernel()),
        strides: readPair(t.strides()),
        pads: readPads(t.pads()),
        ceilMode: t.ceilMode(),
      });
    },
  },
  AvgPool2d: {
    type: fb.Attrs.AvgPool2dAttrs,
    encode(b, a, fail) {
      fb.AvgPool2dAttrs.startAvgPool2dAttrs(b);
      encodeWindow(b, fb.AvgPool2dAttrs, a, fail);
      fb.AvgPool2dAttrs.addCountIncludePad(b, bool(a.countIncludePad, "countIncludePad", fail));
      return fb.AvgPool2dAttrs.endAvgPool2dAttrs(b);
    },
    decode(node) {
      const t = node.attrs(new fb.AvgPool2dAttrs())!;
      return present({
        kernel: readPair(t.kernel()),
        strides: readPair(t.strides()),
        pads: readPads(t.pads()),
        ceilMode: t.ceilMode(),
        countIncludePad: t.countIncludePad(),
      });
    },
  },
  GlobalAvgPool: null,
  Concat: axisCodec(fb.Attrs.ConcatAttrs, {
    start: fb.ConcatAttrs.startConcatAttrs,
    add: fb.ConcatAttrs.addAxis,
    end: fb.ConcatAttrs.endConcatAttrs,
    read: (node) => node.attrs(new fb.ConcatAttrs()),
  }),
  Flatten: axisCodec(fb.Attrs.FlattenAttrs, {
    start: fb.FlattenAttrs.startFlattenAttrs,
    add: fb.FlattenAttrs.addAxis,
    end: fb.FlattenAttrs.endFlattenAttrs,
    read: (node) => node.attrs(new fb.FlattenAttrs()),
  }),
  Reshape: {
    type: fb.Attrs.ReshapeAttrs,
    encode(b, a, fail) {
      const T = fb.ReshapeAttrs;
      const shape = T.createShapeVector(
        b,
        list(a.shape, "shape", fail).map((d) => int64(d, "shape", fail)),
      );
      T.startReshapeAttrs(b);
      T.addShape(b, shape);
      return T.endReshapeAttrs(b);
    },
    decode(node) {
      const t = node.attrs(new fb.ReshapeAttrs())!;
      return present({ shape: readInts(t.shapeLength(), hasField(t, 0), (i) => t.shape(i)) });
    },
  },
  Transpose: {
    type: fb.Attrs.TransposeAttrs,
    encode(b, a, fail) {
      const T = fb.TransposeAttrs;
      const perm = T.createPermVector(
        b,
        list(a.perm, "perm", fail).map((p) => int32(p, "perm", fail)),
      );
      T.startTransposeAttrs(b);
      T.addPerm(b, perm);
      return T.endTransposeAttrs(b);
    },
    decode(node) {
      const t = node.attrs(new fb.TransposeAttrs())!;
      return present({ perm: readInts(t.permLength(), hasField(t, 0), (i) => t.perm(i)) });
    },
  },
  Slice: {
    type: fb.Attrs.SliceAttrs,
    encode(b, a, fail) {
      const T = fb.SliceAttrs;
      const axes = T.createAxesVector(
        b,
        list(a.axes, "axes", fail).map((v) => int32(v, "axes", fail)),
      );
      const longs = (v: number[], what: string) =>
        list(v, what, fail).map((x) => int64(x, what, fail));
      const starts = T.createStartsVector(b, longs(a.starts, "starts"));
      const ends = T.createEndsVector(b, longs(a.ends, "ends"));
      const steps = T.createStepsVector(b, longs(a.steps, "steps"));
      T.startSliceAttrs(b);
      T.addAxes(b, axes);
      T.addStarts(b, starts);
      T.addEnds(b, ends);
      T.addSteps(b, steps);
      return T.endSliceAttrs(b);
    },
    decode(node) {
      const t = node.attrs(new fb.SliceAttrs())!;
      return present({
        axes: readInts(t.axesLength(), hasField(t, 0), (i) => t.axes(i)),
        starts: readInts(t.startsLength(), hasField(t, 1), (i) => t.starts(i)),
        ends: readInts(t.endsLength(), hasField(t, 2), (i) => t.ends(i)),
        steps: readInts(t.stepsLength(), hasField(t, 3), (i) => t.steps(i)),
      });
    },
  },
  Gemm: {
    type: fb.Attrs.GemmAttrs,
    encode(b, a, fail) {
      const T = fb.GemmAttrs;
      T.startGemmAttrs(b);
      T.addTransB(b, bool(a.transB, "transB", fail));
      T.addAlpha(b, float(a.alpha, "alpha", fail));
      T.addBeta(b, float(a.beta, "beta", fail));
      encodeActivation(b, T, a, fail);
      return T.endGemmAttrs(b);
    },
    decode(node, fail) {
      const t = node.attrs(new fb.GemmAttrs())!;
      return {
        ...present<{ transB: boolean; alpha: number; beta: number }>({
          transB: t.transB(),
          alpha: t.alpha(),
          beta: t.beta(),
        }),
        ...decodeActivation(t, fail),
      };
    },
  },
  MatMul: {
    type: fb.Attrs.MatMulAttrs,
    encode(b, a, fail) {
      fb.MatMulAttrs.startMatMulAttrs(b);
      fb.MatMulAttrs.addTransB(b, bool(a.transB, "transB", fail));
      fb.MatMulAttrs.addAlpha(b, float(a.alpha, "alpha", fail));
      return fb.MatMulAttrs.endMatMulAttrs(b);
    },
    decode(node) {
      const t = node.attrs(new fb.MatMulAttrs())!;
      return present<AttrsByOp["MatMul"]>({ transB: t.transB(), alpha: t.alpha() });
    },
  },
  Softmax: axisCodec(fb.Attrs.SoftmaxAttrs, {
    start: fb.SoftmaxAttrs.startSoftmaxAttrs,
    add: fb.SoftmaxAttrs.addAxis,
    end: fb.SoftmaxAttrs.endSoftmaxAttrs,
    read: (node) => node.attrs(new fb.SoftmaxAttrs()),
  }),
  LayerNorm: {
    type: fb.Attrs.LayerNormAttrs,
    encode(b, a, fail) {
      fb.LayerNormAttrs.startLayerNormAttrs(b);
      fb.LayerNormAttrs.addAxis(b, int32(a.axis, "axis", fail));
      fb.LayerNormAttrs.addEpsilon(b, float(a.epsilon, "epsilon", fail));
      return fb.LayerNormAttrs.endLayerNormAttrs(b);
    },
    decode(node) {
      const t = node.attrs(new fb.LayerNormAttrs())!;
      return present<AttrsByOp["LayerNorm"]>({ axis: t.axis(), epsilon: t.epsilon() });
    },
  },
  Gather: axisCodec(fb.Attrs.GatherAttrs, {
    start: fb.GatherAttrs.startGatherAttrs,
    add: fb.GatherAttrs.addAxis,
    end: fb.GatherAttrs.endGatherAttrs,
    read: (node) => node.attrs(new fb.GatherAttrs()),
  }),
  Identity: null,
  Dropout: {
    type: fb.Attrs.DropoutAttrs,
    encode(b, a, fail) {
      fb.DropoutAttrs.startDropoutAttrs(b);
      fb.DropoutAttrs.addRatio(b, float(a.ratio, "ratio", fail));
      return fb.DropoutAttrs.endDropoutAttrs(b);
    },
    decode: (node) =>
      present<AttrsByOp["Dropout"]>({ ratio: node.attrs(new fb.DropoutAttrs())!.ratio() }),
  },
};

/** Whether field `index` (in schema order) of a generated table is present. */
function hasField(t: { bb: flatbuffers.ByteBuffer | null; bb_pos: number }, index: number) {
  return t.bb!.__offset(t.bb_pos, 4 + 2 * index) !== 0;
}

// ------------------------------------------------------------------------------ entry points

/**
 * Writes a node's attributes (defaults filled in first). Returns the union type and the table's
 * offset (0 with NONE). An unknown op can only be written without attributes.
 */
export function encodeAttrs(
  b: Builder,
  op: string,
  attrs: object,
  fail: Fail,
): { type: fb.Attrs; offset: Offset } {
  if (!isOpName(op)) {
    if (Object.keys(attrs).length > 0) fail(`cannot store attributes of unknown op "${op}"`);
    return { type: fb.Attrs.NONE, offset: 0 };
  }
  const codec = CODECS[op] as Codec<OpName> | null;
  if (!codec) return { type: fb.Attrs.NONE, offset: 0 };
  const full = withDefaults(op, attrs as Partial<AttrsByOp[OpName]>);
  return { type: codec.type, offset: codec.encode(b, full, fail) };
}

/**
 * Reads a node's attributes, filling defaults. An unknown op gets `{}` whatever it carries
 * (validation reports it as UNKNOWN_OP); a known op whose union member is not its own fails.
 */
export function decodeAttrs(node: fb.Node, op: string, fail: Fail): AttrsByOp[OpName] {
  if (!isOpName(op)) return {} as AttrsByOp[OpName];
  const type = node.attrsType();
  if (type === fb.Attrs.NONE) return withDefaults(op, {});
  const codec = CODECS[op] as Codec<OpName> | null;
  const name = (t: fb.Attrs) => fb.Attrs[t] ?? `unknown attribute type ${t}`;
  if (!codec) fail(`op ${op} takes no attributes but carries ${name(type)}`);
  if (type !== codec.type) fail(`op ${op} carries ${name(type)}, expected ${name(codec.type)}`);
  if (!hasField(node, 5)) fail(`attribute type is ${name(type)} but the table is missing`);
  return withDefaults(op, codec.decode(node, fail));
}
