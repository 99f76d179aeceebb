/**
 * SqueezeNet 1.1 as torchvision.models.squeezenet1_1: 1,235,496 parameters, input
 * [N, 3, 224, 224]. Node names follow torchvision's `features` and `classifier` Sequentials.
 */
import type { Graph } from "../ir/graph.ts";
import type { GraphBuilder } from "../ir/builder.ts";
import { finishModel, type ModelOptions, startModel } from "./common.ts";

export const SQUEEZENET1_1_PARAMETERS = 1_235_496;

/** Fire: a 1x1 squeeze conv, then 1x1 and 3x3 expand convs concatenated, each with a ReLU. */
function fire(
  b: GraphBuilder,
  x: string,
  name: string,
  squeeze: number,
  expand1x1: number,
  expand3x3: number,
): string {
  const s = b.relu(
    b.conv2d(x, { name: `${name}.squeeze`, out: squeeze, kernel: 1 }),
    `${name}.squeeze_activation`,
  );
  const e1 = b.relu(
    b.conv2d(s, { name: `${name}.expand1x1`, out: expand1x1, kernel: 1 }),
    `${name}.expand1x1_activation`,
  );
  const e3 = b.relu(
    b.conv2d(s, { name: `${name}.expand3x3`, out: expand3x3, kernel: 3, padding: 1 }),
    `${name}.expand3x3_activation`,
  );
  return b.concat([e1, e3], 1, name);
}

function maxPool(b: GraphBuilder, x: string, name: string): string {
  return b.maxPool(x, { kernel: 3, stride: 2, ceilMode: true, name });
}

export function squeezenet1_1(options: ModelOptions = {}): Graph {
  let { b, x } = startModel("squeezenet1_1", [3, 224, 224], options, 1002);
  x = b.conv2d(x, { name: "features.0", out: 64, kernel: 3, stride: 2 });
  x = b.relu(x, "features.1");
  x = maxPool(b, x, "features.2");
  x = fire(b, x, "features.3", 16, 64, 64);
  x = fire(b, x, "features.4", 16, 64, 64);
  x = maxPool(b, x, "features.5");
  x = fire(b, x, "features.6", 32, 128, 128);
  x = fire(b, x, "features.7", 32, 128, 128);
  x = maxPool(b, x, "features.8");
  x = fire(b, x, "features.9", 48, 192, 192);
  x = fire(b, x, "features.10", 48, 192, 192);
  x = fire(b, x, "features.11", 64, 256, 256);
  x = fire(b, x, "features.12", 64, 256, 256);

  x = b.dropout(x, 0.5, "classifier.0");
  x = b.conv2d(x, { name: "classifier.1", out: 1000, kernel: 1 });
  x = b.relu(x, "classifier.2");
  x = b.globalAvgPool(x, "classifier.3");
  x = b.flatten(x, 1, "flatten");
  return finishModel(b, x);
}
