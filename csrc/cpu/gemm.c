/*
 * gemm.c — the blocked, packed SGEMM shared by conv2d, gemm and matmul, and the braid_gemm and
 * braid_matmul operators.
 *
 * Layout follows the BLIS/Goto scheme: C is cut into NC-column blocks; for each KC slice of the
 * inner dimension, B[KC, NC] is packed into NR-column micro-panels and, for each MC-row block
 * of A, A[MC, KC] is packed (scaled by alpha) into MR-row micro-panels; an MR x NR register-tile
 * micro-kernel (AVX2/FMA when available) multiplies them. The micro-tiles of a block are split
 * among the OpenMP threads. B may be an implicit im2col view of a conv input, packed directly
 * from the image, so convolutions need no im2col buffer.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include <omp.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define BRAID_SIMD 1
#else
#define BRAID_SIMD 0
#endif

#define MR 6
#define NR 16
#define KC 256
#define MC_MAX 144 /* multiple of MR */
#define NC_MAX 2048 /* multiple of NR */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---------------------------------------------------------------- packing */

/* Packs rows [i0, i0+mr) x columns [k0, k0+kc) of A, scaled by alpha, into an MR-row panel. */
static void pack_a_panel(const float* a, ptrdiff_t rsa, ptrdiff_t csa, int64_t i0, int64_t mr,
                         int64_t k0, int64_t kc, float alpha, float* restrict dst) {
  if (csa == 1) {
    for (int64_t ii = 0; ii < mr; ii++) {
      const float* src = a + (i0 + ii) * rsa + k0;
      for (int64_t kk = 0; kk < kc; kk++) dst[kk * MR + ii] = alpha * src[kk];
    }
  } else {
    for (int64_t kk = 0; kk < kc; kk++)
      for (int64_t ii = 0; ii < mr; ii++)
        dst[kk * MR + ii] = alpha * a[(i0 + ii) * rsa + (k0 + kk) * csa];
  }
  for (int64_t ii = mr; ii < MR; ii++)
    for (int64_t kk = 0; kk < kc; kk++) dst[kk * MR + ii] = 0.0f;
}

/* Packs columns [pa, pb) (pa on a panel boundary relative to j0) of rows [k0, k0+kc) of a
 * strided matrix B into NR-column panels of the block starting at column j0. */
static void pack_b_matrix(const braid_bsrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t pa,
                          int64_t pb, float* restrict bp) {
  const float* b = s->b;
  ptrdiff_t rs = s->rs, cs = s->cs;
  for (int64_t p = pa; p < pb; p += NR) {
    int64_t nr = min64(NR, pb - p);
    float* dst = bp + ((p - j0) / NR) * kc * NR;
    if (cs == 1) {
      for (int64_t kk = 0; kk < kc; kk++) {
        const float* src = b + (k0 + kk) * rs + p;
        float* d = dst + kk * NR;
        if (nr == NR) {
          memcpy(d, src, NR * sizeof(float));
        } else {
          int64_t jj = 0;
          for (; jj < nr; jj++) d[jj] = src[jj];
          for (; jj < NR; jj++) d[jj] = 0.0f;
        }
      }
    } else {
      if (nr < NR)
        for (int64_t kk = 0; kk < kc; kk++)
          for (int64_t jj = nr; jj < NR; jj++) dst[kk * NR + jj] = 0.0f;
      for (int64_t jj = 0; jj < nr; jj++) {
        const float* src = b + (p + jj) * cs + k0 * rs;
        for (int64_t kk = 0; kk < kc; kk++) dst[kk * NR + jj] = src[kk * rs];
      }
    }
  }
}

/* Writes `len` values of an input row segment into the panels: x positions ix0 + t*sw,
 * zero outside [0, w). */
static inline void put_segment(const float* row, int64_t ix0, int64_t sw, int64_t w, int64_t len,
                               float* restrict d) {
  if (row == NULL) {
    for (int64_t t = 0; t < len; t++) d[t] = 0.0f;
    return;
  }
  int64_t lo = 0, hi = len;
  if (ix0 < 0) lo = min64(len, ceil_div(-ix0, sw));
  if (ix0 >= w)
    hi = 0;
  else
    hi = min64(len, (w - 1 - ix0) / sw + 1);
  if (hi < lo) hi = lo;
  int64_t t = 0;
  for (; t < lo; t++) d[t] = 0.0f;
  if (sw == 1) {
    const float* src = row + ix0;
    for (; t < hi; t++) d[t] = src[t];
  } else {
    for (; t < hi; t++) d[t] = row[ix0 + t * sw];
  }
  for (; t < len; t++) d[t] = 0.0f;
}

/* Packs columns [pa, pb) of rows [k0, k0+kc) of the implicit im2col matrix of one image: row
 * q = (c, ky, kx), column p = (oy, ox). */
static void pack_b_conv(const braid_bsrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t pa,
                        int64_t pb, float* restrict bp) {
  const int64_t h = s->h, w = s->w, kh = s->kh, kw = s->kw, ow = s->ow;
  const int64_t sh = s->stride_h, sw = s->stride_w, pt = s->pad_top, pl = s->pad_left;
  const int64_t dh = s->dil_h, dw = s->dil_w;
  const int64_t khw = kh * kw;
  for (int64_t kk = 0; kk < kc; kk++) {
    int64_t q = k0 + kk;
    int64_t c = q / khw, r = q % khw, ky = r / kw, kx = r % kw;
    const float* plane = s->b + c * h * w;
    int64_t oy = pa / ow, ox = pa % ow;
    int64_t p = pa;
    float* dst = bp + ((pa - j0) / NR) * kc * NR + kk * NR;
    int64_t jj = 0;
    while (p < pb) {
      int64_t iy = oy * sh - pt + ky * dh;
      const float* row = (iy >= 0 && iy < h) ? plane + iy * w : NULL;
      int64_t run = min64(ow - ox, pb - p);
      int64_t ix0 = ox * sw - pl + kx * dw;
      while (run > 0) {
        int64_t len = min64(run, NR - jj);
        put_segment(row, ix0, sw, w, len, dst + jj);
        jj += len;
        run -= len;
        p += len;
        ix0 += len * sw;
        if (jj == NR) {
          jj = 0;
          dst += kc * NR;
        }
      }
      ox = 0;
      oy++;
    }
    if (jj != 0)
      for (; jj < NR; jj++) dst[jj] = 0.0f;
  }
}

static void pack_b(const braid_bsrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t pa, int64_t pb,
                   float* bp) {
  if (pa >= pb) return;
  if (s->conv)
    pack_b_conv(s, k0, kc, j0, pa, pb, bp);
  else
    pack_b_matrix(s, k0, kc, j0, pa, pb, bp);
}

/* ---------------------------------------------------------------- micro-kernel */

/* tile[MR][NR] = A panel · B panel over kc. */
static void kernel_tile(int64_t kc, const float* restrict a, const float* restrict b,
                        float* restrict c, ptrdiff_t ldc, int accumulate) {
#if BRAID_SIMD
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 av;
    av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += MR;
    b += NR;
  }
#define BRAID_STORE_ROW(r, lo, hi)                                               \
  do {                                                                           \
    float* cr = c + (r) * ldc;                                                   \
    if (accumulate) {                                                            \
      _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), lo));              \
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), hi));      \
    } else {                                                                     \
      _mm256_storeu_ps(cr, lo);                                                  \
      _mm256_storeu_ps(cr + 8, hi);                                              \
    }                                                                            \
  } while (0)
  BRAID_STORE_ROW(0, c00, c01);
  BRAID_STORE_ROW(1, c10, c11);
  BRAID_STORE_ROW(2, c20, c21);
  BRAID_STORE_ROW(3, c30, c31);
  BRAID_STORE_ROW(4, c40, c41);
  BRAID_STORE_ROW(5, c50, c51);
#undef BRAID_STORE_ROW
#else
  float t[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) t[i][j] = 0.0f;
  for (int64_t k = 0; k < kc; k++) {
    for (int i = 0; i < MR; i++) {
      float av = a[i];
      for (int j = 0; j < NR; j++) t[i][j] += av * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < MR; i++) {
    float* cr = c + i * ldc;
    if (accumulate)
      for (int j = 0; j < NR; j++) cr[j] += t[i][j];
    else
      for (int j = 0; j < NR; j++) cr[j] = t[i][j];
  }
#endif
}

/* Multiplies one micro-tile of mr x nr valid entries into C. */
static void micro_tile(int64_t kc, const float* a, const float* b, float* c, ptrdiff_t ldc,
                       int64_t mr, int64_t nr, int accumulate) {
  if (mr == MR && nr == NR) {
    kernel_tile(kc, a, b, c, ldc, accumulate);
    return;
  }
  float t[MR * NR] __attribute__((aligned(64)));
  kernel_tile(kc, a, b, t, NR, 0);
  for (int64_t i = 0; i < mr; i++) {
    float* cr = c + i * ldc;
    const float* tr = t + i * NR;
    if (accumulate)
      for (int64_t j = 0; j < nr; j++) cr[j] += tr[j];
    else
      for (int64_t j = 0; j < nr; j++) cr[j] = tr[j];
  }
}

/* Applies the epilogue to rows [i0, i0+mr) x columns [j0, j0+nr) of C. */
static void epilogue_tile(const braid_epilogue* ep, float* c, ptrdiff_t ldc, int64_t i0,
                          int64_t mr, int64_t j0, int64_t nr) {
  for (int64_t i = 0; i < mr; i++) {
    float* cr = c + (i0 + i) * ldc + j0;
    if (ep->row_bias) {
      float rb = ep->row_bias[i0 + i];
      for (int64_t j = 0; j < nr; j++) cr[j] += rb;
    }
    if (ep->col_bias) {
      const float* cb = ep->col_bias + j0;
      float s = ep->col_scale;
      for (int64_t j = 0; j < nr; j++) cr[j] += s * cb[j];
    }
    if (ep->residual) {
      const float* rr = ep->residual + (i0 + i) * ep->ldr + j0;
      for (int64_t j = 0; j < nr; j++) cr[j] += rr[j];
    }
    if (ep->act != BRAID_ACT_NONE)
      braid__activate(cr, (size_t)nr, ep->act, ep->act_min, ep->act_max);
  }
}

/* ---------------------------------------------------------------- matrix-vector path */

static float dot(const float* restrict x, const float* restrict y, int64_t n) {
#if BRAID_SIMD
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
  __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float r = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
            ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
  for (; i < n; i++) r += x[i] * y[i];
  return r;
#else
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int t = 0; t < 8; t++) s[t] += x[i + t] * y[i + t];
  float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
  for (; i < n; i++) r += x[i] * y[i];
  return r;
#endif
}

/* One row of C (row i) computed as a vector-matrix product, columns [ja, jb). */
static void gemv_row(int64_t K, float alpha, const float* a, ptrdiff_t csa, const braid_bsrc* s,
                     float* crow, int64_t ja, int64_t jb, float* tmp_a) {
  const float* av = a;
  if (csa != 1) {
    for (int64_t k = 0; k < K; k++) tmp_a[k] = a[k * csa];
    av = tmp_a;
  }
  if (s->rs == 1) { /* columns of B contiguous: dot products */
    for (int64_t j = ja; j < jb; j++) crow[j] = alpha * dot(av, s->b + j * s->cs, K);
  } else if (s->cs == 1) { /* rows of B contiguous: axpy over rows, in column chunks */
    for (int64_t j0 = ja; j0 < jb; j0 += 512) {
      int64_t j1 = min64(jb, j0 + 512);
      float* restrict acc = crow + j0;
      for (int64_t j = 0; j < j1 - j0; j++) acc[j] = 0.0f;
      for (int64_t k = 0; k < K; k++) {
        const float* restrict br = s->b + k * s->rs + j0;
        float ak = av[k];
        for (int64_t j = 0; j < j1 - j0; j++) acc[j] += ak * br[j];
      }
      for (int64_t j = 0; j < j1 - j0; j++) acc[j] *= alpha;
    }
  } else {
    for (int64_t j = ja; j < jb; j++) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; k++) acc += av[k] * s->b[k * s->rs + j * s->cs];
      crow[j] = alpha * acc;
    }
  }
}

static int32_t sgemm_small_m(int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                             ptrdiff_t rsa, ptrdiff_t csa, const braid_bsrc* s, float* c,
                             ptrdiff_t ldc, const braid_epilogue* ep, int nt) {
  float* tmp = NULL;
  if (csa != 1) {
    tmp = braid__scratch((size_t)K * sizeof(float) * (size_t)nt);
    if (tmp == NULL) return BRAID_ERR_OUT_OF_MEMORY;
  }
  int64_t chunk = 64;
  int64_t nchunks = ceil_div(N, chunk);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2) if (nt > 1)
  for (int64_t i = 0; i < M; i++)
    for (int64_t t = 0; t < nchunks; t++) {
      int64_t ja = t * chunk, jb = min64(N, ja + chunk);
      float* ta = tmp ? tmp + (size_t)omp_get_thread_num() * (size_t)K : NULL;
      gemv_row(K, alpha, a + i * rsa, csa, s, c + i * ldc, ja, jb, ta);
      if (ep) epilogue_tile(ep, c, ldc, i, 1, ja, jb - ja);
    }
  free(tmp);
  return BRAID_OK;
}

/* ---------------------------------------------------------------- blocked SGEMM */

int32_t braid__sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float* a, ptrdiff_t rsa,
                     ptrdiff_t csa, const braid_bsrc* b, float* c, ptrdiff_t ldc,
                     const braid_epilogue* ep, int threads) {
  if (M <= 0 || N <= 0) return BRAID_OK;
  if (K <= 0) {
    for (int64_t i = 0; i < M; i++) memset(c + i * ldc, 0, (size_t)N * sizeof(float));
    if (ep) epilogue_tile(ep, c, ldc, 0, M, 0, N);
    return BRAID_OK;
  }
  double work = (double)M * (double)N * (double)K;
  int nt = omp_get_max_threads();
  if (threads > 0 && threads < nt) nt = threads;
  if (work < 64.0 * 64.0 * 64.0) nt = 1;
  if (nt < 1) nt = 1;

  if (M <= 2 && !b->conv) return sgemm_small_m(M, N, K, alpha, a, rsa, csa, b, c, ldc, ep, nt);

  /* Block sizes: even NC and MC blocks, multiples of NR and MR. */
  int64_t njc = ceil_div(N, NC_MAX);
  int64_t nc_max = ceil_div(ceil_div(N, njc), NR) * NR;
  int64_t nkc = ceil_div(K, KC);
  int64_t kc_max = ceil_div(K, nkc);
  int64_t nic = ceil_div(M, MC_MAX);
  int64_t mc_max = ceil_div(ceil_div(M, nic), MR) * MR;

  float* bp = braid__scratch((size_t)kc_max * (size_t)nc_max * sizeof(float));
  float* ap = braid__scratch((size_t)kc_max * (size_t)mc_max * sizeof(float));
  if (bp == NULL || ap == NULL) {
    free(bp);
    free(ap);
    return BRAID_ERR_OUT_OF_MEMORY;
  }

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    for (int64_t jc = 0; jc < N; jc += nc_max) {
      const int64_t nc = min64(nc_max, N - jc);
      const int64_t npanels = ceil_div(nc, NR);
      for (int64_t pc = 0; pc < K; pc += kc_max) {
        const int64_t kc = min64(kc_max, K - pc);
        const int accumulate = pc > 0;
        const int last = pc + kc >= K;
        /* B panels of this thread */
        {
          int64_t p0 = npanels * tid / nth, p1 = npanels * (tid + 1) / nth;
          pack_b(b, pc, kc, jc, jc + p0 * NR, min64(jc + nc, jc + p1 * NR), bp);
        }
        for (int64_t ic = 0; ic < M; ic += mc_max) {
          const int64_t mc = min64(mc_max, M - ic);
          const int64_t mpanels = ceil_div(mc, MR);
          {
            int64_t q0 = mpanels * tid / nth, q1 = mpanels * (tid + 1) / nth;
            for (int64_t q = q0; q < q1; q++)
              pack_a_panel(a, rsa, csa, ic + q * MR, min64(MR, mc - q * MR), pc, kc, alpha,
                           ap + q * MR * kc);
          }
#pragma omp barrier
          const int64_t ntiles = npanels * mpanels;
          const int64_t t0 = ntiles * tid / nth, t1 = ntiles * (tid + 1) / nth;
          for (int64_t t = t0; t < t1; t++) {
            const int64_t jr = t / mpanels, ir = t % mpanels;
            const int64_t i0 = ic + ir * MR, j0 = jc + jr * NR;
            const int64_t mr = min64(MR, M - i0), nr = min64(NR, jc + nc - j0);
            micro_tile(kc, ap + ir * MR * kc, bp + jr * NR * kc, c + i0 * ldc + j0, ldc, mr, nr,
                       accumulate);
            if (last && ep) epilogue_tile(ep, c, ldc, i0, mr, j0, nr);
          }
#pragma omp barrier
        }
      }
    }
  }
  free(bp);
  free(ap);
  return BRAID_OK;
}

/* ---------------------------------------------------------------- braid_gemm */

static int32_t run_gemm(const braid_op* op) {
  const braid_gemm_params* p = &op->p.gemm;
  const int64_t m = p->m, n = p->n, k = p->k;
  braid_bsrc b;
  memset(&b, 0, sizeof b);
  b.b = BRAID_CPTR(op->addr[1]);
  if (p->trans_b) {
    b.rs = 1;
    b.cs = k;
  } else {
    b.rs = n;
    b.cs = 1;
  }
  braid_epilogue ep;
  memset(&ep, 0, sizeof ep);
  ep.col_bias = op->addr[2] ? BRAID_CPTR(op->addr[2]) : NULL;
  ep.col_scale = p->beta;
  ep.act = p->activation;
  ep.act_min = p->act_min;
  ep.act_max = p->act_max;
  int need_ep = ep.col_bias != NULL || ep.act != BRAID_ACT_NONE;
  int32_t st = braid__sgemm(m, n, k, p->alpha, BRAID_CPTR(op->addr[0]), k, 1, &b,
                            BRAID_PTR(op->addr[3]), n, need_ep ? &ep : NULL, 0);
  if (st) return braid__fail(st, "%s: out of memory for packing buffers", op->name);
  return BRAID_OK;
}

int32_t braid_gemm(uint64_t ctx, uint64_t stream, const braid_gemm_params* p, uint64_t a,
                   uint64_t b, uint64_t bias, uint64_t y) {
  static const char fn[] = "braid_gemm";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->m <= 0 || p->n <= 0 || p->k <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: m %d, n %d, k %d must be positive", fn,
                       p->m, p->n, p->k);
  if (p->trans_b != 0 && p->trans_b != 1)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: trans_b %d is not 0 or 1", fn, p->trans_b);
  if ((st = braid__check_activation(fn, p->activation, p->act_min, p->act_max))) return st;
  if ((st = braid__need(fn, "a", a)) || (st = braid__need(fn, "b", b)) ||
      (st = braid__need(fn, "y", y)))
    return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_gemm;
  op.name = fn;
  op.p.gemm = *p;
  op.addr[0] = a;
  op.addr[1] = b;
  op.addr[2] = bias;
  op.addr[3] = y;
  return braid__submit(c, &op);
}

/* ---------------------------------------------------------------- braid_matmul */

static int32_t run_matmul(const braid_op* op) {
  const braid_matmul_params* p = &op->p.matmul;
  const int64_t m = p->m, n = p->n, k = p->k;
  int64_t batches = 1;
  for (int d = 0; d < p->batch_rank; d++) batches *= p->batch_shape[d];
  const float* a = BRAID_CPTR(op->addr[0]);
  const float* b = BRAID_CPTR(op->addr[1]);
  float* y = BRAID_PTR(op->addr[2]);
  const int64_t rsb = p->trans_b ? 1 : n, csb = p->trans_b ? k : 1;
  int nt = omp_get_max_threads();
  /* Many small products: one per thread; otherwise each product uses every thread. */
  int per_thread = nt > 1 && batches >= nt && (double)m * n * k < 256.0 * 256.0 * 256.0;
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (per_thread) reduction(| : failed)
  for (int64_t t = 0; t < batches; t++) {
    int64_t rest = t, aoff = 0, boff = 0;
    for (int d = p->batch_rank - 1; d >= 0; d--) {
      int64_t i = rest % p->batch_shape[d];
      rest /= p->batch_shape[d];
      aoff += i * p->a_batch_strides[d];
      boff += i * p->b_batch_strides[d];
    }
    braid_bsrc bs;
    memset(&bs, 0, sizeof bs);
    bs.b = b + boff;
    bs.rs = rsb;
    bs.cs = csb;
    if (braid__sgemm(m, n, k, p->alpha, a + aoff, k, 1, &bs, y + t * m * n, n, NULL,
                     per_thread ? 1 : 0) != BRAID_OK)
      failed = 1;
  }
  if (failed)
    return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory for packing buffers", op->name);
  return BRAID_OK;
}

int32_t braid_matmul(uint64_t ctx, uint64_t stream, const braid_matmul_params* p, uint64_t a,
                     uint64_t b, uint64_t y) {
  static const char fn[] = "braid_matmul";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (p == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->batch_rank < 0 || p->batch_rank > BRAID_MAX_BATCH_RANK)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: batch_rank %d is outside 0..%d", fn,
                       p->batch_rank, BRAID_MAX_BATCH_RANK);
  for (int d = 0; d < p->batch_rank; d++)
    if (p->batch_shape[d] <= 0)
      return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: batch_shape[%d] = %d must be positive",
                         fn, d, p->batch_shape[d]);
  if (p->m <= 0 || p->n <= 0 || p->k <= 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: m %d, n %d, k %d must be positive", fn,
                       p->m, p->n, p->k);
  if (p->trans_b != 0 && p->trans_b != 1)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: trans_b %d is not 0 or 1", fn, p->trans_b);
  if ((st = braid__need(fn, "a", a)) || (st = braid__need(fn, "b", b)) ||
      (st = braid__need(fn, "y", y)))
    return st;
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_matmul;
  op.name = fn;
  op.p.matmul = *p;
  op.addr[0] = a;
  op.addr[1] = b;
  op.addr[2] = y;
  return braid__submit(c, &op);
}
