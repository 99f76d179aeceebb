/**
 * A loaded model: the validated graph, whose weights are views on the file's bytes (zero-copy).
 */
import { BraidError } from "../errors.ts";
import { decodeModel } from "../format/read.ts";
import { encodeModel } from "../format/write.ts";
import type { Graph } from "../ir/graph.ts";
import { validateGraph } from "../ir/validate.ts";
import { readFile, readSharedFile, writeFile } from "../platform.ts";

export class Model {
  #graph: Graph | undefined;

  constructor(graph: Graph, readonly source: string, readonly bytes?: Uint8Array) {
    this.#graph = graph;
  }

  /** The model's graph. Throws DISPOSED after dispose. */
  get graph(): Graph {
    if (!this.#graph) throw new BraidError("DISPOSED", `model ${this.source} was disposed`);
    return this.#graph;
  }

  get name(): string {
    return this.graph.name;
  }

  /** Drops the reference to the file's bytes and graph. */
  [Symbol.dispose](): void {
    this.#graph = undefined;
  }
}

/** Decodes and validates a model from bytes (no copy of the weights). */
export function modelFromBytes(bytes: Uint8Array, source = "<memory>"): Model {
  const graph = decodeModel(bytes, source);
  validateGraph(graph);
  return new Model(graph, source, bytes);
}

/**
 * Reads, decodes and validates a .braid file. `shared`: its bytes in a SharedArrayBuffer
 * (Model.bytes), which worker threads can be sent and decode without a copy of their own.
 */
export async function loadModel(path: string, shared = false): Promise<Model> {
  let bytes: Uint8Array;
  try {
    bytes = await (shared ? readSharedFile(path) : readFile(path));
  } catch (e) {
    throw new BraidError(
      "MALFORMED_FILE",
      `cannot read model file ${path}: ${(e as Error).message}`,
    );
  }
  return modelFromBytes(bytes, path);
}

/** Validates a graph and writes it as a .braid file. */
export async function saveModel(graph: Graph, path: string): Promise<number> {
  validateGraph(graph);
  const bytes = encodeModel(graph);
  await writeFile(path, bytes);
  return bytes.byteLength;
}
