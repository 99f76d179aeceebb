/*
 * shape_ops.c — data movement of 4-byte elements: braid_concat, braid_strided_copy and
 * braid_gather.
 */
#include "internal.h"

#include <string.h>

#include <omp.h>

#define PAR_MIN 32768 /* elements below which an operator runs on one thread */

typedef uint32_t elem; /* any 4-byte element */

/* ---------------------------------------------------------------- concat */

static int32_t run_concat(const braid_op* op) {
  const braid_concat_params* p = &op->p.concat;
  elem* y = (elem*)(uintptr_t)op->addr[0];
  const int64_t outer = p->outer, count = p->count, out_inner = p->out_inner;
  int64_t col[BRAID_MAX_CONCAT];
  int64_t acc = 0;
  for (int64_t i = 0; i < count; i++) {
    col[i] = acc;
    acc += p->inner[i];
  }
  const uint64_t* inputs = op->list;
#pragma omp parallel for collapse(2) schedule(static) if (outer * out_inner > PAR_MIN)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < count; i++) {
      const int64_t n = p->inner[i];
      if (n == 0) continue;
      const elem* src = (const elem*)(uintptr_t)inputs[i] + o * n;
      memcpy(y + o * out_inner + col[i], src, (size_t)n * sizeof(elem));
    }
  return BRAID_OK;
}

int32_t braid_concat(uint64_t ctx, uint64_t stream, const braid_concat_params* p,
                     const uint64_t* inputs, uint64_t y) {
  static const char fn[] = "braid_concat";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->count < 1 || p->count > BRAID_MAX_CONCAT)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: count %d is outside 1..%d", fn, p->count,
                       BRAID_MAX_CONCAT);
  if (p->outer <= 0 || p->out_inner <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: outer %d, out_inner %d must be positive",
                       fn, p->outer, p->out_inner);
  if (inputs == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: inputs is NULL", fn);
  int64_t sum = 0;
  for (int i = 0; i < p->count; i++) {
    if (p->inner[i] < 0)
      return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: inner[%d] = %d is negative", fn, i,
                         p->inner[i]);
    if (p->inner[i] > 0 && inputs[i] == 0)
      return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: inputs[%d] address is 0", fn, i);
    sum += p->inner[i];
  }
  if (sum != p->out_inner)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: the inner sizes add up to %lld, not out_inner %d", fn, (long long)sum,
                       p->out_inner);
  if ((st = braid__need(fn, "y", y))) return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_concat;
  op.name = fn;
  op.p.concat = *p;
  op.addr[0] = y;
  op.list = inputs;
  op.list_len = p->count;
  return braid__submit(c, &op);
}

/* ---------------------------------------------------------------- strided copy */

static int32_t run_strided_copy(const braid_op* op) {
  const braid_strided_copy_params* p = &op->p.strided_copy;
  const elem* x = (const elem*)(uintptr_t)op->addr[0] + p->offset;
  elem* y = (elem*)(uintptr_t)op->addr[1];
  /* Drop size-1 dims and merge dims that are contiguous in x. */
  int64_t shape[BRAID_MAX_RANK], st[BRAID_MAX_RANK];
  int r = 0;
  for (int d = 0; d < p->rank; d++) {
    if (p->shape[d] == 1) continue;
    if (r > 0 && st[r - 1] == (int64_t)p->strides[d] * p->shape[d]) {
      shape[r - 1] *= p->shape[d];
      st[r - 1] = p->strides[d];
      continue;
    }
    shape[r] = p->shape[d];
    st[r] = p->strides[d];
    r++;
  }
  if (r == 0) {
    shape[0] = 1;
    st[0] = 0;
    r = 1;
  }
  const int64_t inner = shape[r - 1], si = st[r - 1];
  int64_t rows = 1;
  for (int d = 0; d < r - 1; d++) rows *= shape[d];
  const int64_t total = rows * inner;

  /* A 2-D transpose-like copy (inner stride large, the row dim contiguous in x): go by tiles so
   * that both sides stay in cache. */
  if (r >= 2 && si != 1 && st[r - 2] == 1 && inner >= 8 && shape[r - 2] >= 8) {
    const int64_t m = shape[r - 2]; /* rows of one 2-D slice */
    int64_t slices = rows / m;
    const int64_t T = 32;
    const int64_t tm = (m + T - 1) / T, tn = (inner + T - 1) / T;
#pragma omp parallel for collapse(3) schedule(static) if (total > PAR_MIN)
    for (int64_t sl = 0; sl < slices; sl++)
      for (int64_t bi = 0; bi < tm; bi++)
        for (int64_t bj = 0; bj < tn; bj++) {
          int64_t rest = sl, off = 0;
          for (int d = r - 3; d >= 0; d--) {
            int64_t i = rest % shape[d];
            rest /= shape[d];
            off += i * st[d];
          }
          const elem* xs = x + off;
          elem* ys = y + sl * m * inner;
          const int64_t i1 = (bi + 1) * T < m ? (bi + 1) * T : m;
          const int64_t j1 = (bj + 1) * T < inner ? (bj + 1) * T : inner;
          for (int64_t i = bi * T; i < i1; i++)
            for (int64_t j = bj * T; j < j1; j++) ys[i * inner + j] = xs[i + j * si];
        }
    return BRAID_OK;
  }

#pragma omp parallel for schedule(static) if (total > PAR_MIN)
  for (int64_t row = 0; row < rows; row++) {
    int64_t rest = row, off = 0;
    for (int d = r - 2; d >= 0; d--) {
      int64_t i = rest % shape[d];
      rest /= shape[d];
      off += i * st[d];
    }
    const elem* xr = x + off;
    elem* yr = y + row * inner;
    if (si == 1)
      memcpy(yr, xr, (size_t)inner * sizeof(elem));
    else
      for (int64_t j = 0; j < inner; j++) yr[j] = xr[j * si];
  }
  return BRAID_OK;
}

int32_t braid_strided_copy(uint64_t ctx, uint64_t stream, const braid_strided_copy_params* p,
                           uint64_t x, uint64_t y) {
  static const char fn[] = "braid_strided_copy";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if ((st = braid__check_shape(fn, p->rank, p->shape))) return st;
  /* The lowest element read must not lie before x (strides may be negative). */
  int64_t lowest = p->offset;
  for (int d = 0; d < p->rank; d++)
    if (p->strides[d] < 0) lowest += (int64_t)(p->shape[d] - 1) * p->strides[d];
  if (lowest < 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: offset %d and strides reach element %lld, before x", fn, p->offset,
                       (long long)lowest);
  if ((st = braid__need(fn, "x", x)) || (st = braid__need(fn, "y", y))) return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_strided_copy;
  op.name = fn;
  op.p.strided_copy = *p;
  op.addr[0] = x;
  op.addr[1] = y;
  return braid__submit(c, &op);
}

/* ---------------------------------------------------------------- gather */

static int32_t run_gather(const braid_op* op) {
  const braid_gather_params* p = &op->p.gather;
  const elem* data = (const elem*)(uintptr_t)op->addr[0];
  const int32_t* idx = (const int32_t*)(uintptr_t)op->addr[1];
  elem* y = (elem*)(uintptr_t)op->addr[2];
  const int64_t outer = p->outer, axis = p->axis, inner = p->inner, count = p->count;
  for (int64_t t = 0; t < count; t++) {
    int64_t i = idx[t];
    if (i < -axis || i >= axis)
      return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                         "%s: index %lld (at position %lld) is out of range for axis size %lld",
                         op->name, (long long)i, (long long)t, (long long)axis);
  }
#pragma omp parallel for collapse(2) schedule(static) if (outer * count * inner > PAR_MIN)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t t = 0; t < count; t++) {
      int64_t i = idx[t];
      if (i < 0) i += axis;
      const elem* src = data + (o * axis + i) * inner;
      elem* dst = y + (o * count + t) * inner;
      if (inner == 1)
        dst[0] = src[0];
      else
        memcpy(dst, src, (size_t)inner * sizeof(elem));
    }
  return BRAID_OK;
}

int32_t braid_gather(uint64_t ctx, uint64_t stream, const braid_gather_params* p, uint64_t data,
                     uint64_t indices, uint64_t y) {
  static const char fn[] = "braid_gather";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->outer <= 0 || p->axis <= 0 || p->inner <= 0 || p->count <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: outer %d, axis %d, inner %d, count %d must be positive", fn, p->outer,
                       p->axis, p->inner, p->count);
  if ((st = braid__need(fn, "data", data)) || (st = braid__need(fn, "indices", indices)) ||
      (st = braid__need(fn, "y", y)))
    return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_gather;
  op.name = fn;
  op.p.gather = *p;
  op.addr[0] = data;
  op.addr[1] = indices;
  op.addr[2] = y;
  return braid__submit(c, &op);
}
