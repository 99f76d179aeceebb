/**
 * Folds an inference BatchNorm into the convolution before it:
 *   w' = w · s,  b' = (b − mean) · s + beta,  s = scale / sqrt(var + eps)   (per output channel).
 * Applies when the conv's only consumer is the BatchNorm and every parameter is a constant.
 * New weight tensors are created; the originals (views on the model file) are left untouched.
 */
import type { Graph } from "../ir/graph.ts";
import type { AttrsByOp } from "../ir/ops.ts";
import { consumersOf, soleConsumer } from "./util.ts";

export function foldBatchNorm(input: Graph): Graph {
  const graph = input.clone();
  const consumers = consumersOf(graph);
  for (const conv of [...graph.nodes]) {
    if (conv.op !== "Conv2d" || (conv.attrs as AttrsByOp["Conv2d"]).activation !== "none") {
      continue;
    }
    if (conv.inputs[3]) continue; // a residual is added before any BatchNorm could apply
    const bn = soleConsumer(graph, consumers, conv.outputs[0]);
    if (!bn || bn.op !== "BatchNorm" || bn.inputs[0] !== conv.outputs[0]) continue;
    const [, scale, beta, mean, variance] = bn.inputs.map((n) => graph.initializers.get(n));
    const weight = graph.initializers.get(conv.inputs[1]);
    const bias = conv.inputs[2] ? graph.initializers.get(conv.inputs[2]) : undefined;
    if (!scale || !beta || !mean || !variance || !weight || (conv.inputs[2] && !bias)) continue;

    const eps = (bn.attrs as AttrsByOp["BatchNorm"]).epsilon;
    const k = weight.shape[0];
    const perChannel = weight.data.length / k;
    const w = new Float32Array(weight.data.length);
    const b = new Float32Array(k);
    for (let c = 0; c < k; c++) {
      const s = scale.data[c] / Math.sqrt(variance.data[c] + eps);
      for (let i = c * perChannel; i < (c + 1) * perChannel; i++) w[i] = weight.data[i] * s;
      b[c] = ((bias?.data[c] ?? 0) - mean.data[c]) * s + beta.data[c];
    }
    const wName = `${conv.inputs[1]}:folded`;
    const bName = `${conv.name}.bias:folded`;
    graph.initializers.set(wName, { dtype: "float32", shape: [...weight.shape], data: w });
    graph.initializers.set(bName, { dtype: "float32", shape: [k], data: b });
    graph.values.set(wName, { name: wName, dtype: "float32", shape: [...weight.shape] });
    graph.values.set(bName, { name: bName, dtype: "float32", shape: [k] });

    // The conv now produces the BatchNorm's output directly.
    graph.values.delete(conv.outputs[0]);
    conv.inputs = [conv.inputs[0], wName, bName];
    conv.outputs = [bn.outputs[0]];
    graph.nodes = graph.nodes.filter((n) => n !== bn);
  }
  return dropUnusedInitializers(graph);
}

/** Removes initializers no node reads any more. */
export function dropUnusedInitializers(graph: Graph): Graph {
  const used = new Set(graph.nodes.flatMap((n) => n.inputs));
  for (const name of [...graph.initializers.keys()]) {
    if (!used.has(name) && !graph.outputs.includes(name)) {
      graph.initializers.delete(name);
      graph.values.delete(name);
    }
  }
  return graph;
}
