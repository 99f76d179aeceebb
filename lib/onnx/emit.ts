/**
 * GraphEmitter: builds the braid graph while importing. Like GraphBuilder it infers each output's
 * shape as the node is added (so the next ONNX node sees real shapes), but names come from the
 * ONNX file: node names are ONNX node names (made unique), outputs keep ONNX value names.
 */
import { BraidError } from "../errors.ts";
import { type DType, Graph, type Tensor, type Value } from "../ir/graph.ts";
import { type AttrsByOp, failFor, type OpName, OPS } from "../ir/ops.ts";

export class GraphEmitter {
  readonly graph: Graph;
  readonly #nodeNames = new Set<string>();

  constructor(name: string) {
    this.graph = new Graph(name);
  }

  value(name: string): Value {
    return this.graph.value(name);
  }

  has(name: string): boolean {
    return this.graph.values.has(name);
  }

  /** `base` if no value has that name yet, else `base:1`, `base:2`, ... */
  freshValue(base: string): string {
    if (!this.has(base)) return base;
    let i = 1;
    while (this.has(`${base}:${i}`)) i++;
    return `${base}:${i}`;
  }

  input(name: string, dtype: DType, shape: number[]): string {
    this.#define({ name, dtype, shape });
    this.graph.inputs.push(name);
    return name;
  }

  /** Adds an initializer under a fresh name derived from `base`; returns the name. */
  constant(base: string, tensor: Tensor): string {
    const name = this.freshValue(base);
    this.#define({ name, dtype: tensor.dtype, shape: [...tensor.shape] });
    this.graph.initializers.set(name, tensor);
    return name;
  }

  /**
   * Adds one node computing `output` (a fresh name derived from it if taken). Attributes are
   * checked and the output's shape inferred; errors name the node.
   */
  node<K extends OpName>(
    op: K,
    name: string,
    inputs: string[],
    attrs: Partial<AttrsByOp[K]>,
    output: string,
  ): string {
    const nodeName = this.#uniqueNode(name);
    const spec = OPS[op];
    const full = { ...spec.defaults, ...attrs } as AttrsByOp[K];
    const problem = spec.checkAttrs?.(full);
    if (problem) throw new BraidError("BAD_ATTRIBUTE", `node "${nodeName}" (${op}): ${problem}`);
    const values = inputs.map((v) => (v === "" ? undefined : this.graph.value(v)));
    const [out] = spec.infer(values, full, failFor(nodeName));
    const outName = this.freshValue(output);
    this.#define({ name: outName, dtype: out.dtype, shape: out.shape });
    this.graph.nodes.push({ name: nodeName, op, inputs, outputs: [outName], attrs: full });
    return outName;
  }

  #uniqueNode(name: string): string {
    let unique = name;
    for (let i = 1; this.#nodeNames.has(unique); i++) unique = `${name}:${i}`;
    this.#nodeNames.add(unique);
    return unique;
  }

  #define(v: Value) {
    if (this.has(v.name)) {
      throw new BraidError("DUPLICATE_VALUE", `value "${v.name}" is defined twice`);
    }
    this.graph.values.set(v.name, v);
  }
}
