/**
 * The model zoo: torchvision image classifiers rebuilt layer for layer as braid graphs, with
 * node and weight names equal to torchvision's module and state_dict names and seeded random
 * weights. Every graph takes "input" [N, 3, H, W] and produces "logits" [N, 1000].
 *
 *   const graph = buildZooModel("resnet50", { batch: 8 });
 */
import { BraidError } from "../errors.ts";
import type { Graph } from "../ir/graph.ts";
import type { ModelOptions } from "./common.ts";
import { densenet121, DENSENET121_PARAMETERS } from "./densenet121.ts";
import { googlenet, GOOGLENET_PARAMETERS } from "./googlenet.ts";
import { INCEPTION_V3_PARAMETERS, inceptionV3 } from "./inception_v3.ts";
import { resnet50, RESNET50_PARAMETERS } from "./resnet50.ts";
import { squeezenet1_1, SQUEEZENET1_1_PARAMETERS } from "./squeezenet.ts";

export { INPUT_NAME, type ModelOptions, OUTPUT_NAME } from "./common.ts";
export {
  densenet121,
  DENSENET121_PARAMETERS,
  googlenet,
  GOOGLENET_PARAMETERS,
  INCEPTION_V3_PARAMETERS,
  inceptionV3,
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
  /** torchvision's parameter count: sum(p.numel() for p in model.parameters()). */
  parameters: number;
  build(options?: ModelOptions): Graph;
}

export type ZooName = "googlenet" | "inception_v3" | "squeezenet1_1" | "resnet50" | "densenet121";

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
