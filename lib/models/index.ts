/**
 * The model zoo: torchvision, timm and HuggingFace networks rebuilt layer for layer as braid
 * graphs, with node and weight names equal to the reference module and state_dict names and
 * seeded random weights, plus a seeded randomly wired network. The image classifiers take
 * "input" [N, 3, H, W] and produce "logits" [N, 1000]; bert_base takes int32 "input_ids"
 * [N, 128] and produces "last_hidden_state" and "pooler_output" (see ZooEntry.input/outputs).
 *
 *   const graph = buildZooModel("resnet50", { batch: 8 });
 */
import { BraidError } from "../errors.ts";
import type { Graph } from "../ir/graph.ts";
import type { ModelOptions } from "./common.ts";
import { BERT_BASE_PARAMETERS, BERT_INPUT_NAME, BERT_OUTPUT_NAMES, bertBase } from "./bert.ts";
import { densenet121, DENSENET121_PARAMETERS } from "./densenet121.ts";
import { googlenet, GOOGLENET_PARAMETERS } from "./googlenet.ts";
import { INCEPTION_V3_PARAMETERS, inceptionV3 } from "./inception_v3.ts";
import { NASNET_LARGE_PARAMETERS, nasnetLarge } from "./nasnet_large.ts";
import { randwire, RANDWIRE_PARAMETERS } from "./randwire.ts";
import { resnet50, RESNET50_PARAMETERS } from "./resnet50.ts";
import { squeezenet1_1, SQUEEZENET1_1_PARAMETERS } from "./squeezenet.ts";

export { INPUT_NAME, type ModelOptions, OUTPUT_NAME } from "./common.ts";
export {
  BERT_BASE_PARAMETERS,
  bertBase,
  densenet121,
  DENSENET121_PARAMETERS,
  googlenet,
  GOOGLENET_PARAMETERS,
  INCEPTION_V3_PARAMETERS,
  inceptionV3,
  NASNET_LARGE_PARAMETERS,
  nasnetLarge,
  randwire,
  RANDWIRE_PARAMETERS,
  resnet50,
  RESNET50_PARAMETERS,
  squeezenet1_1,
  SQUEEZENET1_1_PARAMETERS,
};
export type { Graph };

export interface ZooEntry {
  description: string;
  /** The graph input's shape at batch 1. */
  inputShape: number[];
  /**
   * The reference's parameter count: sum(p.numel() for p in model.parameters()) (for
   * randwire, braid's own count at the default seed).
   */
  parameters: number;
  /** The graph input's name and dtype when not "input" float32. */
  input?: { name: string; dtype: "float32" | "int32" };
  /** The graph outputs when not ["logits"]. */
  outputs?: readonly string[];
  build(options?: ModelOptions): Graph;
}

export type ZooName =
  | "googlenet"
  | "inception_v3"
  | "squeezenet1_1"
  | "resnet50"
  | "densenet121"
  | "nasnet_large"
  | "randwire"
  | "bert_base";

export const ZOO: Record<ZooName, ZooEntry> = {
  googlenet: {
    description: "GoogLeNet / Inception v1 (torchvision, aux_logits=False)",
    inputShape: [1, 3, 224, 224],
    parameters: GOOGLENET_PARAMETERS,
    build: googlenet,
  },
  inception_v3: {
    description: "Inception v3 (torchvision, aux_logits=False)",
    inputShape: [1, 3, 299, 299],
    parameters: INCEPTION_V3_PARAMETERS,
    build: inceptionV3,
  },
  squeezenet1_1: {
    description: "SqueezeNet 1.1 (torchvision)",
    inputShape: [1, 3, 224, 224],
    parameters: SQUEEZENET1_1_PARAMETERS,
    build: squeezenet1_1,
  },
  resnet50: {
    description: "ResNet-50 v1.5 (torchvision)",
    inputShape: [1, 3, 224, 224],
    parameters: RESNET50_PARAMETERS,
    build: resnet50,
  },
  densenet121: {
    description: "DenseNet-121 (torchvision)",
    inputShape: [1, 3, 224, 224],
    parameters: DENSENET121_PARAMETERS,
    build: densenet121,
  },
  nasnet_large: {
    description: "NASNet-A Large 6@4032 (timm nasnetalarge)",
    inputShape: [1, 3, 331, 331],
    parameters: NASNET_LARGE_PARAMETERS,
    build: nasnetLarge,
  },
  randwire: {
    description: "RandWire-WS small regime, WS(32, 4, 0.75), C=78 (seeded wiring)",
    inputShape: [1, 3, 224, 224],
    parameters: RANDWIRE_PARAMETERS,
    build: randwire,
  },
  bert_base: {
    description: "BERT-base uncased encoder + pooler, sequence 128 (HF BertModel)",
    inputShape: [1, 128],
    parameters: BERT_BASE_PARAMETERS,
    input: { name: BERT_INPUT_NAME, dtype: "int32" },
    outputs: BERT_OUTPUT_NAMES,
    build: bertBase,
  },
};

/** The zoo's model names, in a fixed order. */
export function zooNames(): ZooName[] {
  return Object.keys(ZOO) as ZooName[];
}

export function isZooName(name: string): name is ZooName {
  return Object.hasOwn(ZOO, name);
}

/** Builds a zoo model by name; throws BraidError("USAGE") listing the names on an unknown one. */
export function buildZooModel(name: string, options: ModelOptions = {}): Graph {
  if (!isZooName(name)) {
    throw new BraidError(
      "USAGE",
      `unknown model "${name}"; the zoo has: ${zooNames().join(", ")}`,
    );
  }
  return ZOO[name].build(options);
}
