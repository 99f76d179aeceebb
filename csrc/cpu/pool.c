/*
 * pool.c — braid_pool2d (max and average, PyTorch semantics) and braid_global_avgpool.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include <omp.h>

#define POOL_CHUNK 256 /* output columns accumulated at once */

static int32_t run_pool2d(const braid_op* op) {
  const braid_pool2d_params* p = &op->p.pool2d;
  const float* x = BRAID_CPTR(op->addr[0]);
  float* y = BRAID_PTR(op->addr[1]);
  const int64_t h = p->h, w = p->w, oh = p->oh, ow = p->ow, kh = p->kh, kw = p->kw;
  const int64_t sh = p->stride_h, sw = p->stride_w, pt = p->pad_top, pl = p->pad_left;
  const int64_t pb = p->pad_bottom, pr = p->pad_right;
  const int64_t planes = (int64_t)p->n * p->c;
  const int is_max = p->kind == BRAID_POOL_MAX, include_pad = p->count_include_pad != 0;

  /* Per kx, the output columns whose input column lies inside [0, w); and, for average
   * pooling, the column part of each divisor (the divisor is a row part times a column part). */
  int64_t* lo = malloc(sizeof(int64_t) * (size_t)(2 * kw + ow));
  if (lo == NULL) return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", op->name);
  int64_t* hi = lo + kw;
  int64_t* colcount = hi + kw;
  for (int64_t kx = 0; kx < kw; kx++) {
    const int64_t off = kx - pl; /* ix = ox*sw + off */
    int64_t a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t b = off >= w ? 0 : (w - 1 - off) / sw + 1;
    if (a > ow) a = ow;
    if (b > ow) b = ow;
    if (b < a) b = a;
    lo[kx] = a;
    hi[kx] = b;
  }
  for (int64_t ox = 0; ox < ow; ox++) {
    const int64_t xs = ox * sw - pl, xe = xs + kw;
    if (include_pad) {
      colcount[ox] = (xe < w + pr ? xe : w + pr) - xs;
    } else {
      colcount[ox] = (xe > w ? w : xe) - (xs < 0 ? 0 : xs);
    }
  }

#pragma omp parallel for collapse(2) schedule(static) if (planes * oh * ow * kh * kw > 32768)
  for (int64_t pi = 0; pi < planes; pi++) {
    for (int64_t oy = 0; oy < oh; oy++) {
      const float* xp = x + pi * h * w;
      float* yr = y + (pi * oh + oy) * ow;
      const int64_t ys = oy * sh - pt, ye = ys + kh;
      const int64_t y0 = ys < 0 ? 0 : ys, y1 = ye > h ? h : ye;
      int64_t rowcount;
      if (include_pad)
        rowcount = (ye < h + pb ? ye : h + pb) - ys;
      else
        rowcount = y1 - y0;
      for (int64_t c0 = 0; c0 < ow; c0 += POOL_CHUNK) {
        const int64_t c1 = c0 + POOL_CHUNK < ow ? c0 + POOL_CHUNK : ow;
        if (is_max) {
          float acc[POOL_CHUNK];
          for (int64_t ox = c0; ox < c1; ox++) acc[ox - c0] = -INFINITY;
          for (int64_t iy = y0; iy < y1; iy++) {
            const float* xr = xp + iy * w;
            for (int64_t kx = 0; kx < kw; kx++) {
              const int64_t a = lo[kx] > c0 ? lo[kx] : c0, b = hi[kx] < c1 ? hi[kx] : c1;
              const float* xs = xr + kx - pl;
              float* ac = acc - c0;
              if (sw == 1) {
                for (int64_t ox = a; ox < b; ox++) {
                  const float v = xs[ox], m = ac[ox];
                  ac[ox] = ((v > m) | (v != v)) ? v : m; /* NaN propagates, as in PyTorch */
                }
              } else {
                for (int64_t ox = a; ox < b; ox++) {
                  const float v = xs[ox * sw], m = ac[ox];
                  ac[ox] = ((v > m) | (v != v)) ? v : m;
                }
              }
            }
          }
          for (int64_t ox = c0; ox < c1; ox++) yr[ox] = acc[ox - c0];
        } else {
          double acc[POOL_CHUNK];
          for (int64_t ox = c0; ox < c1; ox++) acc[ox - c0] = 0.0;
          for (int64_t iy = y0; iy < y1; iy++) {
            const float* xr = xp + iy * w;
            for (int64_t kx = 0; kx < kw; kx++) {
              const int64_t a = lo[kx] > c0 ? lo[kx] : c0, b = hi[kx] < c1 ? hi[kx] : c1;
              const float* xs = xr + kx - pl;
              double* ac = acc - c0;
              if (sw == 1) {
                for (int64_t ox = a; ox < b; ox++) ac[ox] += xs[ox];
              } else {
                for (int64_t ox = a; ox < b; ox++) ac[ox] += xs[ox * sw];
              }
            }
          }
          for (int64_t ox = c0; ox < c1; ox++) {
            const int64_t count = rowcount * colcount[ox];
            yr[ox] = count > 0 ? (float)(acc[ox - c0] / (double)count) : 0.0f;
          }
        }
      }
    }
  }
  free(lo);
  return BRAID_OK;
}

int32_t braid_pool2d(uint64_t ctx, uint64_t stream, const braid_pool2d_params* p, uint64_t x,
                     uint64_t y) {
  static const char fn[] = "braid_pool2d";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->kind != BRAID_POOL_MAX && p->kind != BRAID_POOL_AVG)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: kind %d is not a braid_pool_kind", fn,
                       p->kind);
  if (p->n <= 0 || p->c <= 0 || p->h <= 0 || p->w <= 0 || p->oh <= 0 || p->ow <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: n %d, c %d, h %d, w %d, oh %d, ow %d must be positive", fn, p->n, p->c,
                       p->h, p->w, p->oh, p->ow);
  if (p->kh <= 0 || p->kw <= 0 || p->stride_h <= 0 || p->stride_w <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: kernel %dx%d and stride %dx%d must be positive", fn, p->kh, p->kw,
                       p->stride_h, p->stride_w);
  if (p->pad_top < 0 || p->pad_left < 0 || p->pad_bottom < 0 || p->pad_right < 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: padding %d,%d,%d,%d is negative", fn,
                       p->pad_top, p->pad_left, p->pad_bottom, p->pad_right);
  if (p->count_include_pad != 0 && p->count_include_pad != 1)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: count_include_pad %d is not 0 or 1", fn,
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
      const int64_t in = dims[d][0], k = dims[d][1], s = dims[d][2], pa = dims[d][3];
      const int64_t pe = dims[d][4], out = dims[d][5];
      const int64_t floor_out = in + pa + pe >= k ? (in + pa + pe - k) / s + 1 : 0;
      const int zeros_count = p->kind == BRAID_POOL_AVG && p->count_include_pad;
      const int64_t last_start = zeros_count && out == floor_out ? in + pe : in;
      if ((out - 1) * s - pa >= last_start || out < floor_out)
        return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                           "%s: %s %lld is inconsistent with input %lld, kernel %lld, stride "
                           "%lld, padding %lld+%lld",
                           fn, names[d], (long long)out, (long long)in, (long long)k, (long long)s,
                           (long long)pa, (long long)pe);
    }
  }
  if ((st = braid__need(fn, "x", x)) || (st = braid__need(fn, "y", y))) return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_pool2d;
  op.name = fn;
  op.p.pool2d = *p;
  op.addr[0] = x;
  op.addr[1] = y;
  return braid__submit(c, &op);
}

/* ---------------------------------------------------------------- global average pool */

static int32_t run_global_avgpool(const braid_op* op) {
  const braid_global_avgpool_params* p = &op->p.global_avgpool;
  const float* x = BRAID_CPTR(op->addr[0]);
  float* y = BRAID_PTR(op->addr[1]);
  const int64_t outer = p->outer, n = p->spatial;
#pragma omp parallel for schedule(static) if (outer * n > 32768)
  for (int64_t o = 0; o < outer; o++) {
    const float* xr = x + o * n;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      s0 += xr[i];
      s1 += xr[i + 1];
      s2 += xr[i + 2];
      s3 += xr[i + 3];
    }
    for (; i < n; i++) s0 += xr[i];
    y[o] = (float)(((s0 + s1) + (s2 + s3)) / (double)n);
  }
  return BRAID_OK;
}

int32_t braid_global_avgpool(uint64_t ctx, uint64_t stream, const braid_global_avgpool_params* p,
                             uint64_t x, uint64_t y) {
  static const char fn[] = "braid_global_avgpool";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->outer <= 0 || p->spatial <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: outer %d, spatial %d must be positive",
                       fn, p->outer, p->spatial);
  if ((st = braid__need(fn, "x", x)) || (st = braid__need(fn, "y", y))) return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_global_avgpool;
  op.name = fn;
  op.p.global_avgpool = *p;
  op.addr[0] = x;
  op.addr[1] = y;
  return braid__submit(c, &op);
}
