/*
 * elementwise.c — braid_unary (activations and copy) and braid_binary (broadcasting add, sub,
 * mul, div with a fused activation).
 */
#include "internal.h"

#include <string.h>

#include <omp.h>

#define PAR_MIN 32768 /* elements below which an operator runs on one thread */

/* ---------------------------------------------------------------- unary */

/* y[i] = act(x[i]) for n elements (x may equal y). */
static void act_map(const float* x, float* y, size_t n, int32_t act, float lo, float hi) {
  switch (act) {
    case BRAID_ACT_RELU:
      for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
      break;
    case BRAID_ACT_CLAMP:
      for (size_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
      }
      break;
    case BRAID_ACT_SIGMOID:
      for (size_t i = 0; i < n; i++) y[i] = braid__sigmoid(x[i]);
      break;
    case BRAID_ACT_TANH:
      for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
      break;
    case BRAID_ACT_GELU:
      for (size_t i = 0; i < n; i++)
        y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
      break;
    default:
      if (x != y) memmove(y, x, n * sizeof(float));
      break;
  }
}

static int32_t run_unary(const braid_op* op) {
  const braid_unary_params* p = &op->p.unary;
  const float* x = BRAID_CPTR(op->addr[0]);
  float* y = BRAID_PTR(op->addr[1]);
  const int64_t n = p->count;
  const int64_t chunk = 16384;
  const int64_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t t = 0; t < nchunks; t++) {
    int64_t a = t * chunk, b = a + chunk < n ? a + chunk : n;
    act_map(x + a, y + a, (size_t)(b - a), p->kind, p->act_min, p->act_max);
  }
  return BRAID_OK;
}

int32_t braid_unary(uint64_t ctx, uint64_t stream, const braid_unary_params* p, uint64_t x,
                    uint64_t y) {
  static const char fn[] = "braid_unary";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->count <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: count %d must be positive", fn, p->count);
  if (p->kind < BRAID_ACT_NONE || p->kind > BRAID_ACT_GELU)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: kind %d is not a braid_activation", fn,
                       p->kind);
  if ((st = braid__check_activation(fn, p->kind, p->act_min, p->act_max))) return st;
  if ((st = braid__need(fn, "x", x)) || (st = braid__need(fn, "y", y))) return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_unary;
  op.name = fn;
  op.p.unary = *p;
  op.addr[0] = x;
  op.addr[1] = y;
  return braid__submit(c, &op);
}

/* ---------------------------------------------------------------- binary */

/* One contiguous output row: y[j] = a[j*sa] op b[j*sb]. */
#define BIN_LOOP(EXPR)                                                        \
  do {                                                                        \
    if (sa == 1 && sb == 1) {                                                 \
      for (int64_t j = 0; j < n; j++) {                                       \
        const float u = ar[j], v = br[j];                                     \
        yr[j] = (EXPR);                                                       \
      }                                                                       \
    } else if (sa == 1 && sb == 0) {                                          \
      const float v = br[0];                                                  \
      for (int64_t j = 0; j < n; j++) {                                       \
        const float u = ar[j];                                                \
        yr[j] = (EXPR);                                                       \
      }                                                                       \
    } else if (sa == 0 && sb == 1) {                                          \
      const float u = ar[0];                                                  \
      for (int64_t j = 0; j < n; j++) {                                       \
        const float v = br[j];                                                \
        yr[j] = (EXPR);                                                       \
      }                                                                       \
    } else {                                                                  \
      for (int64_t j = 0; j < n; j++) {                                       \
        const float u = ar[j * sa], v = br[j * sb];                           \
        yr[j] = (EXPR);                                                       \
      }                                                                       \
    }                                                                         \
  } while (0)

static void binary_row(int32_t kind, const float* restrict ar, int64_t sa, const float* restrict br,
                       int64_t sb, float* restrict yr, int64_t n) {
  switch (kind) {
    case BRAID_BIN_ADD: BIN_LOOP(u + v); break;
    case BRAID_BIN_SUB: BIN_LOOP(u - v); break;
    case BRAID_BIN_MUL: BIN_LOOP(u * v); break;
    default: BIN_LOOP(u / v); break;
  }
}

static int32_t run_binary(const braid_op* op) {
  const braid_binary_params* p = &op->p.binary;
  const float* a = BRAID_CPTR(op->addr[0]);
  const float* b = BRAID_CPTR(op->addr[1]);
  float* y = BRAID_PTR(op->addr[2]);
  /* Simplify the iteration space: drop size-1 dims, merge dims contiguous in both a and b. */
  int64_t shape[BRAID_MAX_RANK], as[BRAID_MAX_RANK], bs[BRAID_MAX_RANK];
  int r = 0;
  for (int d = 0; d < p->rank; d++) {
    if (p->shape[d] == 1) continue;
    if (r > 0 && as[r - 1] == (int64_t)p->a_strides[d] * p->shape[d] &&
        bs[r - 1] == (int64_t)p->b_strides[d] * p->shape[d]) {
      shape[r - 1] *= p->shape[d];
      as[r - 1] = p->a_strides[d];
      bs[r - 1] = p->b_strides[d];
      continue;
    }
    shape[r] = p->shape[d];
    as[r] = p->a_strides[d];
    bs[r] = p->b_strides[d];
    r++;
  }
  if (r == 0) {
    shape[0] = 1;
    as[0] = bs[0] = 0;
    r = 1;
  }
  const int64_t inner = shape[r - 1], sa = as[r - 1], sb = bs[r - 1];
  int64_t rows = 1;
  for (int d = 0; d < r - 1; d++) rows *= shape[d];
  const int64_t total = rows * inner;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
  for (int64_t row = 0; row < rows; row++) {
    int64_t rest = row, ao = 0, bo = 0;
    for (int d = r - 2; d >= 0; d--) {
      int64_t i = rest % shape[d];
      rest /= shape[d];
      ao += i * as[d];
      bo += i * bs[d];
    }
    float* yr = y + row * inner;
    binary_row(p->kind, a + ao, sa, b + bo, sb, yr, inner);
    if (p->activation != BRAID_ACT_NONE)
      braid__activate(yr, (size_t)inner, p->activation, p->act_min, p->act_max);
  }
  return BRAID_OK;
}

int32_t braid_binary(uint64_t ctx, uint64_t stream, const braid_binary_params* p, uint64_t a,
                     uint64_t b, uint64_t y) {
  static const char fn[] = "braid_binary";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->kind < BRAID_BIN_ADD || p->kind > BRAID_BIN_DIV)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: kind %d is not a braid_binary_kind", fn,
                       p->kind);
  if ((st = braid__check_shape(fn, p->rank, p->shape))) return st;
  if ((st = braid__check_activation(fn, p->activation, p->act_min, p->act_max))) return st;
  if ((st = braid__need(fn, "a", a)) || (st = braid__need(fn, "b", b)) ||
      (st = braid__need(fn, "y", y)))
    return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_binary;
  op.name = fn;
  op.p.binary = *p;
  op.addr[0] = a;
  op.addr[1] = b;
  op.addr[2] = y;
  return braid__submit(c, &op);
}
