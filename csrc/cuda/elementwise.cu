/*
 * elementwise.cu — braid_unary (activations and copy), braid_binary (broadcasting add, sub, mul,
 * div with a fused activation) and the shared map/epilogue kernel used after cuDNN and cuBLASLt.
 *
 * Kernels are grid-stride loops over 16-byte vectors (float4) where every pointer is 16-byte
 * aligned, with a scalar tail; the activation is a template parameter so the loop carries no
 * switch. Broadcasting drops size-1 dimensions and merges dimensions contiguous in both operands
 * (as the CPU backend does) before choosing a kernel.
 */
#include "common.cuh"

namespace braid_cuda {

/* ---------------------------------------------------------------- map / epilogue */

struct MapArgs {
  const float* x;
  float* y;
  int64_t count;
  int64_t inner, channels;
  const float* bias;
  float bias_scale;
  const float* res;
  float lo, hi;
};

template <int ACT, bool BIAS, bool RES>
__device__ __forceinline__ float map1(const MapArgs& a, int64_t i, float v) {
  if (BIAS) v += a.bias_scale * __ldg(a.bias + (i / a.inner) % a.channels);
  if (RES) v += a.res[i];
  return act_apply<ACT>(v, a.lo, a.hi);
}

/* Vector path: x, y, res 16-byte aligned and (with a bias) inner % 4 == 0, so the four
 * elements of a vector share one channel. */
template <int ACT, bool BIAS, bool RES>
__global__ void __launch_bounds__(THREADS) map_vec_kernel(MapArgs a) {
  const int64_t nvec = a.count >> 2;
  const float4* x4 = reinterpret_cast<const float4*>(a.x);
  const float4* r4 = reinterpret_cast<const float4*>(a.res);
  float4* y4 = reinterpret_cast<float4*>(a.y);
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t v = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; v < nvec; v += stride) {
    float4 t = x4[v];
    const int64_t i = v << 2;
    if (BIAS) {
      const float b = a.bias_scale * __ldg(a.bias + (i / a.inner) % a.channels);
      t.x += b;
      t.y += b;
      t.z += b;
      t.w += b;
    }
    if (RES) {
      const float4 r = r4[v];
      t.x += r.x;
      t.y += r.y;
      t.z += r.z;
      t.w += r.w;
    }
    t.x = act_apply<ACT>(t.x, a.lo, a.hi);
    t.y = act_apply<ACT>(t.y, a.lo, a.hi);
    t.z = act_apply<ACT>(t.z, a.lo, a.hi);
    t.w = act_apply<ACT>(t.w, a.lo, a.hi);
    y4[v] = t;
  }
  /* Tail (fewer than 4 elements), by the first threads of block 0. */
  if (blockIdx.x == 0 && threadIdx.x < (a.count & 3)) {
    const int64_t i = (nvec << 2) + threadIdx.x;
    a.y[i] = map1<ACT, BIAS, RES>(a, i, a.x[i]);
  }
}

template <int ACT, bool BIAS, bool RES>
__global__ void __launch_bounds__(THREADS) map_kernel(MapArgs a) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.count; i += stride)
    a.y[i] = map1<ACT, BIAS, RES>(a, i, a.x[i]);
}

template <int ACT, bool BIAS, bool RES>
static void map_launch(const Stream* s, const MapArgs& a, bool vec) {
  if (vec)
    map_vec_kernel<ACT, BIAS, RES><<<grid_for(s->sms, (a.count + 3) / 4), THREADS, 0, s->s>>>(a);
  else
    map_kernel<ACT, BIAS, RES><<<grid_for(s->sms, a.count), THREADS, 0, s->s>>>(a);
}

int32_t launch_map(Context* c, const Stream* s, const char* fn, const float* x, float* y,
                   int64_t count, int64_t inner, int64_t channels, const float* bias,
                   float bias_scale, const float* res, int act, float lo, float hi) {
  if (count <= 0) return BRAID_OK;
  MapArgs a;
  a.x = x;
  a.y = y;
  a.count = count;
  a.inner = inner > 0 ? inner : 1;
  a.channels = channels > 0 ? channels : 1;
  a.bias = bias;
  a.bias_scale = bias_scale;
  a.res = res;
  a.lo = lo;
  a.hi = hi;
  const bool vec = aligned16(x) && aligned16(y) && (res == nullptr || aligned16(res)) &&
                   (bias == nullptr || a.inner % 4 == 0);
  const bool has_bias = bias != nullptr, has_res = res != nullptr;
  BRAID_DISPATCH_ACT(act, {
    if (has_bias && has_res) map_launch<ACT_, true, true>(s, a, vec);
    else if (has_bias) map_launch<ACT_, true, false>(s, a, vec);
    else if (has_res) map_launch<ACT_, false, true>(s, a, vec);
    else map_launch<ACT_, false, false>(s, a, vec);
  });
  LAUNCH_CHECK(fn, "map_kernel");
  return BRAID_OK;
}

/* ---------------------------------------------------------------- binary */

struct BinArgs {
  const float* a;
  const float* b;
  float* y;
  int64_t total;
  int rank;
  int64_t shape[BRAID_MAX_RANK];
  int64_t as[BRAID_MAX_RANK], bs[BRAID_MAX_RANK];
  int kind;
  float lo, hi;
};

__device__ __forceinline__ float bin_op(int kind, float u, float v) {
  switch (kind) {
    case BRAID_BIN_ADD: return u + v;
    case BRAID_BIN_SUB: return u - v;
    case BRAID_BIN_MUL: return u * v;
    default: return u / v;
  }
}

/* Both operands contiguous, or one a scalar (stride 0), over one merged dimension. */
template <int ACT>
__global__ void __launch_bounds__(THREADS) binary_flat_kernel(BinArgs p) {
  const int64_t sa = p.as[0], sb = p.bs[0];
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.total; i += stride)
    p.y[i] = act_apply<ACT>(bin_op(p.kind, p.a[i * sa], p.b[i * sb]), p.lo, p.hi);
}

template <int ACT>
__global__ void __launch_bounds__(THREADS) binary_vec_kernel(BinArgs p) {
  const int64_t nvec = p.total >> 2;
  const float4* a4 = reinterpret_cast<const float4*>(p.a);
  const float4* b4 = reinterpret_cast<const float4*>(p.b);
  float4* y4 = reinterpret_cast<float4*>(p.y);
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t v = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; v < nvec; v += stride) {
    const float4 u = a4[v], w = b4[v];
    float4 t;
    t.x = act_apply<ACT>(bin_op(p.kind, u.x, w.x), p.lo, p.hi);
    t.y = act_apply<ACT>(bin_op(p.kind, u.y, w.y), p.lo, p.hi);
    t.z = act_apply<ACT>(bin_op(p.kind, u.z, w.z), p.lo, p.hi);
    t.w = act_apply<ACT>(bin_op(p.kind, u.w, w.w), p.lo, p.hi);
    y4[v] = t;
  }
  if (blockIdx.x == 0 && threadIdx.x < (p.total & 3)) {
    const int64_t i = (nvec << 2) + threadIdx.x;
    p.y[i] = act_apply<ACT>(bin_op(p.kind, p.a[i], p.b[i]), p.lo, p.hi);
  }
}

/* Any broadcast: each output index decomposed over the merged dimensions. */
template <int ACT>
__global__ void __launch_bounds__(THREADS) binary_general_kernel(BinArgs p) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.total; i += stride) {
    int64_t rest = i, ao = 0, bo = 0;
#pragma unroll
    for (int d = BRAID_MAX_RANK - 1; d >= 0; d--) {
      if (d < p.rank) {
        const int64_t idx = rest % p.shape[d];
        rest /= p.shape[d];
        ao += idx * p.as[d];
        bo += idx * p.bs[d];
      }
    }
    p.y[i] = act_apply<ACT>(bin_op(p.kind, p.a[ao], p.b[bo]), p.lo, p.hi);
  }
}

}  // namespace braid_cuda

using namespace braid_cuda;

extern "C" {

int32_t braid_unary(uint64_t ctx, uint64_t stream, const braid_unary_params* p, uint64_t x,
                    uint64_t y) {
  static const char fn[] = "braid_unary";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->count <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: count %d must be positive", fn, p->count);
  if (p->kind < BRAID_ACT_NONE || p->kind > BRAID_ACT_GELU)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: kind %d is not a braid_activation", fn, p->kind);
  if ((st = check_activation(fn, p->kind, p->act_min, p->act_max))) return st;
  if ((st = need(fn, "x", x)) || (st = need(fn, "y", y))) return st;
  if (p->kind == BRAID_ACT_NONE) {
    if (x != y)
      CUDA_TRY(fn, cudaMemcpyAsync(FPTR(y), CFPTR(x), (size_t)p->count * sizeof(float),
                                   cudaMemcpyDeviceToDevice, s->s));
    return BRAID_OK;
  }
  return launch_map(c, s, fn, CFPTR(x), FPTR(y), p->count, 1, 1, nullptr, 0.0f, nullptr,
                    p->kind, p->act_min, p->act_max);
}

int32_t braid_binary(uint64_t ctx, uint64_t stream, const braid_binary_params* p, uint64_t a,
                     uint64_t b, uint64_t y) {
  static const char fn[] = "braid_binary";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->kind < BRAID_BIN_ADD || p->kind > BRAID_BIN_DIV)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: kind %d is not a braid_binary_kind", fn,
                p->kind);
  int64_t total = 0;
  if ((st = check_shape(fn, p->rank, p->shape, &total))) return st;
  if ((st = check_activation(fn, p->activation, p->act_min, p->act_max))) return st;
  if ((st = need(fn, "a", a)) || (st = need(fn, "b", b)) || (st = need(fn, "y", y))) return st;

  /* Simplify the iteration space: drop size-1 dims, merge dims contiguous in both a and b. */
  BinArgs k;
  memset(&k, 0, sizeof k);
  int r = 0;
  for (int d = 0; d < p->rank; d++) {
    if (p->shape[d] == 1) continue;
    if (r > 0 && k.as[r - 1] == (int64_t)p->a_strides[d] * p->shape[d] &&
        k.bs[r - 1] == (int64_t)p->b_strides[d] * p->shape[d]) {
      k.shape[r - 1] *= p->shape[d];
      k.as[r - 1] = p->a_strides[d];
      k.bs[r - 1] = p->b_strides[d];
      continue;
    }
    k.shape[r] = p->shape[d];
    k.as[r] = p->a_strides[d];
    k.bs[r] = p->b_strides[d];
    r++;
  }
  if (r == 0) {
    k.shape[0] = 1;
    k.as[0] = k.bs[0] = 0;
    r = 1;
  }
  k.a = CFPTR(a);
  k.b = CFPTR(b);
  k.y = FPTR(y);
  k.total = total;
  k.rank = r;
  k.kind = p->kind;
  k.lo = p->act_min;
  k.hi = p->act_max;
  const bool flat = r == 1 && (k.as[0] == 0 || k.as[0] == 1) && (k.bs[0] == 0 || k.bs[0] == 1);
  const bool vec = flat && k.as[0] == 1 && k.bs[0] == 1 && aligned16(k.a) && aligned16(k.b) &&
                   aligned16(k.y);
  BRAID_DISPATCH_ACT(p->activation, {
    if (vec)
      binary_vec_kernel<ACT_><<<grid_for(s->sms, (total + 3) / 4), THREADS, 0, s->s>>>(k);
    else if (flat)
      binary_flat_kernel<ACT_><<<grid_for(s->sms, total), THREADS, 0, s->s>>>(k);
    else
      binary_general_kernel<ACT_><<<grid_for(s->sms, total), THREADS, 0, s->s>>>(k);
  });
  LAUNCH_CHECK(fn, "binary_kernel");
  return BRAID_OK;
}

}  // extern "C"
