/**
 * RandWire-WS, small regime (Xie et al., "Exploring Randomly Wired Neural Networks for Image
 * Recognition", ICCV 2019, Table 1), in the configuration IOS (Ding et al., MLSys 2021)
 * evaluates: WS(N=32, K=4, P=0.75) random graphs, C=78, input [N, 3, 224, 224].
 *
 *   conv1  3x3 conv, C/2, stride 2, BN                                  112x112
 *   conv2  ReLU → 3x3 conv, C, stride 2 → BN                             56x56
 *   conv3  random stage, N=32 nodes, C channels                          28x28
 *   conv4  random stage, N=32 nodes, 2C channels                         14x14
 *   conv5  random stage, N=32 nodes, 4C channels                          7x7
 *   conv6  ReLU → 1x1 conv, 1280 → BN → ReLU; global average pool ("avgpool"); FC 1000 ("fc")
 *
 * A random stage: an undirected Watts–Strogatz graph WS(N, K, P) (a ring lattice of N nodes
 * each joined to its K/2 nearest neighbours on either side, then each lattice edge (i, i+j),
 * j = 1..K/2, rewired with probability P to (i, w), w uniform among the nodes that are neither
 * i nor already joined to i — networkx's watts_strogatz_graph), made a DAG by pointing every
 * edge from the smaller node index to the larger. Each node aggregates its inputs by summing
 * them (Add), then applies ReLU → 3x3 separable conv (depthwise 3x3 + pointwise 1x1, no
 * bias) → BN. Nodes without predecessors (the stage's input nodes) read the previous stage's
 * output, with stride 2 in the depthwise conv. The stage output is the unweighted average of
 * the nodes without successors.
 *
 * Departures from the paper, to stay within braid's op set and parameter counting:
 * - The paper's aggregation is a weighted sum Σ sigmoid(w_i)·x_i with one learnable scalar per
 *   edge; here it is the plain sum (the brief's option), so those ~200 scalars are absent.
 * - The output average Σ x_i / k is computed as the sum, with the 1/k folded into the weights
 *   of the (bias-free, positively homogeneous ReLU → conv) layers that read it: the depthwise
 *   convs of the next stage's input nodes and conv6. The function is that of the average with
 *   weights W/k; no constant tensor enters the graph.
 * - The paper's small-regime conv1/conv2 and classifier details follow the usual PyTorch
 *   implementations: conv1 is conv → BN, conv2 and conv6 are ReLU → conv → BN triplets.
 *
 * Wiring is drawn from `options.seed` (so is every weight): the same seed gives the same graph.
 * The parameter count depends on the wiring (an input node of conv4/conv5 reads fewer channels
 * than the other nodes); at the default seed it is RANDWIRE_PARAMETERS. The paper reports
 * 5.6M parameters and 583M FLOPs for this configuration (with its slightly different head).
 *
 * Names: "conv1.weight", "bn1.running_mean", "conv3.nodes.5.conv.depthwise.weight",
 * "conv3.nodes.5.conv.pointwise.weight", "conv3.nodes.5.bn.weight", "conv6.weight",
 * "bn6.weight", "fc.weight"; the node sums "conv3.nodes.5.add", "conv3.nodes.5.add_1"; the
 * stage averages "conv3.mean", "conv3.mean_1", ….
 */
import type { Graph } from "../ir/graph.ts";
import type { GraphBuilder } from "../ir/builder.ts";
import { Random } from "../util/random.ts";
import { finishModel, type ModelOptions, startModel } from "./common.ts";

/** Parameters at the default seed. */
export const RANDWIRE_PARAMETERS = 5_614_549;

export const RANDWIRE_DEFAULT_SEED = 1007;

export interface RandWireConfig {
  /** Nodes per random stage. */
  nodes: number;
  /** Each node's lattice degree (even). */
  k: number;
  /** Rewiring probability. */
  p: number;
  /** Channels C of the first random stage (conv3); conv4 and conv5 have 2C and 4C. */
  channels: number;
}

export const RANDWIRE_SMALL: RandWireConfig = { nodes: 32, k: 4, p: 0.75, channels: 78 };

/** The range of each node's random BN γ, damping the growth of summed activations. */
const NODE_BN_WEIGHT: [number, number] = [0.5, 0.7];

/**
 * An undirected Watts–Strogatz graph as sorted edge pairs [u, v] with u < v, following
 * networkx.watts_strogatz_graph (ring lattice, then per-edge rewiring with probability p).
 */
export function wattsStrogatz(n: number, k: number, p: number, random: Random): [number, number][] {
  if (k % 2 !== 0 || k < 2 || k >= n) throw new Error(`WS needs an even 2 <= k < n, got k=${k}`);
  const adj = Array.from({ length: n }, () => new Set<number>());
  const link = (u: number, v: number) => {
    adj[u].add(v);
    adj[v].add(u);
  };
  for (let j = 1; j <= k / 2; j++) for (let i = 0; i < n; i++) link(i, (i + j) % n);
  for (let j = 1; j <= k / 2; j++) {
    for (let u = 0; u < n; u++) {
      const v = (u + j) % n;
      if (random.next() >= p) continue;
      if (adj[u].size >= n - 1) continue; // u is joined to every node: nothing to rewire to
      let w = random.int(0, n - 1);
      while (w === u || adj[u].has(w)) w = random.int(0, n - 1);
      adj[u].delete(v);
      adj[v].delete(u);
      link(u, w);
    }
  }
  const edges: [number, number][] = [];
  for (let u = 0; u < n; u++) for (const v of adj[u]) if (u < v) edges.push([u, v]);
  return edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** The DAG of a random stage: predecessors of each node (edges point to the larger index). */
export function stageDag(n: number, edges: [number, number][]): number[][] {
  const preds = Array.from({ length: n }, () => [] as number[]);
  for (const [u, v] of edges) preds[v].push(u);
  return preds.map((ps) => ps.sort((a, b) => a - b));
}

/** The wiring of the three random stages (conv3, conv4, conv5) drawn from a seed. */
export function randwireWiring(
  seed = RANDWIRE_DEFAULT_SEED,
  config: RandWireConfig = RANDWIRE_SMALL,
): [number, number][][] {
  // A stream of its own, so the wiring does not shift when weights are added or reordered.
  const random = new Random((seed ^ 0x5eed_3a11) >>> 0);
  return [0, 1, 2].map(() => wattsStrogatz(config.nodes, config.k, config.p, random));
}

/** ReLU → separable 3x3 conv (depthwise with `stride`, pointwise) → BN. */
function nodeOp(
  b: GraphBuilder,
  x: string,
  name: string,
  out: number,
  stride: number,
  inputScale: number,
): string {
  const y = b.relu(x, `${name}.relu`);
  const dw = depthwise(b, y, `${name}.conv.depthwise`, stride, inputScale);
  const pw = b.conv2d(dw, { name: `${name}.conv.pointwise`, out, kernel: 1, bias: false });
  return b.batchNorm(pw, `${name}.bn`, 1e-5, NODE_BN_WEIGHT);
}

/** A 3x3 depthwise conv (padding 1, no bias) whose kaiming-uniform weights are scaled. */
function depthwise(b: GraphBuilder, x: string, name: string, stride: number, scale: number) {
  const c = b.shape(x)[1];
  const out = b.conv2d(x, {
    name,
    out: c,
    kernel: 3,
    stride,
    padding: 1,
    groups: c,
    bias: false,
  });
  if (scale !== 1) scaleWeight(b, `${name}.weight`, scale);
  return out;
}

function scaleWeight(b: GraphBuilder, name: string, scale: number) {
  const data = b.graph.initializers.get(name)!.data as Float32Array;
  for (let i = 0; i < data.length; i++) data[i] *= scale;
}

/** Sums values left to right with a chain of Adds named "name", "name_1", … (torch.fx-style). */
function sum(b: GraphBuilder, xs: string[], name: string): string {
  let acc = xs[0];
  for (let i = 1; i < xs.length; i++) acc = b.add(acc, xs[i], i === 1 ? name : `${name}_${i - 1}`);
  return acc;
}

/**
 * One random stage over `edges`. `x` is the previous stage's output, summed over `inputTerms`
 * nodes (its 1/inputTerms averaging factor is folded into the input nodes' depthwise weights).
 * Returns the sum of the output nodes and how many terms it has.
 */
function randomStage(
  b: GraphBuilder,
  x: string,
  inputTerms: number,
  name: string,
  n: number,
  edges: [number, number][],
  channels: number,
): { sum: string; terms: number } {
  const preds = stageDag(n, edges);
  const hasSucc = new Array<boolean>(n).fill(false);
  for (const [u] of edges) hasSucc[u] = true;
  const outputs: string[] = [];
  for (let i = 0; i < n; i++) {
    const node = `${name}.nodes.${i}`;
    outputs[i] = preds[i].length === 0
      ? nodeOp(b, x, node, channels, 2, 1 / inputTerms)
      : nodeOp(b, sum(b, preds[i].map((p) => outputs[p]), `${node}.add`), node, channels, 1, 1);
  }
  const ends = outputs.filter((_, i) => !hasSucc[i]);
  return { sum: sum(b, ends, `${name}.mean`), terms: ends.length };
}

export function randwire(options: ModelOptions = {}): Graph {
  const config = RANDWIRE_SMALL;
  const seed = options.seed ?? RANDWIRE_DEFAULT_SEED;
  const wiring = randwireWiring(seed, config);
  const { b, x: input } = startModel("randwire", [3, 224, 224], { ...options, seed }, seed);
  const c = config.channels;

  let x = b.conv2d(input, {
    name: "conv1",
    out: c / 2,
    kernel: 3,
    stride: 2,
    padding: 1,
    bias: false,
  });
  x = b.batchNorm(x, "bn1");
  x = b.relu(x, "relu2");
  x = b.conv2d(x, { name: "conv2", out: c, kernel: 3, stride: 2, padding: 1, bias: false });
  x = b.batchNorm(x, "bn2");

  let stage = { sum: x, terms: 1 };
  [c, 2 * c, 4 * c].forEach((channels, i) => {
    stage = randomStage(
      b,
      stage.sum,
      stage.terms,
      `conv${i + 3}`,
      config.nodes,
      wiring[i],
      channels,
    );
  });

  x = b.relu(stage.sum, "relu6");
  x = b.conv2d(x, { name: "conv6", out: 1280, kernel: 1, bias: false });
  scaleWeight(b, "conv6.weight", 1 / stage.terms);
  x = b.batchNorm(x, "bn6");
  x = b.relu(x, "relu6_1");
  x = b.globalAvgPool(x, "avgpool");
  x = b.flatten(x, 1, "flatten");
  x = b.linear(x, "fc", 1000);
  return finishModel(b, x);
}
