/**
 * Reads a braid model file into a Graph without copying the weights: every initializer's data is
 * a Float32Array or Int32Array view on the file's bytes.
 *
 * The npm flatbuffers runtime has no verifier and reads out of range as `undefined` (i.e. 0), so
 * the reader brings its own checks:
 *  - every read goes through CheckedByteBuffer, which throws on a byte outside the file;
 *  - every vector and string is checked to lie inside the file before it is used, and its length
 *    is charged against a budget proportional to the file size, so no loop or allocation can
 *    grow beyond O(file size) even when a corrupted file makes structures overlap;
 *  - enums, union tags, shapes and initializer ranges are checked here.
 * Anything unexpected becomes BraidError("MALFORMED_FILE") naming the source. The graph is not
 * validated semantically (unknown ops, dangling values, shapes): that is lib/ir/validate.ts.
 */
import * as flatbuffers from "flatbuffers";
import { BraidError } from "../errors.ts";
import { type DType, DTYPE_SIZE, Graph, type Node, type Tensor, type Value } from "../ir/graph.ts";
import type { OpName } from "../ir/ops.ts";
import { decodeAttrs } from "./attrs.ts";
import * as fb from "./generated/model_generated.ts";
import { DTYPE_TO_FB, FILE_IDENTIFIER, SCHEMA_VERSION } from "./write.ts";

const FB_TO_DTYPE = new Map(Object.entries(DTYPE_TO_FB).map(([k, v]) => [v, k as DType]));

/** A problem found while reading; becomes MALFORMED_FILE with the source prepended. */
class Malformed extends Error {}

/**
 * A ByteBuffer that refuses to read outside its bytes, checks vectors and strings, decodes
 * strings strictly (invalid UTF-8 is an error) and charges every vector and string against a
 * work budget.
 */
class CheckedByteBuffer extends flatbuffers.ByteBuffer {
  readonly #size: number;
  #budget: number;
  readonly #strings = new Map<number, string>();
  readonly #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  constructor(bytes: Uint8Array) {
    super(bytes);
    this.#size = bytes.length;
    // A well-formed file holds each vector element and string byte once: total <= file size.
    this.#budget = 2 * bytes.length + 1024;
  }

  #check(offset: number, size: number): void {
    if (!(offset >= 0 && offset + size <= this.#size)) {
      throw new Malformed(
        `a ${size}-byte read at byte ${offset} is outside the ${this.#size}-byte file ` +
          `(truncated or corrupted)`,
      );
    }
  }

  #charge(n: number): void {
    this.#budget -= n;
    if (this.#budget < 0) {
      throw new Malformed("its tables reference more data than the file holds (overlapping data)");
    }
  }

  override readUint8(offset: number): number {
    this.#check(offset, 1);
    return super.readUint8(offset);
  }

  override readUint16(offset: number): number {
    this.#check(offset, 2);
    return super.readUint16(offset);
  }

  override readInt32(offset: number): number {
    this.#check(offset, 4);
    return super.readInt32(offset);
  }

  /** A vector's length, checked to fit in the file (elements are at least 1 byte) and charged. */
  override __vector_len(offset: number): number {
    const vector = offset + this.readInt32(offset);
    const length = this.readInt32(vector);
    if (length < 0 || vector + 4 + length > this.#size) {
      throw new Malformed(
        `a vector at byte ${vector} claims ${length >>> 0} elements, more than the ` +
          `${this.#size}-byte file holds (truncated or corrupted)`,
      );
    }
    this.#charge(length);
    return length;
  }

  override __string(offset: number, encoding?: flatbuffers.Encoding): string | Uint8Array {
    const at = offset + this.readInt32(offset);
    const length = this.readInt32(at);
    if (length < 0 || at + 4 + length > this.#size) {
      throw new Malformed(
        `a string at byte ${at} claims ${length >>> 0} bytes, more than the ` +
          `${this.#size}-byte file holds (truncated or corrupted)`,
      );
    }
    const bytes = this.bytes().subarray(at + 4, at + 4 + length);
    if (encoding === flatbuffers.Encoding.UTF8_BYTES) return bytes;
    let s = this.#strings.get(at);
    if (s === undefined) {
      this.#charge(length);
      try {
        s = this.#decoder.decode(bytes);
      } catch {
        throw new Malformed(`the string at byte ${at} is not valid UTF-8`);
      }
      this.#strings.set(at, s);
    }
    return s;
  }
}

const text = (s: string | null, what: string): string => {
  if (s === null) throw new Malformed(`${what} is missing`);
  return s;
};

/** Reads a shape: each dimension a non-negative safe integer. */
function readShape(
  t: { shapeLength(): number; shape(i: number): bigint | null },
  what: string,
): number[] {
  const rank = t.shapeLength();
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) {
    const d = t.shape(i)!;
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new Malformed(`${what} has an invalid dimension ${d}`);
    }
    shape.push(Number(d));
  }
  return shape;
}

function readDType(code: fb.DType, what: string): DType {
  const dtype = FB_TO_DTYPE.get(code);
  if (dtype === undefined) throw new Malformed(`${what} has unknown dtype code ${code}`);
  return dtype;
}

function readStrings(
  length: number,
  at: (i: number) => string | null,
  what: string,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < length; i++) out.push(text(at(i), `${what} ${i}`));
  return out;
}

/** Shows a file identifier for a message: printable ASCII as is, other bytes as \xNN. */
function showIdentifier(bytes: Uint8Array): string {
  return [...bytes].map((c) =>
    c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c
      ? String.fromCharCode(c)
      : `\\x${c.toString(16).padStart(2, "0")}`
  ).join("");
}

/**
 * Decodes a braid model file. Initializer data are views on `bytes.buffer` (no copy; the bytes
 * must stay alive and unmodified while the graph is in use). Only if `bytes` itself starts at an
 * offset that is not a multiple of 4 in its buffer is it copied once, so the views can be aligned.
 *
 * Throws BraidError: BAD_IDENTIFIER (not a braid file), UNSUPPORTED_VERSION, MALFORMED_FILE.
 */
export function decodeModel(bytes: Uint8Array, source = "<memory>"): Graph {
  if (!(bytes instanceof Uint8Array)) {
    throw new BraidError("MALFORMED_FILE", `${source}: expected the file's bytes (a Uint8Array)`);
  }
  if (bytes.length < 8) {
    throw new BraidError(
      "MALFORMED_FILE",
      `${source}: ${bytes.length} bytes is too short for a braid model file`,
    );
  }
  const identifier = bytes.subarray(4, 8);
  if (String.fromCharCode(...identifier) !== FILE_IDENTIFIER) {
    throw new BraidError(
      "BAD_IDENTIFIER",
      `${source}: not a braid model file (file identifier "${showIdentifier(identifier)}", ` +
        `expected "${FILE_IDENTIFIER}")`,
    );
  }
  if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice();
  try {
    return readGraph(bytes, source);
  } catch (e) {
    if (e instanceof BraidError) throw e;
    const detail = e instanceof Malformed
      ? e.message
      : `${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
    throw new BraidError("MALFORMED_FILE", `${source}: malformed model file: ${detail}`, {
      cause: e,
    });
  }
}

function readGraph(bytes: Uint8Array, source: string): Graph {
  const bb = new CheckedByteBuffer(bytes);
  const model = fb.Model.getRootAsModel(bb);
  const version = model.schemaVersion();
  if (version !== SCHEMA_VERSION) {
    throw new BraidError(
      "UNSUPPORTED_VERSION",
      `${source}: schema version ${version} is not supported (this braid reads version ` +
        `${SCHEMA_VERSION})`,
    );
  }

  const graph = new Graph(model.name() ?? "");
  graph.inputs = readStrings(model.inputsLength(), (i) => model.inputs(i), "graph input");
  graph.outputs = readStrings(model.outputsLength(), (i) => model.outputs(i), "graph output");

  const valueCount = model.valuesLength();
  for (let i = 0; i < valueCount; i++) {
    const v = model.values(i)!;
    const name = text(v.name(), `the name of value ${i}`);
    const what = `value "${name}"`;
    const value: Value = { name, dtype: readDType(v.dtype(), what), shape: readShape(v, what) };
    if (graph.values.has(name)) throw new Malformed(`${what} is listed twice`);
    graph.values.set(name, value);
  }

  const nodeCount = model.nodesLength();
  for (let i = 0; i < nodeCount; i++) {
    const n = model.nodes(i)!;
    const name = text(n.name(), `the name of node ${i}`);
    const what = `node "${name}"`;
    const op = text(n.op(), `the op of ${what}`);
    const node: Node = {
      name,
      op: op as OpName,
      inputs: readStrings(n.inputsLength(), (k) => n.inputs(k), `${what}: input`),
      outputs: readStrings(n.outputsLength(), (k) => n.outputs(k), `${what}: output`),
      attrs: decodeAttrs(n, op, (message) => {
        throw new Malformed(`${what} (${op}): ${message}`);
      }),
    };
    graph.nodes.push(node);
  }

  // The blob: a view on the file, in range (checked by __vector_len).
  const blob = model.weightsArray();
  const blobStart = blob ? blob.byteOffset : bytes.byteOffset;
  const blobLength = blob ? blob.length : 0;

  const initCount = model.initializersLength();
  for (let i = 0; i < initCount; i++) {
    const t = model.initializers(i)!;
    const name = text(t.name(), `the name of initializer ${i}`);
    const what = `initializer "${name}"`;
    const dtype = readDType(t.dtype(), what);
    if (dtype !== "float32" && dtype !== "int32") {
      throw new Malformed(`${what} has dtype ${dtype}; braid stores float32 and int32 only`);
    }
    const shape = readShape(t, what);
    const offset = t.offset();
    const length = t.length();
    const size = DTYPE_SIZE[dtype];
    if (offset + length > BigInt(blobLength)) {
      throw new Malformed(
        `${what} spans bytes ${offset}..${offset + length} of a ${blobLength}-byte weight blob`,
      );
    }
    const start = blobStart + Number(offset);
    if (start % size !== 0 || length % BigInt(size) !== 0n) {
      throw new Malformed(
        `${what} (offset ${offset}, ${length} bytes) is not ${size}-byte aligned`,
      );
    }
    const count = Number(length) / size;
    const data = dtype === "float32"
      ? new Float32Array(bytes.buffer, start, count)
      : new Int32Array(bytes.buffer, start, count);
    const tensor: Tensor = { dtype, shape, data };
    if (graph.initializers.has(name)) throw new Malformed(`${what} is listed twice`);
    graph.initializers.set(name, tensor);
  }
  return graph;
}
