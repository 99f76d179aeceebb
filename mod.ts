/**
 * braid: operator-parallel DNN inference on NVIDIA GPUs, from Deno.
 *
 * ```ts
 * import { loadModel, Session } from "./mod.ts";
 * const model = await loadModel("googlenet.braid");
 * using session = await Session.create(model, { device: "auto" });
 * const { logits } = await session.run({ input: new Float32Array(3 * 224 * 224) });
 * ```
 * @module
 */
export { BraidError, type BraidErrorCode } from "./lib/errors.ts";
export { type DType, Graph, type Node, type Tensor, type Value } from "./lib/ir/graph.ts";
export { type Activation, type AttrsByOp, type OpName, OPS } from "./lib/ir/ops.ts";
export { GraphBuilder } from "./lib/ir/builder.ts";
export { inferShapes, validateGraph } from "./lib/ir/validate.ts";
export { decodeModel } from "./lib/format/read.ts";
export { encodeModel } from "./lib/format/write.ts";
export { loadModel, Model, modelFromBytes, saveModel } from "./lib/runtime/model.ts";
export {
  type DeviceOption,
  type HostTensor,
  type PrecisionOption,
  type SchedulerOption,
  Session,
  type SessionOptions,
  type SessionReport,
} from "./lib/runtime/session.ts";
export { type ConvChoice, type ScheduleChoice, TuningCache } from "./lib/runtime/tuning.ts";
export { Partition, type PartitionOptions } from "./lib/runtime/partition.ts";
export {
  type LaneReport,
  type Reply,
  Server,
  type ServerLane,
  type ServerOptions,
  type ServerReport,
} from "./lib/runtime/server.ts";
export { type Profile, type Stats } from "./lib/runtime/profiler.ts";
export { graphFlops, parameterCount } from "./lib/analysis/cost.ts";
export { buildDag, criticalPath, width } from "./lib/analysis/dag.ts";
export { buildZooModel, ZOO, zooNames } from "./lib/models/index.ts";
export {
  importOnnx,
  type ImportOptions,
  type ImportSummary,
  type OnnxImport,
} from "./lib/onnx/mod.ts";
export type { DeviceInfo, PartitionSplit } from "./ffi/backend.ts";
