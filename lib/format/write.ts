/**
 * Writes a Graph as a braid model file (schema: lib/format/model.fbs).
 *
 * Layout: the weight blob is built first, so it lies at the end of the file; its first byte and
 * every initializer in it start on a 64-byte boundary of the file, and its length is a multiple
 * of 64 (a truncated file always loses weight bytes, which the reader notices). The output is
 * deterministic: values, nodes and initializers are written in the graph's stored order, every
 * attribute field is written, and equal strings are stored once.
 *
 * Tensor bytes are copied as they are in memory, i.e. little-endian on every platform Deno runs on.
 */
import * as flatbuffers from "flatbuffers";
import { BraidError } from "../errors.ts";
import type { DType, Graph, Tensor } from "../ir/graph.ts";
import { encodeAttrs } from "./attrs.ts";
import * as fb from "./generated/model_generated.ts";

/** The 4-byte file identifier at bytes 4..8 of every braid model file. */
export const FILE_IDENTIFIER = "BRAD";
/** The schema version this braid writes and reads. */
export const SCHEMA_VERSION = 1;
/** Alignment (bytes, within the file) of the weight blob and of every initializer in it. */
export const WEIGHT_ALIGNMENT = 64;

export const DTYPE_TO_FB: Record<DType, fb.DType> = {
  float32: fb.DType.Float32,
  int32: fb.DType.Int32,
  int64: fb.DType.Int64,
  float16: fb.DType.Float16,
  bfloat16: fb.DType.BFloat16,
};

const alignUp = (n: number) => Math.ceil(n / WEIGHT_ALIGNMENT) * WEIGHT_ALIGNMENT;

/** The bytes of an initializer, checked against its dtype. */
function tensorBytes(name: string, t: Tensor): Uint8Array {
  const ok = (t.dtype === "float32" && t.data instanceof Float32Array) ||
    (t.dtype === "int32" && t.data instanceof Int32Array);
  if (!ok) {
    throw new BraidError(
      "BAD_INITIALIZER",
      `initializer "${name}": cannot store ${t.dtype} data held in a ` +
        `${t.data?.constructor?.name ?? typeof t.data} (braid stores float32 in Float32Array ` +
        `and int32 in Int32Array)`,
    );
  }
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function dims(shape: readonly number[], what: string): bigint[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new BraidError("SHAPE_MISMATCH", `${what} has invalid shape [${shape}]`);
  }
  return shape.map((d) => BigInt(d));
}

/** Encodes `graph` as a braid model file. The same graph always gives the same bytes. */
export function encodeModel(graph: Graph, producer = "braid"): Uint8Array {
  // Lay out the blob: each initializer on a 64-byte boundary, the total padded to one too.
  const layout: { name: string; tensor: Tensor; bytes: Uint8Array; offset: number }[] = [];
  let cursor = 0;
  for (const [name, tensor] of graph.initializers) {
    const bytes = tensorBytes(name, tensor);
    const offset = alignUp(cursor);
    layout.push({ name, tensor, bytes, offset });
    cursor = offset + bytes.length;
  }
  const blob = new Uint8Array(alignUp(cursor));
  for (const { bytes, offset } of layout) blob.set(bytes, offset);

  // Room for the blob and a generous guess at the metadata, so the builder rarely has to grow
  // (growing copies the whole buffer, weights included).
  const entries = graph.values.size + graph.nodes.length + graph.initializers.size;
  const b = new flatbuffers.Builder(blob.length + 64 * 1024 + 512 * entries);
  // Attribute fields are optional scalars whose generated adders compare against 0: force every
  // field to be written, so that a 0 is stored rather than read back as "absent".
  b.forceDefaults(true);

  // The blob first: the builder writes back to front, so it ends up last in the file. Aligning
  // its end-relative position to 64 makes it 64-aligned in the finished file (finish() pads the
  // whole buffer to the largest alignment used).
  b.prep(WEIGHT_ALIGNMENT, blob.length);
  const weights = b.createByteVector(blob);

  const strings = new Map<string, flatbuffers.Offset>();
  const str = (s: string): flatbuffers.Offset => {
    let o = strings.get(s);
    if (o === undefined) strings.set(s, o = b.createString(s));
    return o;
  };
  const strVector = (items: readonly string[]) => {
    const offsets = items.map(str);
    b.startVector(4, offsets.length, 4);
    for (let i = offsets.length - 1; i >= 0; i--) b.addOffset(offsets[i]);
    return b.endVector();
  };
  const dtypeOf = (dtype: DType, what: string): fb.DType => {
    if (!Object.hasOwn(DTYPE_TO_FB, dtype)) {
      throw new BraidError("BAD_INITIALIZER", `${what} has unknown dtype "${dtype}"`);
    }
    return DTYPE_TO_FB[dtype];
  };

  const values = [...graph.values.values()].map((v) => {
    const name = str(v.name);
    const shape = fb.Value.createShapeVector(b, dims(v.shape, `value "${v.name}"`));
    fb.Value.startValue(b);
    fb.Value.addName(b, name);
    fb.Value.addDtype(b, dtypeOf(v.dtype, `value "${v.name}"`));
    fb.Value.addShape(b, shape);
    return fb.Value.endValue(b);
  });

  const nodes = graph.nodes.map((n) => {
    const name = str(n.name);
    const op = str(n.op);
    const inputs = strVector(n.inputs);
    const outputs = strVector(n.outputs);
    const attrs = encodeAttrs(b, n.op, n.attrs ?? {}, (message) => {
      throw new BraidError("BAD_ATTRIBUTE", `node "${n.name}" (${n.op}): ${message}`);
    });
    fb.Node.startNode(b);
    fb.Node.addName(b, name);
    fb.Node.addOp(b, op);
    fb.Node.addInputs(b, inputs);
    fb.Node.addOutputs(b, outputs);
    fb.Node.addAttrsType(b, attrs.type);
    if (attrs.offset !== 0) fb.Node.addAttrs(b, attrs.offset);
    return fb.Node.endNode(b);
  });

  const initializers = layout.map(({ name, tensor, bytes, offset }) => {
    const nameOffset = str(name);
    const shape = fb.Initializer.createShapeVector(b, dims(tensor.shape, `initializer "${name}"`));
    fb.Initializer.startInitializer(b);
    fb.Initializer.addName(b, nameOffset);
    fb.Initializer.addDtype(b, DTYPE_TO_FB[tensor.dtype]);
    fb.Initializer.addShape(b, shape);
    fb.Initializer.addOffset(b, BigInt(offset));
    fb.Initializer.addLength(b, BigInt(bytes.length));
    return fb.Initializer.endInitializer(b);
  });

  const name = str(graph.name);
  const producerOffset = str(producer);
  const inputs = strVector(graph.inputs);
  const outputs = strVector(graph.outputs);
  const valuesVector = fb.Model.createValuesVector(b, values);
  const nodesVector = fb.Model.createNodesVector(b, nodes);
  const initializersVector = fb.Model.createInitializersVector(b, initializers);
  const model = fb.Model.createModel(
    b,
    SCHEMA_VERSION,
    name,
    producerOffset,
    inputs,
    outputs,
    valuesVector,
    nodesVector,
    initializersVector,
    weights,
  );
  fb.Model.finishModelBuffer(b, model);
  // A compact copy: the builder's buffer has unused space in front of the data.
  return b.asUint8Array().slice();
}
