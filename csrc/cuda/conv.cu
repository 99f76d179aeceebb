/*
 * conv.cu — braid_conv2d and braid_conv2d_tune through cuDNN's descriptor API, with a direct
 * kernel for what cuDNN cannot express.
 *
 * Paths (chosen once per parameter record and cached in the context with its descriptors):
 * - fused: cudnnConvolutionBiasActivationForward, y = relu|identity(conv(x, w) + z + bias) in one
 *   call (residual as z with alpha2 = 1; a context-owned zero bias when the conv has none).
 *   cuDNN allows the identity activation only with IMPLICIT_PRECOMP_GEMM.
 * - plain: cudnnConvolutionForward, then (when there is a bias, residual or an activation cuDNN
 *   cannot fuse: clamp, sigmoid, tanh, exact GELU) one epilogue pass over y.
 * - direct: braid's own kernel (algorithm id 8), for padding cuDNN cannot express (cuDNN pads
 *   symmetrically; braid's bottom/right padding is implied by oh, ow and may differ) and as the
 *   fallback when no cuDNN algorithm fits the workspace.
 * - engine: an execution plan of cuDNN's backend API whose configuration the heuristic chose for
 *   an SM-count target (conv_engine.cu; ids from ENGINE_BASE, which encode the target), the
 *   epilogue fused into cuDNN's graph or run as the plain path's pass.
 * Algorithm ids 0..7 are cudnnConvolutionFwdAlgo_t. Math: allow_tf32 → CUDNN_DEFAULT_MATH (TF32
 * tensor cores allowed, PyTorch's default for convolutions); otherwise CUDNN_FMA_MATH, and only
 * the GEMM-family algorithms (0, 1, 2) are chosen by the heuristic or the tuner, since FFT and
 * Winograd transforms lose accuracy that strict fp32 promises (engines are filtered alike).
 * Partitions: the legacy API has no SM-count target and sizes its kernels for the whole device
 * even on a partition's stream (where they still run confined); braid_conv2d_tune measures its
 * algorithms there beside engine plans, those targeted at the stream's budget and the whole
 * device's, so a session tuned under an SM budget runs what is fastest on those SMs. braid's
 * direct kernel sizes its grid by the stream's budget.
 */
#include "common.cuh"
#include "conv_engine.cuh"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

namespace braid_cuda {

constexpr int ALGO_COUNT = 8;   /* cuDNN forward algorithms: ids 0..7 */
constexpr int ALGO_DIRECT = 8;  /* braid's direct kernel */
constexpr int ALGO_PLAIN = 16;  /* 16 + a: cuDNN algorithm a, never the fused call */

enum ConvPath { PATH_PLAIN = 0, PATH_FUSED = 1, PATH_DIRECT = 2, PATH_ENGINE = 3 };

struct ConvKey {
  braid_conv2d_params p;
  int32_t has_bias, has_res;
  int32_t align; /* engine ids: the operands' address alignment the plan was built for; else 0 */
};

struct ConvPlan {
  int path = PATH_DIRECT;
  bool epilogue = false; /* plain path: bias / residual / activation pass after cuDNN */
  cudnnTensorDescriptor_t xd = nullptr, yd = nullptr, bd = nullptr;
  cudnnFilterDescriptor_t wd = nullptr;
  cudnnConvolutionDescriptor_t cd = nullptr;
  cudnnActivationDescriptor_t ad = nullptr;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  size_t ws = 0;
  /* The record gave no workspace and the heuristic chose an algorithm that needs some: use the
   * launching stream's own scratch (its cuBLASLt workspace; a stream runs one launch at a time). */
  bool stream_scratch = false;
  EnginePlan* engine = nullptr; /* PATH_ENGINE */
  /* An engine id whose plan could not be built at run time: this is the heuristic's plan in its
   * place (never timed under the engine's id: a tuning run treats it as the failure it is). */
  bool fallback = false;
  ~ConvPlan() {
    if (engine) engine_plan_destroy(engine);
    if (xd) cudnnDestroyTensorDescriptor(xd);
    if (yd) cudnnDestroyTensorDescriptor(yd);
    if (bd) cudnnDestroyTensorDescriptor(bd);
    if (wd) cudnnDestroyFilterDescriptor(wd);
    if (cd) cudnnDestroyConvolutionDescriptor(cd);
    if (ad) cudnnDestroyActivationDescriptor(ad);
  }
};

struct ConvCache {
  std::unordered_map<ConvKey, ConvPlan*, BytesHash<ConvKey>, BytesEq<ConvKey>> map;
};

void conv_cache_destroy(Context* c) {
  /* The plans first, then the device views some of them were built from. */
  if (c->conv_cache != nullptr) {
    for (auto& kv : c->conv_cache->map) delete kv.second;
    delete c->conv_cache;
    c->conv_cache = nullptr;
  }
  engine_device_release(c);
}

static bool algo_allowed(const braid_conv2d_params* p, int algo) {
  return p->allow_tf32 != 0 || algo <= (int)CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
}

/* ---------------------------------------------------------------- direct kernel */

struct DirectArgs {
  const float *x, *w, *bias, *res;
  float* y;
  int64_t total;
  int c, h, wd, k, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw, cpg, kpg;
  int act;
  float lo, hi;
};

__global__ void __launch_bounds__(THREADS) conv_direct_kernel(DirectArgs a) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.total; i += stride) {
    const int ox = (int)(i % a.ow);
    int64_t t = i / a.ow;
    const int oy = (int)(t % a.oh);
    t /= a.oh;
    const int ko = (int)(t % a.k);
    const int64_t img = t / a.k;
    const int g = ko / a.kpg;
    float acc = 0.0f;
    for (int ci = 0; ci < a.cpg; ci++) {
      const float* xp = a.x + ((img * a.c + (int64_t)g * a.cpg + ci) * a.h) * a.wd;
      const float* wp = a.w + ((int64_t)ko * a.cpg + ci) * a.kh * a.kw;
      for (int ky = 0; ky < a.kh; ky++) {
        const int iy = oy * a.sh - a.pt + ky * a.dh;
        if (iy < 0 || iy >= a.h) continue;
        for (int kx = 0; kx < a.kw; kx++) {
          const int ix = ox * a.sw - a.pl + kx * a.dw;
          if (ix < 0 || ix >= a.wd) continue;
          acc = fmaf(__ldg(xp + (int64_t)iy * a.wd + ix), __ldg(wp + ky * a.kw + kx), acc);
        }
      }
    }
    if (a.bias) acc += __ldg(a.bias + ko);
    if (a.res) acc += a.res[i];
    a.y[i] = act_dynamic(acc, a.act, a.lo, a.hi);
  }
}

/* ---------------------------------------------------------------- plans */

/* cuDNN descriptors of a record; *cudnn_fits is false when cuDNN's symmetric padding does not
 * give the record's output size. */
static int32_t make_descriptors(const char* fn, const braid_conv2d_params* p, ConvPlan* pl,
                                bool* cudnn_fits) {
  CUDNN_TRY(fn, cudnnCreateTensorDescriptor(&pl->xd));
  CUDNN_TRY(fn, cudnnCreateTensorDescriptor(&pl->yd));
  CUDNN_TRY(fn, cudnnCreateTensorDescriptor(&pl->bd));
  CUDNN_TRY(fn, cudnnCreateFilterDescriptor(&pl->wd));
  CUDNN_TRY(fn, cudnnCreateConvolutionDescriptor(&pl->cd));
  CUDNN_TRY(fn, cudnnCreateActivationDescriptor(&pl->ad));
  CUDNN_TRY(fn, cudnnSetTensor4dDescriptor(pl->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p->n, p->c,
                                           p->h, p->w));
  CUDNN_TRY(fn, cudnnSetTensor4dDescriptor(pl->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p->n, p->k,
                                           p->oh, p->ow));
  CUDNN_TRY(fn,
            cudnnSetTensor4dDescriptor(pl->bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, p->k, 1, 1));
  CUDNN_TRY(fn, cudnnSetFilter4dDescriptor(pl->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p->k,
                                           p->c / p->groups, p->kh, p->kw));
  CUDNN_TRY(fn, cudnnSetConvolution2dDescriptor(pl->cd, p->pad_top, p->pad_left, p->stride_h,
                                                p->stride_w, p->dilation_h, p->dilation_w,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_TRY(fn, cudnnSetConvolutionGroupCount(pl->cd, p->groups));
  CUDNN_TRY(fn, cudnnSetConvolutionMathType(pl->cd, p->allow_tf32 != 0 ? CUDNN_DEFAULT_MATH
                                                                   : CUDNN_FMA_MATH));
  CUDNN_TRY(fn, cudnnSetActivationDescriptor(pl->ad,
                                             p->activation == BRAID_ACT_RELU
                                                 ? CUDNN_ACTIVATION_RELU
                                                 : CUDNN_ACTIVATION_IDENTITY,
                                             CUDNN_PROPAGATE_NAN, 0.0));
  int on = 0, oc = 0, ooh = 0, oow = 0;
  cudnnStatus_t s = cudnnGetConvolution2dForwardOutputDim(pl->cd, pl->xd, pl->wd, &on, &oc, &ooh,
                                                          &oow);
  *cudnn_fits = s == CUDNN_STATUS_SUCCESS && on == p->n && oc == p->k && ooh == p->oh &&
                oow == p->ow;
  return BRAID_OK;
}

/* Fused call when cuDNN can do the whole epilogue in it (and the id does not ask for the plain
 * path); else plain conv + one epilogue pass. */
static void choose_path(const ConvKey& key, ConvPlan* pl, bool force_plain) {
  const braid_conv2d_params* p = &key.p;
  const bool extra = key.has_bias || key.has_res;
  const bool fusable =
      p->activation == BRAID_ACT_RELU ||
      (p->activation == BRAID_ACT_NONE && extra &&
       pl->algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
  if (!force_plain && fusable && (key.has_bias || p->k <= ZERO_BIAS_COUNT)) {
    pl->path = PATH_FUSED;
    pl->epilogue = false;
  } else {
    pl->path = PATH_PLAIN;
    pl->epilogue = extra || p->activation != BRAID_ACT_NONE;
  }
}

static int32_t make_plan(Context* c, const char* fn, const ConvKey& key, ConvPlan** out) {
  const braid_conv2d_params* p = &key.p;
  std::unique_ptr<ConvPlan> pl(new (std::nothrow) ConvPlan());
  if (!pl) return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  bool fits = false;
  int32_t st = make_descriptors(fn, p, pl.get(), &fits);
  if (st) return st;
  if (is_engine_id(p->algorithm)) {
    const EngineChoice e = engine_choice(p->algorithm);
    if ((st = engine_plan_create(c, fn, p, key.has_bias != 0, key.has_res != 0, key.align, e,
                                 &pl->engine)))
      return st;
    pl->ws = engine_plan_workspace(pl->engine);
    pl->path = PATH_ENGINE;
    pl->epilogue = !e.fused && (key.has_bias || key.has_res || p->activation != BRAID_ACT_NONE);
    *out = pl.release();
    return BRAID_OK;
  }
  if (!fits || p->algorithm == ALGO_DIRECT) {
    pl->path = PATH_DIRECT;
    *out = pl.release();
    return BRAID_OK;
  }
  const bool force_plain = p->algorithm >= ALGO_PLAIN;
  int algo = force_plain ? p->algorithm - ALGO_PLAIN : p->algorithm;
  size_t ws = 0;
  if (algo < 0) {
    /* No workspace given: the heuristic may use up to the stream's own scratch. */
    const bool scratch = p->workspace_bytes == 0;
    const size_t limit = scratch ? LT_WORKSPACE_BYTES : (size_t)p->workspace_bytes;
    cudnnConvolutionFwdAlgoPerf_t perf[ALGO_COUNT];
    int n = 0;
    CUDNN_TRY(fn, cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, pl->xd, pl->wd, pl->cd, pl->yd,
                                                         ALGO_COUNT, &n, perf));
    for (int i = 0; i < n && algo < 0; i++) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || !algo_allowed(p, perf[i].algo)) continue;
      size_t need_ws = 0;
      if (cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, pl->xd, pl->wd, pl->cd, pl->yd,
                                                  perf[i].algo, &need_ws) != CUDNN_STATUS_SUCCESS)
        continue;
      if (need_ws > limit) continue;
      algo = perf[i].algo;
      ws = need_ws;
    }
    pl->stream_scratch = scratch && ws > 0;
    if (algo < 0) { /* nothing fits the workspace: braid's direct kernel needs none */
      pl->path = PATH_DIRECT;
      *out = pl.release();
      return BRAID_OK;
    }
  } else {
    cudnnStatus_t s = cudnnGetConvolutionForwardWorkspaceSize(
        c->cudnn, pl->xd, pl->wd, pl->cd, pl->yd, (cudnnConvolutionFwdAlgo_t)algo, &ws);
    if (s != CUDNN_STATUS_SUCCESS)
      return fail(BRAID_ERR_INVALID_ARGUMENT,
                  "%s: algorithm %d is not available for this convolution (%s)", fn, algo,
                  cudnnGetErrorString(s));
    if (ws > (size_t)p->workspace_bytes)
      return fail(BRAID_ERR_INVALID_ARGUMENT,
                  "%s: algorithm %d needs %zu bytes of workspace; the record gives %d", fn, algo,
                  ws, p->workspace_bytes);
  }
  pl->algo = (cudnnConvolutionFwdAlgo_t)algo;
  pl->ws = ws;
  choose_path(key, pl.get(), force_plain);
  *out = pl.release();
  return BRAID_OK;
}

/* The largest of 16, 8 and 4 bytes that every operand address is a multiple of. */
static int operand_alignment(uint64_t x, uint64_t w, uint64_t bias, uint64_t residual,
                             uint64_t y) {
  const uint64_t all = x | w | bias | residual | y;
  return (all & 15u) == 0 ? 16 : (all & 7u) == 0 ? 8 : 4;
}

/* A record's key in the plan cache. An engine id's plan depends on the operands' alignment too
 * (`align`, ignored for other ids). */
static ConvKey plan_key(const braid_conv2d_params* p, bool has_bias, bool has_res, int align) {
  ConvKey key;
  memset(&key, 0, sizeof key);
  key.p = *p;
  key.has_bias = has_bias;
  key.has_res = has_res;
  if (is_engine_id(p->algorithm)) {
    /* One plan whatever workspace a record gives (run_conv checks it fits): the plan the tuner
     * built is the one sessions capture. */
    key.align = align;
    key.p.workspace_bytes = 0;
  }
  return key;
}

/* The heuristic's plan, to stand under an engine id's key whose own plan cannot be built or run
 * (marked, so a strict caller is refused it). */
static int32_t make_fallback_plan(Context* c, const char* fn, const ConvKey& key, ConvPlan** out) {
  ConvKey heuristic = key;
  heuristic.p.algorithm = -1;
  heuristic.align = 0;
  RelaxedCapture relaxed;
  int32_t st = make_plan(c, fn, heuristic, out);
  if (st == BRAID_OK) (*out)->fallback = true;
  return st;
}

/* The cached plan of a record (context lock held). When an engine id's plan cannot be built, a
 * `strict` caller (the tuner) gets the error; any other gets the heuristic's plan in its place,
 * remembered. */
static int32_t get_plan(Context* c, const char* fn, const braid_conv2d_params* p, bool has_bias,
                        bool has_res, int align, bool strict, ConvPlan** out) {
  const ConvKey key = plan_key(p, has_bias, has_res, align);
  if (c->conv_cache == nullptr) {
    c->conv_cache = new (std::nothrow) ConvCache();
    if (c->conv_cache == nullptr) return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  auto it = c->conv_cache->map.find(key);
  if (it != c->conv_cache->map.end()) {
    if (strict && it->second->fallback)
      return fail(BRAID_ERR_UNSUPPORTED, "%s: algorithm %d has no plan for these operands", fn,
                  p->algorithm);
    *out = it->second;
    return BRAID_OK;
  }
  ConvPlan* pl = nullptr;
  int32_t st;
  {
    RelaxedCapture relaxed;
    st = make_plan(c, fn, key, &pl);
  }
  if ((st == BRAID_ERR_UNSUPPORTED || st == BRAID_ERR_CUDNN) && !strict && key.align != 0)
    st = make_fallback_plan(c, fn, key, &pl);
  if (st) return st;
  try {
    c->conv_cache->map.emplace(key, pl);
  } catch (...) {
    delete pl;
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  *out = pl;
  return BRAID_OK;
}

/* Puts the heuristic's plan in the place of an engine id's cached plan that cannot run here
 * (context lock held; a tuner never gets it: get_plan refuses fallbacks to strict callers). */
static int32_t fall_back(Context* c, const char* fn, const braid_conv2d_params* p, bool has_bias,
                         bool has_res, int align) {
  const ConvKey key = plan_key(p, has_bias, has_res, align);
  ConvPlan* pl = nullptr;
  int32_t st = make_fallback_plan(c, fn, key, &pl);
  if (st) return st;
  auto it = c->conv_cache->map.find(key);
  if (it == c->conv_cache->map.end()) {
    delete pl;
    return fail(BRAID_ERR_INTERNAL, "%s: no plan of algorithm %d to replace", fn, p->algorithm);
  }
  delete it->second;
  it->second = pl;
  return BRAID_OK;
}

static int32_t bind_cudnn(Context* c, const char* fn, cudaStream_t s) {
  if (c->cudnn_stream != s) {
    CUDNN_TRY(fn, cudnnSetStream(c->cudnn, s));
    c->cudnn_stream = s;
  }
  return BRAID_OK;
}

static bool not_supported(cudnnStatus_t s) { return s >= 3000 && s < 4000; }

/* y = act(y + bias + residual) in place, after a convolution cuDNN ran without its epilogue. */
static int32_t run_epilogue(Context* c, Stream* s, const char* fn, const braid_conv2d_params* p,
                            uint64_t bias, uint64_t residual, uint64_t y) {
  const int64_t inner = (int64_t)p->oh * p->ow;
  return launch_map(c, s, fn, CFPTR(y), FPTR(y), (int64_t)p->n * p->k * inner, inner, p->k,
                    bias ? CFPTR(bias) : nullptr, 1.0f, residual ? CFPTR(residual) : nullptr,
                    p->activation, p->act_min, p->act_max);
}

/* BRAID_CONV_STRICT=1 (tests, debugging): braid_conv2d fails where an algorithm's plan cannot
 * be built or run instead of running the heuristic's plan in its place, as the tuner does. */
static bool strict_convolutions() {
  const char* env = std::getenv("BRAID_CONV_STRICT");
  return env != nullptr && env[0] == '1';
}

/* Issues one convolution (context lock held; `strict`: see get_plan). */
static int32_t run_conv(Context* c, Stream* s, const char* fn, const braid_conv2d_params* p,
                        uint64_t x, uint64_t w, uint64_t bias, uint64_t residual, uint64_t y,
                        uint64_t workspace, bool strict = false) {
  /* Bound first, so a plan is built with the handle on the stream it runs on. */
  int32_t st = bind_cudnn(c, fn, s->s);
  if (st) return st;
  ConvPlan* pl = nullptr;
  const int align = operand_alignment(x, w, bias, residual, y);
  if ((st = get_plan(c, fn, p, bias != 0, residual != 0, align, strict, &pl))) return st;
  if (pl->path == PATH_DIRECT) {
    DirectArgs a;
    a.x = CFPTR(x);
    a.w = CFPTR(w);
    a.bias = bias ? CFPTR(bias) : nullptr;
    a.res = residual ? CFPTR(residual) : nullptr;
    a.y = FPTR(y);
    a.total = (int64_t)p->n * p->k * p->oh * p->ow;
    a.c = p->c;
    a.h = p->h;
    a.wd = p->w;
    a.k = p->k;
    a.oh = p->oh;
    a.ow = p->ow;
    a.kh = p->kh;
    a.kw = p->kw;
    a.sh = p->stride_h;
    a.sw = p->stride_w;
    a.pt = p->pad_top;
    a.pl = p->pad_left;
    a.dh = p->dilation_h;
    a.dw = p->dilation_w;
    a.cpg = p->c / p->groups;
    a.kpg = p->k / p->groups;
    a.act = p->activation;
    a.lo = p->act_min;
    a.hi = p->act_max;
    conv_direct_kernel<<<grid_for(s->sms, a.total, THREADS, 16), THREADS, 0, s->s>>>(a);
    LAUNCH_CHECK(fn, "conv_direct_kernel");
    return BRAID_OK;
  }
  if (pl->stream_scratch) {
    void* scratch = nullptr;
    if ((st = stream_scratch(s, fn, &scratch))) return st;
    workspace = (uint64_t)(uintptr_t)scratch;
  }
  if (pl->path == PATH_ENGINE && pl->ws > (size_t)p->workspace_bytes) {
    if (strict)
      return fail(BRAID_ERR_INVALID_ARGUMENT,
                  "%s: algorithm %d needs %zu bytes of workspace; the record gives %d", fn,
                  p->algorithm, pl->ws, p->workspace_bytes);
    /* Built for other operands than it was tuned on, the plan wants more scratch than the
     * record has: the heuristic's algorithm within it instead. */
    braid_conv2d_params heuristic = *p;
    heuristic.algorithm = -1;
    return run_conv(c, s, fn, &heuristic, x, w, bias, residual, y, workspace, false);
  }
  if (pl->ws > 0 && workspace == 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: algorithm %d needs %zu bytes of workspace but the workspace address is 0", fn,
                (int)pl->algo, pl->ws);
  void* wsp = reinterpret_cast<void*>((uintptr_t)workspace);
  if (pl->path == PATH_ENGINE) {
    st = engine_plan_run(c, fn, pl->engine, x, w, bias, residual, y, wsp);
    if (st && !strict && !stream_capturing(s)) {
      /* Built, but it cannot launch on this stream (a cooperative grid sized for more SMs than the
       * stream's partition has, say): from now on the heuristic's plan, as for a plan that cannot
       * be built. Eager runs come first (an executable's warm-up), so a capture finds it. */
      if ((st = fall_back(c, fn, p, bias != 0, residual != 0, align))) return st;
      return run_conv(c, s, fn, p, x, w, bias, residual, y, workspace, false);
    }
    if (st) return st;
    return pl->epilogue ? run_epilogue(c, s, fn, p, bias, residual, y) : BRAID_OK;
  }
  if (pl->path == PATH_FUSED) {
    const float alpha1 = 1.0f, alpha2 = residual ? 1.0f : 0.0f;
    const void* z = residual ? CFPTR(residual) : CFPTR(y);
    const void* b = bias ? CFPTR(bias) : c->zeros;
    cudnnStatus_t r = cudnnConvolutionBiasActivationForward(
        c->cudnn, &alpha1, pl->xd, CFPTR(x), pl->wd, CFPTR(w), pl->cd, pl->algo, wsp, pl->ws,
        &alpha2, pl->yd, z, pl->bd, b, pl->ad, pl->yd, FPTR(y));
    if (r == CUDNN_STATUS_SUCCESS) return BRAID_OK;
    if (!not_supported(r))
      return cudnn_fail(fn, "cudnnConvolutionBiasActivationForward", r);
    /* This algorithm has no fused form here: from now on, conv then the epilogue pass. */
    pl->path = PATH_PLAIN;
    pl->epilogue = true;
  }
  const float alpha = 1.0f, beta = 0.0f;
  CUDNN_TRY(fn, cudnnConvolutionForward(c->cudnn, &alpha, pl->xd, CFPTR(x), pl->wd, CFPTR(w),
                                        pl->cd, pl->algo, wsp, pl->ws, &beta, pl->yd, FPTR(y)));
  return pl->epilogue ? run_epilogue(c, s, fn, p, bias, residual, y) : BRAID_OK;
}

/* Device time of one launch of a record: a first launch (which also builds the plan), a second
 * one timed eagerly (when even that is far slower than `best_ms` plus any host overhead, its time
 * is the answer), then TIME_REPS launches captured on the stream into a graph, replayed
 * TIME_LAUNCHES times (context lock held; the stream is not capturing).
 *
 * BRAID_CONV_TIMING=warm, the default (unset too): one untimed replay, then the replays timed
 * together. `upload` (an option, measured no faster: bench/NOTES.md v0.20, v0.21): the graph is
 * uploaded (cudaGraphUpload) and each replay timed between its own events, the faster kept: the
 * upload does what the untimed replay did without running the record TIME_REPS more times, and the
 * second replay runs warm. On a 32-SM partition a candidate's runs are device time the tuning
 * thread waits for. */
constexpr int TIME_REPS = 5, TIME_LAUNCHES = 2;

static bool timing_by_upload() {
  static const bool on = env_is("BRAID_CONV_TIMING", "upload", false);
  return on;
}

/* The replays of an instantiated candidate graph, timed as timing_by_upload() says: ms a replay. */
static cudaError_t time_replays(cudaGraphExec_t exec, cudaStream_t s, cudaEvent_t e0,
                                cudaEvent_t e1, cudaEvent_t e2, float* ms) {
  cudaError_t e;
  if (timing_by_upload()) {
    float first = 0.0f, second = 0.0f;
    e = cudaGraphUpload(exec, s);
    if (e == cudaSuccess) e = cudaEventRecord(e0, s);
    if (e == cudaSuccess) e = cudaGraphLaunch(exec, s);
    if (e == cudaSuccess) e = cudaEventRecord(e1, s);
    if (e == cudaSuccess) e = cudaGraphLaunch(exec, s);
    if (e == cudaSuccess) e = cudaEventRecord(e2, s);
    if (e == cudaSuccess) e = cudaEventSynchronize(e2);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&first, e0, e1);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&second, e1, e2);
    *ms = std::min(first, second);
    return e;
  }
  e = cudaGraphLaunch(exec, s); /* warm */
  if (e == cudaSuccess) e = cudaEventRecord(e0, s);
  for (int l = 0; l < TIME_LAUNCHES && e == cudaSuccess; l++) e = cudaGraphLaunch(exec, s);
  if (e == cudaSuccess) e = cudaEventRecord(e1, s);
  if (e == cudaSuccess) e = cudaEventSynchronize(e1);
  float total = 0.0f;
  if (e == cudaSuccess) e = cudaEventElapsedTime(&total, e0, e1);
  *ms = total / TIME_LAUNCHES;
  return e;
}

static double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

/* Where a tuning's candidate timing went, host clock, ms (BRAID_TRACE_CONV_TUNE): the untimed
 * first runs (plans built, kernels loaded), the timed eager runs with their waits, the captures
 * and instantiations, the replays with their waits; and the candidates the eager run ruled out. */
struct CandidateSplit {
  double first = 0, eager = 0, graph = 0, replays = 0;
  int pruned = 0;
};

static int32_t time_in_graph(Context* c, Stream* s, const char* fn, const braid_conv2d_params* q,
                             uint64_t x, uint64_t w, uint64_t bias, uint64_t residual, uint64_t y,
                             uint64_t workspace, cudaEvent_t e0, cudaEvent_t e1, cudaEvent_t e2,
                             float best_ms, float* out_ms, CandidateSplit* split) {
  auto mark = std::chrono::steady_clock::now();
  const auto lap = [&](double* into) {
    *into += ms_since(mark);
    mark = std::chrono::steady_clock::now();
  };
  /* The first launch of a plan pays one-time set-up (cuDNN loads its kernels): untimed. */
  int32_t st = run_conv(c, s, fn, q, x, w, bias, residual, y, workspace, true);
  if (st) return st;
  lap(&split->first);
  CUDA_TRY(fn, cudaEventRecord(e0, s->s));
  st = run_conv(c, s, fn, q, x, w, bias, residual, y, workspace, true);
  if (st) return st;
  CUDA_TRY(fn, cudaEventRecord(e1, s->s));
  CUDA_TRY(fn, cudaStreamSynchronize(s->s));
  float warm_ms = 0.0f;
  CUDA_TRY(fn, cudaEventElapsedTime(&warm_ms, e0, e1));
  lap(&split->eager);
  /* Far slower than the best so far even with its launch overhead: not worth timing. */
  if (best_ms >= 0.0f && warm_ms > 4.0f * best_ms + 0.3f) {
    split->pruned++;
    *out_ms = warm_ms;
    return BRAID_OK;
  }
  CUDA_TRY(fn, cudaStreamBeginCapture(s->s, cudaStreamCaptureModeThreadLocal));
  for (int r = 0; r < TIME_REPS && st == BRAID_OK; r++)
    st = run_conv(c, s, fn, q, x, w, bias, residual, y, workspace, true);
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(s->s, &graph);
  if (st || e != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    return st ? st : cuda_fail(fn, "cudaStreamEndCapture", e);
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) return cuda_fail(fn, "cudaGraphInstantiate", e);
  lap(&split->graph);
  float ms = 0.0f;
  e = time_replays(exec, s->s, e0, e1, e2, &ms);
  cudaGraphExecDestroy(exec);
  lap(&split->replays);
  if (e != cudaSuccess) return cuda_fail(fn, "timing a captured graph", e);
  *out_ms = ms / TIME_REPS;
  return BRAID_OK;
}

/* cuDNN engine configurations the tuner also times: the heuristic's first few, with the epilogue
 * fused into the graph where it can be and without (3 fused and 2 plain ranks, or with
 * BRAID_CONV_ENGINES=K K of each; 0: none, for comparing; at most ENGINE_RANKS). On a stream
 * with fewer SMs than the device, those the heuristic proposes for that budget come first, then
 * the whole device's: cuDNN lists few configurations, or none, for most SM targets (cuDNN 9.24,
 * an H200's properties, no device: none for 20..130 SMs, and none fused for any target), while
 * the whole device's (tile shapes, cluster sizes) still differ in speed on fewer SMs, and the
 * tuner times every candidate on the stream's own SMs. A target without configurations costs a
 * heuristic query (~0.5 ms). By default fewer of the budget's are timed (lean_targets). */
constexpr int ENGINE_FUSED_TRIES = 3, ENGINE_PLAIN_TRIES = 2;

/* BRAID_CONV_FIND=heuristic, the default (unset too; `find` turns it off): braid_conv2d_tune
 * takes the legacy algorithms it times from cuDNN's heuristic ranking
 * (cudnnGetConvolutionForwardAlgorithm_v7, which runs nothing) instead of FindEx's measurements
 * (which run every algorithm, the slow ones too, several times each). */
static bool ranked_by_heuristic() {
  static const bool on = env_is("BRAID_CONV_FIND", "heuristic", true);
  return on;
}

/* BRAID_CONV_LEGACY=implicit (an option; `all`, the default, unset too): of the legacy
 * algorithms, braid_conv2d_tune times the implicit GEMMs (IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM)
 * beside the engine configurations, and the others (GEMM, FFT, Winograd) only for a convolution
 * where no engine configuration could be timed. Across 1164 tuned convolutions of the zoo's CNNs
 * (H100 and H200, 32 SMs and the whole device) those others never won (bench/NOTES.md v0.23). */
static bool implicit_gemms_first() {
  static const bool on = env_is("BRAID_CONV_LEGACY", "implicit", false);
  return on;
}

/* BRAID_CONV_TARGETED=lean, the default (unset too; `all` times them all): inside a partition
 * the configurations targeted at its SMs are those that win there: fused ranks 0 and 1, plain
 * rank 1 (the whole device's are all timed either way). Of 1358 convolutions tuned on 32 SMs
 * (seven caches, H100 and H200) the targeted fused rank 2 won 16, plain rank 0 won 4 (and could
 * not be timed in 128 of 200 tunings) and plain rank 2 none, and they were 1.2 s of a pooled
 * tune's 12.1 s of worker time on convolutions; the schedules chosen without them were as fast
 * (bench/NOTES.md v0.24, v0.25). */
static bool lean_targets() {
  static const bool on = env_is("BRAID_CONV_TARGETED", "lean", true);
  return on;
}

/* Whether a legacy candidate id (a, or ALGO_PLAIN + a) is one of the implicit GEMMs. */
static bool implicit_gemm(int id) {
  const int a = id >= ALGO_PLAIN ? id - ALGO_PLAIN : id;
  return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
}

/* The heuristic's first four algorithms that may run here within the record's workspace, plus
 * IMPLICIT_PRECOMP_GEMM wherever it ranks (FindEx's rule without its times; context lock held);
 * the GEMM family if the heuristic fails, as when FindEx does. */
static void heuristic_algorithms(Context* c, const ConvPlan* pl, const braid_conv2d_params* p,
                                 std::vector<int>* out) {
  cudnnConvolutionFwdAlgoPerf_t perf[ALGO_COUNT];
  int n = 0;
  if (cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, pl->xd, pl->wd, pl->cd, pl->yd, ALGO_COUNT,
                                             &n, perf) != CUDNN_STATUS_SUCCESS) {
    for (int a = 0; a <= (int)CUDNN_CONVOLUTION_FWD_ALGO_GEMM; a++) out->push_back(a);
    return;
  }
  for (int i = 0; i < n; i++) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || !algo_allowed(p, perf[i].algo)) continue;
    size_t need_ws = 0;
    if (cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, pl->xd, pl->wd, pl->cd, pl->yd,
                                                perf[i].algo, &need_ws) != CUDNN_STATUS_SUCCESS ||
        need_ws > (size_t)p->workspace_bytes)
      continue;
    const bool precomp = perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    if (out->size() < 4 || precomp) out->push_back(perf[i].algo);
  }
}

/* The algorithms FindEx measures fastest on these tensors within the record's workspace: the few
 * within 4x of the best (the rest, FFT or GEMM on grouped convolutions, can take milliseconds and
 * cannot win by fusing), plus IMPLICIT_PRECOMP_GEMM, the only one cuDNN fuses a bias without ReLU
 * into; the GEMM family if FindEx fails (context lock held, cuDNN bound to the stream). */
static void found_algorithms(Context* c, const ConvPlan* pl, const braid_conv2d_params* p,
                             uint64_t x, uint64_t w, uint64_t y, uint64_t workspace,
                             std::vector<int>* out) {
  cudnnConvolutionFwdAlgoPerf_t perf[ALGO_COUNT];
  int n = 0;
  cudnnStatus_t fs = cudnnFindConvolutionForwardAlgorithmEx(
      c->cudnn, pl->xd, CFPTR(x), pl->wd, CFPTR(w), pl->cd, pl->yd, FPTR(y), ALGO_COUNT, &n, perf,
      reinterpret_cast<void*>((uintptr_t)workspace), (size_t)p->workspace_bytes);
  if (fs != CUDNN_STATUS_SUCCESS) {
    (void)cudaGetLastError(); /* no measurements: try the GEMM-family algorithms */
    for (int a = 0; a <= (int)CUDNN_CONVOLUTION_FWD_ALGO_GEMM; a++) out->push_back(a);
    return;
  }
  float best_find = -1.0f;
  for (int i = 0; i < n; i++) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || !algo_allowed(p, perf[i].algo) ||
        perf[i].memory > (size_t)p->workspace_bytes || perf[i].time < 0.0f)
      continue;
    if (best_find < 0.0f) best_find = perf[i].time;
    const bool precomp = perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    const bool near = perf[i].time <= 4.0f * best_find + 0.02f;
    if ((near && out->size() < 4) || precomp) out->push_back(perf[i].algo);
  }
}

/* BRAID_TRACE_CONV_TUNE=1: braid_conv2d_tune writes where each tuning's time went to stderr. */
static bool trace_conv_tune() {
  static const bool on = env_flag("BRAID_TRACE_CONV_TUNE");
  return on;
}

static void add_engine_candidates(const Context* c, const Stream* s, const braid_conv2d_params* p,
                                  bool extra, std::vector<int>* out) {
  int fused_tries = ENGINE_FUSED_TRIES, plain_tries = ENGINE_PLAIN_TRIES;
  if (const char* env = std::getenv("BRAID_CONV_ENGINES"); env != nullptr && env[0] != 0) {
    const int k = std::atoi(env);
    fused_tries = plain_tries = k < 0 ? 0 : k > ENGINE_RANKS ? ENGINE_RANKS : k;
  }
  const bool has_epilogue = extra || p->activation != BRAID_ACT_NONE;
  const bool fuse = has_epilogue && engine_fusable(p);
  /* Without an epilogue the fused graph is the plain one: its tries go to the plain graph. */
  const int plain = has_epilogue ? plain_tries : fused_tries;
  const int budget = s->sms < c->sms ? s->sms : 0;
  for (int target : {budget, 0}) {
    /* The ranks timed: fused [0, fused_end), plain [plain_begin, plain_end). */
    const bool lean = target > 0 && lean_targets();
    const int fused_end = fuse ? (lean ? std::min(fused_tries, 2) : fused_tries) : 0;
    const int plain_begin = lean ? 1 : 0, plain_end = lean ? std::min(plain, 2) : plain;
    for (int r = 0; r < fused_end; r++) out->push_back(engine_id(EngineChoice{true, r, target}));
    for (int r = plain_begin; r < plain_end; r++)
      out->push_back(engine_id(EngineChoice{false, r, target}));
    if (target == 0) break;
  }
}

/* Validates a conv2d parameter record and its tensor addresses (as the CPU backend does, plus
 * this backend's algorithm ids and the workspace fields). */
static int32_t check_conv2d(const char* fn, const braid_conv2d_params* p, uint64_t x, uint64_t w,
                            uint64_t y, uint64_t workspace) {
  int32_t st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->n <= 0 || p->c <= 0 || p->h <= 0 || p->w <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: input n %d, c %d, h %d, w %d must be positive", fn,
                p->n, p->c, p->h, p->w);
  if (p->k <= 0 || p->oh <= 0 || p->ow <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: output k %d, oh %d, ow %d must be positive", fn,
                p->k, p->oh, p->ow);
  if (p->kh <= 0 || p->kw <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: kernel %dx%d must be positive", fn, p->kh, p->kw);
  if (p->stride_h <= 0 || p->stride_w <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: stride %dx%d must be positive", fn, p->stride_h,
                p->stride_w);
  if (p->dilation_h <= 0 || p->dilation_w <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: dilation %dx%d must be positive", fn,
                p->dilation_h, p->dilation_w);
  if (p->pad_top < 0 || p->pad_left < 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: padding top %d, left %d is negative", fn,
                p->pad_top, p->pad_left);
  if (p->groups <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: groups %d must be positive", fn, p->groups);
  if (p->c % p->groups != 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: groups %d does not divide c %d", fn, p->groups,
                p->c);
  if (p->k % p->groups != 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: groups %d does not divide k %d", fn, p->groups,
                p->k);
  /* oh, ow imply the bottom/right padding (see the CPU backend): accept from 0 (less the rows a
   * stride skips) up to max(pad_top, ext) + stride - 1. */
  {
    const int64_t dims[2][6] = {
        {p->h, p->kh, p->stride_h, p->pad_top, p->dilation_h, p->oh},
        {p->w, p->kw, p->stride_w, p->pad_left, p->dilation_w, p->ow},
    };
    static const char* const names[2] = {"oh", "ow"};
    for (int d = 0; d < 2; d++) {
      const int64_t in = dims[d][0], kk = dims[d][1], sd = dims[d][2], pad = dims[d][3];
      const int64_t dil = dims[d][4], out = dims[d][5];
      const int64_t ext = dil * (kk - 1) + 1;
      const int64_t pad_end = (out - 1) * sd + ext - in - pad;
      const int64_t pad_end_max = (pad > ext ? pad : ext) + sd - 1;
      if (pad_end < -(sd - 1) || pad_end > pad_end_max)
        return fail(BRAID_ERR_INVALID_ARGUMENT,
                    "%s: %s %lld is inconsistent with input %lld, kernel %lld, stride %lld, "
                    "padding %lld, dilation %lld (implied end padding %lld)",
                    fn, names[d], (long long)out, (long long)in, (long long)kk, (long long)sd,
                    (long long)pad, (long long)dil, (long long)pad_end);
    }
  }
  if ((st = check_activation(fn, p->activation, p->act_min, p->act_max))) return st;
  if ((st = need(fn, "x", x)) || (st = need(fn, "w", w)) || (st = need(fn, "y", y))) return st;
  if (p->algorithm < -1 || (p->algorithm > ALGO_DIRECT && p->algorithm < ALGO_PLAIN) ||
      (p->algorithm >= ALGO_PLAIN + ALGO_COUNT && !is_engine_id(p->algorithm)))
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: algorithm %d is not one of this backend's (-1; cuDNN 0..7; direct 8; cuDNN "
                "16..23 without the fused call; cuDNN engine configurations %d..%d)",
                fn, p->algorithm, ENGINE_BASE, ENGINE_ID_END - 1);
  if (p->workspace_bytes < 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: workspace_bytes %d is negative", fn,
                p->workspace_bytes);
  if (p->workspace_bytes > 0 && workspace == 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: workspace_bytes %d but the workspace address is 0",
                fn, p->workspace_bytes);
  return BRAID_OK;
}

}  // namespace braid_cuda

using namespace braid_cuda;

extern "C" {

int32_t braid_conv2d(uint64_t ctx, uint64_t stream, const braid_conv2d_params* p, uint64_t x,
                     uint64_t w, uint64_t bias, uint64_t residual, uint64_t y,
                     uint64_t workspace) {
  static const char fn[] = "braid_conv2d";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if ((st = check_conv2d(fn, p, x, w, y, workspace))) return st;
  std::lock_guard<std::mutex> g(c->lock);
  return run_conv(c, s, fn, p, x, w, bias, residual, y, workspace, strict_convolutions());
}

int32_t braid_conv2d_tune(uint64_t ctx, uint64_t stream, const braid_conv2d_params* p,
                          uint64_t x, uint64_t w, uint64_t bias, uint64_t residual, uint64_t y,
                          uint64_t workspace, int32_t* out, float* out_ms) {
  static const char fn[] = "braid_conv2d_tune";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (out == NULL || out_ms == NULL)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out or out_ms is NULL", fn);
  {
    std::lock_guard<std::mutex> g(c->lock);
    if (c->capturing || stream_capturing(s))
      return fail(BRAID_ERR_CAPTURE, "%s: illegal while the context is capturing", fn);
  }
  braid_conv2d_params base = p ? *p : braid_conv2d_params();
  if ((st = check_conv2d(fn, p, x, w, y, workspace))) return st;
  base.algorithm = -1;
  const auto began = std::chrono::steady_clock::now();

  /* Candidates: the algorithms cuDNN measures fastest here within the workspace (FindEx, on
   * these tensors; or those its heuristic ranks first, with BRAID_CONV_FIND=heuristic), and for
   * those braid_conv2d would run as cuDNN's fused call, the same algorithm as plain conv +
   * braid's epilogue (id 16 + a). Each is timed as a captured CUDA graph of repeated launches:
   * device time only, as the session's graph will see it (cuDNN's legacy calls cost tens of
   * microseconds of host time each, so eager timing measures the host). */
  std::vector<int> candidates;
  {
    std::lock_guard<std::mutex> g(c->lock);
    ConvPlan* pl = nullptr;
    if ((st = get_plan(c, fn, &base, bias != 0, residual != 0, 0, true, &pl))) return st;
    int on = 0, oc = 0, ooh = 0, oow = 0;
    const bool fits = cudnnGetConvolution2dForwardOutputDim(pl->cd, pl->xd, pl->wd, &on, &oc,
                                                            &ooh, &oow) == CUDNN_STATUS_SUCCESS &&
                      ooh == p->oh && oow == p->ow;
    if (fits) {
      if ((st = bind_cudnn(c, fn, s->s))) return st;
      std::vector<int> algos;
      if (ranked_by_heuristic())
        heuristic_algorithms(c, pl, p, &algos);
      else
        found_algorithms(c, pl, p, x, w, y, workspace, &algos);
      const bool extra = bias != 0 || residual != 0;
      for (int a : algos) {
        candidates.push_back(a);
        const bool fused = p->activation == BRAID_ACT_RELU ||
                           (p->activation == BRAID_ACT_NONE && extra &&
                            a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
        if (fused) candidates.push_back(ALGO_PLAIN + a);
      }
    }
  }
  /* braid's direct kernel (one thread per output, as PyTorch's depthwise kernel) also competes
   * where each output reads few input channels: cuDNN's depthwise convolutions at batch 1 are
   * often slower. And it is the only choice when cuDNN has none. */
  if (candidates.empty() || p->c / p->groups <= 4) candidates.push_back(ALGO_DIRECT);
  /* With BRAID_CONV_LEGACY=implicit the other legacy algorithms wait: timed only if no engine
   * configuration is. */
  std::vector<int> deferred;
  if (implicit_gemms_first()) {
    const auto now = [](int id) { return id == ALGO_DIRECT || implicit_gemm(id); };
    const auto later = std::stable_partition(candidates.begin(), candidates.end(), now);
    deferred.assign(later, candidates.end());
    candidates.erase(later, candidates.end());
  }
  const size_t legacy = candidates.size();
  add_engine_candidates(c, s, p, bias != 0 || residual != 0, &candidates);
  const double ranking_ms = ms_since(began);
  double legacy_ms = 0.0;
  const int align = operand_alignment(x, w, bias, residual, y);

  cudaEvent_t e0 = nullptr, e1 = nullptr, e2 = nullptr;
  CUDA_TRY(fn, cudaEventCreate(&e0));
  cudaError_t ce = cudaEventCreate(&e1);
  if (ce == cudaSuccess) ce = cudaEventCreate(&e2);
  if (ce != cudaSuccess) {
    cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    return cuda_fail(fn, "cudaEventCreate", ce);
  }
  CandidateSplit split;
  int best = -1;
  size_t best_ws = 0;
  float best_ms = 0.0f;
  int32_t last_error = BRAID_OK;
  const auto timing = std::chrono::steady_clock::now();
  /* Times one candidate (keeping it if it is the fastest yet); false if it could not be timed. */
  const auto time_candidate = [&](int algo) {
    braid_conv2d_params q = base;
    q.algorithm = algo;
    std::lock_guard<std::mutex> g(c->lock);
    float ms = 0.0f;
    const CandidateSplit before = split;
    const auto began_candidate = std::chrono::steady_clock::now();
    st = time_in_graph(c, s, fn, &q, x, w, bias, residual, y, workspace, e0, e1, e2,
                       best < 0 ? -1.0f : best_ms, &ms, &split);
    if (trace_conv_tune()) {
      const char* outcome = st ? "failed" : split.pruned > before.pruned ? "ruled out" : "timed";
      std::fprintf(stderr,
                   "braid_conv2d_tune candidate %d on %d SMs: %.3f ms (first run %.3f, eager "
                   "%.3f, graph %.3f, replays %.3f), %s, %.4f ms\n",
                   algo, s->sms, ms_since(began_candidate), split.first - before.first,
                   split.eager - before.eager, split.graph - before.graph,
                   split.replays - before.replays, outcome, ms);
    }
    if (st) {
      last_error = st;
      return false;
    }
    if (best < 0 || ms < best_ms) {
      ConvPlan* pl = nullptr;
      if (get_plan(c, fn, &q, bias != 0, residual != 0, align, true, &pl) == BRAID_OK) {
        best = algo;
        best_ms = ms;
        best_ws = pl->path == PATH_DIRECT ? 0 : pl->ws;
      }
    }
    return true;
  };
  bool engine_timed = false;
  for (size_t i = 0; i < candidates.size(); i++) {
    if (i == legacy) legacy_ms = ms_since(timing); /* the engine configurations begin */
    const bool timed = time_candidate(candidates[i]);
    if (i >= legacy) engine_timed = engine_timed || timed;
  }
  const double engines_end_ms = ms_since(timing);
  const bool deferred_timed = !engine_timed && !deferred.empty();
  if (deferred_timed) {
    for (int algo : deferred) time_candidate(algo);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaEventDestroy(e2);
  if (trace_conv_tune()) {
    const double timed_ms = ms_since(timing);
    if (legacy == candidates.size()) legacy_ms = engines_end_ms;
    std::fprintf(stderr,
                 "braid_conv2d_tune: c %d k %d %dx%d kernel %dx%d on %d SMs: ranking %.2f ms, %zu "
                 "algorithms %.2f ms, %zu engines %.2f ms, %zu deferred %.2f ms%s (first runs "
                 "%.2f, eager %.2f, graphs %.2f, replays %.2f; %d ruled out eagerly), best %d "
                 "(%.4f ms)\n",
                 p->c, p->k, p->h, p->w, p->kh, p->kw, s->sms, ranking_ms, legacy, legacy_ms,
                 candidates.size() - legacy, engines_end_ms - legacy_ms, deferred.size(),
                 timed_ms - engines_end_ms,
                 deferred_timed || deferred.empty() ? "" : " (not timed)", split.first,
                 split.eager, split.graph, split.replays, split.pruned, best, best_ms);
  }
  if (best < 0) {
    if (last_error) return last_error;
    return fail(BRAID_ERR_INTERNAL, "%s: no algorithm could be timed", fn);
  }
  CUDA_TRY(fn, cudaStreamSynchronize(s->s));
  out[0] = best;
  out[1] = (int32_t)best_ws;
  *out_ms = best_ms;
  return BRAID_OK;
}

}  // extern "C"
