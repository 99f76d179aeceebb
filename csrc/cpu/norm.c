/*
 * norm.c — normalisations: braid_batchnorm (inference), braid_layernorm and braid_softmax.
 * Reductions accumulate in double.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include <omp.h>

#define PAR_MIN 32768 /* elements below which an operator runs on one thread */

/* ---------------------------------------------------------------- batchnorm */

static int32_t run_batchnorm(const braid_op* op) {
  const braid_batchnorm_params* p = &op->p.batchnorm;
  const float* x = BRAID_CPTR(op->addr[0]);
  const float* scale = BRAID_CPTR(op->addr[1]);
  const float* bias = BRAID_CPTR(op->addr[2]);
  const float* mean = BRAID_CPTR(op->addr[3]);
  const float* var = BRAID_CPTR(op->addr[4]);
  float* y = BRAID_PTR(op->addr[5]);
  const int64_t n = p->n, c = p->c, sp = p->spatial;
  const double eps = p->epsilon;
#pragma omp parallel for schedule(static) if (n * c * sp > PAR_MIN)
  for (int64_t pi = 0; pi < n * c; pi++) {
    const int64_t ch = pi % c;
    const float s = (float)((double)scale[ch] / sqrt((double)var[ch] + eps));
    const float m = mean[ch], b = bias[ch];
    const float* restrict xr = x + pi * sp;
    float* restrict yr = y + pi * sp;
    for (int64_t i = 0; i < sp; i++) yr[i] = (xr[i] - m) * s + b;
  }
  return BRAID_OK;
}

int32_t braid_batchnorm(uint64_t ctx, uint64_t stream, const braid_batchnorm_params* p,
                        uint64_t x, uint64_t scale, uint64_t bias, uint64_t mean, uint64_t var,
                        uint64_t y) {
  static const char fn[] = "braid_batchnorm";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->n <= 0 || p->c <= 0 || p->spatial <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: n %d, c %d, spatial %d must be positive",
                       fn, p->n, p->c, p->spatial);
  if (!(p->epsilon >= 0.0f) || isinf(p->epsilon))
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: epsilon %g must be finite and >= 0", fn,
                       (double)p->epsilon);
  if ((st = braid__need(fn, "x", x)) || (st = braid__need(fn, "scale", scale)) ||
      (st = braid__need(fn, "bias", bias)) || (st = braid__need(fn, "mean", mean)) ||
      (st = braid__need(fn, "var", var)) || (st = braid__need(fn, "y", y)))
    return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_batchnorm;
  op.name = fn;
  op.p.batchnorm = *p;
  op.addr[0] = x;
  op.addr[1] = scale;
  op.addr[2] = bias;
  op.addr[3] = mean;
  op.addr[4] = var;
  op.addr[5] = y;
  return braid__submit(c, &op);
}

/* ---------------------------------------------------------------- layernorm */

static int32_t run_layernorm(const braid_op* op) {
  const braid_layernorm_params* p = &op->p.layernorm;
  const float* x = BRAID_CPTR(op->addr[0]);
  const float* scale = BRAID_CPTR(op->addr[1]);
  const float* bias = BRAID_CPTR(op->addr[2]);
  float* y = BRAID_PTR(op->addr[3]);
  const int64_t rows = p->rows, n = p->cols;
  const double eps = p->epsilon;
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float* restrict xr = x + r * n;
    float* restrict yr = y + r * n;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      s0 += xr[i];
      s1 += xr[i + 1];
      s2 += xr[i + 2];
      s3 += xr[i + 3];
    }
    for (; i < n; i++) s0 += xr[i];
    const double mean = ((s0 + s1) + (s2 + s3)) / (double)n;
    s0 = s1 = s2 = s3 = 0;
    for (i = 0; i + 4 <= n; i += 4) {
      double d0 = xr[i] - mean, d1 = xr[i + 1] - mean, d2 = xr[i + 2] - mean, d3 = xr[i + 3] - mean;
      s0 += d0 * d0;
      s1 += d1 * d1;
      s2 += d2 * d2;
      s3 += d3 * d3;
    }
    for (; i < n; i++) {
      double d = xr[i] - mean;
      s0 += d * d;
    }
    const double var = ((s0 + s1) + (s2 + s3)) / (double)n;
    const double rstd = 1.0 / sqrt(var + eps);
    for (i = 0; i < n; i++) yr[i] = (float)((xr[i] - mean) * rstd * scale[i] + bias[i]);
  }
  return BRAID_OK;
}

int32_t braid_layernorm(uint64_t ctx, uint64_t stream, const braid_layernorm_params* p,
                        uint64_t x, uint64_t scale, uint64_t bias, uint64_t y) {
  static const char fn[] = "braid_layernorm";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->rows <= 0 || p->cols <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: rows %d, cols %d must be positive", fn,
                       p->rows, p->cols);
  if (!(p->epsilon >= 0.0f) || isinf(p->epsilon))
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: epsilon %g must be finite and >= 0", fn,
                       (double)p->epsilon);
  if ((st = braid__need(fn, "x", x)) || (st = braid__need(fn, "scale", scale)) ||
      (st = braid__need(fn, "bias", bias)) || (st = braid__need(fn, "y", y)))
    return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_layernorm;
  op.name = fn;
  op.p.layernorm = *p;
  op.addr[0] = x;
  op.addr[1] = scale;
  op.addr[2] = bias;
  op.addr[3] = y;
  return braid__submit(c, &op);
}

/* ---------------------------------------------------------------- softmax */

#define SM_BLOCK 64 /* inner positions handled together when inner > 1 */

static int32_t run_softmax(const braid_op* op) {
  const braid_softmax_params* p = &op->p.softmax;
  const float* x = BRAID_CPTR(op->addr[0]);
  float* y = BRAID_PTR(op->addr[1]);
  const int64_t outer = p->outer, axis = p->axis, inner = p->inner;
  const int64_t total = outer * axis * inner;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
      const float* xr = x + o * axis;
      float* yr = y + o * axis;
      float m = xr[0];
      for (int64_t a = 1; a < axis; a++) m = xr[a] > m ? xr[a] : m;
      double s = 0.0;
      for (int64_t a = 0; a < axis; a++) {
        float e = expf(xr[a] - m);
        yr[a] = e;
        s += e;
      }
      const double inv = 1.0 / s;
      for (int64_t a = 0; a < axis; a++) yr[a] = (float)(yr[a] * inv);
    }
    return BRAID_OK;
  }
  const int64_t nblocks = (inner + SM_BLOCK - 1) / SM_BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if (total > PAR_MIN)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t bl = 0; bl < nblocks; bl++) {
      const int64_t j0 = bl * SM_BLOCK;
      const int64_t nj = inner - j0 < SM_BLOCK ? inner - j0 : SM_BLOCK;
      const float* xb = x + o * axis * inner + j0;
      float* yb = y + o * axis * inner + j0;
      float m[SM_BLOCK];
      double s[SM_BLOCK];
      for (int64_t j = 0; j < nj; j++) {
        m[j] = xb[j];
        s[j] = 0.0;
      }
      for (int64_t a = 1; a < axis; a++)
        for (int64_t j = 0; j < nj; j++) {
          float v = xb[a * inner + j];
          m[j] = v > m[j] ? v : m[j];
        }
      for (int64_t a = 0; a < axis; a++)
        for (int64_t j = 0; j < nj; j++) {
          float e = expf(xb[a * inner + j] - m[j]);
          yb[a * inner + j] = e;
          s[j] += e;
        }
      for (int64_t j = 0; j < nj; j++) s[j] = 1.0 / s[j];
      for (int64_t a = 0; a < axis; a++)
        for (int64_t j = 0; j < nj; j++) yb[a * inner + j] = (float)(yb[a * inner + j] * s[j]);
    }
  return BRAID_OK;
}

int32_t braid_softmax(uint64_t ctx, uint64_t stream, const braid_softmax_params* p, uint64_t x,
                      uint64_t y) {
  static const char fn[] = "braid_softmax";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->outer <= 0 || p->axis <= 0 || p->inner <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: outer %d, axis %d, inner %d must be positive", fn, p->outer,
                       p->axis, p->inner);
  if ((st = braid__need(fn, "x", x)) || (st = braid__need(fn, "y", y))) return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_softmax;
  op.name = fn;
  op.p.softmax = *p;
  op.addr[0] = x;
  op.addr[1] = y;
  return braid__submit(c, &op);
}
