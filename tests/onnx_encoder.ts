/**
 * A small ONNX writer for the tests: builds ModelProto messages as plain objects and encodes them
 * with protobufjs over the same schema the importer decodes (lib/onnx/onnx.proto), so the tests
 * make their own .onnx files instead of shipping binary fixtures.
 *
 *   const bytes = encodeOnnx({
 *     nodes: [node("Relu", ["x"], ["y"])],
 *     inputs: [input("x", [1, 4])],
 *     outputs: ["y"],
 *   });
 */
import { DataType, modelProtoType } from "../lib/onnx/proto.ts";

export { DataType };

export interface AttributeObject {
  name: string;
  type: number;
  [field: string]: unknown;
}

// AttributeProto.AttributeType codes.
export const int = (name: string, i: number): AttributeObject => ({ name, type: 2, i });
export const ints = (name: string, v: number[]): AttributeObject => ({ name, type: 7, ints: v });
export const float = (name: string, f: number): AttributeObject => ({ name, type: 1, f });
export const floats = (name: string, v: number[]): AttributeObject => ({
  name,
  type: 6,
  floats: v,
});
export const str = (name: string, s: string): AttributeObject => ({
  name,
  type: 3,
  s: new TextEncoder().encode(s),
});
export const tensorAttr = (name: string, t: TensorObject): AttributeObject => ({
  name,
  type: 4,
  t,
});

export interface NodeObject {
  opType: string;
  input: string[];
  output: string[];
  name: string;
  domain?: string;
  attribute: AttributeObject[];
}

let nodeCounter = 0;
export function node(
  opType: string,
  input: string[],
  output: string[],
  attribute: AttributeObject[] = [],
  name = `${opType.toLowerCase()}_${nodeCounter++}`,
): NodeObject {
  return { opType, input, output, name, attribute };
}

export type TensorObject = Record<string, unknown>;

/** A JS number as int64, saturating: ±2^63 as a number (ONNX's "no bound") would wrap. */
function int64(v: number): bigint {
  const big = BigInt(v);
  const [lo, hi] = [-(2n ** 63n), 2n ** 63n - 1n];
  return big < lo ? lo : big > hi ? hi : big;
}

/** Little-endian bytes of `values` as an ONNX element type. */
export function rawBytes(type: number, values: ArrayLike<number>): Uint8Array {
  const size: Record<number, number> = {
    [DataType.FLOAT]: 4,
    [DataType.DOUBLE]: 8,
    [DataType.INT64]: 8,
    [DataType.INT32]: 4,
    [DataType.BOOL]: 1,
    [DataType.UINT8]: 1,
    [DataType.INT8]: 1,
  };
  const out = new Uint8Array(values.length * size[type]);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (type === DataType.FLOAT) view.setFloat32(4 * i, v, true);
    else if (type === DataType.DOUBLE) view.setFloat64(8 * i, v, true);
    else if (type === DataType.INT64) view.setBigInt64(8 * i, int64(v), true);
    else if (type === DataType.INT32) view.setInt32(4 * i, v, true);
    else if (type === DataType.INT8) view.setInt8(i, v);
    else view.setUint8(i, v);
  }
  return out;
}

/**
 * A TensorProto. `layout`: "raw" (raw_data, the default), "typed" (float_data, int32_data,
 * int64_data or double_data by type) or an external location in a file beside the model.
 */
export function tensor(
  name: string,
  type: number,
  dims: number[],
  values: ArrayLike<number>,
  layout: "raw" | "typed" | { location: string; offset: number; length: number } = "raw",
): TensorObject {
  const t: TensorObject = { name, dataType: type, dims };
  if (layout === "raw") t.rawData = rawBytes(type, values);
  else if (layout === "typed") {
    const field = type === DataType.FLOAT
      ? "floatData"
      : type === DataType.DOUBLE
      ? "doubleData"
      : type === DataType.INT64
      ? "int64Data"
      : "int32Data";
    t[field] = Array.from(values);
  } else {
    t.dataLocation = 1;
    t.externalData = [
      { key: "location", value: layout.location },
      { key: "offset", value: String(layout.offset) },
      { key: "length", value: String(layout.length) },
    ];
  }
  return t;
}

export const floats32 = (name: string, dims: number[], values: ArrayLike<number>) =>
  tensor(name, DataType.FLOAT, dims, values);
export const int64s = (name: string, dims: number[], values: ArrayLike<number>) =>
  tensor(name, DataType.INT64, dims, values);

/** A graph input or output: element type and dimensions (a string is a symbolic dimension). */
export function valueInfo(
  name: string,
  dims: (number | string)[],
  elemType: number = DataType.FLOAT,
): Record<string, unknown> {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

export const input = valueInfo;

export interface ModelSpec {
  nodes: NodeObject[];
  inputs: Record<string, unknown>[];
  /** Output names (their types are not needed by the importer). */
  outputs: string[];
  initializers?: TensorObject[];
  opset?: number;
  name?: string;
}

/** The ModelProto as an object (to tamper with before encoding). */
export function modelObject(spec: ModelSpec): Record<string, unknown> {
  return {
    irVersion: 8,
    producerName: "braid tests",
    opsetImport: [{ domain: "", version: spec.opset ?? 17 }],
    graph: {
      name: spec.name ?? "test",
      node: spec.nodes,
      input: spec.inputs,
      output: spec.outputs.map((name) => ({ name })),
      initializer: spec.initializers ?? [],
    },
  };
}

export function encodeObject(model: Record<string, unknown>): Uint8Array {
  return modelProtoType.encode(modelProtoType.fromObject(model)).finish();
}

export function encodeOnnx(spec: ModelSpec): Uint8Array {
  return encodeObject(modelObject(spec));
}
