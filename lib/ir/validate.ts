/**
 * Validation and shape inference. Runs once at load and once at Session.create (for the batch
 * asked for). Every error is a BraidError naming the node and the value at fault.
 */
import { BraidError, check } from "../errors.ts";
import { type Graph, numel, shapeString, type Value } from "./graph.ts";
import { failFor, isOpName, opSpec } from "./ops.ts";

/** Node indices in a topological order (stable: ties keep the stored order). Throws on cycles. */
export function topologicalOrder(graph: Graph): number[] {
  const producer = new Map<string, number>();
  graph.nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  const indegree = new Array<number>(graph.nodes.length).fill(0);
  const consumers: number[][] = graph.nodes.map(() => []);
  graph.nodes.forEach((n, i) => {
    for (const input of new Set(n.inputs)) {
      const p = producer.get(input);
      if (p === undefined) continue;
      indegree[i]++;
      consumers[p].push(i);
    }
  });
  // A min-heap would keep it O(n log n); a sorted ready list is plenty at these sizes.
  const ready = indegree.flatMap((d, i) => (d === 0 ? [i] : []));
  const order: number[] = [];
  while (ready.length > 0) {
    const i = ready.shift()!;
    order.push(i);
    for (const c of consumers[i]) {
      if (--indegree[c] === 0) {
        const at = ready.findIndex((r) => r > c);
        ready.splice(at < 0 ? ready.length : at, 0, c);
      }
    }
  }
  if (order.length !== graph.nodes.length) {
    const stuck = graph.nodes.find((_, i) => indegree[i] > 0)!;
    throw new BraidError("CYCLE", `node "${stuck.name}" is part of a cycle`);
  }
  return order;
}

/** Checks structure (ops, arities, attributes, names, acyclicity, initializers). */
export function checkStructure(graph: Graph): void {
  const defined = new Set<string>();
  const define = (name: string, by: string) => {
    check(name !== "", "BAD_NODE", () => `${by} defines a value with an empty name`);
    check(!defined.has(name), "DUPLICATE_VALUE", () => `value "${name}" is defined twice (${by})`);
    defined.add(name);
  };
  for (const name of graph.inputs) define(name, `graph input "${name}"`);
  for (const [name, t] of graph.initializers) {
    define(name, `initializer "${name}"`);
    check(
      t.shape.every((d) => Number.isInteger(d) && d >= 0) && t.data.length === numel(t.shape),
      "BAD_INITIALIZER",
      () => `initializer "${name}" has ${t.data.length} elements but shape ${shapeString(t.shape)}`,
    );
  }
  const nodeNames = new Set<string>();
  for (const node of graph.nodes) {
    check(!nodeNames.has(node.name), "BAD_NODE", () => `node name "${node.name}" is used twice`);
    nodeNames.add(node.name);
    check(isOpName(node.op), "UNKNOWN_OP", () => `node "${node.name}" has unknown op "${node.op}"`);
    const spec = opSpec(node.op);
    const variadic = node.op === "Concat";
    check(
      node.inputs.length >= spec.minInputs &&
        (variadic || node.inputs.length <= spec.inputs.length) &&
        node.inputs.slice(0, spec.minInputs).every((i) => i !== ""),
      "BAD_NODE",
      () =>
        `node "${node.name}" (${node.op}) has ${node.inputs.length} inputs; it takes ` +
        `${spec.minInputs}${variadic ? " or more" : `..${spec.inputs.length}`} (${spec.inputs})`,
    );
    check(
      node.outputs.length === 1,
      "BAD_NODE",
      () => `node "${node.name}" (${node.op}) must have exactly one output`,
    );
    const problem = spec.checkAttrs?.(node.attrs);
    check(!problem, "BAD_ATTRIBUTE", () => `node "${node.name}" (${node.op}): ${problem}`);
    for (const o of node.outputs) define(o, `node "${node.name}"`);
  }
  for (const node of graph.nodes) {
    for (const input of node.inputs) {
      check(
        input === "" || defined.has(input),
        "DANGLING_VALUE",
        () => `node "${node.name}" reads value "${input}", which nothing defines`,
      );
    }
  }
  for (const out of graph.outputs) {
    check(defined.has(out), "DANGLING_VALUE", () => `graph output "${out}" is never defined`);
  }
  for (const name of graph.inputs) {
    check(graph.values.has(name), "DANGLING_VALUE", () => `graph input "${name}" has no type`);
  }
  topologicalOrder(graph);
}

/**
 * Infers every value's dtype and shape. With `batch`, the first dimension of each graph input is
 * replaced by it. Returns a fresh map; the graph is not modified.
 */
export function inferShapes(graph: Graph, batch?: number): Map<string, Value> {
  const shapes = new Map<string, Value>();
  for (const name of graph.inputs) {
    const v = graph.values.get(name)!;
    const shape = [...v.shape];
    if (batch !== undefined && shape.length > 0) shape[0] = batch;
    check(
      shape.every((d) => Number.isInteger(d) && d >= 1),
      "SHAPE_MISMATCH",
      () => `graph input "${name}" has invalid shape ${shapeString(shape)}`,
    );
    shapes.set(name, { name, dtype: v.dtype, shape });
  }
  for (const [name, t] of graph.initializers) {
    shapes.set(name, { name, dtype: t.dtype, shape: [...t.shape] });
  }
  for (const i of topologicalOrder(graph)) {
    const node = graph.nodes[i];
    const spec = opSpec(node.op);
    const inputs = node.inputs.map((n) => (n === "" ? undefined : shapes.get(n)!));
    const outs = spec.infer(inputs, node.attrs, failFor(node.name));
    node.outputs.forEach((name, k) => shapes.set(name, { name, ...outs[k] }));
  }
  return shapes;
}

/** Full validation: structure, then shapes, which must agree with the declared values. */
export function validateGraph(graph: Graph): Map<string, Value> {
  checkStructure(graph);
  const shapes = inferShapes(graph);
  for (const node of graph.nodes) {
    for (const name of node.outputs) {
      const declared = graph.values.get(name);
      const inferred = shapes.get(name)!;
      check(
        !declared ||
          (declared.dtype === inferred.dtype &&
            shapeString(declared.shape) === shapeString(inferred.shape)),
        "SHAPE_MISMATCH",
        () =>
          `node "${node.name}": value "${name}" is declared ${declared!.dtype} ` +
          `${shapeString(declared!.shape)} but the op gives ${inferred.dtype} ` +
          `${shapeString(inferred.shape)}`,
      );
    }
  }
  for (const [name, t] of graph.initializers) {
    const declared = graph.values.get(name);
    check(
      !declared || shapeString(declared.shape) === shapeString(t.shape),
      "SHAPE_MISMATCH",
      () =>
        `initializer "${name}" is declared ${shapeString(declared!.shape)} but holds ` +
        shapeString(t.shape),
    );
  }
  return shapes;
}
