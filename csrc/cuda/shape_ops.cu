/*
 * shape_ops.cu — data movement of 4-byte elements: braid_concat, braid_strided_copy and
 * braid_gather.
 *
 * concat: one kernel for all inputs, their addresses passed by value in the kernel's parameter
 * struct (up to BRAID_MAX_CONCAT); blockIdx.y picks the input, a grid-stride loop over x copies
 * it, in 16-byte units when every inner size, the output row and every address allow it.
 * gather: an out-of-range index (the host cannot see device indices while issuing) writes zeros
 * and records the first bad index in the context's mapped error slot; the next
 * braid_stream_synchronize on the context reports it as BRAID_ERR_INVALID_ARGUMENT.
 */
#include "common.cuh"

namespace braid_cuda {

typedef uint32_t elem; /* any 4-byte element */

/* ---------------------------------------------------------------- concat */

struct ConcatArgs {
  const void* src[BRAID_MAX_CONCAT];
  int64_t inner[BRAID_MAX_CONCAT]; /* in units (elements, or 16-byte vectors) */
  int64_t col[BRAID_MAX_CONCAT];   /* first output column of each input, in units */
  void* y;
  int64_t outer, out_inner;
};

template <typename T>
__global__ void __launch_bounds__(THREADS) concat_kernel(const __grid_constant__ ConcatArgs a) {
  const int i = blockIdx.y;
  const int64_t inner = a.inner[i];
  const int64_t total = a.outer * inner;
  const T* src = static_cast<const T*>(a.src[i]);
  T* dst = static_cast<T*>(a.y) + a.col[i];
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  if (a.outer == 1) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride)
      dst[e] = src[e];
  } else {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
      const int64_t row = e / inner;
      dst[row * a.out_inner + (e - row * inner)] = src[e];
    }
  }
}

/* ---------------------------------------------------------------- strided copy */

struct StridedArgs {
  const elem* x;
  elem* y;
  int64_t total;
  int rank;
  int64_t shape[BRAID_MAX_RANK];
  int64_t strides[BRAID_MAX_RANK];
};

__global__ void __launch_bounds__(THREADS) strided_copy_kernel(StridedArgs a) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.total; i += stride) {
    int64_t rest = i, off = 0;
#pragma unroll
    for (int d = BRAID_MAX_RANK - 1; d >= 0; d--) {
      if (d < a.rank) {
        const int64_t idx = rest % a.shape[d];
        rest /= a.shape[d];
        off += idx * a.strides[d];
      }
    }
    a.y[i] = a.x[off];
  }
}

/* ---------------------------------------------------------------- gather */

struct GatherArgs {
  const elem* data;
  const int32_t* idx;
  elem* y;
  int64_t outer, axis, inner, count;
  DeviceError* err;
};

__global__ void __launch_bounds__(THREADS) gather_kernel(GatherArgs a) {
  const int64_t total = a.outer * a.count * a.inner;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t j = e % a.inner;
    const int64_t t = (e / a.inner) % a.count;
    const int64_t o = e / (a.inner * a.count);
    int64_t i = __ldg(a.idx + t);
    if (i < -a.axis || i >= a.axis) {
      a.y[e] = 0;
      /* Plain stores to mapped host memory (atomics there are not portable): index and
       * position in one 8-byte store so they never mix between two failing threads. */
      const unsigned long long where =
          (unsigned long long)(uint32_t)(int32_t)i | ((unsigned long long)(uint32_t)t << 32);
      *reinterpret_cast<volatile unsigned long long*>(&a.err->index) = where;
      *reinterpret_cast<volatile int*>(&a.err->axis) = (int)a.axis;
      __threadfence_system();
      *reinterpret_cast<volatile int*>(&a.err->flag) = 1;
      continue;
    }
    if (i < 0) i += a.axis;
    a.y[e] = a.data[(o * a.axis + i) * a.inner + j];
  }
}

}  // namespace braid_cuda

using namespace braid_cuda;

extern "C" {

int32_t braid_concat(uint64_t ctx, uint64_t stream, const braid_concat_params* p,
                     const uint64_t* inputs, uint64_t y) {
  static const char fn[] = "braid_concat";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->count < 1 || p->count > BRAID_MAX_CONCAT)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: count %d is outside 1..%d", fn, p->count,
                BRAID_MAX_CONCAT);
  if (p->outer <= 0 || p->out_inner <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: outer %d, out_inner %d must be positive", fn,
                p->outer, p->out_inner);
  if (inputs == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: inputs is NULL", fn);
  int64_t sum = 0;
  for (int i = 0; i < p->count; i++) {
    if (p->inner[i] < 0)
      return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: inner[%d] = %d is negative", fn, i,
                  p->inner[i]);
    if (p->inner[i] > 0 && inputs[i] == 0)
      return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: inputs[%d] address is 0", fn, i);
    sum += p->inner[i];
  }
  if (sum != p->out_inner)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: the inner sizes add up to %lld, not out_inner %d",
                fn, (long long)sum, p->out_inner);
  if ((st = need(fn, "y", y))) return st;

  /* 16-byte units when every size and address allows it (and rows stay aligned). */
  bool vec = (y & 15) == 0 && (p->outer == 1 || p->out_inner % 4 == 0);
  for (int i = 0; i < p->count && vec; i++)
    if (p->inner[i] > 0 && (p->inner[i] % 4 != 0 || (inputs[i] & 15) != 0)) vec = false;
  const int64_t unit = vec ? 4 : 1;
  ConcatArgs a;
  memset(&a, 0, sizeof a);
  int n = 0;
  int64_t col = 0, widest = 0;
  for (int i = 0; i < p->count; i++) {
    if (p->inner[i] > 0) {
      a.src[n] = reinterpret_cast<const void*>((uintptr_t)inputs[i]);
      a.inner[n] = p->inner[i] / unit;
      a.col[n] = col / unit;
      if (a.inner[n] > widest) widest = a.inner[n];
      n++;
    }
    col += p->inner[i];
  }
  if (n == 0) return BRAID_OK;
  a.y = reinterpret_cast<void*>((uintptr_t)y);
  a.outer = p->outer;
  a.out_inner = p->out_inner / unit;
  /* Blocks per input: enough for the largest, capped so the whole grid stays a few waves. */
  int64_t bx = (a.outer * widest + THREADS - 1) / THREADS;
  const int64_t cap = ((int64_t)s->sms * 16 + n - 1) / n;
  if (bx > cap) bx = cap;
  if (bx < 1) bx = 1;
  const dim3 grid((unsigned)bx, (unsigned)n);
  if (vec)
    concat_kernel<uint4><<<grid, THREADS, 0, s->s>>>(a);
  else
    concat_kernel<elem><<<grid, THREADS, 0, s->s>>>(a);
  LAUNCH_CHECK(fn, "concat_kernel");
  return BRAID_OK;
}

int32_t braid_strided_copy(uint64_t ctx, uint64_t stream, const braid_strided_copy_params* p,
                           uint64_t x, uint64_t y) {
  static const char fn[] = "braid_strided_copy";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  int64_t total = 0;
  if ((st = check_shape(fn, p->rank, p->shape, &total))) return st;
  /* The lowest element read must not lie before x (strides may be negative). */
  int64_t lowest = p->offset;
  for (int d = 0; d < p->rank; d++)
    if (p->strides[d] < 0) lowest += (int64_t)(p->shape[d] - 1) * p->strides[d];
  if (lowest < 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: offset %d and strides reach element %lld, before x", fn, p->offset,
                (long long)lowest);
  if ((st = need(fn, "x", x)) || (st = need(fn, "y", y))) return st;
  /* Drop size-1 dims and merge dims that are contiguous in x. */
  StridedArgs a;
  memset(&a, 0, sizeof a);
  int r = 0;
  for (int d = 0; d < p->rank; d++) {
    if (p->shape[d] == 1) continue;
    if (r > 0 && a.strides[r - 1] == (int64_t)p->strides[d] * p->shape[d]) {
      a.shape[r - 1] *= p->shape[d];
      a.strides[r - 1] = p->strides[d];
      continue;
    }
    a.shape[r] = p->shape[d];
    a.strides[r] = p->strides[d];
    r++;
  }
  if (r == 0) {
    a.shape[0] = 1;
    a.strides[0] = 0;
    r = 1;
  }
  a.x = reinterpret_cast<const elem*>((uintptr_t)x) + p->offset;
  a.y = reinterpret_cast<elem*>((uintptr_t)y);
  a.total = total;
  a.rank = r;
  if (r == 1 && a.strides[0] == 1) {
    CUDA_TRY(fn, cudaMemcpyAsync(a.y, a.x, (size_t)total * sizeof(elem), cudaMemcpyDeviceToDevice,
                                 s->s));
    return BRAID_OK;
  }
  strided_copy_kernel<<<grid_for(s->sms, total), THREADS, 0, s->s>>>(a);
  LAUNCH_CHECK(fn, "strided_copy_kernel");
  return BRAID_OK;
}

int32_t braid_gather(uint64_t ctx, uint64_t stream, const braid_gather_params* p, uint64_t data,
                     uint64_t indices, uint64_t y) {
  static const char fn[] = "braid_gather";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (p == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->outer <= 0 || p->axis <= 0 || p->inner <= 0 || p->count <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: outer %d, axis %d, inner %d, count %d must be positive", fn, p->outer,
                p->axis, p->inner, p->count);
  if ((st = need(fn, "data", data)) || (st = need(fn, "indices", indices)) ||
      (st = need(fn, "y", y)))
    return st;
  GatherArgs a;
  a.data = reinterpret_cast<const elem*>((uintptr_t)data);
  a.idx = reinterpret_cast<const int32_t*>((uintptr_t)indices);
  a.y = reinterpret_cast<elem*>((uintptr_t)y);
  a.outer = p->outer;
  a.axis = p->axis;
  a.inner = p->inner;
  a.count = p->count;
  a.err = c->err_dev;
  gather_kernel<<<grid_for(s->sms, a.outer * a.count * a.inner), THREADS, 0, s->s>>>(a);
  LAUNCH_CHECK(fn, "gather_kernel");
  return BRAID_OK;
}

}  // extern "C"
