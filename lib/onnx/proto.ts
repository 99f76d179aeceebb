/**
 * Decoding ONNX files: protobufjs reflection over ONNX's own schema (lib/onnx/onnx.proto, compiled
 * to the descriptor in generated/). The interfaces below name the fields braid reads; protobufjs
 * fills absent scalars with their defaults ("" and 0) and absent repeated fields with [].
 *
 * `bytes` fields (raw_data, attribute strings) decode as subarray views on the input bytes: no
 * weight is copied while decoding. 64-bit integers decode as Long objects; `toNumber` reads them.
 */
import protobuf from "protobufjs";
import { BraidError } from "../errors.ts";
import descriptor from "./generated/onnx_descriptor.ts";

/** A protobufjs 64-bit integer (long.js), or a plain number where it fits. */
export type Int64 = number | { toNumber(): number };

/** A 64-bit integer as a JS number (values beyond ±2^53 lose precision; ONNX uses ±2^63 as ∞). */
export function toNumber(v: Int64): number {
  return typeof v === "number" ? v : v.toNumber();
}

export interface StringStringEntry {
  key: string;
  value: string;
}

/** TensorProto.DataType codes braid knows by name. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;

/** The name of a TensorProto.DataType code, for messages. */
export function dataTypeName(code: number): string {
  const name = Object.entries(DataType).find(([, v]) => v === code)?.[0];
  return name ?? `data type ${code}`;
}

export interface TensorProto {
  dims: Int64[];
  dataType: number;
  floatData: number[];
  int32Data: number[];
  int64Data: Int64[];
  doubleData: number[];
  uint64Data: Int64[];
  stringData: Uint8Array[];
  name: string;
  rawData: Uint8Array;
  externalData: StringStringEntry[];
  /** 1 (EXTERNAL): the data is in a file beside the model, named by externalData. */
  dataLocation: number;
}

/** AttributeProto.AttributeType codes. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
} as const;

export interface AttributeProto {
  name: string;
  type: number;
  f: number;
  i: Int64;
  s: Uint8Array;
  t?: TensorProto;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
}

export interface NodeProto {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  domain: string;
  attribute: AttributeProto[];
}

export interface Dimension {
  dimValue?: Int64;
  dimParam?: string;
}

export interface ValueInfoProto {
  name: string;
  type?: {
    tensorType?: { elemType: number; shape?: { dim: Dimension[] } };
  };
}

export interface GraphProto {
  node: NodeProto[];
  name: string;
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
}

export interface OperatorSetId {
  domain: string;
  version: Int64;
}

export interface ModelProto {
  irVersion: Int64;
  opsetImport: OperatorSetId[];
  producerName: string;
  producerVersion: string;
  graph?: GraphProto;
}

const root = protobuf.Root.fromJSON(descriptor as unknown as protobuf.INamespace);
const ModelType = root.lookupType("onnx.ModelProto");

/**
 * Decodes an ONNX ModelProto. Throws BraidError MALFORMED_FILE, naming `source`, when the bytes
 * are not a protobuf message of that schema or hold no graph.
 */
export function decodeModelProto(bytes: Uint8Array, source: string): ModelProto {
  let model: ModelProto;
  try {
    model = ModelType.decode(bytes) as unknown as ModelProto;
  } catch (e) {
    throw new BraidError(
      "MALFORMED_FILE",
      `${source}: not a valid ONNX file (protobuf decoding failed: ${(e as Error).message})`,
      { cause: e },
    );
  }
  if (!model.graph) {
    throw new BraidError("MALFORMED_FILE", `${source}: the ONNX model has no graph`);
  }
  return model;
}

/** The protobufjs message type of ModelProto, for tests that encode their own files. */
export const modelProtoType: protobuf.Type = ModelType;
