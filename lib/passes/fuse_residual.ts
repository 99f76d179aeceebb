/**
 * Fuses a residual Add into the convolution that feeds it: Add(conv(x), r) → conv(x) + r,
 * keeping the Add's fused activation (ResNet's conv3 → bn3 → add → relu becomes one conv).
 * The conv must have no activation of its own, be the Add's operand of the same shape, and `r`
 * must not depend on the conv (that would make a cycle).
 */
import type { Graph } from "../ir/graph.ts";
import type { FusedActivation } from "../ir/ops.ts";
import { consumersOf, soleConsumer } from "./util.ts";

export function fuseResidualAdd(input: Graph): Graph {
  const graph = input.clone();
  const consumers = consumersOf(graph);
  const producer = new Map(graph.nodes.map((n) => [n.outputs[0], n]));
  const dependsOn = (value: string, target: string): boolean => {
    const seen = new Set<string>();
    const stack = [value];
    while (stack.length > 0) {
      const v = stack.pop()!;
      if (v === target) return true;
      if (seen.has(v)) continue;
      seen.add(v);
      for (const i of producer.get(v)?.inputs ?? []) if (i) stack.push(i);
    }
    return false;
  };
  for (const add of [...graph.nodes]) {
    if (add.op !== "Add") continue;
    const outShape = graph.values.get(add.outputs[0])?.shape.join(",");
    for (const side of [0, 1]) {
      const conv = producer.get(add.inputs[side]);
      const other = add.inputs[1 - side];
      if (!conv || conv.op !== "Conv2d" || conv.inputs[3]) continue;
      if ((conv.attrs as FusedActivation).activation !== "none") continue;
      if (soleConsumer(graph, consumers, conv.outputs[0]) !== add) continue;
      if (graph.values.get(other)?.shape.join(",") !== outShape) continue;
      if (graph.values.get(conv.outputs[0])?.shape.join(",") !== outShape) continue;
      if (dependsOn(other, conv.outputs[0])) continue;
      const act = add.attrs as FusedActivation;
      graph.values.delete(conv.outputs[0]);
      conv.inputs = [conv.inputs[0], conv.inputs[1], conv.inputs[2] ?? "", other];
      conv.outputs = [...add.outputs];
      conv.attrs = {
        ...conv.attrs,
        activation: act.activation,
        actMin: act.actMin,
        actMax: act.actMax,
      };
      producer.set(conv.outputs[0], conv);
      graph.nodes = graph.nodes.filter((n) => n !== add);
      break;
    }
  }
  return graph;
}
