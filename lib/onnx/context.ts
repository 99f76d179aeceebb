/**
 * What the importer knows about each ONNX value while it walks the graph, and what an op mapper
 * (mappers.ts) may ask of it.
 */
import type { DType } from "../ir/graph.ts";
import type { AttrsByOp, OpName } from "../ir/ops.ts";
import type { NodeAttributes } from "./attributes.ts";
import type { NodeProto } from "./proto.ts";
import type { ConstTensor } from "./tensor.ts";

/**
 * An ONNX value is a constant (known at import time), a braid value (computed at run time), or a
 * constant-mode Pad not yet applied: the consumer may fold it into its own padding (Conv, pools)
 * or have it materialised.
 */
export type Slot =
  | { kind: "const"; tensor: ConstTensor }
  | { kind: "value"; name: string }
  | PendingPad;

export interface PendingPad {
  kind: "pad";
  /** The braid value padded, and the ONNX value the Pad produced. */
  source: string;
  output: string;
  node: string;
  /** Per axis, elements added before and after (negative: removed). */
  begins: number[];
  ends: number[];
  value: number;
}

/** Thrown by a mapper: this node cannot run in braid (the reason is shown with the op type). */
export class Unsupported extends Error {}

export interface MapContext {
  node: NodeProto;
  attrs: NodeAttributes;
  /** The default domain's opset version the model imports. */
  opset: number;
  /** The node's name for messages and for the braid nodes it becomes. */
  name: string;
  /** Input i's slot (undefined when absent or ""). */
  slot(i: number): Slot | undefined;
  /** Input i as a constant, or undefined when it is computed at run time or absent. */
  constant(i: number): ConstTensor | undefined;
  /** Input i as integers; it must be a constant (shape arguments: pads, axes, shape). */
  ints(i: number, what: string): number[];
  shape(i: number): number[];
  dtype(i: number): DType;
  /** The shape of a braid value this node emitted. */
  valueShape(name: string): number[];
  /** Input i as a braid value: constants become initializers, pending pads are applied. */
  value(i: number, as?: DType): string;
  /** A constant as a braid initializer named after `base`. */
  constantValue(base: string, tensor: ConstTensor, as?: DType): string;
  /**
   * Adds a braid node. Its output is the ONNX node's output `output` (default 0), or with a
   * `temp` suffix a fresh intermediate value; returns the output's name.
   */
  emit<K extends OpName>(
    op: K,
    inputs: string[],
    attrs: Partial<AttrsByOp[K]>,
    options?: { output?: number; temp?: string },
  ): string;
  /** Makes ONNX output k stand for a slot (aliases: Identity, Dropout, no-op casts). */
  define(k: number, slot: Slot): void;
  /** Counts a pending Pad folded into this node's padding (for the import summary). */
  foldedPad(): void;
}
