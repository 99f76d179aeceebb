/**
 * IOS's "operator merge" (Ding et al., MLSys 2021): sibling convolutions that read the same input
 * with the same window (kernel size, strides, pads, dilations), groups == 1, the same fused
 * activation and no residual become one convolution whose weights and biases are concatenated
 * along the output-channel axis (a missing bias becomes zeros). Each original output becomes a
 * channel Slice of the merged output, so its consumers and the graph outputs are unchanged.
 *
 * When every consumer of the merged outputs is one Concat on the channel axis that takes exactly
 * those outputs as a contiguous run, the group is ordered as that run and the Concat reads the
 * merged output directly (no Slices; the Concat disappears when the run is all its inputs).
 *
 * Not part of `optimize()`: a merged convolution is not always faster, so the runtime keeps a
 * merge only where measurement shows a gain (`filter`). Run it on `optimize()`'s output, after
 * BatchNorm folding and activation fusion. New weight tensors are created; the originals (views
 * on a model file) are never modified.
 */
import type { Graph, Node, Tensor } from "../ir/graph.ts";
import type { AttrsByOp } from "../ir/ops.ts";
import { dropUnusedInitializers } from "./fold_batchnorm.ts";
import { consumersOf } from "./util.ts";

type ConvAttrs = AttrsByOp["Conv2d"];

export interface MergeOptions {
  /** Smallest group worth merging (default 2). */
  minGroup?: number;
  /**
   * Keeps a candidate group (the input graph's nodes, in merge order) when it returns true;
   * by default every group is merged.
   */
  filter?: (convs: Node[]) => boolean;
}

/** A float32 constant held as a Float32Array, or undefined. */
function floatConstant(graph: Graph, name: string | undefined): Tensor | undefined {
  if (!name) return undefined;
  const t = graph.initializers.get(name);
  return t && t.dtype === "float32" && t.data instanceof Float32Array ? t : undefined;
}

/** The grouping key of a mergeable conv, or undefined when it cannot take part in a merge. */
function mergeKey(graph: Graph, node: Node): string | undefined {
  if (node.op !== "Conv2d" || node.outputs.length !== 1) return undefined;
  const a = node.attrs as ConvAttrs;
  if (a.groups !== 1 || node.inputs[3]) return undefined; // no residual
  const weight = floatConstant(graph, node.inputs[1]);
  if (!weight || weight.shape.length !== 4) return undefined;
  if (node.inputs[2] && !floatConstant(graph, node.inputs[2])) return undefined;
  const [, c, kh, kw] = weight.shape;
  return JSON.stringify([
    node.inputs[0],
    c,
    kh,
    kw,
    a.strides,
    a.pads,
    a.dilations,
    a.activation,
    a.activation === "clamp" ? [a.actMin, a.actMax] : [],
  ]);
}

/**
 * The Concat that would read a group's merged output directly, with the run's first position,
 * or undefined: every output must be read only by that one Concat (on the channel axis), be no
 * graph output, and appear exactly once, the group's outputs forming a contiguous run.
 */
function concatRun(
  graph: Graph,
  consumers: Map<string, Node[]>,
  convs: Node[],
): { concat: Node; start: number } | undefined {
  const outputs = convs.map((n) => n.outputs[0]);
  let concat: Node | undefined;
  for (const o of outputs) {
    const list = consumers.get(o) ?? [];
    if (list.length !== 1 || graph.outputs.includes(o)) return undefined;
    if (concat && list[0] !== concat) return undefined;
    concat = list[0];
  }
  if (!concat || concat.op !== "Concat") return undefined;
  const rank = graph.values.get(concat.outputs[0])?.shape.length;
  const axis = (concat.attrs as AttrsByOp["Concat"]).axis;
  if (rank !== 4 || (axis !== 1 && axis !== 1 - rank)) return undefined;
  const positions = concat.inputs.flatMap((v, i) => (outputs.includes(v) ? [i] : []));
  if (positions.length !== outputs.length) return undefined; // some output appears twice
  const start = positions[0];
  if (positions.some((p, i) => p !== start + i)) return undefined;
  return { concat, start };
}

/**
 * Groups of sibling Conv2d nodes `mergeSiblingConvs` would merge, each in merge order (node order,
 * or the order of the Concat that reads them all), groups ordered by their first node.
 */
export function mergeCandidates(graph: Graph, options: { minGroup?: number } = {}): Node[][] {
  const minGroup = Math.max(2, options.minGroup ?? 2);
  const groups = new Map<string, Node[]>();
  for (const node of graph.nodes) {
    const key = mergeKey(graph, node);
    if (key === undefined) continue;
    const list = groups.get(key) ?? [];
    list.push(node);
    groups.set(key, list);
  }
  const consumers = consumersOf(graph);
  const result: Node[][] = [];
  for (const convs of groups.values()) {
    if (convs.length < minGroup) continue;
    const run = concatRun(graph, consumers, convs);
    if (run) {
      const at = (n: Node) => run.concat.inputs.indexOf(n.outputs[0]);
      convs.sort((p, q) => at(p) - at(q));
    }
    result.push(convs);
  }
  const index = new Map(graph.nodes.map((n, i) => [n, i]));
  const first = (g: Node[]) => Math.min(...g.map((n) => index.get(n)!));
  return result.sort((p, q) => first(p) - first(q));
}

/** `base`, or `base:1`, `base:2`, ... : the first name `taken` says is free. */
function freshName(base: string, taken: (name: string) => boolean): string {
  if (!taken(base)) return base;
  let i = 1;
  while (taken(`${base}:${i}`)) i++;
  return `${base}:${i}`;
}

export function mergeSiblingConvs(input: Graph, options: MergeOptions = {}): Graph {
  const candidates = mergeCandidates(input, options)
    .filter((convs) => !options.filter || options.filter(convs));
  if (candidates.length === 0) return input.clone();
  const graph = input.clone();
  // clone() keeps the node order: the i-th node of the copy is the i-th of the input.
  const copyOf = new Map(input.nodes.map((n, i) => [n, graph.nodes[i]]));
  const nodeNames = new Set(graph.nodes.map((n) => n.name));
  const valueTaken = (name: string) => graph.values.has(name) || graph.initializers.has(name);

  for (const group of candidates) {
    const convs = group.map((n) => copyOf.get(n)!);
    const first = convs[0];
    const weights = convs.map((n) => graph.initializers.get(n.inputs[1])!);
    const biases = convs.map((n) => graph.initializers.get(n.inputs[2] ?? ""));
    const counts = weights.map((w) => w.shape[0]);
    const total = counts.reduce((s, k) => s + k, 0);
    const [, c, kh, kw] = weights[0].shape;
    const perChannel = c * kh * kw;

    // Concatenated weights (and biases, zeros where one is missing), as new arrays.
    const w = new Float32Array(total * perChannel);
    let at = 0;
    for (const t of weights) {
      w.set(t.data, at);
      at += t.data.length;
    }
    const base = `${first.name}+merged`;
    const name = freshName(base, (n) => nodeNames.has(n));
    nodeNames.add(name);
    const wName = freshName(`${base}.weight`, valueTaken);
    graph.initializers.set(wName, { dtype: "float32", shape: [total, c, kh, kw], data: w });
    graph.values.set(wName, { name: wName, dtype: "float32", shape: [total, c, kh, kw] });
    const inputs = [first.inputs[0], wName];
    if (biases.some((b) => b)) {
      const b = new Float32Array(total);
      let offset = 0;
      biases.forEach((t, i) => {
        if (t) b.set(t.data, offset);
        offset += counts[i];
      });
      const bName = freshName(`${base}.bias`, valueTaken);
      graph.initializers.set(bName, { dtype: "float32", shape: [total], data: b });
      graph.values.set(bName, { name: bName, dtype: "float32", shape: [total] });
      inputs.push(bName);
    }

    const firstOut = graph.value(first.outputs[0]);
    const outShape = [...firstOut.shape];
    outShape[1] = total;
    const a = first.attrs as ConvAttrs;
    const merged: Node = {
      name,
      op: "Conv2d",
      inputs,
      outputs: [""],
      attrs: {
        ...a,
        strides: [...a.strides],
        pads: [...a.pads],
        dilations: [...a.dilations],
      } as ConvAttrs,
    };

    let run = concatRun(graph, consumersOf(graph), convs);
    if (run && convs.some((n, i) => run!.concat.inputs[run!.start + i] !== n.outputs[0])) {
      run = undefined; // not in the group's order: keep the slices
    }
    const outputs = new Set(convs.map((n) => n.outputs[0]));
    let replacements: (Node | undefined)[];
    if (run && run.concat.inputs.length === convs.length) {
      // The Concat is exactly the merged conv: it takes over the Concat's output.
      merged.outputs = [run.concat.outputs[0]];
      for (const o of outputs) graph.values.delete(o);
      graph.nodes = graph.nodes.filter((n) => n !== run.concat);
      replacements = convs.map(() => undefined);
    } else {
      const out = freshName(base, valueTaken);
      merged.outputs = [out];
      graph.values.set(out, { name: out, dtype: firstOut.dtype, shape: outShape });
      if (run) {
        // The Concat reads the merged output in place of the run.
        run.concat.inputs.splice(run.start, convs.length, out);
        for (const o of outputs) graph.values.delete(o);
        replacements = convs.map(() => undefined);
      } else {
        // Each original output becomes a channel slice of the merged output.
        let offset = 0;
        replacements = convs.map((conv, i) => {
          const sliceName = freshName(`${conv.name}+slice`, (n) => nodeNames.has(n));
          nodeNames.add(sliceName);
          const slice: Node = {
            name: sliceName,
            op: "Slice",
            inputs: [out],
            outputs: [conv.outputs[0]],
            attrs: { axes: [1], starts: [offset], ends: [offset + counts[i]], steps: [1] },
          };
          offset += counts[i];
          return slice;
        });
      }
    }

    // The merged conv takes the first conv's place, each slice its conv's place, so a
    // topologically ordered node list stays so.
    const replace = new Map<Node, Node | undefined>(convs.map((n, i) => [n, replacements[i]]));
    const firstAt = Math.min(...convs.map((n) => graph.nodes.indexOf(n)));
    graph.nodes = graph.nodes.flatMap((n, i) => {
      const head = i === firstAt ? [merged] : [];
      if (!replace.has(n)) return [...head, n];
      const r = replace.get(n);
      return r ? [...head, r] : head;
    });
  }
  return dropUnusedInitializers(graph);
}
