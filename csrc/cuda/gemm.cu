/*
 * gemm.cu — braid_gemm and braid_matmul through cuBLASLt.
 *
 * Row-major y[m, n] = a[m, k] · op(b) is, read column-major, yᵀ[n, m] = op(b)ᵀ · aᵀ: cuBLASLt's
 * A is braid's b (n×k, or k×n transposed when trans_b), its B is braid's a (k×m), D is y (n×m).
 * Compute type CUBLAS_COMPUTE_32F (strict fp32), or CUBLAS_COMPUTE_32F_FAST_TF32 with
 * allow_tf32. Epilogues: cuBLASLt's BIAS / RELU_BIAS / RELU where they are exactly braid's
 * (bias only unscaled, beta = 1); any other bias scale or activation (clamp, sigmoid, tanh, and
 * GELU, whose cuBLASLt form is the tanh approximation, not PyTorch's exact erf) is one epilogue
 * pass after the product.
 * MatMul's batch dimensions are merged where their strides allow; the innermost merged one is a
 * strided batch (stride 0 broadcasts), the rest a host loop.
 * Layouts, descriptors and the heuristic's algorithm are cached per (record, pointer alignment,
 * SM budget): on a stream inside a partition, the descriptor's CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET
 * is the partition's SM count.
 * Each stream owns its cuBLASLt workspace, so concurrent streams never share one.
 */
#include "common.cuh"

#include <climits>
#include <new>

namespace braid_cuda {

struct GemmKey {
  int32_t m, n, k, trans_b, tf32, epilogue, batch;
  int32_t sms; /* SM count target: the stream's partition's SMs, 0 on the whole device */
  int64_t stride_a, stride_b, stride_y; /* cuBLASLt operands, elements per batch step */
  int32_t align_a, align_b, align_y, align_bias;
};

struct GemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ly = nullptr;
  cublasLtMatmulAlgo_t algo;
  ~GemmPlan() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (ly) cublasLtMatrixLayoutDestroy(ly);
  }
};

struct GemmCache {
  std::unordered_map<GemmKey, GemmPlan*, BytesHash<GemmKey>, BytesEq<GemmKey>> map;
};

void gemm_cache_destroy(Context* c) {
  if (c->gemm_cache == nullptr) return;
  for (auto& kv : c->gemm_cache->map) delete kv.second;
  delete c->gemm_cache;
  c->gemm_cache = nullptr;
}

/* Largest power of two (≤ 256) dividing the address and, for a batch, its byte stride. */
static int32_t alignment(const void* p, int64_t batch, int64_t stride_elems) {
  uint64_t v = (uint64_t)(uintptr_t)p | 256u;
  if (batch > 1 && stride_elems != 0) v |= (uint64_t)(stride_elems * (int64_t)sizeof(float));
  return (int32_t)(v & (~v + 1));
}

static int32_t set_batch(const char* fn, cublasLtMatrixLayout_t l, int32_t batch, int64_t stride) {
  if (batch <= 1) return BRAID_OK;
  CUBLAS_TRY(fn, cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch,
                                                  sizeof batch));
  CUBLAS_TRY(fn, cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                  &stride, sizeof stride));
  return BRAID_OK;
}

/* Builds a plan; BRAID_ERR_UNSUPPORTED (no message) when cuBLASLt has no algorithm for it. */
static int32_t make_plan(Context* c, const char* fn, const GemmKey& k, GemmPlan** out) {
  GemmPlan* pl = new (std::nothrow) GemmPlan();
  if (pl == nullptr) return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  int32_t st = [&]() -> int32_t {
    const cublasComputeType_t compute = k.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    CUBLAS_TRY(fn, cublasLtMatmulDescCreate(&pl->desc, compute, CUDA_R_32F));
    const cublasOperation_t ta = k.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
    CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
                                                  sizeof ta));
    CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
                                                  sizeof tb));
    const cublasLtEpilogue_t epi = (cublasLtEpilogue_t)k.epilogue;
    CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                  sizeof epi));
    /* Inside a partition the device's SM count misleads the heuristic and the kernel's grid:
     * target the partition's SMs instead. */
    if (k.sms > 0) {
      const int32_t target = k.sms;
      CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(
                         pl->desc, CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET, &target, sizeof target));
    }
    /* braid's b: n×k column-major (ld n), or k×n (ld k) used transposed. */
    if (k.trans_b)
      CUBLAS_TRY(fn, cublasLtMatrixLayoutCreate(&pl->la, CUDA_R_32F, k.k, k.n, k.k));
    else
      CUBLAS_TRY(fn, cublasLtMatrixLayoutCreate(&pl->la, CUDA_R_32F, k.n, k.k, k.n));
    CUBLAS_TRY(fn, cublasLtMatrixLayoutCreate(&pl->lb, CUDA_R_32F, k.k, k.m, k.k));
    CUBLAS_TRY(fn, cublasLtMatrixLayoutCreate(&pl->ly, CUDA_R_32F, k.n, k.m, k.n));
    int32_t s2;
    if ((s2 = set_batch(fn, pl->la, k.batch, k.stride_a)) ||
        (s2 = set_batch(fn, pl->lb, k.batch, k.stride_b)) ||
        (s2 = set_batch(fn, pl->ly, k.batch, k.stride_y)))
      return s2;
    cublasLtMatmulPreference_t pref = nullptr;
    CUBLAS_TRY(fn, cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = LT_WORKSPACE_BYTES;
    const uint32_t aa = (uint32_t)k.align_a, ab = (uint32_t)k.align_b, ay = (uint32_t)k.align_y;
    cublasStatus_t r = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (r == CUBLAS_STATUS_SUCCESS)
      r = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                               &aa, sizeof aa);
    if (r == CUBLAS_STATUS_SUCCESS)
      r = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                               &ab, sizeof ab);
    if (r == CUBLAS_STATUS_SUCCESS)
      r = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                               &ay, sizeof ay);
    if (r == CUBLAS_STATUS_SUCCESS)
      r = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                               &ay, sizeof ay);
    if (r != CUBLAS_STATUS_SUCCESS) {
      cublasLtMatmulPreferenceDestroy(pref);
      return cublas_fail(fn, "cublasLtMatmulPreferenceSetAttribute", r);
    }
    cublasLtMatmulHeuristicResult_t result;
    int returned = 0;
    r = cublasLtMatmulAlgoGetHeuristic(c->lt, pl->desc, pl->la, pl->lb, pl->ly, pl->ly, pref, 1,
                                       &result, &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    if (r == CUBLAS_STATUS_NOT_SUPPORTED || (r == CUBLAS_STATUS_SUCCESS && returned == 0))
      return BRAID_ERR_UNSUPPORTED;
    if (r != CUBLAS_STATUS_SUCCESS) return cublas_fail(fn, "cublasLtMatmulAlgoGetHeuristic", r);
    pl->algo = result.algo;
    return BRAID_OK;
  }();
  if (st) {
    delete pl;
    return st;
  }
  *out = pl;
  return BRAID_OK;
}

/* One cuBLASLt product (context lock held): D = alpha * opA(A) · B (+ epilogue with bias). */
static int32_t lt_matmul(Context* c, Stream* s, const char* fn, GemmKey key, const float* A,
                         const float* B, float* Y, const float* bias, float alpha) {
  key.sms = s->part ? s->sms : 0;
  key.align_a = alignment(A, key.batch, key.stride_a);
  key.align_b = alignment(B, key.batch, key.stride_b);
  key.align_y = alignment(Y, key.batch, key.stride_y);
  key.align_bias = bias ? alignment(bias, 1, 0) : 0;
  if (c->gemm_cache == nullptr) {
    c->gemm_cache = new (std::nothrow) GemmCache();
    if (c->gemm_cache == nullptr) return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  GemmPlan* pl = nullptr;
  auto it = c->gemm_cache->map.find(key);
  if (it != c->gemm_cache->map.end()) {
    pl = it->second;
  } else {
    int32_t st;
    {
      RelaxedCapture relaxed;
      st = make_plan(c, fn, key, &pl);
    }
    if (st) return st;
    try {
      c->gemm_cache->map.emplace(key, pl);
    } catch (...) {
      delete pl;
      return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
  }
  if (bias)
    CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                  &bias, sizeof bias));
  const float beta = 0.0f;
  void* ws = nullptr;
  int32_t st = stream_scratch(s, fn, &ws);
  if (st) return st;
  CUBLAS_TRY(fn, cublasLtMatmul(c->lt, pl->desc, &alpha, A, pl->la, B, pl->lb, &beta, Y, pl->ly, Y,
                                pl->ly, &pl->algo, ws, LT_WORKSPACE_BYTES, s->s));
  return BRAID_OK;
}

static int32_t no_algorithm(const char* fn, const GemmKey& k) {
  return fail(BRAID_ERR_CUBLAS,
              "%s: cublasLtMatmulAlgoGetHeuristic found no algorithm for m %d, n %d, k %d, "
              "trans_b %d, batch %d",
              fn, k.m, k.n, k.k, k.trans_b, k.batch);
}

}  // namespace braid_cuda

using namespace braid_cuda;

extern "C" {

int32_t braid_gemm(uint64_t ctx, uint64_t stream, const braid_gemm_params* p, uint64_t a,
                   uint64_t b, uint64_t bias, uint64_t y) {
  static const char fn[] = "braid_gemm";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->m <= 0 || p->n <= 0 || p->k <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: m %d, n %d, k %d must be positive", fn, p->m,
                p->n, p->k);
  if (p->trans_b != 0 && p->trans_b != 1)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: trans_b %d is not 0 or 1", fn, p->trans_b);
  if ((st = check_activation(fn, p->activation, p->act_min, p->act_max))) return st;
  if ((st = need(fn, "a", a)) || (st = need(fn, "b", b)) || (st = need(fn, "y", y))) return st;

  /* cuBLASLt's epilogue where it is exactly braid's; else one pass afterwards. */
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  bool after = false;
  const float* fused_bias = nullptr;
  if (bias != 0 && p->beta == 1.0f && p->activation == BRAID_ACT_NONE) {
    epi = CUBLASLT_EPILOGUE_BIAS;
    fused_bias = CFPTR(bias);
  } else if (bias != 0 && p->beta == 1.0f && p->activation == BRAID_ACT_RELU) {
    epi = CUBLASLT_EPILOGUE_RELU_BIAS;
    fused_bias = CFPTR(bias);
  } else if (bias == 0 && p->activation == BRAID_ACT_RELU) {
    epi = CUBLASLT_EPILOGUE_RELU;
  } else if (bias != 0 || p->activation != BRAID_ACT_NONE) {
    after = true;
  }
  GemmKey key;
  memset(&key, 0, sizeof key);
  key.m = p->m;
  key.n = p->n;
  key.k = p->k;
  key.trans_b = p->trans_b;
  key.tf32 = p->allow_tf32 != 0;
  key.epilogue = (int32_t)epi;
  key.batch = 1;
  std::lock_guard<std::mutex> g(c->lock);
  st = lt_matmul(c, s, fn, key, CFPTR(b), CFPTR(a), FPTR(y), fused_bias, p->alpha);
  if (st == BRAID_ERR_UNSUPPORTED && epi != CUBLASLT_EPILOGUE_DEFAULT) {
    /* No algorithm with that epilogue: plain product, then the epilogue pass. */
    key.epilogue = (int32_t)CUBLASLT_EPILOGUE_DEFAULT;
    after = bias != 0 || p->activation != BRAID_ACT_NONE;
    st = lt_matmul(c, s, fn, key, CFPTR(b), CFPTR(a), FPTR(y), nullptr, p->alpha);
  }
  if (st == BRAID_ERR_UNSUPPORTED) return no_algorithm(fn, key);
  if (st) return st;
  if (after)
    return launch_map(c, s, fn, CFPTR(y), FPTR(y), (int64_t)p->m * p->n, 1, p->n,
                      bias ? CFPTR(bias) : nullptr, p->beta, nullptr, p->activation, p->act_min,
                      p->act_max);
  return BRAID_OK;
}

int32_t braid_matmul(uint64_t ctx, uint64_t stream, const braid_matmul_params* p, uint64_t a,
                     uint64_t b, uint64_t y) {
  static const char fn[] = "braid_matmul";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->batch_rank < 0 || p->batch_rank > BRAID_MAX_BATCH_RANK)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: batch_rank %d is outside 0..%d", fn,
                p->batch_rank, BRAID_MAX_BATCH_RANK);
  for (int d = 0; d < p->batch_rank; d++)
    if (p->batch_shape[d] <= 0)
      return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: batch_shape[%d] = %d must be positive", fn, d,
                  p->batch_shape[d]);
  if (p->m <= 0 || p->n <= 0 || p->k <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: m %d, n %d, k %d must be positive", fn, p->m,
                p->n, p->k);
  if (p->trans_b != 0 && p->trans_b != 1)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: trans_b %d is not 0 or 1", fn, p->trans_b);
  if ((st = need(fn, "a", a)) || (st = need(fn, "b", b)) || (st = need(fn, "y", y))) return st;

  /* Merge batch dims: drop size-1 ones, fold a dim into the previous when both operands step
   * through it contiguously (y always does). */
  int64_t shape[BRAID_MAX_BATCH_RANK], sa[BRAID_MAX_BATCH_RANK], sb[BRAID_MAX_BATCH_RANK];
  int r = 0;
  for (int d = 0; d < p->batch_rank; d++) {
    if (p->batch_shape[d] == 1) continue;
    if (r > 0 && sa[r - 1] == (int64_t)p->a_batch_strides[d] * p->batch_shape[d] &&
        sb[r - 1] == (int64_t)p->b_batch_strides[d] * p->batch_shape[d]) {
      shape[r - 1] *= p->batch_shape[d];
      sa[r - 1] = p->a_batch_strides[d];
      sb[r - 1] = p->b_batch_strides[d];
      continue;
    }
    shape[r] = p->batch_shape[d];
    sa[r] = p->a_batch_strides[d];
    sb[r] = p->b_batch_strides[d];
    r++;
  }
  const int64_t inner = r > 0 ? shape[r - 1] : 1;
  if (inner > INT_MAX)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: a batch of %lld products is too many", fn,
                (long long)inner);
  int64_t outer = 1;
  for (int d = 0; d < r - 1; d++) outer *= shape[d];
  const int64_t mn = (int64_t)p->m * p->n;
  GemmKey key;
  memset(&key, 0, sizeof key);
  key.m = p->m;
  key.n = p->n;
  key.k = p->k;
  key.trans_b = p->trans_b;
  key.tf32 = p->allow_tf32 != 0;
  key.epilogue = (int32_t)CUBLASLT_EPILOGUE_DEFAULT;
  key.batch = (int32_t)inner;
  key.stride_a = r > 0 ? sb[r - 1] : 0; /* cuBLASLt's A is braid's b */
  key.stride_b = r > 0 ? sa[r - 1] : 0;
  key.stride_y = mn;
  const float* A = CFPTR(a);
  const float* B = CFPTR(b);
  float* Y = FPTR(y);
  std::lock_guard<std::mutex> g(c->lock);
  for (int64_t t = 0; t < outer; t++) {
    int64_t rest = t, ao = 0, bo = 0;
    for (int d = r - 2; d >= 0; d--) {
      const int64_t i = rest % shape[d];
      rest /= shape[d];
      ao += i * sa[d];
      bo += i * sb[d];
    }
    float* yt = Y + t * inner * mn;
    st = lt_matmul(c, s, fn, key, B + bo, A + ao, yt, nullptr, p->alpha);
    if (st == BRAID_ERR_UNSUPPORTED && inner > 1) {
      /* No strided-batch algorithm (e.g. for a broadcast stride): one product at a time. */
      GemmKey one = key;
      one.batch = 1;
      one.stride_a = one.stride_b = one.stride_y = 0;
      for (int64_t i = 0; i < inner; i++) {
        st = lt_matmul(c, s, fn, one, B + bo + i * key.stride_a, A + ao + i * key.stride_b,
                       yt + i * mn, nullptr, p->alpha);
        if (st) break;
      }
      if (st == BRAID_ERR_UNSUPPORTED) return no_algorithm(fn, one);
    }
    if (st == BRAID_ERR_UNSUPPORTED) return no_algorithm(fn, key);
    if (st) return st;
  }
  return BRAID_OK;
}

}  // extern "C"
