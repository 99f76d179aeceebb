/*
 * norm.cu — normalisations: braid_batchnorm (inference), braid_layernorm and braid_softmax.
 *
 * batchnorm: a 2-D grid, y over (image, channel) planes, x over 16-byte vectors of a plane; the
 * per-channel scale is computed in double once per thread, as the CPU backend does.
 * layernorm: two passes in fp32 over a row (mean, then the biased variance of x - mean), one
 * warp per row for rows up to 1024 elements, else one block per row.
 * softmax: max-subtracted; rows along the last axis by a warp (short) or a block (long); a
 * strided axis (inner > 1) by one thread per (outer, inner) column, coalesced across inner.
 */
#include "common.cuh"

namespace braid_cuda {

/* ---------------------------------------------------------------- reductions */

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* Block-wide sum or max (THREADS threads); every thread gets the result. */
template <bool MAX>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
  v = MAX ? warp_max(v) : warp_sum(v);
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  float t = threadIdx.x < THREADS / 32 ? scratch[threadIdx.x] : (MAX ? -INFINITY : 0.0f);
  if (threadIdx.x < 32) {
    t = MAX ? warp_max(t) : warp_sum(t);
    if (threadIdx.x == 0) scratch[0] = t;
  }
  __syncthreads();
  t = scratch[0];
  __syncthreads();
  return t;
}

/* ---------------------------------------------------------------- batchnorm */

struct BnArgs {
  const float *x, *scale, *bias, *mean, *var;
  float* y;
  int64_t planes;
  int c;
  int64_t spatial;
  double eps;
};

template <bool VEC>
__global__ void __launch_bounds__(THREADS) batchnorm_kernel(BnArgs a) {
  for (int64_t plane = blockIdx.y; plane < a.planes; plane += gridDim.y) {
    const int ch = (int)(plane % a.c);
    const float sc = (float)((double)__ldg(a.scale + ch) / sqrt((double)__ldg(a.var + ch) + a.eps));
    const float m = __ldg(a.mean + ch), b = __ldg(a.bias + ch);
    const float* xp = a.x + plane * a.spatial;
    float* yp = a.y + plane * a.spatial;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t first = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (VEC) {
      const int64_t n4 = a.spatial >> 2;
      const float4* x4 = reinterpret_cast<const float4*>(xp);
      float4* y4 = reinterpret_cast<float4*>(yp);
      for (int64_t i = first; i < n4; i += stride) {
        float4 v = x4[i];
        v.x = (v.x - m) * sc + b;
        v.y = (v.y - m) * sc + b;
        v.z = (v.z - m) * sc + b;
        v.w = (v.w - m) * sc + b;
        y4[i] = v;
      }
    } else {
      for (int64_t i = first; i < a.spatial; i += stride) yp[i] = (xp[i] - m) * sc + b;
    }
  }
}

/* ---------------------------------------------------------------- layernorm */

struct LnArgs {
  const float *x, *scale, *bias;
  float* y;
  int64_t rows;
  int cols;
  float eps;
};

__global__ void __launch_bounds__(THREADS) layernorm_warp_kernel(LnArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * (THREADS / 32);
  for (int64_t r = (int64_t)blockIdx.x * (THREADS / 32) + (threadIdx.x >> 5); r < a.rows;
       r += warps) {
    const float* xr = a.x + r * a.cols;
    float* yr = a.y + r * a.cols;
    float s = 0.0f;
    for (int i = lane; i < a.cols; i += 32) s += xr[i];
    const float mean = warp_sum(s) / (float)a.cols;
    float q = 0.0f;
    for (int i = lane; i < a.cols; i += 32) {
      const float d = xr[i] - mean;
      q += d * d;
    }
    const float rstd = rsqrtf(warp_sum(q) / (float)a.cols + a.eps);
    for (int i = lane; i < a.cols; i += 32)
      yr[i] = (xr[i] - mean) * rstd * __ldg(a.scale + i) + __ldg(a.bias + i);
  }
}

__global__ void __launch_bounds__(THREADS) layernorm_block_kernel(LnArgs a) {
  __shared__ float scratch[THREADS / 32];
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const float* xr = a.x + r * a.cols;
    float* yr = a.y + r * a.cols;
    float s = 0.0f;
    for (int i = threadIdx.x; i < a.cols; i += THREADS) s += xr[i];
    const float mean = block_reduce<false>(s, scratch) / (float)a.cols;
    float q = 0.0f;
    for (int i = threadIdx.x; i < a.cols; i += THREADS) {
      const float d = xr[i] - mean;
      q += d * d;
    }
    const float rstd = rsqrtf(block_reduce<false>(q, scratch) / (float)a.cols + a.eps);
    for (int i = threadIdx.x; i < a.cols; i += THREADS)
      yr[i] = (xr[i] - mean) * rstd * __ldg(a.scale + i) + __ldg(a.bias + i);
  }
}

/* ---------------------------------------------------------------- softmax */

struct SmArgs {
  const float* x;
  float* y;
  int64_t outer;
  int axis;
  int64_t inner;
};

/* inner == 1, short rows: one warp per row. */
__global__ void __launch_bounds__(THREADS) softmax_warp_kernel(SmArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * (THREADS / 32);
  for (int64_t r = (int64_t)blockIdx.x * (THREADS / 32) + (threadIdx.x >> 5); r < a.outer;
       r += warps) {
    const float* xr = a.x + r * a.axis;
    float* yr = a.y + r * a.axis;
    float m = -INFINITY;
    for (int i = lane; i < a.axis; i += 32) m = fmaxf(m, xr[i]);
    m = warp_max(m);
    float s = 0.0f;
    for (int i = lane; i < a.axis; i += 32) s += expf(xr[i] - m);
    const float inv = 1.0f / warp_sum(s);
    for (int i = lane; i < a.axis; i += 32) yr[i] = expf(xr[i] - m) * inv;
  }
}

/* inner == 1, long rows: one block per row. */
__global__ void __launch_bounds__(THREADS) softmax_block_kernel(SmArgs a) {
  __shared__ float scratch[THREADS / 32];
  for (int64_t r = blockIdx.x; r < a.outer; r += gridDim.x) {
    const float* xr = a.x + r * a.axis;
    float* yr = a.y + r * a.axis;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < a.axis; i += THREADS) m = fmaxf(m, xr[i]);
    m = block_reduce<true>(m, scratch);
    float s = 0.0f;
    for (int i = threadIdx.x; i < a.axis; i += THREADS) s += expf(xr[i] - m);
    const float inv = 1.0f / block_reduce<false>(s, scratch);
    for (int i = threadIdx.x; i < a.axis; i += THREADS) yr[i] = expf(xr[i] - m) * inv;
  }
}

/* inner > 1: one thread per (outer, inner) column, walking the axis with stride inner. */
__global__ void __launch_bounds__(THREADS) softmax_strided_kernel(SmArgs a) {
  const int64_t columns = a.outer * a.inner;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t col = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; col < columns;
       col += stride) {
    const int64_t o = col / a.inner, j = col % a.inner;
    const float* xc = a.x + o * a.axis * a.inner + j;
    float* yc = a.y + o * a.axis * a.inner + j;
    float m = -INFINITY;
    for (int i = 0; i < a.axis; i++) m = fmaxf(m, xc[i * a.inner]);
    float s = 0.0f;
    for (int i = 0; i < a.axis; i++) s += expf(xc[i * a.inner] - m);
    const float inv = 1.0f / s;
    for (int i = 0; i < a.axis; i++) yc[i * a.inner] = expf(xc[i * a.inner] - m) * inv;
  }
}

}  // namespace braid_cuda

using namespace braid_cuda;

extern "C" {

int32_t braid_batchnorm(uint64_t ctx, uint64_t stream, const braid_batchnorm_params* p,
                        uint64_t x, uint64_t scale, uint64_t bias, uint64_t mean, uint64_t var,
                        uint64_t y) {
  static const char fn[] = "braid_batchnorm";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->n <= 0 || p->c <= 0 || p->spatial <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: n %d, c %d, spatial %d must be positive", fn,
                p->n, p->c, p->spatial);
  if (!(p->epsilon >= 0.0f) || std::isinf(p->epsilon))
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: epsilon %g must be finite and >= 0", fn,
                (double)p->epsilon);
  if ((st = need(fn, "x", x)) || (st = need(fn, "scale", scale)) || (st = need(fn, "bias", bias)) ||
      (st = need(fn, "mean", mean)) || (st = need(fn, "var", var)) || (st = need(fn, "y", y)))
    return st;
  BnArgs a;
  a.x = CFPTR(x);
  a.scale = CFPTR(scale);
  a.bias = CFPTR(bias);
  a.mean = CFPTR(mean);
  a.var = CFPTR(var);
  a.y = FPTR(y);
  a.planes = (int64_t)p->n * p->c;
  a.c = p->c;
  a.spatial = p->spatial;
  a.eps = p->epsilon;
  const bool vec = p->spatial % 4 == 0 && aligned16(a.x) && aligned16(a.y);
  const int64_t units = vec ? p->spatial / 4 : p->spatial;
  const int64_t by = a.planes < 65535 ? a.planes : 65535;
  int64_t bx = (units + THREADS - 1) / THREADS;
  const int64_t room = ((int64_t)s->sms * 16 + by - 1) / by;
  if (bx > room) bx = room;
  if (bx < 1) bx = 1;
  const dim3 grid((unsigned)bx, (unsigned)by);
  if (vec)
    batchnorm_kernel<true><<<grid, THREADS, 0, s->s>>>(a);
  else
    batchnorm_kernel<false><<<grid, THREADS, 0, s->s>>>(a);
  LAUNCH_CHECK(fn, "batchnorm_kernel");
  return BRAID_OK;
}

int32_t braid_layernorm(uint64_t ctx, uint64_t stream, const braid_layernorm_params* p,
                        uint64_t x, uint64_t scale, uint64_t bias, uint64_t y) {
  static const char fn[] = "braid_layernorm";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->rows <= 0 || p->cols <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: rows %d, cols %d must be positive", fn, p->rows,
                p->cols);
  if (!(p->epsilon >= 0.0f) || std::isinf(p->epsilon))
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: epsilon %g must be finite and >= 0", fn,
                (double)p->epsilon);
  if ((st = need(fn, "x", x)) || (st = need(fn, "scale", scale)) || (st = need(fn, "bias", bias)) ||
      (st = need(fn, "y", y)))
    return st;
  LnArgs a;
  a.x = CFPTR(x);
  a.scale = CFPTR(scale);
  a.bias = CFPTR(bias);
  a.y = FPTR(y);
  a.rows = p->rows;
  a.cols = p->cols;
  a.eps = p->epsilon;
  if (p->cols <= 1024) {
    const int64_t blocks = (a.rows + THREADS / 32 - 1) / (THREADS / 32);
    const int64_t cap = (int64_t)s->sms * 16;
    layernorm_warp_kernel<<<(unsigned)(blocks < cap ? blocks : cap), THREADS, 0, s->s>>>(a);
  } else {
    const int64_t cap = (int64_t)s->sms * 8;
    layernorm_block_kernel<<<(unsigned)(a.rows < cap ? a.rows : cap), THREADS, 0, s->s>>>(a);
  }
  LAUNCH_CHECK(fn, "layernorm_kernel");
  return BRAID_OK;
}

int32_t braid_softmax(uint64_t ctx, uint64_t stream, const braid_softmax_params* p, uint64_t x,
                      uint64_t y) {
  static const char fn[] = "braid_softmax";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->outer <= 0 || p->axis <= 0 || p->inner <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: outer %d, axis %d, inner %d must be positive", fn,
                p->outer, p->axis, p->inner);
  if ((st = need(fn, "x", x)) || (st = need(fn, "y", y))) return st;
  SmArgs a;
  a.x = CFPTR(x);
  a.y = FPTR(y);
  a.outer = p->outer;
  a.axis = p->axis;
  a.inner = p->inner;
  if (p->inner > 1) {
    softmax_strided_kernel<<<grid_for(s->sms, a.outer * a.inner), THREADS, 0, s->s>>>(a);
  } else if (p->axis <= 1024) {
    const int64_t blocks = (a.outer + THREADS / 32 - 1) / (THREADS / 32);
    const int64_t cap = (int64_t)s->sms * 16;
    softmax_warp_kernel<<<(unsigned)(blocks < cap ? blocks : cap), THREADS, 0, s->s>>>(a);
  } else {
    const int64_t cap = (int64_t)s->sms * 8;
    softmax_block_kernel<<<(unsigned)(a.outer < cap ? a.outer : cap), THREADS, 0, s->s>>>(a);
  }
  LAUNCH_CHECK(fn, "softmax_kernel");
  return BRAID_OK;
}

}  // extern "C"
