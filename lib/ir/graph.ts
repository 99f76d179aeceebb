/**
 * The graph IR: values (named, typed, shaped tensors), nodes (one operator each) and initializers
 * (constant tensors whose bytes are typed-array views, usually on a model file's bytes).
 *
 * Value names are the edges. An optional input that is absent is written as "".
 * The first dimension of every graph input is the batch; shapes stored in a Graph are those of
 * the batch the graph was built or saved with, and `inferShapes` recomputes them for another.
 */
import type { Attrs, OpName } from "./ops.ts";

export type DType = "float32" | "int32" | "int64" | "float16" | "bfloat16";

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Record<DType, number> = {
  float32: 4,
  int32: 4,
  int64: 8,
  float16: 2,
  bfloat16: 2,
};

export interface Value {
  name: string;
  dtype: DType;
  shape: number[];
}

export type TensorData = Float32Array | Int32Array;

/** A constant tensor. `data` may be a view on a file's bytes: treat it as read-only. */
export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

export interface Node<A extends Attrs = Attrs> {
  name: string;
  op: OpName;
  inputs: string[];
  outputs: string[];
  attrs: A;
}

export class Graph {
  constructor(
    public name: string,
    /** Graph input value names, in order. */
    public inputs: string[] = [],
    /** Graph output value names, in order. */
    public outputs: string[] = [],
    /** Every value by name: graph inputs, initializers and node outputs. */
    public values: Map<string, Value> = new Map(),
    /** Nodes in the order they were built or stored (not necessarily topological). */
    public nodes: Node[] = [],
    /** Constant tensors by value name. */
    public initializers: Map<string, Tensor> = new Map(),
  ) {}

  value(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw new Error(`no value named "${name}"`);
    return v;
  }

  /** A shallow structural copy: new node objects and maps, shared tensor data. */
  clone(): Graph {
    return new Graph(
      this.name,
      [...this.inputs],
      [...this.outputs],
      new Map([...this.values].map(([k, v]) => [k, { ...v, shape: [...v.shape] }])),
      this.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] })),
      new Map(this.initializers),
    );
  }
}

/** Number of elements of a shape. */
/** The batch a graph was saved with: its first input's first dimension (1 without inputs). */
export function batchOf(graph: Graph): number {
  return graph.values.get(graph.inputs[0])?.shape[0] ?? 1;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major element strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
