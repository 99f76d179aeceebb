/*
 * internal.h — shared by the files of the CPU backend (libbraid_cpu.so); not part of the ABI.
 *
 * Execution model: a device address is a host pointer, and work runs synchronously on the
 * calling thread when it is issued (OpenMP inside the operators). Every public operator
 * validates its arguments, packs them into a braid_op record and hands it to braid__submit(),
 * which either runs it at once or, while its context is capturing, appends a deep copy of the
 * record to the capture; braid_graph_launch() replays the records in order.
 */
#ifndef BRAID_CPU_INTERNAL_H
#define BRAID_CPU_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* posix_memalign, clock_gettime, sysconf(_SC_AVPHYS_PAGES), pthreads */
#endif

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "braid.h"

/* Internal functions are not exported from the shared library. */
#define BRAID_INTERNAL __attribute__((visibility("hidden")))

/* ---------------------------------------------------------------- errors */

/* Formats the calling thread's error message and returns `status`. */
BRAID_INTERNAL int32_t braid__fail(int32_t status, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- handles */

#define BRAID_MAGIC_CONTEXT 0x42524358u /* "BRCX" */
#define BRAID_MAGIC_STREAM 0x42525354u  /* "BRST" */
#define BRAID_MAGIC_EVENT 0x42524556u   /* "BREV" */
#define BRAID_MAGIC_GRAPH 0x42524752u   /* "BRGR" */

typedef struct braid_context braid_context;
typedef struct braid_op braid_op;

/* Runs one operator record (validated when it was issued). */
typedef int32_t (*braid_run_fn)(const braid_op* op);

/* One issued operation: what braid__submit runs or a graph stores. */
struct braid_op {
  braid_run_fn run;
  const char* name; /* public function name, for messages */
  union {
    braid_conv2d_params conv2d;
    braid_batchnorm_params batchnorm;
    braid_unary_params unary;
    braid_binary_params binary;
    braid_pool2d_params pool2d;
    braid_global_avgpool_params global_avgpool;
    braid_concat_params concat;
    braid_strided_copy_params strided_copy;
    braid_gemm_params gemm;
    braid_matmul_params matmul;
    braid_softmax_params softmax;
    braid_layernorm_params layernorm;
    braid_gather_params gather;
    struct {
      void* dst;
      const void* src;
      uint64_t bytes;
    } copy;
  } p;
  uint64_t addr[6];      /* tensor addresses, meaning per operator */
  const uint64_t* list;  /* concat's input addresses (owned by the graph once captured) */
  int32_t list_len;
};

/* Resolves ctx and stream (0 = the context's default stream) for an operator or a copy. */
BRAID_INTERNAL int32_t braid__resolve(uint64_t ctx, uint64_t stream, const char* fn,
                                      braid_context** out);
/* True while the context is capturing. */
int braid__capturing(braid_context* c);

/* Runs the op now, or records a deep copy of it while the context captures. */
BRAID_INTERNAL int32_t braid__submit(braid_context* c, const braid_op* op);

/* ---------------------------------------------------------------- helpers */

#define BRAID_PTR(addr) ((float*)(uintptr_t)(addr))
#define BRAID_CPTR(addr) ((const float*)(uintptr_t)(addr))

/* Checks that a required tensor address is not 0. */
static inline int32_t braid__need(const char* fn, const char* what, uint64_t addr) {
  if (addr == 0) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: %s address is 0", fn, what);
  return BRAID_OK;
}

/* Validates an activation kind (and its clamp bounds). */
BRAID_INTERNAL int32_t braid__check_activation(const char* fn, int32_t act, float lo, float hi);

/* Validates a shape of rank 1..BRAID_MAX_RANK with positive extents and at most 2^40 elements. */
static inline int32_t braid__check_shape(const char* fn, int32_t rank, const int32_t* shape) {
  if (rank < 1 || rank > BRAID_MAX_RANK)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: rank %d is outside 1..%d", fn, rank,
                       BRAID_MAX_RANK);
  int64_t total = 1;
  for (int d = 0; d < rank; d++) {
    if (shape[d] <= 0)
      return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: shape[%d] = %d must be positive", fn, d,
                         shape[d]);
    total *= shape[d];
    if (total > ((int64_t)1 << 40))
      return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: shape has too many elements", fn);
  }
  return BRAID_OK;
}

/* Applies an activation in place to n contiguous floats. */
BRAID_INTERNAL void braid__activate(float* y, size_t n, int32_t act, float lo, float hi);

static inline float braid__sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

static inline float braid__act1(float v, int32_t act, float lo, float hi) {
  switch (act) {
    case BRAID_ACT_RELU: return v < 0.0f ? 0.0f : v;
    case BRAID_ACT_CLAMP: {
      float t = v < lo ? lo : v;
      return t > hi ? hi : t;
    }
    case BRAID_ACT_SIGMOID: return braid__sigmoid(v);
    case BRAID_ACT_TANH: return tanhf(v);
    case BRAID_ACT_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    default: return v;
  }
}

/* Aligned scratch memory for operators (64-byte aligned); NULL on failure. */
BRAID_INTERNAL void* braid__scratch(size_t bytes);

/* ---------------------------------------------------------------- SGEMM (gemm.c) */

/* Epilogue applied to C after the product: c = act(c + row_bias[i] + col_scale*col_bias[j]
 * + residual[i*ldr + j]); every pointer may be NULL. */
typedef struct braid_epilogue {
  const float* row_bias;
  const float* col_bias;
  float col_scale;
  const float* residual;
  ptrdiff_t ldr;
  int32_t act;
  float act_min, act_max;
} braid_epilogue;

/* Where the B operand [K, N] of a product comes from. */
typedef struct braid_bsrc {
  int32_t conv; /* 0: strided matrix; 1: implicit im2col of one image (and group) */
  const float* b;
  ptrdiff_t rs, cs; /* matrix: element (k, j) at b[k*rs + j*cs] */
  /* implicit im2col: b points at the group's first input channel; row k = (c, ky, kx), column
   * j = (oy, ox) */
  int32_t h, w, kh, kw, ow, stride_h, stride_w, pad_top, pad_left, dil_h, dil_w;
} braid_bsrc;

/* C[M, N] (row stride ldc) = alpha * A · B, then the epilogue (NULL: none).
 * A element (i, k) at a[i*rsa + k*csa]. `threads` caps the OpenMP team (1: serial). */
BRAID_INTERNAL int32_t braid__sgemm(int64_t M, int64_t N, int64_t K, float alpha,
                                    const float* a, ptrdiff_t rsa, ptrdiff_t csa,
                                    const braid_bsrc* b, float* c, ptrdiff_t ldc,
                                    const braid_epilogue* ep, int threads);

#endif /* BRAID_CPU_INTERNAL_H */
