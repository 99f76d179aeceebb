/**
 * GraphBuilder: builds a Graph op by op, inferring every output's shape as it goes, and creating
 * seeded random weights named as in PyTorch's state_dict ("features.0.weight", "bn1.running_var").
 */
import { BraidError } from "../errors.ts";
import { Random } from "../util/random.ts";
import { type DType, Graph, numel, type Tensor, type Value } from "./graph.ts";
import {
  type AttrsByOp,
  failFor,
  type FusedActivation,
  type OpName,
  OPS,
  type Pads,
} from "./ops.ts";

type Size = number | [number, number];
const pair = (s: Size): [number, number] => (typeof s === "number" ? [s, s] : s);
/** [top, left, bottom, right] from explicit pads, or symmetric ones from a size. */
const pads = (p: Size | Pads): Pads => {
  if (Array.isArray(p) && p.length === 4) return p;
  const [h, w] = pair(p as Size);
  return [h, w, h, w];
};

export interface ConvOptions {
  name: string;
  out: number;
  kernel: Size;
  stride?: Size;
  padding?: Size | Pads;
  dilation?: Size;
  groups?: number;
  bias?: boolean;
}

export interface PoolOptions {
  kernel: Size;
  stride?: Size;
  padding?: Size | Pads;
  ceilMode?: boolean;
  countIncludePad?: boolean;
  name?: string;
}

export class GraphBuilder {
  readonly graph: Graph;
  readonly random: Random;
  #counter = 0;

  constructor(name: string, seed = 0) {
    this.graph = new Graph(name);
    this.random = new Random(seed);
  }

  shape(value: string): number[] {
    return this.graph.value(value).shape;
  }

  input(name: string, shape: number[], dtype: DType = "float32"): string {
    this.#define({ name, dtype, shape });
    this.graph.inputs.push(name);
    return name;
  }

  output(value: string): void {
    this.graph.value(value);
    this.graph.outputs.push(value);
  }

  /** Adds a constant tensor under `name`. */
  constant(name: string, tensor: Tensor): string {
    this.#define({ name, dtype: tensor.dtype, shape: [...tensor.shape] });
    this.graph.initializers.set(name, tensor);
    return name;
  }

  /** A float32 weight, uniform in [-bound, bound]. */
  uniform(name: string, shape: number[], bound: number): string {
    const data = this.random.floats(numel(shape), -bound, bound);
    return this.constant(name, { dtype: "float32", shape, data });
  }

  /** A float32 weight, uniform in [lo, hi). */
  range(name: string, shape: number[], lo: number, hi: number): string {
    return this.constant(name, {
      dtype: "float32",
      shape,
      data: this.random.floats(numel(shape), lo, hi),
    });
  }

  /** Adds one node; returns its output value, named after the node. */
  node<K extends OpName>(
    op: K,
    inputs: string[],
    attrs: Partial<AttrsByOp[K]> = {},
    name = `${op.toLowerCase()}_${this.#counter++}`,
  ): string {
    const spec = OPS[op];
    const full = { ...spec.defaults, ...attrs } as AttrsByOp[K];
    const values = inputs.map((v) => (v === "" ? undefined : this.graph.value(v)));
    const problem = spec.checkAttrs?.(full);
    if (problem) throw new BraidError("BAD_ATTRIBUTE", `node "${name}": ${problem}`);
    const [out] = spec.infer(values, full, failFor(name));
    const output = this.#unique(name);
    this.#define({ name: output, dtype: out.dtype, shape: out.shape });
    this.graph.nodes.push({ name, op, inputs: [...inputs], outputs: [output], attrs: full });
    return output;
  }

  // ------------------------------------------------------------------ layers, PyTorch-style

  /** nn.Conv2d with kaiming-uniform weights ("name.weight", "name.bias"). */
  conv2d(x: string, o: ConvOptions): string {
    const [kh, kw] = pair(o.kernel);
    const groups = o.groups ?? 1;
    const cin = this.shape(x)[1];
    const fanIn = (cin / groups) * kh * kw;
    const w = this.uniform(`${o.name}.weight`, [o.out, cin / groups, kh, kw], Math.sqrt(6 / fanIn));
    const inputs = [x, w];
    if (o.bias ?? true) inputs.push(this.uniform(`${o.name}.bias`, [o.out], 1 / Math.sqrt(fanIn)));
    const p = o.padding ?? 0;
    return this.node("Conv2d", inputs, {
      strides: pair(o.stride ?? 1),
      pads: pads(p),
      dilations: pair(o.dilation ?? 1),
      groups,
    }, o.name);
  }

  /**
   * nn.BatchNorm2d in eval mode, with random affine parameters and running statistics.
   * `weightRange` bounds the random scale γ; a small one damps a residual branch (in the spirit
   * of torchvision's zero_init_residual) without making it vanish.
   */
  batchNorm(
    x: string,
    name: string,
    epsilon = 1e-5,
    weightRange: [number, number] = [0.8, 1.2],
  ): string {
    const c = [this.shape(x)[1]];
    return this.node(
      "BatchNorm",
      [
        x,
        this.range(`${name}.weight`, c, weightRange[0], weightRange[1]),
        this.range(`${name}.bias`, c, -0.1, 0.1),
        this.range(`${name}.running_mean`, c, -0.1, 0.1),
        this.range(`${name}.running_var`, c, 0.8, 1.2),
      ],
      { epsilon },
      name,
    );
  }

  /** nn.Linear: y = x · Wᵀ + b, W [out, in]. */
  linear(x: string, name: string, out: number, bias = true): string {
    const fanIn = this.shape(x).at(-1)!;
    const w = this.uniform(`${name}.weight`, [out, fanIn], Math.sqrt(6 / fanIn));
    const inputs = [x, w];
    if (bias) inputs.push(this.uniform(`${name}.bias`, [out], 1 / Math.sqrt(fanIn)));
    return this.node("Gemm", inputs, { transB: true }, name);
  }

  layerNorm(x: string, name: string, epsilon = 1e-5): string {
    const c = [this.shape(x).at(-1)!];
    return this.node(
      "LayerNorm",
      [
        x,
        this.range(`${name}.weight`, c, 0.8, 1.2),
        this.range(`${name}.bias`, c, -0.1, 0.1),
      ],
      { epsilon },
      name,
    );
  }

  /** nn.Embedding: a [count, dim] table gathered by int32 indices. */
  embedding(indices: string, name: string, count: number, dim: number): string {
    const table = this.uniform(`${name}.weight`, [count, dim], 1);
    return this.node("Gather", [table, indices], { axis: 0 }, name);
  }

  relu(x: string, name?: string): string {
    return this.node("Relu", [x], {}, name);
  }
  clamp(x: string, min: number, max: number, name?: string): string {
    return this.node("Clamp", [x], { min, max }, name);
  }
  sigmoid(x: string, name?: string): string {
    return this.node("Sigmoid", [x], {}, name);
  }
  tanh(x: string, name?: string): string {
    return this.node("Tanh", [x], {}, name);
  }
  gelu(x: string, name?: string): string {
    return this.node("Gelu", [x], {}, name);
  }
  add(a: string, b: string, name?: string, act?: FusedActivation): string {
    return this.node("Add", [a, b], act ?? {}, name);
  }
  mul(a: string, b: string, name?: string): string {
    return this.node("Mul", [a, b], {}, name);
  }
  maxPool(x: string, o: PoolOptions): string {
    return this.node("MaxPool2d", [x], {
      kernel: pair(o.kernel),
      strides: pair(o.stride ?? o.kernel),
      pads: pads(o.padding ?? 0),
      ceilMode: o.ceilMode ?? false,
    }, o.name);
  }
  avgPool(x: string, o: PoolOptions): string {
    return this.node("AvgPool2d", [x], {
      kernel: pair(o.kernel),
      strides: pair(o.stride ?? o.kernel),
      pads: pads(o.padding ?? 0),
      ceilMode: o.ceilMode ?? false,
      countIncludePad: o.countIncludePad ?? true,
    }, o.name);
  }
  globalAvgPool(x: string, name?: string): string {
    return this.node("GlobalAvgPool", [x], {}, name);
  }
  concat(xs: string[], axis = 1, name?: string): string {
    return this.node("Concat", xs, { axis }, name);
  }
  flatten(x: string, axis = 1, name?: string): string {
    return this.node("Flatten", [x], { axis }, name);
  }
  reshape(x: string, shape: number[], name?: string): string {
    return this.node("Reshape", [x], { shape }, name);
  }
  transpose(x: string, perm: number[], name?: string): string {
    return this.node("Transpose", [x], { perm }, name);
  }
  slice(x: string, axes: number[], starts: number[], ends: number[], name?: string): string {
    return this.node("Slice", [x], { axes, starts, ends, steps: axes.map(() => 1) }, name);
  }
  matmul(
    a: string,
    b: string,
    o: { transB?: boolean; alpha?: number } = {},
    name?: string,
  ): string {
    return this.node("MatMul", [a, b], o, name);
  }
  softmax(x: string, axis = -1, name?: string): string {
    return this.node("Softmax", [x], { axis }, name);
  }
  dropout(x: string, ratio = 0.5, name?: string): string {
    return this.node("Dropout", [x], { ratio }, name);
  }

  build(): Graph {
    if (this.graph.outputs.length === 0) {
      throw new Error(`graph "${this.graph.name}" has no output`);
    }
    return this.graph;
  }

  #define(v: Value) {
    if (this.graph.values.has(v.name)) {
      throw new BraidError("DUPLICATE_VALUE", `value "${v.name}" is defined twice`);
    }
    this.graph.values.set(v.name, v);
  }

  #unique(name: string): string {
    if (!this.graph.values.has(name)) return name;
    let i = 1;
    while (this.graph.values.has(`${name}:${i}`)) i++;
    return `${name}:${i}`;
  }
}
