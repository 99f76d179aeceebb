/**
 * DenseNet-121 as torchvision.models.densenet121: 7,978,856 parameters, input [N, 3, 224, 224].
 *
 * As in torchvision, each dense layer concatenates all the feature maps before it
 * ("<layer>.cat", absent for a block's first layer, whose input is a single tensor) and each
 * block ends by concatenating its input with every layer's new features ("<block>").
 */
import type { Graph } from "../ir/graph.ts";
import type { GraphBuilder } from "../ir/builder.ts";
import { finishModel, type ModelOptions, startModel } from "./common.ts";

export const DENSENET121_PARAMETERS = 7_978_856;

const GROWTH_RATE = 32;
const BN_SIZE = 4;
const BLOCK_CONFIG = [6, 12, 24, 16];
const INIT_FEATURES = 64;

/** _DenseLayer: BN → ReLU → 1x1 conv (4·growth) → BN → ReLU → 3x3 conv (growth). */
function denseLayer(b: GraphBuilder, features: string[], name: string): string {
  // Concat gets a copy: the builder keeps the array it is given, and `features` keeps growing.
  const x = features.length === 1 ? features[0] : b.concat([...features], 1, `${name}.cat`);
  let y = b.relu(b.batchNorm(x, `${name}.norm1`), `${name}.relu1`);
  y = b.conv2d(y, { name: `${name}.conv1`, out: BN_SIZE * GROWTH_RATE, kernel: 1, bias: false });
  y = b.relu(b.batchNorm(y, `${name}.norm2`), `${name}.relu2`);
  return b.conv2d(y, {
    name: `${name}.conv2`,
    out: GROWTH_RATE,
    kernel: 3,
    padding: 1,
    bias: false,
  });
}

/** _DenseBlock: `layers` dense layers; returns the concatenation of all features. */
function denseBlock(b: GraphBuilder, x: string, name: string, layers: number): string {
  const features = [x];
  for (let i = 1; i <= layers; i++) {
    features.push(denseLayer(b, features, `${name}.denselayer${i}`));
  }
  return b.concat([...features], 1, name);
}

/** _Transition: BN → ReLU → 1x1 conv halving the channels → 2x2 average pool. */
function transition(b: GraphBuilder, x: string, name: string): string {
  const out = b.shape(x)[1] / 2;
  const y = b.relu(b.batchNorm(x, `${name}.norm`), `${name}.relu`);
  const z = b.conv2d(y, { name: `${name}.conv`, out, kernel: 1, bias: false });
  return b.avgPool(z, { kernel: 2, stride: 2, name: `${name}.pool` });
}

export function densenet121(options: ModelOptions = {}): Graph {
  let { b, x } = startModel("densenet121", [3, 224, 224], options, 1005);
  x = b.conv2d(x, {
    name: "features.conv0",
    out: INIT_FEATURES,
    kernel: 7,
    stride: 2,
    padding: 3,
    bias: false,
  });
  x = b.relu(b.batchNorm(x, "features.norm0"), "features.relu0");
  x = b.maxPool(x, { kernel: 3, stride: 2, padding: 1, name: "features.pool0" });

  BLOCK_CONFIG.forEach((layers, i) => {
    x = denseBlock(b, x, `features.denseblock${i + 1}`, layers);
    if (i < BLOCK_CONFIG.length - 1) x = transition(b, x, `features.transition${i + 1}`);
  });
  x = b.batchNorm(x, "features.norm5");

  x = b.relu(x, "relu");
  x = b.globalAvgPool(x, "avgpool");
  x = b.flatten(x, 1, "flatten");
  x = b.linear(x, "classifier", 1000);
  return finishModel(b, x);
}
