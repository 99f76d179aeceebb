/**
 * Inception v3 as torchvision.models.inception_v3(aux_logits=False, transform_input=False):
 * 23,834,568 parameters, input [N, 3, 299, 299].
 *
 * Every convolution is a BasicConv2d (conv without bias, BatchNorm with eps=0.001, ReLU). The
 * pools inside the Inception blocks are torchvision's functional F.avg_pool2d / F.max_pool2d
 * calls, named "<block>.avg_pool2d" / "<block>.max_pool2d".
 */
import type { Graph } from "../ir/graph.ts";
import type { GraphBuilder } from "../ir/builder.ts";
import { basicConv, finishModel, type ModelOptions, startModel } from "./common.ts";

export const INCEPTION_V3_PARAMETERS = 23_834_568;

/** F.avg_pool2d(x, kernel_size=3, stride=1, padding=1): the pool branch of blocks A, C, E. */
function poolBranchInput(b: GraphBuilder, x: string, name: string): string {
  return b.avgPool(x, { kernel: 3, stride: 1, padding: 1, name: `${name}.avg_pool2d` });
}

/** F.max_pool2d(x, kernel_size=3, stride=2): the pool branch of the grid reductions B and D. */
function reductionPool(b: GraphBuilder, x: string, name: string): string {
  return b.maxPool(x, { kernel: 3, stride: 2, name: `${name}.max_pool2d` });
}

/** InceptionA (Mixed_5b..5d): 1x1, 5x5, double 3x3 and pool branches at 35x35. */
function inceptionA(b: GraphBuilder, x: string, name: string, poolFeatures: number): string {
  const branch1x1 = basicConv(b, x, `${name}.branch1x1`, 64, 1);

  let branch5x5 = basicConv(b, x, `${name}.branch5x5_1`, 48, 1);
  branch5x5 = basicConv(b, branch5x5, `${name}.branch5x5_2`, 64, 5, { padding: 2 });

  let branch3x3dbl = basicConv(b, x, `${name}.branch3x3dbl_1`, 64, 1);
  branch3x3dbl = basicConv(b, branch3x3dbl, `${name}.branch3x3dbl_2`, 96, 3, { padding: 1 });
  branch3x3dbl = basicConv(b, branch3x3dbl, `${name}.branch3x3dbl_3`, 96, 3, { padding: 1 });

  const pooled = poolBranchInput(b, x, name);
  const branchPool = basicConv(b, pooled, `${name}.branch_pool`, poolFeatures, 1);

  return b.concat([branch1x1, branch5x5, branch3x3dbl, branchPool], 1, name);
}

/** InceptionB (Mixed_6a): grid reduction 35x35 → 17x17. */
function inceptionB(b: GraphBuilder, x: string, name: string): string {
  const branch3x3 = basicConv(b, x, `${name}.branch3x3`, 384, 3, { stride: 2 });

  let branch3x3dbl = basicConv(b, x, `${name}.branch3x3dbl_1`, 64, 1);
  branch3x3dbl = basicConv(b, branch3x3dbl, `${name}.branch3x3dbl_2`, 96, 3, { padding: 1 });
  branch3x3dbl = basicConv(b, branch3x3dbl, `${name}.branch3x3dbl_3`, 96, 3, { stride: 2 });

  const branchPool = reductionPool(b, x, name);
  return b.concat([branch3x3, branch3x3dbl, branchPool], 1, name);
}

/** InceptionC (Mixed_6b..6e): factorized 7x7 branches at 17x17. */
function inceptionC(b: GraphBuilder, x: string, name: string, c7: number): string {
  const row = { padding: [0, 3] as [number, number] }; // for kernel (1, 7)
  const col = { padding: [3, 0] as [number, number] }; // for kernel (7, 1)
  const branch1x1 = basicConv(b, x, `${name}.branch1x1`, 192, 1);

  let branch7x7 = basicConv(b, x, `${name}.branch7x7_1`, c7, 1);
  branch7x7 = basicConv(b, branch7x7, `${name}.branch7x7_2`, c7, [1, 7], row);
  branch7x7 = basicConv(b, branch7x7, `${name}.branch7x7_3`, 192, [7, 1], col);

  let dbl = basicConv(b, x, `${name}.branch7x7dbl_1`, c7, 1);
  dbl = basicConv(b, dbl, `${name}.branch7x7dbl_2`, c7, [7, 1], col);
  dbl = basicConv(b, dbl, `${name}.branch7x7dbl_3`, c7, [1, 7], row);
  dbl = basicConv(b, dbl, `${name}.branch7x7dbl_4`, c7, [7, 1], col);
  dbl = basicConv(b, dbl, `${name}.branch7x7dbl_5`, 192, [1, 7], row);

  const pooled = poolBranchInput(b, x, name);
  const branchPool = basicConv(b, pooled, `${name}.branch_pool`, 192, 1);

  return b.concat([branch1x1, branch7x7, dbl, branchPool], 1, name);
}

/** InceptionD (Mixed_7a): grid reduction 17x17 → 8x8. */
function inceptionD(b: GraphBuilder, x: string, name: string): string {
  let branch3x3 = basicConv(b, x, `${name}.branch3x3_1`, 192, 1);
  branch3x3 = basicConv(b, branch3x3, `${name}.branch3x3_2`, 320, 3, { stride: 2 });

  let branch7x7x3 = basicConv(b, x, `${name}.branch7x7x3_1`, 192, 1);
  branch7x7x3 = basicConv(b, branch7x7x3, `${name}.branch7x7x3_2`, 192, [1, 7], {
    padding: [0, 3],
  });
  branch7x7x3 = basicConv(b, branch7x7x3, `${name}.branch7x7x3_3`, 192, [7, 1], {
    padding: [3, 0],
  });
  branch7x7x3 = basicConv(b, branch7x7x3, `${name}.branch7x7x3_4`, 192, 3, { stride: 2 });

  const branchPool = reductionPool(b, x, name);
  return b.concat([branch3x3, branch7x7x3, branchPool], 1, name);
}

/** InceptionE's split branch: a 1x3 and a 3x1 convolution of one input, concatenated. */
function splitBranch(
  b: GraphBuilder,
  x: string,
  name: string,
  [left, right]: [string, string],
): string {
  return b.concat(
    [
      basicConv(b, x, left, 384, [1, 3], { padding: [0, 1] }),
      basicConv(b, x, right, 384, [3, 1], { padding: [1, 0] }),
    ],
    1,
    name,
  );
}

/** InceptionE (Mixed_7b, 7c): expanded filter banks at 8x8. */
function inceptionE(b: GraphBuilder, x: string, name: string): string {
  const branch1x1 = basicConv(b, x, `${name}.branch1x1`, 320, 1);

  const branch3x3In = basicConv(b, x, `${name}.branch3x3_1`, 384, 1);
  const branch3x3 = splitBranch(b, branch3x3In, `${name}.branch3x3`, [
    `${name}.branch3x3_2a`,
    `${name}.branch3x3_2b`,
  ]);

  let dblIn = basicConv(b, x, `${name}.branch3x3dbl_1`, 448, 1);
  dblIn = basicConv(b, dblIn, `${name}.branch3x3dbl_2`, 384, 3, { padding: 1 });
  const branch3x3dbl = splitBranch(b, dblIn, `${name}.branch3x3dbl`, [
    `${name}.branch3x3dbl_3a`,
    `${name}.branch3x3dbl_3b`,
  ]);

  const pooled = poolBranchInput(b, x, name);
  const branchPool = basicConv(b, pooled, `${name}.branch_pool`, 192, 1);

  return b.concat([branch1x1, branch3x3, branch3x3dbl, branchPool], 1, name);
}

export function inceptionV3(options: ModelOptions = {}): Graph {
  let { b, x } = startModel("inception_v3", [3, 299, 299], options, 1003);
  x = basicConv(b, x, "Conv2d_1a_3x3", 32, 3, { stride: 2 });
  x = basicConv(b, x, "Conv2d_2a_3x3", 32, 3);
  x = basicConv(b, x, "Conv2d_2b_3x3", 64, 3, { padding: 1 });
  x = b.maxPool(x, { kernel: 3, stride: 2, name: "maxpool1" });
  x = basicConv(b, x, "Conv2d_3b_1x1", 80, 1);
  x = basicConv(b, x, "Conv2d_4a_3x3", 192, 3);
  x = b.maxPool(x, { kernel: 3, stride: 2, name: "maxpool2" });

  x = inceptionA(b, x, "Mixed_5b", 32);
  x = inceptionA(b, x, "Mixed_5c", 64);
  x = inceptionA(b, x, "Mixed_5d", 64);
  x = inceptionB(b, x, "Mixed_6a");
  x = inceptionC(b, x, "Mixed_6b", 128);
  x = inceptionC(b, x, "Mixed_6c", 160);
  x = inceptionC(b, x, "Mixed_6d", 160);
  x = inceptionC(b, x, "Mixed_6e", 192);
  x = inceptionD(b, x, "Mixed_7a");
  x = inceptionE(b, x, "Mixed_7b");
  x = inceptionE(b, x, "Mixed_7c");

  x = b.globalAvgPool(x, "avgpool");
  x = b.dropout(x, 0.5, "dropout");
  x = b.flatten(x, 1, "flatten");
  x = b.linear(x, "fc", 1000);
  return finishModel(b, x);
}
