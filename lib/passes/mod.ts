/** The inference pass pipeline, in order. Each pass is a pure Graph → Graph rewrite. */
import type { Graph } from "../ir/graph.ts";
import { dedupeNodes } from "./dedupe.ts";
import { dropUnusedInitializers, foldBatchNorm } from "./fold_batchnorm.ts";
import { dropIdentities, fuseActivations } from "./fuse_activation.ts";
import { fuseResidualAdd } from "./fuse_residual.ts";

export {
  dedupeNodes,
  dropIdentities,
  dropUnusedInitializers,
  foldBatchNorm,
  fuseActivations,
  fuseResidualAdd,
};
export { mergeCandidates, type MergeOptions, mergeSiblingConvs } from "./merge_convs.ts";
// Used by the ONNX importer (lib/onnx) to clean up exporter output.
export { dropDeadNodes } from "./dead_nodes.ts";
export { fuseProductEpilogues } from "./fuse_epilogues.ts";

export interface PassOptions {
  /** Run no rewrites at all (debugging). */
  none?: boolean;
}

export function optimize(graph: Graph, options: PassOptions = {}): Graph {
  if (options.none) return graph;
  let g = dedupeNodes(dropIdentities(graph));
  g = foldBatchNorm(g);
  g = fuseActivations(g);
  g = fuseResidualAdd(g);
  return dropUnusedInitializers(g);
}
