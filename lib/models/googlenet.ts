/**
 * GoogLeNet (Inception v1) as torchvision.models.googlenet(aux_logits=False,
 * transform_input=False): 6,624,904 parameters, input [N, 3, 224, 224].
 *
 * As in torchvision, every convolution is a BasicConv2d (conv without bias, BatchNorm with
 * eps=0.001, ReLU), every max pool uses ceil_mode=True, and the Inception "5x5" branch (branch3)
 * uses a 3x3 convolution.
 */
import type { Graph } from "../ir/graph.ts";
import type { GraphBuilder } from "../ir/builder.ts";
import { basicConv, finishModel, type ModelOptions, startModel } from "./common.ts";

export const GOOGLENET_PARAMETERS = 6_624_904;

/** Channel widths of one Inception block, in torchvision's argument order. */
type InceptionWidths = [
  ch1x1: number,
  ch3x3red: number,
  ch3x3: number,
  ch5x5red: number,
  ch5x5: number,
  poolProj: number,
];

function maxPool(b: GraphBuilder, x: string, name: string, kernel: number, stride: number) {
  return b.maxPool(x, { kernel, stride, ceilMode: true, name });
}

/** torchvision's Inception: four branches concatenated along channels. */
function inceptionBlock(b: GraphBuilder, x: string, name: string, w: InceptionWidths): string {
  const [ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, poolProj] = w;
  const branch1 = basicConv(b, x, `${name}.branch1`, ch1x1, 1);

  const reduce3 = basicConv(b, x, `${name}.branch2.0`, ch3x3red, 1);
  const branch2 = basicConv(b, reduce3, `${name}.branch2.1`, ch3x3, 3, { padding: 1 });

  const reduce5 = basicConv(b, x, `${name}.branch3.0`, ch5x5red, 1);
  // torchvision's known quirk: kernel_size=3, not 5.
  const branch3 = basicConv(b, reduce5, `${name}.branch3.1`, ch5x5, 3, { padding: 1 });

  const pooled = b.maxPool(x, {
    kernel: 3,
    stride: 1,
    padding: 1,
    ceilMode: true,
    name: `${name}.branch4.0`,
  });
  const branch4 = basicConv(b, pooled, `${name}.branch4.1`, poolProj, 1);

  return b.concat([branch1, branch2, branch3, branch4], 1, name);
}

export function googlenet(options: ModelOptions = {}): Graph {
  let { b, x } = startModel("googlenet", [3, 224, 224], options, 1001);
  x = basicConv(b, x, "conv1", 64, 7, { stride: 2, padding: 3 });
  x = maxPool(b, x, "maxpool1", 3, 2);
  x = basicConv(b, x, "conv2", 64, 1);
  x = basicConv(b, x, "conv3", 192, 3, { padding: 1 });
  x = maxPool(b, x, "maxpool2", 3, 2);

  x = inceptionBlock(b, x, "inception3a", [64, 96, 128, 16, 32, 32]);
  x = inceptionBlock(b, x, "inception3b", [128, 128, 192, 32, 96, 64]);
  x = maxPool(b, x, "maxpool3", 3, 2);

  x = inceptionBlock(b, x, "inception4a", [192, 96, 208, 16, 48, 64]);
  x = inceptionBlock(b, x, "inception4b", [160, 112, 224, 24, 64, 64]);
  x = inceptionBlock(b, x, "inception4c", [128, 128, 256, 24, 64, 64]);
  x = inceptionBlock(b, x, "inception4d", [112, 144, 288, 32, 64, 64]);
  x = inceptionBlock(b, x, "inception4e", [256, 160, 320, 32, 128, 128]);
  x = maxPool(b, x, "maxpool4", 2, 2);

  x = inceptionBlock(b, x, "inception5a", [256, 160, 320, 32, 128, 128]);
  x = inceptionBlock(b, x, "inception5b", [384, 192, 384, 48, 128, 128]);

  x = b.globalAvgPool(x, "avgpool");
  x = b.flatten(x, 1, "flatten");
  x = b.dropout(x, 0.2, "dropout");
  x = b.linear(x, "fc", 1000);
  return finishModel(b, x);
}
