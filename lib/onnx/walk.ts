/**
 * The walk over an ONNX graph's nodes, in topological order. Each ONNX value gets a Slot
 * (context.ts); each node is, in this order:
 *   Shape or Size of anything with a known shape  → a constant
 *   all inputs constant, and a folder exists      → evaluated now (fold.ts)
 *   otherwise                                     → braid nodes (mappers.ts)
 * A node braid cannot run is recorded (unsupported.ts) and everything downstream of it is skipped,
 * so that one walk lists every unsupported node.
 */
import { BraidError } from "../errors.ts";
import { type DType, numel, type Tensor } from "../ir/graph.ts";
import { NodeAttributes } from "./attributes.ts";
import { type MapContext, type PendingPad, type Slot, Unsupported } from "./context.ts";
import type { GraphEmitter } from "./emit.ts";
import { canFold, FOLDERS, makeTensor, shapeOf } from "./fold.ts";
import { MAPPERS } from "./mappers.ts";
import { applyPad } from "./pad.ts";
import { DataType, type NodeProto, type TensorProto } from "./proto.ts";
import { asFloat32, asInt32, type ConstTensor, isFloatType } from "./tensor.ts";
import { addUnsupported, type UnsupportedNodes } from "./unsupported.ts";

/** Runtime dtype of a constant's element type: floats are float32, integers int32. */
export function runtimeDType(type: number): DType {
  return isFloatType(type) || type === DataType.FLOAT16 || type === DataType.BFLOAT16
    ? "float32"
    : "int32";
}

/** What the walk did, for the import summary. */
export interface WalkCounts {
  /** Nodes evaluated at import time. */
  folded: number;
  /** Nodes that became aliases (Identity, Dropout, no-op casts): no braid node. */
  aliased: number;
  /** Pending Pads absorbed into a convolution's or pool's padding. */
  padsFolded: number;
}

export class GraphWalk {
  readonly slots = new Map<string, Slot>();
  readonly unsupported: UnsupportedNodes = new Map();
  /** Extra outputs a mapper did not produce (MaxPool's Indices, ...): an error only if used. */
  readonly notProduced = new Set<string>();
  readonly counts: WalkCounts = { folded: 0, aliased: 0, padsFolded: 0 };
  /** Values downstream of an unsupported node: nothing is known of them. */
  readonly #unknown = new Set<string>();
  /** Constants made initializers, once per dtype; pending pads applied, once each. */
  readonly #materialised = new Map<ConstTensor, Map<DType, string>>();
  readonly #padded = new Map<PendingPad, string>();

  constructor(
    readonly emitter: GraphEmitter,
    readonly opset: number,
    /** Decodes a tensor attribute (Constant's value, ConstantOfShape's fill). */
    readonly decode: (t: TensorProto, what: string) => ConstTensor,
  ) {}

  /** A constant as a braid initializer named after `base` (int64 ids become int32). */
  constantValue(base: string, tensor: ConstTensor, as?: DType): string {
    const dtype = as ?? runtimeDType(tensor.type);
    const cached = this.#materialised.get(tensor)?.get(dtype);
    if (cached) return cached;
    let t: Tensor;
    if (dtype === "float32") t = { dtype, shape: [...tensor.shape], data: asFloat32(tensor) };
    else if (dtype === "int32") {
      t = { dtype, shape: [...tensor.shape], data: asInt32(tensor, `constant "${base}"`) };
    } else throw new Unsupported(`a ${dtype} constant`);
    const name = this.emitter.constant(
      dtype === runtimeDType(tensor.type) ? base : `${base}:${dtype}`,
      t,
    );
    if (!this.#materialised.has(tensor)) this.#materialised.set(tensor, new Map());
    this.#materialised.get(tensor)!.set(dtype, name);
    return name;
  }

  /** A pending pad as a braid value (applied once). */
  applyPad(p: PendingPad): string {
    return applyPad(this.emitter, this.#padded, p);
  }

  shapeOf(s: Slot): number[] {
    if (s.kind === "const") return s.tensor.shape;
    if (s.kind === "value") return this.emitter.value(s.name).shape;
    return this.emitter.value(s.source).shape.map((d, i) => d + s.begins[i] + s.ends[i]);
  }

  dtypeOf(s: Slot): DType {
    if (s.kind === "const") return runtimeDType(s.tensor.type);
    return this.emitter.value(s.kind === "value" ? s.name : s.source).dtype;
  }

  /** Visits one node (the index names nodes that have no name). */
  visit(node: NodeProto, index: number): void {
    const name = node.name || `${node.opType}_${index}`;
    const standard = !node.domain || node.domain === "ai.onnx";
    const op = standard ? node.opType : `${node.domain}.${node.opType}`;
    const known = standard && (canFold(op) || Object.hasOwn(MAPPERS, op) || op === "Shape" ||
      op === "Size");
    if (!known) return this.#record(node, op, name);
    if (node.input.some((i) => this.#unknown.has(i))) return this.#markUnknown(node);
    const inputs = node.input.map((i) => (i === "" ? undefined : this.slots.get(i)!));
    const attrs = new NodeAttributes(node, `node "${name}" (${op})`);
    if (op === "Shape" || op === "Size") {
      const shape = this.shapeOf(inputs[0]!);
      const tensor = op === "Shape"
        ? shapeOf(shape, attrs)
        : makeTensor(DataType.INT64, [], [numel(shape)]);
      this.#define(node, 0, { kind: "const", tensor });
      this.counts.folded++;
    } else if (canFold(op) && inputs.every((s) => s === undefined || s.kind === "const")) {
      const outputs = FOLDERS[op](
        inputs.map((s) => (s?.kind === "const" ? s.tensor : undefined)),
        { attrs, opset: this.opset, decode: (t) => this.decode(t, `${attrs.what}: attribute`) },
      );
      outputs.forEach((tensor, k) => this.#define(node, k, { kind: "const", tensor }));
      if (op === "Identity" || op === "Dropout") this.counts.aliased++;
      else this.counts.folded++;
    } else this.#map(node, name, inputs, attrs);
  }

  #define(node: NodeProto, k: number, slot: Slot) {
    if (node.output[k]) this.slots.set(node.output[k], slot);
  }

  #markUnknown(node: NodeProto) {
    for (const o of node.output) if (o) this.#unknown.add(o);
  }

  #record(node: NodeProto, op: string, name: string, reason?: string) {
    addUnsupported(this.unsupported, op, name, reason);
    this.#markUnknown(node);
  }

  /** Runs the op's mapper; records the node if the mapper finds it unsupported. */
  #map(node: NodeProto, name: string, inputs: (Slot | undefined)[], attrs: NodeAttributes) {
    const before = this.emitter.graph.nodes.length;
    const defined = new Set<number>();
    try {
      MAPPERS[node.opType](this.#context(node, name, inputs, attrs, defined));
    } catch (e) {
      if (e instanceof Unsupported) return this.#record(node, node.opType, name, e.message);
      throw e;
    }
    // No braid node and no pending Pad: the node was an alias (Identity, Dropout, a no-op Cast).
    const pending = this.slots.get(node.output[0])?.kind === "pad";
    if (this.emitter.graph.nodes.length === before && !pending) this.counts.aliased++;
    // Outputs the mapper did not produce (MaxPool's Indices, LayerNorm's Mean, ...) must be unused.
    node.output.forEach((o, k) => {
      if (o && !defined.has(k)) {
        this.#unknown.add(o);
        this.notProduced.add(o);
      }
    });
  }

  /** What a mapper sees of one node; `defined` collects the outputs it produced. */
  #context(
    node: NodeProto,
    name: string,
    inputs: (Slot | undefined)[],
    attrs: NodeAttributes,
    defined: Set<number>,
  ): MapContext {
    const define = (k: number, slot: Slot) => {
      this.#define(node, k, slot);
      defined.add(k);
    };
    return {
      node,
      attrs,
      opset: this.opset,
      name,
      slot: (i) => inputs[i],
      constant: (i) => {
        const s = inputs[i];
        return s?.kind === "const" ? s.tensor : undefined;
      },
      ints: (i, what) => {
        const s = inputs[i];
        if (s?.kind !== "const") throw new Unsupported(`${what} computed at run time`);
        return Array.from(s.tensor.data, (v) => Math.trunc(v));
      },
      shape: (i) => this.shapeOf(inputs[i]!),
      dtype: (i) => this.dtypeOf(inputs[i]!),
      valueShape: (v) => this.emitter.value(v).shape,
      value: (i, as) => {
        const s = inputs[i];
        if (!s) throw new BraidError("BAD_NODE", `${attrs.what}: input ${i} is missing`);
        if (s.kind === "const") return this.constantValue(node.input[i], s.tensor, as);
        const v = s.kind === "pad" ? this.applyPad(s) : s.name;
        const dtype = this.emitter.value(v).dtype;
        if (as && as !== dtype) {
          throw new Unsupported(`${dtype} "${node.input[i]}" where ${as} is needed`);
        }
        return v;
      },
      constantValue: (base, tensor, as) => this.constantValue(base, tensor, as),
      emit: (op, ins, a, opts = {}) => {
        const k = opts.output ?? 0;
        const base = opts.temp ? `${node.output[0]}:${opts.temp}` : node.output[k];
        const nodeName = opts.temp ? `${name}:${opts.temp}` : name;
        const out = this.emitter.node(op, nodeName, ins, a, base);
        if (!opts.temp) define(k, { kind: "value", name: out });
        return out;
      },
      define,
      foldedPad: () => this.counts.padsFolded++,
    };
  }
}
