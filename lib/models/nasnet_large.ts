/**
 * NASNet-A Large as timm's `nasnetalarge` (timm 1.0, pad_type="same"): 88,753,150 parameters,
 * input [N, 3, 331, 331], 18 normal cells in three stacks of six (168, 336, 672 filters per
 * branch) separated by two reduction cells, after a 3x3 stem conv and two stem cells.
 *
 * Structure and names follow timm's modules and state_dict keys
 * ("cell_0.comb_iter_0_left.separable_1.depthwise_conv2d.weight"):
 * - ActConvBn (`conv_1x1`, `conv_prev_1x1`): ReLU ("….act") → 1x1 conv → BatchNorm.
 * - BranchSeparables (`comb_iter_*`): ReLU (act_1) → SeparableConv2d (separable_1: depthwise
 *   k×k with the branch's stride, then pointwise 1x1) → BN (bn_sep_1) → ReLU (act_2) →
 *   SeparableConv2d (separable_2, stride 1) → BN (bn_sep_2). Convs have no bias; every BN uses
 *   eps 1e-3.
 * - Functional adds and concatenations are named after the cell with torch.fx-style suffixes
 *   ("cell_0.add", "cell_0.add_1", …, "cell_0.cat", "cell_0.cat_1").
 *
 * Padding, as timm computes it with pad_type="same" (TensorFlow SAME):
 * - Stride-1 convs and pools use static symmetric padding (k-1)/2; those pools are
 *   nn.AvgPool2d(3, 1, padding=1, count_include_pad=False) and nn.MaxPool2d.
 * - Stride-2 convs and pools are timm's Conv2dSame / AvgPool2dSame / MaxPool2dSame, which pad
 *   the input by pad = max((ceil(H/2) - 1)·2 + k - H, 0) split as floor(pad/2) before and the
 *   rest after. The sizes are static here, so the pads become (possibly asymmetric) conv and
 *   pool pads [top, left, bottom, right]: at 42x42 (reduction_cell_0) a 5x5 conv pads [1,1,2,2],
 *   a 7x7 one [2,2,3,3] and a 3x3 pool [0,0,1,1]. MaxPool2dSame pads with -inf (padding never
 *   wins a max, as in braid's pools). AvgPool2dSame pads with zeros *before* pooling, so the
 *   padded zeros count in the divisor although count_include_pad=False: these pools are
 *   countIncludePad=true here, which divides by exactly the same window.
 * - The "shifted" path_2 of the stem cell 1 and of the first cells after a reduction is
 *   ZeroPad2d((-1, 1, -1, 1)) → AvgPool2d(1, stride=2) → 1x1 conv: drop the first row and
 *   column, append a zero row and column, take every other pixel. There is no Pad op, so the
 *   crop is a Slice ("….path_2.pad"), and the appended zeros, when the subsampling reaches them
 *   (odd H), are the 1x1 pool's bottom/right padding with count_include_pad: the pool gives
 *   exactly 0 there, and so does the bias-free 1x1 conv after it, as in timm. (As the conv's
 *   padding they were the same function, but a 1x1 conv with asymmetric padding cannot run in
 *   cuDNN: braid's direct kernel took 0.86 ms for the 2016-channel one on the H200.)
 *
 * Head: ReLU ("act") → global average pool ("global_pool.pool", "global_pool.flatten") →
 * Dropout ("head_drop", p=0.0 as timm's default drop_rate) → Linear ("last_linear").
 */
import type { Graph } from "../ir/graph.ts";
import type { GraphBuilder } from "../ir/builder.ts";
import type { Pads } from "../ir/ops.ts";
import { finishModel, type ModelOptions, startModel } from "./common.ts";

export const NASNET_LARGE_PARAMETERS = 88_753_150;

const BN_EPS = 1e-3;

/**
 * Range of the random γ of each branch's last BatchNorm (bn_sep_2). A separable conv of a
 * ReLU'd input keeps the second moment under the builder's kaiming-uniform weights, but its
 * pointwise conv reads the (not ReLU'd) depthwise output and doubles it, and every cell adds
 * branches up: with γ ≈ 1 the activations grow ~1.7x per cell (rms ~3e5 after cell_17, at
 * seed 1006). With this range they stay moderate (rms ~2 after the stem cells, ~60 after
 * cell_17; logits std ~57).
 */
const BRANCH_BN_WEIGHT: [number, number] = [0.3, 0.5];

/** TensorFlow SAME padding [before, after] of one axis, as timm's get_same_padding. */
function samePad(size: number, kernel: number, stride: number): [number, number] {
  const pad = Math.max((Math.ceil(size / stride) - 1) * stride + kernel - size, 0);
  return [Math.floor(pad / 2), pad - Math.floor(pad / 2)];
}

function samePads(b: GraphBuilder, x: string, kernel: number, stride: number): Pads {
  const [, , h, w] = b.shape(x);
  const [top, bottom] = samePad(h, kernel, stride);
  const [left, right] = samePad(w, kernel, stride);
  return [top, left, bottom, right];
}

/** torch.fx-style names for a cell's functional calls: "cell.add", "cell.add_1", … */
class FxNames {
  #counts = new Map<string, number>();
  constructor(readonly prefix: string) {}
  next(fn: string): string {
    const i = this.#counts.get(fn) ?? 0;
    this.#counts.set(fn, i + 1);
    return `${this.prefix}.${i === 0 ? fn : `${fn}_${i}`}`;
  }
}

/** ActConvBn: ReLU → 1x1 conv (no bias) → BN. */
function actConvBn(b: GraphBuilder, x: string, name: string, out: number): string {
  const y = b.conv2d(b.relu(x, `${name}.act`), {
    name: `${name}.conv`,
    out,
    kernel: 1,
    bias: false,
  });
  return b.batchNorm(y, `${name}.bn`, BN_EPS);
}

/** SeparableConv2d: depthwise k×k (SAME padding, stride) → pointwise 1x1, both without bias. */
function separableConv(
  b: GraphBuilder,
  x: string,
  name: string,
  out: number,
  kernel: number,
  stride: number,
): string {
  const cin = b.shape(x)[1];
  const dw = b.conv2d(x, {
    name: `${name}.depthwise_conv2d`,
    out: cin,
    kernel,
    stride,
    padding: samePads(b, x, kernel, stride),
    groups: cin,
    bias: false,
  });
  return b.conv2d(dw, { name: `${name}.pointwise_conv2d`, out, kernel: 1, bias: false });
}

/** BranchSeparables: two ReLU → SeparableConv2d → BN triplets (only the first has the stride). */
function branchSeparables(
  b: GraphBuilder,
  x: string,
  name: string,
  out: number,
  kernel: number,
  stride: number,
  stemCell = false,
): string {
  const middle = stemCell ? out : b.shape(x)[1];
  let y = b.relu(x, `${name}.act_1`);
  y = separableConv(b, y, `${name}.separable_1`, middle, kernel, stride);
  y = b.batchNorm(y, `${name}.bn_sep_1`, BN_EPS);
  y = b.relu(y, `${name}.act_2`);
  y = separableConv(b, y, `${name}.separable_2`, out, kernel, 1);
  return b.batchNorm(y, `${name}.bn_sep_2`, BN_EPS, BRANCH_BN_WEIGHT);
}

/** create_pool2d('max', 3, stride, padding='same'). */
function maxPool(b: GraphBuilder, x: string, name: string, stride: number): string {
  return b.node("MaxPool2d", [x], {
    kernel: [3, 3],
    strides: [stride, stride],
    pads: samePads(b, x, 3, stride),
  }, name);
}

/**
 * create_pool2d('avg', 3, stride, count_include_pad=False, padding='same'): nn.AvgPool2d with
 * padding 1 at stride 1; AvgPool2dSame at stride 2, whose external zero padding counts.
 */
function avgPool(b: GraphBuilder, x: string, name: string, stride: number): string {
  return b.node("AvgPool2d", [x], {
    kernel: [3, 3],
    strides: [stride, stride],
    pads: samePads(b, x, 3, stride),
    countIncludePad: stride !== 1,
  }, name);
}

/**
 * The factorized reduction of the previous-previous input (CellStem1, FirstCell):
 * ReLU → [path_1: AvgPool2d(1, 2) → 1x1 conv ‖ path_2: shift by one pixel → AvgPool2d(1, 2) →
 * 1x1 conv] → concat → BN (final_path_bn).
 */
function factorizedReduction(
  b: GraphBuilder,
  x: string,
  name: string,
  out: number,
  fx: FxNames,
): string {
  const relu = b.relu(x, `${name}.act`);
  const pool = { kernel: 1, stride: 2, countIncludePad: false };
  const p1 = b.avgPool(relu, { ...pool, name: `${name}.path_1.avgpool` });
  const path1 = b.conv2d(p1, { name: `${name}.path_1.conv`, out: out / 2, kernel: 1, bias: false });

  // ZeroPad2d((-1, 1, -1, 1)): the crop here; the appended zero row/column as the pool's
  // bottom/right padding, counted in its divisor, so the pool gives exactly 0 there.
  const [, , h, w] = b.shape(relu);
  const cropped = b.slice(relu, [2, 3], [1, 1], [h, w], `${name}.path_2.pad`);
  const [, , th, tw] = b.shape(p1); // ceil(H/2) × ceil(W/2), as path_1 and timm's path_2
  const [unpaddedH, unpaddedW] = [Math.floor((h - 2) / 2) + 1, Math.floor((w - 2) / 2) + 1];
  const p2 = b.avgPool(cropped, {
    ...pool,
    padding: [0, 0, th - unpaddedH, tw - unpaddedW],
    countIncludePad: true,
    name: `${name}.path_2.avgpool`,
  });
  const path2 = b.conv2d(p2, { name: `${name}.path_2.conv`, out: out / 2, kernel: 1, bias: false });
  const cat = b.concat([path1, path2], 1, fx.next("cat"));
  return b.batchNorm(cat, `${name}.final_path_bn`, BN_EPS);
}

/**
 * The five combinations of a reduction-type cell (CellStem0/1, ReductionCell0/1): the
 * `comb_iter_*_left` modules read `left`, the `comb_iter_*_right` ones `right` (in CellStem0,
 * `stem`: the stem conv output, read by BranchSeparables with stem_cell=True). Returns the
 * concatenation of combinations 1-4.
 */
function reductionCombinations(
  b: GraphBuilder,
  name: string,
  left: string,
  right: string,
  channels: number,
  fx: FxNames,
  stem = false,
): string {
  const c0 = b.add(
    branchSeparables(b, left, `${name}.comb_iter_0_left`, channels, 5, 2),
    branchSeparables(b, right, `${name}.comb_iter_0_right`, channels, 7, 2, stem),
    fx.next("add"),
  );
  const c1 = b.add(
    maxPool(b, left, `${name}.comb_iter_1_left`, 2),
    branchSeparables(b, right, `${name}.comb_iter_1_right`, channels, 7, 2, stem),
    fx.next("add"),
  );
  const c2 = b.add(
    avgPool(b, left, `${name}.comb_iter_2_left`, 2),
    branchSeparables(b, right, `${name}.comb_iter_2_right`, channels, 5, 2, stem),
    fx.next("add"),
  );
  const c3 = b.add(avgPool(b, c0, `${name}.comb_iter_3_right`, 1), c1, fx.next("add"));
  const c4 = b.add(
    branchSeparables(b, c0, `${name}.comb_iter_4_left`, channels, 3, 1),
    maxPool(b, left, `${name}.comb_iter_4_right`, 2),
    fx.next("add"),
  );
  return b.concat([c1, c2, c3, c4], 1, fx.next("cat"));
}

/** CellStem0(stem_size=96, num_channels=42) on the stem conv's output. */
function cellStem0(b: GraphBuilder, x: string, name: string, channels: number): string {
  const fx = new FxNames(name);
  const x1 = actConvBn(b, x, `${name}.conv_1x1`, channels);
  // Its right branches read the stem conv output directly (stem_cell: middle = out channels).
  return reductionCombinations(b, name, x1, x, channels, fx, true);
}

/** CellStem1(stem_size=96, num_channels=84). */
function cellStem1(
  b: GraphBuilder,
  xConv0: string,
  xStem0: string,
  name: string,
  channels: number,
): string {
  const fx = new FxNames(name);
  const left = actConvBn(b, xStem0, `${name}.conv_1x1`, channels);
  const right = factorizedReduction(b, xConv0, name, channels, fx);
  return reductionCombinations(b, name, left, right, channels, fx);
}

/** The normal-cell combinations shared by FirstCell and NormalCell. */
function normalCombinations(
  b: GraphBuilder,
  name: string,
  left: string,
  right: string,
  fx: FxNames,
): string {
  const cl = b.shape(left)[1];
  const cr = b.shape(right)[1];
  const c0 = b.add(
    branchSeparables(b, right, `${name}.comb_iter_0_left`, cr, 5, 1),
    branchSeparables(b, left, `${name}.comb_iter_0_right`, cl, 3, 1),
    fx.next("add"),
  );
  const c1 = b.add(
    branchSeparables(b, left, `${name}.comb_iter_1_left`, cl, 5, 1),
    branchSeparables(b, left, `${name}.comb_iter_1_right`, cl, 3, 1),
    fx.next("add"),
  );
  const c2 = b.add(avgPool(b, right, `${name}.comb_iter_2_left`, 1), left, fx.next("add"));
  const c3 = b.add(
    avgPool(b, left, `${name}.comb_iter_3_left`, 1),
    avgPool(b, left, `${name}.comb_iter_3_right`, 1),
    fx.next("add"),
  );
  const c4 = b.add(
    branchSeparables(b, right, `${name}.comb_iter_4_left`, cr, 3, 1),
    right,
    fx.next("add"),
  );
  return b.concat([left, c0, c1, c2, c3, c4], 1, fx.next("cat"));
}

/** FirstCell: the previous-previous input is reduced by the factorized (two-path) reduction. */
function firstCell(
  b: GraphBuilder,
  x: string,
  xPrev: string,
  name: string,
  outLeft: number,
  outRight: number,
): string {
  const fx = new FxNames(name);
  const left = factorizedReduction(b, xPrev, name, 2 * outLeft, fx);
  const right = actConvBn(b, x, `${name}.conv_1x1`, outRight);
  return normalCombinations(b, name, left, right, fx);
}

function normalCell(
  b: GraphBuilder,
  x: string,
  xPrev: string,
  name: string,
  outLeft: number,
  outRight: number,
): string {
  const fx = new FxNames(name);
  const left = actConvBn(b, xPrev, `${name}.conv_prev_1x1`, outLeft);
  const right = actConvBn(b, x, `${name}.conv_1x1`, outRight);
  return normalCombinations(b, name, left, right, fx);
}

/** ReductionCell0 / ReductionCell1 (identical structure). */
function reductionCell(
  b: GraphBuilder,
  x: string,
  xPrev: string,
  name: string,
  channels: number,
): string {
  const fx = new FxNames(name);
  const left = actConvBn(b, xPrev, `${name}.conv_prev_1x1`, channels);
  const right = actConvBn(b, x, `${name}.conv_1x1`, channels);
  // In a reduction cell "left" combinations read the current input (x_right in timm).
  return reductionCombinations(b, name, right, left, channels, fx);
}

export function nasnetLarge(options: ModelOptions = {}): Graph {
  const { b, x: input } = startModel("nasnet_large", [3, 331, 331], options, 1006);
  const ch = 4032 / 24; // 168 filters per branch in the first stack

  let x = b.conv2d(input, { name: "conv0.conv", out: 96, kernel: 3, stride: 2, bias: false });
  const conv0 = b.batchNorm(x, "conv0.bn", BN_EPS);

  const stem0 = cellStem0(b, conv0, "cell_stem_0", ch / 4);
  const stem1 = cellStem1(b, conv0, stem0, "cell_stem_1", ch / 2);

  // Every cell reads (x, x_prev): the two previous outputs, as timm's forward_features.
  const cells: string[] = [];
  cells[0] = firstCell(b, stem1, stem0, "cell_0", ch / 2, ch);
  cells[1] = normalCell(b, cells[0], stem1, "cell_1", ch, ch);
  for (let i = 2; i < 6; i++) {
    cells[i] = normalCell(b, cells[i - 1], cells[i - 2], `cell_${i}`, ch, ch);
  }

  const red0 = reductionCell(b, cells[5], cells[4], "reduction_cell_0", 2 * ch);
  cells[6] = firstCell(b, red0, cells[4], "cell_6", ch, 2 * ch);
  cells[7] = normalCell(b, cells[6], red0, "cell_7", 2 * ch, 2 * ch);
  for (let i = 8; i < 12; i++) {
    cells[i] = normalCell(b, cells[i - 1], cells[i - 2], `cell_${i}`, 2 * ch, 2 * ch);
  }

  const red1 = reductionCell(b, cells[11], cells[10], "reduction_cell_1", 4 * ch);
  cells[12] = firstCell(b, red1, cells[10], "cell_12", 2 * ch, 4 * ch);
  cells[13] = normalCell(b, cells[12], red1, "cell_13", 4 * ch, 4 * ch);
  for (let i = 14; i < 18; i++) {
    cells[i] = normalCell(b, cells[i - 1], cells[i - 2], `cell_${i}`, 4 * ch, 4 * ch);
  }

  x = b.relu(cells[17], "act");
  x = b.globalAvgPool(x, "global_pool.pool");
  x = b.flatten(x, 1, "global_pool.flatten");
  x = b.dropout(x, 0, "head_drop");
  x = b.linear(x, "last_linear", 1000);
  return finishModel(b, x);
}
