/*
 * conv_engine.cuh — one convolution through cuDNN's backend (graph) API: an execution plan built
 * from an engine configuration that cuDNN's heuristic proposes for an SM-count target.
 *
 * The legacy API of conv.cu sizes its kernels for the whole device even inside a partition
 * (cudaDevAttrMultiProcessorCount still says 132 there). Here the heuristic is told the SM
 * budget (CUDNN_ATTR_ENGINEHEUR_SM_COUNT_TARGET), so its configurations (tiles, split-K) are
 * chosen for that many SMs. They are extra candidates of braid_conv2d_tune, which times them
 * beside the legacy algorithms on the budget's own SMs.
 *
 * Algorithm ids (conv.cu's `algorithm` field):
 *   ENGINE_BASE + rank + ENGINE_RANKS * fused + 2 * ENGINE_RANKS * sm_target
 * - rank: the configuration's place among those the heuristic lists that braid may use (no
 *   run-time compilation, no inputs down-converted, deterministic; strict fp32 also excludes
 *   tensor cores, FFT and Winograd);
 * - fused: the graph is conv, + residual, + bias, relu (those of the record that apply), so the
 *   epilogue is cuDNN's; else conv alone and conv.cu runs the epilogue pass;
 * - sm_target: the SM count the heuristic targeted, 0 for the whole device. It is part of the id,
 *   so a choice made under one budget is the same configuration wherever it runs.
 */
#ifndef BRAID_CUDA_CONV_ENGINE_CUH
#define BRAID_CUDA_CONV_ENGINE_CUH

#include "common.cuh"

#include <string>

namespace braid_cuda {

constexpr int ENGINE_BASE = 32;
constexpr int ENGINE_RANKS = 8;
constexpr int ENGINE_MAX_TARGET = 4096;
constexpr int ENGINE_ID_END = ENGINE_BASE + 2 * ENGINE_RANKS * (ENGINE_MAX_TARGET + 1);

struct EngineChoice {
  bool fused;
  int rank;
  int sm_target;
};

static inline bool is_engine_id(int id) { return id >= ENGINE_BASE && id < ENGINE_ID_END; }

static inline int engine_id(EngineChoice e) {
  return ENGINE_BASE + e.rank + ENGINE_RANKS * (e.fused ? 1 : 0) + 2 * ENGINE_RANKS * e.sm_target;
}

static inline EngineChoice engine_choice(int id) {
  const int v = id - ENGINE_BASE;
  return EngineChoice{(v / ENGINE_RANKS) % 2 == 1, v % ENGINE_RANKS, v / (2 * ENGINE_RANKS)};
}

/* Whether a record's epilogue can go into the fused graph: relu or none, after the bias and
 * residual. */
static inline bool engine_fusable(const braid_conv2d_params* p) {
  return p->activation == BRAID_ACT_RELU || p->activation == BRAID_ACT_NONE;
}

struct EnginePlan;

/* Builds the plan of `e` for the record on the context's cuDNN handle (has_bias, has_res: the
 * launch passes those operands; align: the bytes every operand address is a multiple of, 4, 8 or
 * 16). Errors: a rank the heuristic does not have is BRAID_ERR_UNSUPPORTED; a failing cuDNN call
 * BRAID_ERR_CUDNN. */
BRAID_HIDDEN int32_t engine_plan_create(Context* c, const char* fn, const braid_conv2d_params* p,
                                        bool has_bias, bool has_res, int align, EngineChoice e,
                                        EnginePlan** out);

/* Where a plan is built: on a cuDNN handle's device, or (handle NULL) on a device that cuDNN's
 * device-properties descriptor describes (cuDNN 9.8+), which needs no GPU:
 * csrc/tools/engine_probe.cu builds the plans braid would tune on a machine without one. A plan
 * built so can be inspected, not run. */
struct EngineDevice {
  cudnnHandle_t handle;
  cudnnBackendDescriptor_t properties;
};
BRAID_HIDDEN int32_t engine_plan_build(EngineDevice dev, const char* fn,
                                       const braid_conv2d_params* p, bool has_bias, bool has_res,
                                       int align, EngineChoice e, EnginePlan** out);
/* Where the context's plans for an SM target are built: its handle, and for a target below the
 * whole device (a partition's budget) cuDNN's description of the device as a green context of
 * that many SMs sees it, where this cuDNN can give one (without it, cuDNN 9.24 lists no
 * configuration for most targets: csrc/tools/engine_probe.cu). The context lock held. */
BRAID_HIDDEN EngineDevice engine_device(Context* c, int sm_target);
/* cuDNN's JSON of the handle's device, or "" where this cuDNN cannot write it (before 9.8). */
BRAID_HIDDEN std::string engine_device_json(cudnnHandle_t handle);
/* A device-properties descriptor from cuDNN's JSON of a device (as a green context of
 * `partition_sms` SMs sees it, if not 0), or NULL where this cuDNN cannot make one. */
BRAID_HIDDEN cudnnBackendDescriptor_t engine_device_properties(const char* json,
                                                               int partition_sms);
/* Frees what engine_device built (with the context). */
BRAID_HIDDEN void engine_device_release(Context* c);
/* "engine <global index> knobs <type>=<value>,..., workspace <bytes>". */
BRAID_HIDDEN void engine_plan_describe(const EnginePlan* e, char* out, size_t len);
BRAID_HIDDEN size_t engine_plan_workspace(const EnginePlan* e);
/* Enqueues the plan on the stream cuDNN's handle is bound to (the context lock held). */
BRAID_HIDDEN int32_t engine_plan_run(Context* c, const char* fn, const EnginePlan* e, uint64_t x,
                                     uint64_t w, uint64_t bias, uint64_t residual, uint64_t y,
                                     void* workspace);
BRAID_HIDDEN void engine_plan_destroy(EnginePlan* e);

}  // namespace braid_cuda

#endif /* BRAID_CUDA_CONV_ENGINE_CUH */
