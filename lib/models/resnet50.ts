/**
 * ResNet-50 (v1.5: stride on the 3x3 conv) as torchvision.models.resnet50: 25,557,032
 * parameters, input [N, 3, 224, 224].
 *
 * torchvision applies one `relu` module several times per block; its uses are named
 * "layer1.0.relu", "layer1.0.relu_1", "layer1.0.relu_2", and the residual sum "layer1.0.add".
 */
import type { Graph } from "../ir/graph.ts";
import type { GraphBuilder } from "../ir/builder.ts";
import { finishModel, type ModelOptions, startModel } from "./common.ts";

export const RESNET50_PARAMETERS = 25_557_032;

const EXPANSION = 4;

/**
 * Range of the random γ of each block's last BatchNorm (bn3). With the builder's default
 * (≈1) and eval-mode running statistics, activations grow ~1.5× per block (~2000× over the
 * 16 blocks); a small γ, in the spirit of torchvision's zero_init_residual, keeps them O(1)
 * while every residual branch still contributes.
 */
const RESIDUAL_BN_WEIGHT: [number, number] = [0.2, 0.4];

/** Conv2d(bias=False) followed by BatchNorm2d, the pair every ResNet layer is made of. */
function convBn(
  b: GraphBuilder,
  x: string,
  conv: string,
  bn: string,
  out: number,
  kernel: number,
  stride = 1,
  bnWeight?: [number, number],
): string {
  const y = b.conv2d(x, {
    name: conv,
    out,
    kernel,
    stride,
    padding: (kernel - 1) / 2,
    bias: false,
  });
  return b.batchNorm(y, bn, 1e-5, bnWeight);
}

/** torchvision's Bottleneck: 1x1 → 3x3 (stride) → 1x1 (×4), plus the (projected) identity. */
function bottleneck(
  b: GraphBuilder,
  x: string,
  name: string,
  planes: number,
  stride: number,
): string {
  const out = planes * EXPANSION;
  let y = convBn(b, x, `${name}.conv1`, `${name}.bn1`, planes, 1);
  y = b.relu(y, `${name}.relu`);
  y = convBn(b, y, `${name}.conv2`, `${name}.bn2`, planes, 3, stride);
  y = b.relu(y, `${name}.relu_1`);
  y = convBn(b, y, `${name}.conv3`, `${name}.bn3`, out, 1, 1, RESIDUAL_BN_WEIGHT);
  const needsProjection = stride !== 1 || b.shape(x)[1] !== out;
  const identity = needsProjection
    ? convBn(b, x, `${name}.downsample.0`, `${name}.downsample.1`, out, 1, stride)
    : x;
  return b.relu(b.add(y, identity, `${name}.add`), `${name}.relu_2`);
}

/** One stage: `blocks` bottlenecks, the first with the stage's stride. */
function resLayer(
  b: GraphBuilder,
  x: string,
  name: string,
  planes: number,
  blocks: number,
  stride: number,
): string {
  for (let i = 0; i < blocks; i++) {
    x = bottleneck(b, x, `${name}.${i}`, planes, i === 0 ? stride : 1);
  }
  return x;
}

export function resnet50(options: ModelOptions = {}): Graph {
  let { b, x } = startModel("resnet50", [3, 224, 224], options, 1004);
  x = b.conv2d(x, { name: "conv1", out: 64, kernel: 7, stride: 2, padding: 3, bias: false });
  x = b.batchNorm(x, "bn1");
  x = b.relu(x, "relu");
  x = b.maxPool(x, { kernel: 3, stride: 2, padding: 1, name: "maxpool" });

  x = resLayer(b, x, "layer1", 64, 3, 1);
  x = resLayer(b, x, "layer2", 128, 4, 2);
  x = resLayer(b, x, "layer3", 256, 6, 2);
  x = resLayer(b, x, "layer4", 512, 3, 2);

  x = b.globalAvgPool(x, "avgpool");
  x = b.flatten(x, 1, "flatten");
  x = b.linear(x, "fc", 1000);
  return finishModel(b, x);
}
