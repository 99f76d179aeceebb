/**
 * ONNX tensors (initializers and constants) as the importer holds them: an element type, a shape
 * and the values.
 *
 * FLOAT data stays a Float32Array view on the bytes it was read from (the model file, or an
 * external data file beside it) whenever those bytes start on a 4-byte boundary: no copy. Only
 * unaligned raw data, the typed fields (float_data, int32_data, ...) and other element types are
 * converted. Every other numeric type is held as a Float64Array of its values (integers exactly
 * up to 2^53; ONNX writes ±2^63 for "no bound", which stays far beyond any dimension), booleans as
 * 0 and 1. FLOAT16 and BFLOAT16 are widened to FLOAT: braid computes in fp32.
 */
import { BraidError } from "../errors.ts";
import { numel, shapeString } from "../ir/graph.ts";
import { DataType, dataTypeName, type TensorProto, toNumber } from "./proto.ts";

export interface ConstTensor {
  /** TensorProto.DataType code. */
  type: number;
  shape: number[];
  /** FLOAT: Float32Array; every other type: Float64Array. */
  data: Float32Array | Float64Array;
}

/** External data files by their `location`, read before decoding (see importer.ts). */
export type ExternalFiles = Map<string, Uint8Array>;

const EXTERNAL = 1;

/** Element sizes of the types braid decodes from raw bytes. */
const ELEMENT_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.DOUBLE]: 8,
  [DataType.INT64]: 8,
  [DataType.UINT64]: 8,
  [DataType.INT32]: 4,
  [DataType.UINT32]: 4,
  [DataType.INT16]: 2,
  [DataType.UINT16]: 2,
  [DataType.FLOAT16]: 2,
  [DataType.BFLOAT16]: 2,
  [DataType.INT8]: 1,
  [DataType.UINT8]: 1,
  [DataType.BOOL]: 1,
};

export const isFloatType = (type: number) => type === DataType.FLOAT || type === DataType.DOUBLE;

/** The external_data entries braid reads: where the bytes are. */
export function externalLocation(
  t: TensorProto,
): { location: string; offset: number; length?: number } {
  const entry = (key: string) => t.externalData.find((e) => e.key === key)?.value;
  const location = entry("location") ?? "";
  const offset = Number(entry("offset") ?? 0);
  const length = entry("length");
  return { location, offset, length: length === undefined ? undefined : Number(length) };
}

/** Whether a tensor keeps its data in a file beside the model. */
export const isExternal = (t: TensorProto) => t.dataLocation === EXTERNAL;

/** Decodes a TensorProto. `what` names it in messages (e.g. `initializer "w" of model.onnx`). */
export function decodeTensor(t: TensorProto, what: string, external: ExternalFiles): ConstTensor {
  const shape = t.dims.map(toNumber);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new BraidError("BAD_INITIALIZER", `${what} has invalid dimensions ${shapeString(shape)}`);
  }
  const count = numel(shape);
  const type = t.dataType;
  if (!(type in ELEMENT_BYTES)) {
    throw new BraidError(
      "BAD_INITIALIZER",
      `${what} has element type ${dataTypeName(type)}, which braid does not read`,
    );
  }
  const raw = isExternal(t) ? externalBytes(t, what, external) : t.rawData;
  if (isExternal(t) || raw.length > 0) {
    const expected = count * ELEMENT_BYTES[type];
    if (raw.length !== expected) {
      throw new BraidError(
        "BAD_INITIALIZER",
        `${what} holds ${raw.length} bytes of data; ${dataTypeName(type)} ` +
          `${shapeString(shape)} needs ${expected}`,
      );
    }
    return fromBytes(type, shape, raw);
  }
  return fromTypedField(t, type, shape, count, what);
}

function externalBytes(t: TensorProto, what: string, external: ExternalFiles): Uint8Array {
  const { location, offset, length } = externalLocation(t);
  const file = external.get(location);
  if (!file) {
    throw new BraidError(
      "MISSING_WEIGHT",
      `${what}: external data file "${location}" was not read`,
    );
  }
  const end = length === undefined ? file.length : offset + length;
  if (!(Number.isSafeInteger(offset) && offset >= 0 && end <= file.length && end >= offset)) {
    throw new BraidError(
      "BAD_INITIALIZER",
      `${what}: bytes ${offset}..${end} are outside external data file "${location}" ` +
        `(${file.length} bytes)`,
    );
  }
  return file.subarray(offset, end);
}

/** A copy in a buffer of its own (a Node Buffer's slice() would be a view). */
const copyOf = (bytes: Uint8Array) => new Uint8Array(bytes);

/** Little-endian bytes → values. FLOAT (and DOUBLE) are views when aligned. */
function fromBytes(type: number, shape: number[], bytes: Uint8Array): ConstTensor {
  const count = numel(shape);
  if (type === DataType.FLOAT) {
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : copyOf(bytes);
    return { type, shape, data: new Float32Array(aligned.buffer, aligned.byteOffset, count) };
  }
  if (type === DataType.DOUBLE) {
    const aligned = bytes.byteOffset % 8 === 0 ? bytes : copyOf(bytes);
    return { type, shape, data: new Float64Array(aligned.buffer, aligned.byteOffset, count) };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (type === DataType.FLOAT16 || type === DataType.BFLOAT16) {
    const data = new Float32Array(count);
    const widen = type === DataType.FLOAT16 ? halfToFloat : bfloat16ToFloat;
    for (let i = 0; i < count; i++) data[i] = widen(view.getUint16(2 * i, true));
    return { type: DataType.FLOAT, shape, data };
  }
  const read: Record<number, (i: number) => number> = {
    [DataType.INT64]: (i) => Number(view.getBigInt64(8 * i, true)),
    [DataType.UINT64]: (i) => Number(view.getBigUint64(8 * i, true)),
    [DataType.INT32]: (i) => view.getInt32(4 * i, true),
    [DataType.UINT32]: (i) => view.getUint32(4 * i, true),
    [DataType.INT16]: (i) => view.getInt16(2 * i, true),
    [DataType.UINT16]: (i) => view.getUint16(2 * i, true),
    [DataType.INT8]: (i) => view.getInt8(i),
    [DataType.UINT8]: (i) => view.getUint8(i),
    [DataType.BOOL]: (i) => (view.getUint8(i) ? 1 : 0),
  };
  const data = new Float64Array(count);
  for (let i = 0; i < count; i++) data[i] = read[type](i);
  return { type, shape, data };
}

/** The typed field each element type keeps its values in when there is no raw_data. */
function fromTypedField(
  t: TensorProto,
  type: number,
  shape: number[],
  count: number,
  what: string,
): ConstTensor {
  let values: ArrayLike<number>;
  let out = type;
  switch (type) {
    case DataType.FLOAT:
      values = t.floatData;
      break;
    case DataType.DOUBLE:
      values = t.doubleData;
      break;
    case DataType.INT64:
      values = t.int64Data.map(toNumber);
      break;
    case DataType.UINT32:
    case DataType.UINT64:
      values = t.uint64Data.map(toNumber);
      break;
    case DataType.FLOAT16:
    case DataType.BFLOAT16: {
      const widen = type === DataType.FLOAT16 ? halfToFloat : bfloat16ToFloat;
      values = t.int32Data.map((bits) => widen(bits & 0xffff));
      out = DataType.FLOAT;
      break;
    }
    case DataType.BOOL:
      values = t.int32Data.map((v) => (v ? 1 : 0));
      break;
    default: // INT32, INT16, INT8, UINT16, UINT8
      values = t.int32Data;
  }
  if (values.length !== count) {
    throw new BraidError(
      "BAD_INITIALIZER",
      `${what} holds ${values.length} values; ${dataTypeName(type)} ${shapeString(shape)} ` +
        `needs ${count}`,
    );
  }
  const data = out === DataType.FLOAT ? Float32Array.from(values) : Float64Array.from(values);
  return { type: out, shape, data };
}

/** IEEE half-precision bits → float. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** bfloat16 bits (the high half of a float32) → float. */
function bfloat16ToFloat(b: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, b << 16);
  return view.getFloat32(0);
}

/** The values as float32: the tensor's own array when it is FLOAT (no copy). */
export function asFloat32(t: ConstTensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
}

/** The values as int32 (ONNX int64 indices and ids become braid's int32); `what` for errors. */
export function asInt32(t: ConstTensor, what: string): Int32Array {
  const out = new Int32Array(t.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = t.data[i];
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
      throw new BraidError("BAD_INITIALIZER", `${what}: value ${v} does not fit in int32`);
    }
    out[i] = v;
  }
  return out;
}

/** A constant's values as plain integers (shape arguments: pads, axes, starts, ...). */
export function asIntegers(t: ConstTensor): number[] {
  return Array.from(t.data, (v) => Math.trunc(v));
}
