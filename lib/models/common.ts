/**
 * Shared pieces of the model zoo: build options, the graph's start and end, and torchvision's
 * BasicConv2d (used by GoogLeNet and Inception v3).
 *
 * Naming: a node carries the name of the torchvision module it stands for ("layer1.0.conv1"), so
 * its weights are named as in the state_dict ("layer1.0.conv1.weight"). Functional calls and
 * modules used more than once (ResNet's `relu`) get the module path plus the function's name,
 * with torch.fx-style suffixes for repeats ("layer1.0.relu", "layer1.0.relu_1").
 */
import type { Graph } from "../ir/graph.ts";
import { GraphBuilder } from "../ir/builder.ts";

export interface ModelOptions {
  /** Batch size of the graph input (default 1). */
  batch?: number;
  /** Seed of the random weights (each model has its own fixed default). */
  seed?: number;
}

/** Name of every zoo graph's input. */
export const INPUT_NAME = "input";
/** Name of every zoo graph's output. */
export const OUTPUT_NAME = "logits";

/** A builder with the graph input "input" of shape [batch, ...chw]. */
export function startModel(
  name: string,
  chw: number[],
  options: ModelOptions,
  defaultSeed: number,
): { b: GraphBuilder; x: string } {
  const b = new GraphBuilder(name, options.seed ?? defaultSeed);
  const x = b.input(INPUT_NAME, [options.batch ?? 1, ...chw]);
  return { b, x };
}

/** Renames the value `x` (the last layer's output) to "logits", marks it the output, builds. */
export function finishModel(b: GraphBuilder, x: string): Graph {
  return finishOutputs(b, [[x, OUTPUT_NAME]]);
}

/**
 * Renames each value to its output name (wherever it is produced or read), marks the renamed
 * values as the graph outputs in the given order, and builds.
 */
export function finishOutputs(b: GraphBuilder, outputs: [value: string, name: string][]): Graph {
  const graph = b.graph;
  for (const [x, name] of outputs) {
    const value = graph.value(x);
    graph.values.delete(x);
    graph.values.set(name, { ...value, name });
    for (const node of graph.nodes) {
      node.inputs = node.inputs.map((i) => (i === x ? name : i));
      node.outputs = node.outputs.map((o) => (o === x ? name : o));
    }
    b.output(name);
  }
  return b.build();
}

export type Size = number | [number, number];

/** torchvision's BasicConv2d: Conv2d(bias=False) → BatchNorm2d(eps=0.001) → F.relu. */
export function basicConv(
  b: GraphBuilder,
  x: string,
  name: string,
  out: number,
  kernel: Size,
  o: { stride?: Size; padding?: Size } = {},
): string {
  const conv = b.conv2d(x, {
    name: `${name}.conv`,
    out,
    kernel,
    stride: o.stride,
    padding: o.padding,
    bias: false,
  });
  return b.relu(b.batchNorm(conv, `${name}.bn`, 0.001), `${name}.relu`);
}
