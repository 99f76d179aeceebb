/*
 * pool.cu — braid_pool2d (max and average, PyTorch semantics) and braid_global_avgpool.
 *
 * pool2d: one thread per output element, consecutive threads on consecutive output columns
 * (coalesced stores; loads within a window row hit the same cache lines). Average pooling's
 * divisor is a row part times a column part, clipped to the padded input with
 * count_include_pad and to the input itself without, exactly as braid.h and the CPU backend.
 * global_avgpool: one warp per row for short rows, one block per row for long ones.
 */
#include "common.cuh"

namespace braid_cuda {

struct PoolArgs {
  const float* x;
  float* y;
  int64_t total; /* n*c*oh*ow */
  int h, w, oh, ow, kh, kw, sh, sw, pt, pl, pb, pr;
  int include_pad;
};

template <bool MAX>
__global__ void __launch_bounds__(THREADS) pool2d_kernel(PoolArgs a) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.total; i += stride) {
    const int ox = (int)(i % a.ow);
    const int64_t t = i / a.ow;
    const int oy = (int)(t % a.oh);
    const int64_t plane = t / a.oh;
    const float* xp = a.x + plane * a.h * a.w;
    const int ys = oy * a.sh - a.pt, ye = ys + a.kh;
    const int xs = ox * a.sw - a.pl, xe = xs + a.kw;
    const int y0 = ys < 0 ? 0 : ys, y1 = ye > a.h ? a.h : ye;
    const int x0 = xs < 0 ? 0 : xs, x1 = xe > a.w ? a.w : xe;
    if (MAX) {
      float m = -INFINITY;
      for (int iy = y0; iy < y1; iy++) {
        const float* row = xp + (int64_t)iy * a.w;
        for (int ix = x0; ix < x1; ix++) {
          const float v = __ldg(row + ix);
          m = (v > m || v != v) ? v : m; /* NaN propagates, as in PyTorch */
        }
      }
      a.y[i] = m;
    } else {
      float sum = 0.0f;
      for (int iy = y0; iy < y1; iy++) {
        const float* row = xp + (int64_t)iy * a.w;
        for (int ix = x0; ix < x1; ix++) sum += __ldg(row + ix);
      }
      int rows, cols;
      if (a.include_pad) {
        rows = (ye < a.h + a.pb ? ye : a.h + a.pb) - ys;
        cols = (xe < a.w + a.pr ? xe : a.w + a.pr) - xs;
      } else {
        rows = y1 - y0;
        cols = x1 - x0;
      }
      const int count = rows * cols;
      a.y[i] = count > 0 ? sum / (float)count : 0.0f;
    }
  }
}

/* One warp per row of `spatial` elements; 8 rows per block. */
__global__ void __launch_bounds__(THREADS) gap_warp_kernel(const float* x, float* y, int64_t outer,
                                                           int spatial) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * (THREADS / 32);
  for (int64_t row = (int64_t)blockIdx.x * (THREADS / 32) + (threadIdx.x >> 5); row < outer;
       row += warps) {
    const float* xr = x + row * spatial;
    float s = 0.0f;
    for (int i = lane; i < spatial; i += 32) s += __ldg(xr + i);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) y[row] = s / (float)spatial;
  }
}

/* One block per row (long rows), 16-byte loads where the row is aligned. */
__global__ void __launch_bounds__(THREADS) gap_block_kernel(const float* x, float* y,
                                                            int64_t outer, int spatial) {
  __shared__ float part[THREADS / 32];
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const float* xr = x + row * spatial;
    float s = 0.0f;
    if (aligned16(xr)) {
      const int n4 = spatial >> 2;
      const float4* x4 = reinterpret_cast<const float4*>(xr);
      for (int i = threadIdx.x; i < n4; i += THREADS) {
        const float4 v = __ldg(x4 + i);
        s += (v.x + v.y) + (v.z + v.w);
      }
      for (int i = (n4 << 2) + threadIdx.x; i < spatial; i += THREADS) s += __ldg(xr + i);
    } else {
      for (int i = threadIdx.x; i < spatial; i += THREADS) s += __ldg(xr + i);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
      float t = threadIdx.x < THREADS / 32 ? part[threadIdx.x] : 0.0f;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
      if (threadIdx.x == 0) y[row] = t / (float)spatial;
    }
    __syncthreads();
  }
}

}  // namespace braid_cuda

using namespace braid_cuda;

extern "C" {

int32_t braid_pool2d(uint64_t ctx, uint64_t stream, const braid_pool2d_params* p, uint64_t x,
                     uint64_t y) {
  static const char fn[] = "braid_pool2d";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->kind != BRAID_POOL_MAX && p->kind != BRAID_POOL_AVG)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: kind %d is not a braid_pool_kind", fn, p->kind);
  if (p->n <= 0 || p->c <= 0 || p->h <= 0 || p->w <= 0 || p->oh <= 0 || p->ow <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: n %d, c %d, h %d, w %d, oh %d, ow %d must be positive", fn, p->n, p->c, p->h,
                p->w, p->oh, p->ow);
  if (p->kh <= 0 || p->kw <= 0 || p->stride_h <= 0 || p->stride_w <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: kernel %dx%d and stride %dx%d must be positive",
                fn, p->kh, p->kw, p->stride_h, p->stride_w);
  if (p->pad_top < 0 || p->pad_left < 0 || p->pad_bottom < 0 || p->pad_right < 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: padding %d,%d,%d,%d is negative", fn, p->pad_top,
                p->pad_left, p->pad_bottom, p->pad_right);
  if (p->count_include_pad != 0 && p->count_include_pad != 1)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: count_include_pad %d is not 0 or 1", fn,
                p->count_include_pad);
  /* Every window must start inside the input or its top/left padding (PyTorch's ceil_mode
   * rule), and the output may not be smaller than floor mode gives. An average that counts
   * the padding may also have windows inside explicit bottom/right padding (ONNX allows it; they
   * average zeros) when the output is floor mode's, so no window passes the padded end. */
  {
    const int64_t dims[2][6] = {{p->h, p->kh, p->stride_h, p->pad_top, p->pad_bottom, p->oh},
                                {p->w, p->kw, p->stride_w, p->pad_left, p->pad_right, p->ow}};
    static const char* const names[2] = {"oh", "ow"};
    for (int d = 0; d < 2; d++) {
      const int64_t in = dims[d][0], k = dims[d][1], sd = dims[d][2], pa = dims[d][3];
      const int64_t pe = dims[d][4], out = dims[d][5];
      const int64_t floor_out = in + pa + pe >= k ? (in + pa + pe - k) / sd + 1 : 0;
      const int zeros_count = p->kind == BRAID_POOL_AVG && p->count_include_pad;
      const int64_t last_start = zeros_count && out == floor_out ? in + pe : in;
      if ((out - 1) * sd - pa >= last_start || out < floor_out)
        return fail(BRAID_ERR_INVALID_ARGUMENT,
                    "%s: %s %lld is inconsistent with input %lld, kernel %lld, stride %lld, "
                    "padding %lld+%lld",
                    fn, names[d], (long long)out, (long long)in, (long long)k, (long long)sd,
                    (long long)pa, (long long)pe);
    }
  }
  if ((st = need(fn, "x", x)) || (st = need(fn, "y", y))) return st;
  PoolArgs a;
  a.x = CFPTR(x);
  a.y = FPTR(y);
  a.total = (int64_t)p->n * p->c * p->oh * p->ow;
  a.h = p->h;
  a.w = p->w;
  a.oh = p->oh;
  a.ow = p->ow;
  a.kh = p->kh;
  a.kw = p->kw;
  a.sh = p->stride_h;
  a.sw = p->stride_w;
  a.pt = p->pad_top;
  a.pl = p->pad_left;
  a.pb = p->pad_bottom;
  a.pr = p->pad_right;
  a.include_pad = p->count_include_pad;
  const unsigned grid = grid_for(s->sms, a.total, THREADS, 16);
  if (p->kind == BRAID_POOL_MAX)
    pool2d_kernel<true><<<grid, THREADS, 0, s->s>>>(a);
  else
    pool2d_kernel<false><<<grid, THREADS, 0, s->s>>>(a);
  LAUNCH_CHECK(fn, "pool2d_kernel");
  return BRAID_OK;
}

int32_t braid_global_avgpool(uint64_t ctx, uint64_t stream, const braid_global_avgpool_params* p,
                             uint64_t x, uint64_t y) {
  static const char fn[] = "braid_global_avgpool";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->outer <= 0 || p->spatial <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: outer %d, spatial %d must be positive", fn,
                p->outer, p->spatial);
  if ((st = need(fn, "x", x)) || (st = need(fn, "y", y))) return st;
  if (p->spatial <= 2048) {
    const int64_t blocks = (p->outer + THREADS / 32 - 1) / (THREADS / 32);
    const unsigned grid = (unsigned)(blocks < (int64_t)s->sms * 16 ? blocks : (int64_t)s->sms * 16);
    gap_warp_kernel<<<grid, THREADS, 0, s->s>>>(CFPTR(x), FPTR(y), p->outer, p->spatial);
  } else {
    const unsigned grid =
        (unsigned)(p->outer < (int64_t)s->sms * 16 ? p->outer : (int64_t)s->sms * 16);
    gap_block_kernel<<<grid, THREADS, 0, s->s>>>(CFPTR(x), FPTR(y), p->outer, p->spatial);
  }
  LAUNCH_CHECK(fn, "global_avgpool_kernel");
  return BRAID_OK;
}

}  // extern "C"
