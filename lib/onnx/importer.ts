/**
 * ONNX → braid Graph.
 *
 *   decode (proto.ts) → read external data → initializers as constants (tensor.ts)
 *   → Erf-GELU chains become Gelu (gelu.ts) → walk the nodes in topological order (walk.ts:
 *     constants folded by fold.ts, the rest mapped by mappers.ts, unsupported nodes collected)
 *   → graph outputs keep their ONNX names → dead nodes dropped, Gemm epilogues fused → validated
 *
 * Input shapes must be known: the first dimension may be symbolic (it becomes `batch`, default 1),
 * others come from `inputShapes`. int64 graph inputs (token ids) become int32 inputs, and int64
 * constants used as indices become int32 initializers: braid's Gather takes int32 indices.
 * Identity, Dropout and casts that change nothing at run time are aliases: they emit no node.
 * Every node braid cannot run is collected, and one BraidError UNKNOWN_OP lists them all.
 */
import { BraidError } from "../errors.ts";
import { type DType, type Graph, numel } from "../ir/graph.ts";
import { validateGraph } from "../ir/validate.ts";
import { dropDeadNodes } from "../passes/dead_nodes.ts";
import { fuseProductEpilogues } from "../passes/fuse_epilogues.ts";
import { readFile } from "../platform.ts";
import { NodeAttributes } from "./attributes.ts";
import type { Slot } from "./context.ts";
import { GraphEmitter } from "./emit.ts";
import { fuseErfGelu } from "./gelu.ts";
import {
  DataType,
  dataTypeName,
  decodeModelProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  toNumber,
  type ValueInfoProto,
} from "./proto.ts";
import {
  type ConstTensor,
  decodeTensor,
  type ExternalFiles,
  externalLocation,
  isExternal,
} from "./tensor.ts";
import { reportUnproducedUses, unsupportedError } from "./unsupported.ts";
import { GraphWalk } from "./walk.ts";

export interface ImportOptions {
  /** The size of a symbolic first input dimension (default 1). */
  batch?: number;
  /** Full shapes of graph inputs, by name (required for symbolic dimensions past the first). */
  inputShapes?: Record<string, number[]>;
  /** The folder external data files are relative to (default: the model file's folder). */
  baseDir?: string;
  /** Called as the walk over the nodes advances. */
  onProgress?: (done: number, total: number) => void;
}

export interface ImportSummary {
  source: string;
  producer: string;
  irVersion: number;
  /** The default domain's opset. */
  opset: number;
  /** ONNX nodes, and how many of each op type. */
  onnxNodes: number;
  opTypes: Record<string, number>;
  /** ONNX nodes evaluated at import time, and those that became aliases (no braid node). */
  folded: number;
  aliased: number;
  /** Pad nodes absorbed into a convolution's or pool's padding; Erf chains fused into Gelu. */
  padsFolded: number;
  geluFused: number;
  /** Nodes of the braid graph. */
  braidNodes: number;
  /** Float32 weight bytes that are views on the file's bytes (zero-copy), and that were copied. */
  viewBytes: number;
  copiedBytes: number;
}

export interface OnnxImport {
  graph: Graph;
  summary: ImportSummary;
}

/** Imports an ONNX model from its bytes or a path. */
export async function importOnnx(
  source: Uint8Array | string,
  options: ImportOptions = {},
): Promise<OnnxImport> {
  let bytes: Uint8Array;
  let name = "<memory>";
  let baseDir = options.baseDir;
  if (typeof source === "string") {
    name = source;
    baseDir ??= source.includes("/") ? source.slice(0, source.lastIndexOf("/") + 1) : "./";
    bytes = await readBytes(source, `cannot read ONNX file ${source}`);
  } else bytes = source;
  const model = decodeModelProto(bytes, name);
  const external = await readExternalData(model, name, baseDir);
  return importModelProto(model, name, external, options);
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new BraidError("MALFORMED_FILE", `${what}: ${(e as Error).message}`, { cause: e });
  }
}

/** Reads every external data file the initializers name, once each. */
async function readExternalData(
  model: ModelProto,
  source: string,
  baseDir: string | undefined,
): Promise<ExternalFiles> {
  const files: ExternalFiles = new Map();
  for (const t of model.graph!.initializer) {
    if (!isExternal(t)) continue;
    const { location } = externalLocation(t);
    if (files.has(location)) continue;
    if (!location || location.startsWith("/") || location.split(/[\\/]/).includes("..")) {
      throw new BraidError(
        "MALFORMED_FILE",
        `${source}: initializer "${t.name}" has external data location "${location}"; it must ` +
          `be a relative path inside the model's folder`,
      );
    }
    if (baseDir === undefined) {
      throw new BraidError(
        "MISSING_WEIGHT",
        `${source}: initializer "${t.name}" is stored in external file "${location}"; import ` +
          `from a path, or give baseDir`,
      );
    }
    const dir = baseDir.endsWith("/") || baseDir === "" ? baseDir : `${baseDir}/`;
    files.set(
      location,
      await readBytes(
        `${dir}${location}`,
        `${source}: cannot read external data "${location}" of initializer "${t.name}"`,
      ),
    );
  }
  return files;
}

// ------------------------------------------------------------------------------ the import

/** Imports a decoded model (external data already read). */
export function importModelProto(
  model: ModelProto,
  source: string,
  external: ExternalFiles,
  options: ImportOptions = {},
): OnnxImport {
  const g = model.graph!;
  const opset = defaultOpset(model);
  const emitter = new GraphEmitter(g.name || source.replace(/^.*\//, "").replace(/\.onnx$/, ""));
  const decode = (t: TensorProto, what: string) => decodeTensor(t, what, external);
  const walk = new GraphWalk(emitter, opset, decode);
  const { slots } = walk;

  // Initializers are constants (FLOAT data stays a view on the file where aligned).
  for (const t of g.initializer) {
    slots.set(t.name, { kind: "const", tensor: decode(t, `initializer "${t.name}" of ${source}`) });
  }
  for (const input of g.input) {
    if (slots.has(input.name)) continue; // IR < 4 lists initializers as inputs too
    const { dtype, shape } = inputType(input, source, options);
    slots.set(input.name, { kind: "value", name: emitter.input(input.name, dtype, shape) });
  }

  const graphOutputs = new Set(g.output.map((o) => o.name));
  const gelu = fuseErfGelu(g.node, scalarLookup(g.node, slots, decode), graphOutputs);
  const nodes = topologicalNodes(gelu.nodes, slots, source);
  const every = Math.max(1, Math.floor(nodes.length / 100));
  nodes.forEach((node, i) => {
    if (i % every === 0) options.onProgress?.(i, nodes.length);
    walk.visit(node, i);
  });
  options.onProgress?.(nodes.length, nodes.length);

  // Extra outputs nobody reads are fine; read ones are reported with their producer.
  reportUnproducedUses(nodes, g.output, walk.notProduced, walk.unsupported);
  if (walk.unsupported.size > 0) throw unsupportedError(source, walk.unsupported);

  // A graph output that is a pending Pad is applied now.
  for (const o of g.output) {
    const s = slots.get(o.name);
    if (s?.kind === "pad") slots.set(o.name, { kind: "value", name: walk.applyPad(s) });
  }
  const graph = finishOutputs(emitter, g.output.map((o) => o.name), slots, source);
  const result = fuseProductEpilogues(dropDeadNodes(graph));
  validateGraph(result);

  const summary: ImportSummary = {
    source,
    producer: `${model.producerName} ${model.producerVersion}`.trim(),
    irVersion: toNumber(model.irVersion),
    opset,
    onnxNodes: g.node.length,
    opTypes: {},
    ...walk.counts,
    geluFused: gelu.fused,
    braidNodes: result.nodes.length,
    viewBytes: 0,
    copiedBytes: 0,
  };
  for (const n of g.node) summary.opTypes[n.opType] = (summary.opTypes[n.opType] ?? 0) + 1;
  for (const t of result.initializers.values()) {
    // A view on the model file lies inside a larger buffer; converted data owns its buffer.
    if (t.data.byteLength < t.data.buffer.byteLength) summary.viewBytes += t.data.byteLength;
    else summary.copiedBytes += t.data.byteLength;
  }
  return { graph: result, summary };
}

function defaultOpset(model: ModelProto): number {
  const entry = model.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx");
  return entry ? toNumber(entry.version) : 1;
}

/** A graph input's braid dtype and shape. */
function inputType(
  input: ValueInfoProto,
  source: string,
  options: ImportOptions,
): { dtype: DType; shape: number[] } {
  const tensorType = input.type?.tensorType;
  const what = `${source}: graph input "${input.name}"`;
  if (!tensorType) throw new BraidError("INPUT_TYPE", `${what} is not a tensor`);
  const elem = tensorType.elemType;
  let dtype: DType;
  if (elem === DataType.FLOAT) dtype = "float32";
  else if (elem === DataType.INT64 || elem === DataType.INT32) dtype = "int32";
  else {
    throw new BraidError(
      "INPUT_TYPE",
      `${what} has element type ${
        dataTypeName(elem)
      }; braid takes float32 and integer (int32) inputs`,
    );
  }
  const given = options.inputShapes?.[input.name];
  if (given) return { dtype, shape: [...given] };
  const dims = tensorType.shape?.dim ?? [];
  const shape = dims.map((d, i) => {
    if (Object.hasOwn(d, "dimValue") && toNumber(d.dimValue!) > 0) return toNumber(d.dimValue!);
    if (i === 0) return options.batch ?? 1;
    throw new BraidError(
      "SHAPE_MISMATCH",
      `${what}: dimension ${i} is symbolic ("${d.dimParam ?? "?"}"); give the input's shape ` +
        `(inputShapes, or --shape ${input.name}=...)`,
    );
  });
  return { dtype, shape };
}

/** For Gelu matching: the scalar value of an initializer or a Constant node's output. */
function scalarLookup(
  nodes: NodeProto[],
  slots: Map<string, Slot>,
  decode: (t: TensorProto, what: string) => ConstTensor,
): (name: string) => number | undefined {
  const constantNodes = new Map<string, NodeProto>();
  for (const n of nodes) {
    if (n.opType === "Constant" && n.output[0]) constantNodes.set(n.output[0], n);
  }
  return (name) => {
    const s = slots.get(name);
    if (s?.kind === "const") return numel(s.tensor.shape) === 1 ? s.tensor.data[0] : undefined;
    const c = constantNodes.get(name);
    if (!c) return undefined;
    const attrs = new NodeAttributes(c, `node "${c.name}" (Constant)`);
    const t = attrs.tensor("value");
    if (t) {
      const tensor = decode(t, attrs.what);
      return numel(tensor.shape) === 1 ? tensor.data[0] : undefined;
    }
    return attrs.has("value_float") ? attrs.float("value_float") : undefined;
  };
}

/**
 * The nodes in a topological order (stable: ties keep the file's order). A node input that no
 * node, initializer or graph input defines is a MISSING_WEIGHT error naming both.
 */
function topologicalNodes(
  nodes: NodeProto[],
  slots: Map<string, Slot>,
  source: string,
): NodeProto[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.output.forEach((o) => o && producer.set(o, i)));
  const indegree = new Array<number>(nodes.length).fill(0);
  const consumers: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => {
    for (const input of new Set(n.input)) {
      if (input === "" || slots.has(input)) continue;
      const p = producer.get(input);
      if (p === undefined) {
        throw new BraidError(
          "MISSING_WEIGHT",
          `${source}: node "${n.name || n.opType}" (${n.opType}) reads "${input}", which is ` +
            `neither an initializer, a graph input nor any node's output (a missing initializer?)`,
        );
      }
      indegree[i]++;
      consumers[p].push(i);
    }
  });
  const ready = indegree.flatMap((d, i) => (d === 0 ? [i] : []));
  const order: NodeProto[] = [];
  for (let head = 0; head < ready.length; head++) {
    const i = ready[head];
    order.push(nodes[i]);
    for (const c of consumers[i]) if (--indegree[c] === 0) ready.push(c);
  }
  if (order.length !== nodes.length) {
    const stuck = nodes.find((_, i) => indegree[i] > 0)!;
    throw new BraidError("CYCLE", `${source}: node "${stuck.name}" is part of a cycle`);
  }
  return order;
}

/** Graph outputs under their ONNX names: a value computed under another name is renamed. */
function finishOutputs(
  emitter: GraphEmitter,
  outputs: string[],
  slots: Map<string, Slot>,
  source: string,
): Graph {
  const graph = emitter.graph;
  for (const name of outputs) {
    const slot = slots.get(name);
    if (!slot || slot.kind !== "value") {
      throw new BraidError(
        "BAD_NODE",
        `${source}: graph output "${name}" is ${
          slot?.kind === "const" ? "a constant" : "not computed at run time"
        }; braid graphs output computed values only`,
      );
    }
    const current = slot.name;
    if (current === name) {
      graph.outputs.push(name);
      continue;
    }
    const renamable = !graph.inputs.includes(current) && !graph.initializers.has(current) &&
      !graph.outputs.includes(current) && !graph.values.has(name);
    if (!renamable) {
      throw new BraidError(
        "BAD_NODE",
        `${source}: graph output "${name}" is the same tensor as "${current}" (an input, a ` +
          `constant or another output); braid cannot output it under a second name`,
      );
    }
    const value = graph.values.get(current)!;
    graph.values.delete(current);
    graph.values.set(name, { ...value, name });
    for (const n of graph.nodes) {
      n.inputs = n.inputs.map((i) => (i === current ? name : i));
      n.outputs = n.outputs.map((o) => (o === current ? name : o));
    }
    for (const [k, s] of slots) {
      if (s.kind === "value" && s.name === current) slots.set(k, { kind: "value", name });
    }
    graph.outputs.push(name);
  }
  return graph;
}
