/*
 * conv.c — braid_conv2d: NCHW convolution with groups, stride, dilation and padding, plus bias,
 * residual and a fused activation.
 *
 * Each (image, group) is one SGEMM: W_g [k/g, c/g*kh*kw] · im2col(x_g) [c/g*kh*kw, oh*ow]. The
 * im2col matrix is never materialised: the SGEMM packs it straight from the image (a 1x1,
 * stride-1, unpadded conv reads x as a plain matrix). Convolutions with one input channel per
 * group (depthwise) use a direct loop instead.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

/* Direct convolution for one input channel per group: output channel o reads input channel
 * o / (k / groups). */
static int32_t conv_depthwise(const braid_conv2d_params* p, const float* x, const float* w,
                              const float* bias, const float* res, float* y) {
  const int64_t n = p->n, c = p->c, h = p->h, wd = p->w, k = p->k, oh = p->oh, ow = p->ow;
  const int64_t kh = p->kh, kw = p->kw, sh = p->stride_h, sw = p->stride_w;
  const int64_t pt = p->pad_top, pl = p->pad_left, dh = p->dilation_h, dw = p->dilation_w;
  const int64_t kpg = k / p->groups;
  const int64_t planes = n * k;
  /* For each kx, the range of ox whose input column lies inside [0, w). */
  int64_t* lo = malloc(sizeof(int64_t) * 2 * (size_t)kw);
  int64_t* hi = lo ? lo + kw : NULL;
  if (lo == NULL) return BRAID_ERR_OUT_OF_MEMORY;
  for (int64_t kx = 0; kx < kw; kx++) {
    int64_t off = kx * dw - pl; /* ix = ox*sw + off */
    int64_t a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t b = off >= wd ? 0 : (wd - 1 - off) / sw + 1;
    if (a > ow) a = ow;
    if (b > ow) b = ow;
    if (b < a) b = a;
    lo[kx] = a;
    hi[kx] = b;
  }
#pragma omp parallel for schedule(static) if (planes * oh * ow * kh * kw > 32768)
  for (int64_t pl_i = 0; pl_i < planes; pl_i++) {
    const int64_t img = pl_i / k, o = pl_i % k;
    const float* xp = x + (img * c + o / kpg) * h * wd;
    const float* wp = w + o * kh * kw;
    float* yp = y + pl_i * oh * ow;
    const float b0 = bias ? bias[o] : 0.0f;
    for (int64_t oy = 0; oy < oh; oy++) {
      float* restrict yr = yp + oy * ow;
      for (int64_t ox = 0; ox < ow; ox++) yr[ox] = 0.0f;
      for (int64_t ky = 0; ky < kh; ky++) {
        int64_t iy = oy * sh - pt + ky * dh;
        if (iy < 0 || iy >= h) continue;
        const float* xr = xp + iy * wd;
        for (int64_t kx = 0; kx < kw; kx++) {
          const float wv = wp[ky * kw + kx];
          const int64_t off = kx * dw - pl;
          if (sw == 1) {
            const float* restrict xs = xr + off;
            for (int64_t ox = lo[kx]; ox < hi[kx]; ox++) yr[ox] += wv * xs[ox];
          } else {
            for (int64_t ox = lo[kx]; ox < hi[kx]; ox++) yr[ox] += wv * xr[ox * sw + off];
          }
        }
      }
      for (int64_t ox = 0; ox < ow; ox++) yr[ox] += b0;
      if (res) {
        const float* rr = res + pl_i * oh * ow + oy * ow;
        for (int64_t ox = 0; ox < ow; ox++) yr[ox] += rr[ox];
      }
      if (p->activation != BRAID_ACT_NONE)
        braid__activate(yr, (size_t)ow, p->activation, p->act_min, p->act_max);
    }
  }
  free(lo);
  return BRAID_OK;
}

static int32_t run_conv2d(const braid_op* op) {
  const braid_conv2d_params* p = &op->p.conv2d;
  const float* x = BRAID_CPTR(op->addr[0]);
  const float* w = BRAID_CPTR(op->addr[1]);
  const float* bias = op->addr[2] ? BRAID_CPTR(op->addr[2]) : NULL;
  const float* res = op->addr[3] ? BRAID_CPTR(op->addr[3]) : NULL;
  float* y = BRAID_PTR(op->addr[4]);
  const int64_t g = p->groups, cpg = p->c / g, kpg = p->k / g;
  const int64_t hw = (int64_t)p->h * p->w, ohw = (int64_t)p->oh * p->ow;
  const int64_t kdim = cpg * p->kh * p->kw;

  if (cpg == 1 && g > 1) {
    if (conv_depthwise(p, x, w, bias, res, y) != BRAID_OK)
      return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", op->name);
    return BRAID_OK;
  }

  const int pointwise = p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                        p->pad_top == 0 && p->pad_left == 0 && p->oh == p->h && p->ow == p->w;
  for (int64_t img = 0; img < p->n; img++) {
    for (int64_t gi = 0; gi < g; gi++) {
      braid_bsrc b;
      memset(&b, 0, sizeof b);
      b.b = x + (img * p->c + gi * cpg) * hw;
      if (pointwise) {
        b.rs = hw;
        b.cs = 1;
      } else {
        b.conv = 1;
        b.h = p->h;
        b.w = p->w;
        b.kh = p->kh;
        b.kw = p->kw;
        b.ow = p->ow;
        b.stride_h = p->stride_h;
        b.stride_w = p->stride_w;
        b.pad_top = p->pad_top;
        b.pad_left = p->pad_left;
        b.dil_h = p->dilation_h;
        b.dil_w = p->dilation_w;
      }
      const int64_t yoff = (img * p->k + gi * kpg) * ohw;
      braid_epilogue ep;
      memset(&ep, 0, sizeof ep);
      ep.row_bias = bias ? bias + gi * kpg : NULL;
      ep.residual = res ? res + yoff : NULL;
      ep.ldr = ohw;
      ep.act = p->activation;
      ep.act_min = p->act_min;
      ep.act_max = p->act_max;
      int need_ep = bias || res || p->activation != BRAID_ACT_NONE;
      int32_t st = braid__sgemm(kpg, ohw, kdim, 1.0f, w + gi * kpg * kdim, kdim, 1, &b, y + yoff,
                                ohw, need_ep ? &ep : NULL, 0);
      if (st) return braid__fail(st, "%s: out of memory for packing buffers", op->name);
    }
  }
  return BRAID_OK;
}

/* Validates a conv2d parameter record and its tensor addresses. */
static int32_t check_conv2d(const char* fn, const braid_conv2d_params* p, uint64_t x, uint64_t w,
                            uint64_t y) {
  int32_t st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->n <= 0 || p->c <= 0 || p->h <= 0 || p->w <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: input n %d, c %d, h %d, w %d must be positive", fn, p->n, p->c, p->h,
                       p->w);
  if (p->k <= 0 || p->oh <= 0 || p->ow <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: output k %d, oh %d, ow %d must be positive",
                       fn, p->k, p->oh, p->ow);
  if (p->kh <= 0 || p->kw <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: kernel %dx%d must be positive", fn, p->kh,
                       p->kw);
  if (p->stride_h <= 0 || p->stride_w <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: stride %dx%d must be positive", fn,
                       p->stride_h, p->stride_w);
  if (p->dilation_h <= 0 || p->dilation_w <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: dilation %dx%d must be positive", fn,
                       p->dilation_h, p->dilation_w);
  if (p->pad_top < 0 || p->pad_left < 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: padding top %d, left %d is negative", fn,
                       p->pad_top, p->pad_left);
  if (p->groups <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: groups %d must be positive", fn, p->groups);
  if (p->c % p->groups != 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: groups %d does not divide c %d", fn,
                       p->groups, p->c);
  if (p->k % p->groups != 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: groups %d does not divide k %d", fn,
                       p->groups, p->k);
  /* oh, ow imply the bottom/right padding: oh = floor((h + pad_top + pad_bottom - ext_h) /
   * stride_h) + 1. Accept pad_bottom from 0 (less the rows a stride skips anyway) up to
   * max(pad_top, ext_h) + stride_h - 1, which covers symmetric, SAME_UPPER and ONNX-style
   * asymmetric padding and catches a wrongly computed output size. */
  {
    const int64_t dims[2][6] = {
        {p->h, p->kh, p->stride_h, p->pad_top, p->dilation_h, p->oh},
        {p->w, p->kw, p->stride_w, p->pad_left, p->dilation_w, p->ow},
    };
    static const char* const names[2] = {"oh", "ow"};
    for (int d = 0; d < 2; d++) {
      const int64_t in = dims[d][0], kk = dims[d][1], s = dims[d][2], pad = dims[d][3];
      const int64_t dil = dims[d][4], out = dims[d][5];
      const int64_t ext = dil * (kk - 1) + 1;
      const int64_t pad_end = (out - 1) * s + ext - in - pad; /* implied */
      const int64_t pad_end_max = (pad > ext ? pad : ext) + s - 1;
      if (pad_end < -(s - 1) || pad_end > pad_end_max)
        return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                           "%s: %s %lld is inconsistent with input %lld, kernel %lld, stride "
                           "%lld, padding %lld, dilation %lld (implied end padding %lld)",
                           fn, names[d], (long long)out, (long long)in, (long long)kk, (long long)s,
                           (long long)pad, (long long)dil, (long long)pad_end);
    }
  }
  if ((st = braid__check_activation(fn, p->activation, p->act_min, p->act_max))) return st;
  if ((st = braid__need(fn, "x", x)) || (st = braid__need(fn, "w", w)) ||
      (st = braid__need(fn, "y", y)))
    return st;
  if (p->algorithm < -1 || p->algorithm > 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: algorithm %d is not one of this backend's (-1 or 0)", fn,
                       p->algorithm);
  return BRAID_OK;
}

int32_t braid_conv2d(uint64_t ctx, uint64_t stream, const braid_conv2d_params* p, uint64_t x,
                     uint64_t w, uint64_t bias, uint64_t residual, uint64_t y,
                     uint64_t workspace) {
  static const char fn[] = "braid_conv2d";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if ((st = check_conv2d(fn, p, x, w, y))) return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_conv2d;
  op.name = fn;
  op.p.conv2d = *p;
  op.addr[0] = x;
  op.addr[1] = w;
  op.addr[2] = bias;
  op.addr[3] = residual;
  op.addr[4] = y;
  return braid__submit(c, &op);
}

int32_t braid_conv2d_tune(uint64_t ctx, uint64_t stream, const braid_conv2d_params* p,
                          uint64_t x, uint64_t w, uint64_t bias, uint64_t residual, uint64_t y,
                          uint64_t workspace, int32_t* out, float* out_ms) {
  static const char fn[] = "braid_conv2d_tune";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (out == NULL || out_ms == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out or out_ms is NULL", fn);
  if (braid__capturing(c))
    return braid__fail(BRAID_ERR_CAPTURE, "%s: illegal while the context is capturing", fn);
  if ((st = check_conv2d(fn, p, x, w, y))) return st;
  /* One algorithm: time one run of it. */
  braid_conv2d_params q = *p;
  q.algorithm = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  st = braid_conv2d(ctx, stream, &q, x, w, bias, residual, y, workspace);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (st) return st;
  out[0] = 0;
  out[1] = 0;
  *out_ms = (float)((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6);
  return BRAID_OK;
}
