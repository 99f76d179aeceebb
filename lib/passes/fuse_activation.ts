/**
 * Fuses an activation node into the operator before it (Conv2d, Gemm, Add/Sub/Mul/Div), when that
 * operator's only consumer is the activation and it has none fused yet.
 */
import type { Graph, Node } from "../ir/graph.ts";
import type { Activation, FusedActivation } from "../ir/ops.ts";
import { bypass, consumersOf, soleConsumer } from "./util.ts";

const FUSES_INTO = new Set(["Conv2d", "Gemm", "Add", "Sub", "Mul", "Div"]);

function activationOf(node: Node): FusedActivation | undefined {
  const simple: Partial<Record<string, Activation>> = {
    Relu: "relu",
    Sigmoid: "sigmoid",
    Tanh: "tanh",
    Gelu: "gelu",
  };
  const kind = simple[node.op];
  if (kind) return { activation: kind, actMin: 0, actMax: 0 };
  if (node.op === "Clamp") {
    const { min, max } = node.attrs as { min: number; max: number };
    if (Number.isFinite(min) && Number.isFinite(max)) {
      return { activation: "clamp", actMin: min, actMax: max };
    }
  }
}

export function fuseActivations(input: Graph): Graph {
  const graph = input.clone();
  const consumers = consumersOf(graph);
  for (const producer of [...graph.nodes]) {
    if (!FUSES_INTO.has(producer.op)) continue;
    if ((producer.attrs as FusedActivation).activation !== "none") continue;
    const act = soleConsumer(graph, consumers, producer.outputs[0]);
    const fused = act && activationOf(act);
    if (!act || !fused) continue;
    // The producer takes over the activation's output name, so graph outputs keep their names.
    const removed = producer.outputs[0];
    graph.values.delete(removed);
    producer.outputs = [...act.outputs];
    producer.attrs = { ...producer.attrs, ...fused };
    graph.nodes = graph.nodes.filter((n) => n !== act);
    consumers.delete(removed);
  }
  return graph;
}

/** Drops Identity and Dropout (inference), unless the node produces a graph output from a graph input. */
export function dropIdentities(input: Graph): Graph {
  const graph = input.clone();
  for (const node of [...graph.nodes]) {
    if (node.op !== "Identity" && node.op !== "Dropout") continue;
    const [source] = node.inputs;
    const [output] = node.outputs;
    if (!graph.outputs.includes(output)) {
      bypass(graph, node, source, output);
      continue;
    }
    // A graph output keeps its name: rename the source instead, when a node makes it and
    // nothing else needs the old name.
    const producer = graph.nodes.find((n) => n.outputs.includes(source));
    if (!producer || graph.outputs.includes(source)) continue;
    graph.nodes = graph.nodes.filter((n) => n !== node);
    graph.values.delete(source);
    producer.outputs = producer.outputs.map((o) => (o === source ? output : o));
    for (const n of graph.nodes) n.inputs = n.inputs.map((i) => (i === source ? output : i));
  }
  return graph;
}
