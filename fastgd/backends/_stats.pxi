# The statistics passes of the preconditioner and ``lr="auto"`` (included at
# the end of _cython.pyx: uses its ``floating``, ``_n_chunks``, ``_stride``,
# ``_team_size``, ``_alloc_doubles``, ``_basis``, ``_check_w``).
#
# * ``moments``: sums over rows of the rows shifted by an origin (float64
#   differences), of their outer products (full) or squares (diagonal), and
#   of y.  The diagonal pass streams X once, eight rows at a time into
#   per-chunk float64 accumulators.  The full pass copies a block of
#   STATS_BLOCK shifted rows, extended by ``[1, b_i]`` (and the same rows
#   times w), into float64 buffers padded to STATS_PAD columns, then adds the
#   block's Gram matrix ``Aw^T A`` into the chunk's upper triangle in register
#   tiles of 4 rows: each entry is a sum over the block's rows in row order,
#   then added to the chunk's sum.  The extension makes s, sxy, sy and syy
#   entries of that Gram matrix.
#   The tile kernel is chosen at import (``stats_gram``): baseline (SSE2,
#   multiply then add), AVX2 + FMA, AVX-512 + FMA.  The two FMA variants give
#   the same bits (each entry the same fused operations in the same order);
#   the baseline rounds each product, so its last bits differ from theirs.
# * ``max_row_norm2``: the largest w_i |T^T a_i|**2 over the design rows, one
#   read; a maximum does not depend on the chunking.
# Both split the rows into chunks that depend only on the problem size (see
# ``_n_chunks``), sum each chunk into its own buffer and combine the chunks in
# order: the same bits with any number of threads.

cdef extern from * nogil:
    """
    /* C += Aw^T A over rows 0..B-1 for the upper triangle of C, in tiles of 4
       rows x TW columns (TW = 2 vectors of L doubles) from the 16-aligned
       column block of the tile's first row on.  Aw and A: B x dp row major
       (dp a multiple of 16, padding zero); C: dp x dp row major.  Each entry
       is its own sum over r in order, so the tile shape does not change it. */
    #define FGD_ST_TILE(NAME, ATTR, V, L)                                          \\
    ATTR static void NAME(const double *Aw, const double *A, Py_ssize_t B,        \\
                          Py_ssize_t dp, double *C)                               \\
    {                                                                             \\
        for (Py_ssize_t j = 0; j < dp; j += 4) {                                  \\
            for (Py_ssize_t k = j & ~(Py_ssize_t)15; k < dp; k += 2 * (L)) {      \\
                V c0[2], c1[2], c2[2], c3[2], z;                                  \\
                memset(&z, 0, sizeof(V));                                         \\
                c0[0] = c0[1] = c1[0] = c1[1] = z;                                \\
                c2[0] = c2[1] = c3[0] = c3[1] = z;                                \\
                for (Py_ssize_t r = 0; r < B; r++) {                              \\
                    const double *aw = Aw + r * dp + j;                           \\
                    const double *ar = A + r * dp + k;                            \\
                    V b0, b1;                                                     \\
                    memcpy(&b0, ar, sizeof(V));                                   \\
                    memcpy(&b1, ar + (L), sizeof(V));                             \\
                    c0[0] += aw[0] * b0; c0[1] += aw[0] * b1;                     \\
                    c1[0] += aw[1] * b0; c1[1] += aw[1] * b1;                     \\
                    c2[0] += aw[2] * b0; c2[1] += aw[2] * b1;                     \\
                    c3[0] += aw[3] * b0; c3[1] += aw[3] * b1;                     \\
                }                                                                 \\
                for (int q = 0; q < 2; q++)                                       \\
                    for (int l = 0; l < (L); l++) {                               \\
                        C[j * dp + k + q * (L) + l] += c0[q][l];                  \\
                        C[(j + 1) * dp + k + q * (L) + l] += c1[q][l];            \\
                        C[(j + 2) * dp + k + q * (L) + l] += c2[q][l];            \\
                        C[(j + 3) * dp + k + q * (L) + l] += c3[q][l];            \\
                    }                                                             \\
            }                                                                     \\
        }                                                                         \\
    }
    #if (defined(__GNUC__) || defined(__clang__))
    typedef double fgd_st_v2d __attribute__((vector_size(16)));
    typedef double fgd_st_v4d __attribute__((vector_size(32)));
    typedef double fgd_st_v8d __attribute__((vector_size(64)));
    typedef float fgd_st_v4f __attribute__((vector_size(16)));
    FGD_ST_TILE(fgd_st_gram_base, , fgd_st_v2d, 2)
    #if defined(__x86_64__)
    FGD_ST_TILE(fgd_st_gram_avx2, __attribute__((target("avx2,fma"))), fgd_st_v4d, 4)
    FGD_ST_TILE(fgd_st_gram_avx512, __attribute__((target("avx512f,fma"))), fgd_st_v8d, 8)
    #endif
    #else
    typedef double fgd_st_v1d[1];
    static void fgd_st_gram_base(const double *Aw, const double *A, Py_ssize_t B,
                                 Py_ssize_t dp, double *C)
    {
        for (Py_ssize_t j = 0; j < dp; j += 4)
            for (Py_ssize_t k = j & ~(Py_ssize_t)15; k < dp; k += 16)
                for (int a = 0; a < 4; a++)
                    for (int l = 0; l < 16; l++) {
                        double s = 0.0;
                        for (Py_ssize_t r = 0; r < B; r++)
                            s += Aw[r * dp + j + a] * A[r * dp + k + l];
                        C[(j + a) * dp + k + l] += s;
                    }
    }
    #endif
    #if defined(_MSC_VER) && !defined(__clang__)
    #define FGD_ST_RESTRICT __restrict
    #else
    #define FGD_ST_RESTRICT __restrict__
    #endif
    #if (defined(__GNUC__) || defined(__clang__))
    /* The diagonal moments of rows lo..hi-1 into buf = [s, diag G, sxy (d
       each), sy, syy]: eight rows per sweep, their terms summed in registers
       (a fixed tree, four columns per vector) and then into the sums -- one
       store per column and eight rows, so loads of X do not wait behind
       stores to the sums; products and sums in float64, no FMA (the AVX2
       variant gives the baseline's bits).  Generic vectors are a GCC / Clang
       extension: other compilers do not build this file's SIMD kernels. */
    #define FGD_ST_DIAG(NAME, ATTR, T, VT)                                        \\
    ATTR static void NAME(const T *X, const T *y, const T *w, Py_ssize_t d,       \\
                          const double *x0, double y0, Py_ssize_t lo, Py_ssize_t hi,\\
                          double *buf)                                            \\
    {                                                                             \\
        double *FGD_ST_RESTRICT s = buf;                                          \\
        double *FGD_ST_RESTRICT g = buf + d;                                      \\
        double *FGD_ST_RESTRICT sxy = buf + 2 * d;                                \\
        double sy = 0.0, syy = 0.0;                                               \\
        Py_ssize_t i = lo;                                                        \\
        for (; i + 8 <= hi; i += 8) {                                             \\
            const T *x = X + i * d;                                               \\
            double wr[8], br[8];                                                  \\
            for (int r = 0; r < 8; r++) {                                         \\
                wr[r] = w ? (double)w[i + r] : 1.0;                               \\
                br[r] = (double)y[i + r] - y0;                                    \\
            }                                                                     \\
            Py_ssize_t j = 0;                                                     \\
            for (; j + 4 <= d; j += 4) {                                          \\
                fgd_st_v4d c, a[8], e[8], t;                                      \\
                memcpy(&c, x0 + j, sizeof(c));                                    \\
                for (int r = 0; r < 8; r++) {                                     \\
                    VT v;                                                         \\
                    memcpy(&v, x + r * d + j, sizeof(v));                         \\
                    a[r] = FGD_ST_CVT(v) - c;                                     \\
                    e[r] = wr[r] * a[r];                                          \\
                }                                                                 \\
                memcpy(&t, s + j, sizeof(t));                                     \\
                t += ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]));\\
                memcpy(s + j, &t, sizeof(t));                                     \\
                memcpy(&t, g + j, sizeof(t));                                     \\
                t += ((e[0] * a[0] + e[1] * a[1]) + (e[2] * a[2] + e[3] * a[3]))  \\
                     + ((e[4] * a[4] + e[5] * a[5]) + (e[6] * a[6] + e[7] * a[7]));\\
                memcpy(g + j, &t, sizeof(t));                                     \\
                memcpy(&t, sxy + j, sizeof(t));                                   \\
                t += ((e[0] * br[0] + e[1] * br[1]) + (e[2] * br[2] + e[3] * br[3]))\\
                     + ((e[4] * br[4] + e[5] * br[5]) + (e[6] * br[6] + e[7] * br[7]));\\
                memcpy(sxy + j, &t, sizeof(t));                                   \\
            }                                                                     \\
            for (; j < d; j++) {                                                  \\
                double c = x0[j], a[8], e[8];                                     \\
                for (int r = 0; r < 8; r++) {                                     \\
                    a[r] = (double)x[r * d + j] - c;                              \\
                    e[r] = wr[r] * a[r];                                          \\
                }                                                                 \\
                s[j] += ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]));\\
                g[j] += ((e[0] * a[0] + e[1] * a[1]) + (e[2] * a[2] + e[3] * a[3]))\\
                        + ((e[4] * a[4] + e[5] * a[5]) + (e[6] * a[6] + e[7] * a[7]));\\
                sxy[j] += ((e[0] * br[0] + e[1] * br[1]) + (e[2] * br[2] + e[3] * br[3]))\\
                          + ((e[4] * br[4] + e[5] * br[5]) + (e[6] * br[6] + e[7] * br[7]));\\
            }                                                                     \\
            for (int r = 0; r < 8; r++) {                                         \\
                double f = wr[r] * br[r];                                         \\
                sy += f;                                                          \\
                syy += f * br[r];                                                 \\
            }                                                                     \\
        }                                                                         \\
        for (; i < hi; i++) {                                                     \\
            const T *x = X + i * d;                                               \\
            double w0 = w ? (double)w[i] : 1.0, b0 = (double)y[i] - y0;           \\
            for (Py_ssize_t j = 0; j < d; j++) {                                  \\
                double a0 = (double)x[j] - x0[j], e0 = w0 * a0;                   \\
                s[j] += e0;                                                       \\
                g[j] += e0 * a0;                                                  \\
                sxy[j] += e0 * b0;                                                \\
            }                                                                     \\
            sy += w0 * b0;                                                        \\
            syy += (w0 * b0) * b0;                                                \\
        }                                                                         \\
        buf[3 * d] += sy;                                                         \\
        buf[3 * d + 1] += syy;                                                    \\
    }
    #else
    /* Without generic vectors: the rows one by one (other bits). */
    #define FGD_ST_DIAG(NAME, ATTR, T, VT)                                             \\
    ATTR static void NAME(const T *X, const T *y, const T *w, Py_ssize_t d,           \\
                          const double *x0, double y0, Py_ssize_t lo, Py_ssize_t hi,  \\
                          double *buf)                                                \\
    {                                                                                 \\
        double sy = 0.0, syy = 0.0;                                                   \\
        for (Py_ssize_t i = lo; i < hi; i++) {                                        \\
            const T *x = X + i * d;                                                   \\
            double w0 = w ? (double)w[i] : 1.0, b0 = (double)y[i] - y0;               \\
            for (Py_ssize_t j = 0; j < d; j++) {                                      \\
                double a0 = (double)x[j] - x0[j], e0 = w0 * a0;                       \\
                buf[j] += e0;                                                         \\
                buf[d + j] += e0 * a0;                                                \\
                buf[2 * d + j] += e0 * b0;                                            \\
            }                                                                         \\
            sy += w0 * b0;                                                            \\
            syy += (w0 * b0) * b0;                                                    \\
        }                                                                             \\
        buf[3 * d] += sy;                                                             \\
        buf[3 * d + 1] += syy;                                                        \\
    }
    #define FGD_ST_CVT(v) (v)
    typedef double fgd_st_v4d;
    typedef float fgd_st_v4f;
    #endif
    /* max over linear-model rows lo..hi-1 of w_i |T^T a_i|**2, T = I (pa NULL)
       or centre and scale (rows pa, pb): each square summed in eight lanes (j
       mod 8) combined as a fixed tree, so no variant changes the bits; *nan
       set when a row gives NaN. */
    #define FGD_ST_RN2(NAME, ATTR, T)                                              \\
    ATTR static double NAME(const T *X, const T *w, Py_ssize_t p,                 \\
                            const double *FGD_ST_RESTRICT pa,                     \\
                            const double *FGD_ST_RESTRICT pb, double icpt,        \\
                            Py_ssize_t lo, Py_ssize_t hi, double *nan)            \\
    {                                                                             \\
        double best = 0.0;                                                        \\
        for (Py_ssize_t i = lo; i < hi; i++) {                                    \\
            const T *FGD_ST_RESTRICT x = X + i * p;                               \\
            double v[8] = {0, 0, 0, 0, 0, 0, 0, 0}, t, r;                         \\
            Py_ssize_t j = 0;                                                     \\
            if (pa) {                                                             \\
                for (; j + 8 <= p; j += 8)                                        \\
                    for (int l = 0; l < 8; l++) {                                 \\
                        double z = pa[j + l] * (double)x[j + l] - pb[j + l] * icpt; \\
                        v[l] += z * z;                                            \\
                    }                                                             \\
                for (; j < p; j++) {                                              \\
                    double z = pa[j] * (double)x[j] - pb[j] * icpt;               \\
                    v[j & 7] += z * z;                                            \\
                }                                                                 \\
            } else {                                                              \\
                for (; j + 8 <= p; j += 8)                                        \\
                    for (int l = 0; l < 8; l++) {                                 \\
                        double z = (double)x[j + l];                              \\
                        v[l] += z * z;                                            \\
                    }                                                             \\
                for (; j < p; j++) {                                              \\
                    double z = (double)x[j];                                      \\
                    v[j & 7] += z * z;                                            \\
                }                                                                 \\
            }                                                                     \\
            t = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); \\
            r = t + icpt * icpt;                                                  \\
            if (w) r = r * (double)w[i];                                          \\
            if (r > best) best = r;                                               \\
            else if (r != r) *nan = 1.0;                                          \\
        }                                                                         \\
        return best;                                                              \\
    }
    #if (defined(__GNUC__) || defined(__clang__))
    #define FGD_ST_CVT(v) (v)
    FGD_ST_DIAG(fgd_st_diag_d_base, , double, fgd_st_v4d)
    #undef FGD_ST_CVT
    #define FGD_ST_CVT(v) __builtin_convertvector(v, fgd_st_v4d)
    FGD_ST_DIAG(fgd_st_diag_f_base, , float, fgd_st_v4f)
    #undef FGD_ST_CVT
    #else
    FGD_ST_DIAG(fgd_st_diag_d_base, , double, fgd_st_v4d)
    FGD_ST_DIAG(fgd_st_diag_f_base, , float, fgd_st_v4f)
    #endif
    FGD_ST_RN2(fgd_st_rn2_d_base, , double)
    FGD_ST_RN2(fgd_st_rn2_f_base, , float)
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    #define FGD_ST_CVT(v) (v)
    FGD_ST_DIAG(fgd_st_diag_d_avx2, __attribute__((target("avx2"))), double, fgd_st_v4d)
    #undef FGD_ST_CVT
    #define FGD_ST_CVT(v) __builtin_convertvector(v, fgd_st_v4d)
    FGD_ST_DIAG(fgd_st_diag_f_avx2, __attribute__((target("avx2"))), float, fgd_st_v4f)
    #undef FGD_ST_CVT
    FGD_ST_RN2(fgd_st_rn2_d_avx2, __attribute__((target("avx2"))), double)
    FGD_ST_RN2(fgd_st_rn2_f_avx2, __attribute__((target("avx2"))), float)
    #endif
    static void (*fgd_st_diag_d)(const double *, const double *, const double *, Py_ssize_t,
                                 const double *, double, Py_ssize_t, Py_ssize_t,
                                 double *) = fgd_st_diag_d_base;
    static void (*fgd_st_diag_f)(const float *, const float *, const float *, Py_ssize_t,
                                 const double *, double, Py_ssize_t, Py_ssize_t,
                                 double *) = fgd_st_diag_f_base;
    static double (*fgd_st_rn2_d)(const double *, const double *, Py_ssize_t, const double *,
                                  const double *, double, Py_ssize_t, Py_ssize_t,
                                  double *) = fgd_st_rn2_d_base;
    static double (*fgd_st_rn2_f)(const float *, const float *, Py_ssize_t, const double *,
                                  const double *, double, Py_ssize_t, Py_ssize_t,
                                  double *) = fgd_st_rn2_f_base;
    static void (*fgd_st_gram)(const double *, const double *, Py_ssize_t, Py_ssize_t,
                               double *) = fgd_st_gram_base;
    static int fgd_st_level = 0;
    static int fgd_st_select(int cap)
    {
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
        __builtin_cpu_init();
        if (cap >= 1 && __builtin_cpu_supports("avx2")) {
            fgd_st_diag_d = fgd_st_diag_d_avx2;
            fgd_st_diag_f = fgd_st_diag_f_avx2;
            fgd_st_rn2_d = fgd_st_rn2_d_avx2;
            fgd_st_rn2_f = fgd_st_rn2_f_avx2;
        }
        if (cap >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            fgd_st_gram = fgd_st_gram_avx2;
            fgd_st_level = 1;
            if (cap >= 2 && __builtin_cpu_supports("avx512f")) {
                fgd_st_gram = fgd_st_gram_avx512;
                fgd_st_level = 2;
            }
        }
    #endif
        return fgd_st_level;
    }
    """
    void fgd_st_gram(const double* Aw, const double* A, Py_ssize_t B, Py_ssize_t dp,
                     double* C)
    int fgd_st_select(int cap)
    void fgd_st_diag_d(const double* X, const double* y, const double* w, Py_ssize_t d,
                       const double* x0, double y0, Py_ssize_t lo, Py_ssize_t hi, double* buf)
    void fgd_st_diag_f(const float* X, const float* y, const float* w, Py_ssize_t d,
                       const double* x0, double y0, Py_ssize_t lo, Py_ssize_t hi, double* buf)
    double fgd_st_rn2_d(const double* X, const double* w, Py_ssize_t p, const double* pa,
                        const double* pb, double icpt, Py_ssize_t lo, Py_ssize_t hi, double* nan)
    double fgd_st_rn2_f(const float* X, const float* w, Py_ssize_t p, const double* pa,
                        const double* pb, double icpt, Py_ssize_t lo, Py_ssize_t hi, double* nan)

#: Rows per block of the full moments pass, and the padding of its columns.
cdef Py_ssize_t STATS_BLOCK = 64
cdef Py_ssize_t STATS_PAD = 16
#: The Gram tile kernel of ``moments(full=True)``: "baseline", "avx2" or
#: "avx512" (FASTGD_SIMD=baseline / avx2 in the environment caps it).
stats_gram: str = ("baseline", "avx2", "avx512")[fgd_st_select(
    {"baseline": 0, "avx2": 1}.get(_os.environ.get("FASTGD_SIMD", ""), 2))]


cdef inline Py_ssize_t _mom_width(Py_ssize_t d) noexcept nogil:
    """Doubles of a chunk's diagonal sums: s, G, sxy (d each), sy, syy."""
    return 3 * d + 2


cdef inline void _mom_diag_span(const floating* X, const floating* y, const floating* w,
                                Py_ssize_t d, const double* x0, double y0, Py_ssize_t lo,
                                Py_ssize_t hi, double* buf) noexcept nogil:
    """buf = [s, diag G, sxy, sy, syy] += the rows lo..hi-1 (weight 1 when w is NULL)."""
    if floating is double:
        fgd_st_diag_d(X, y, w, d, x0, y0, lo, hi, buf)
    else:
        fgd_st_diag_f(X, y, w, d, x0, y0, lo, hi, buf)


cdef void _mom_full_span(const floating* X, const floating* y, const floating* w,
                         Py_ssize_t d, const double* x0, double y0, Py_ssize_t lo,
                         Py_ssize_t hi, double* C, double* A, double* Aw) noexcept nogil:
    """C (dp x dp, upper triangle) += the Gram matrix of the rows lo..hi-1 extended by
    ``[1, b_i]``: ``C[:d, :d]`` = G, ``C[:d, d]`` = s, ``C[:d, d+1]`` = sxy,
    ``C[d, d+1]`` = sy, ``C[d+1, d+1]`` = syy (``C[d, d]`` = sum w).

    ``A`` and ``Aw``: STATS_BLOCK x dp float64 scratch whose padding columns are 0.
    """
    cdef Py_ssize_t dp = _st_padded(d + 2)
    cdef const floating* x
    cdef double* ar
    cdef double* awr
    cdef double b, wi, a
    cdef Py_ssize_t i, j, r, blo
    blo = lo
    while blo < hi:
        r = 0
        i = blo
        while i < hi and r < STATS_BLOCK:
            x = X + i * d
            ar = A + r * dp
            awr = Aw + r * dp
            wi = 1.0 if w == NULL else <double>w[i]
            b = <double>y[i] - y0
            for j in range(d):
                a = <double>x[j] - x0[j]
                ar[j] = a
                awr[j] = wi * a
            ar[d] = 1.0
            awr[d] = wi
            ar[d + 1] = b
            awr[d + 1] = wi * b
            i += 1
            r += 1
        fgd_st_gram(Aw, A, r, dp, C)
        blo = i


cdef inline Py_ssize_t _st_padded(Py_ssize_t d) noexcept nogil:
    return ((d + STATS_PAD - 1) // STATS_PAD) * STATS_PAD


cdef inline Py_ssize_t _mom_full_size(Py_ssize_t d) noexcept nogil:
    """Doubles of a full chunk's sums (a multiple of 8: chunks start on a cache line)."""
    cdef Py_ssize_t dp = _st_padded(d + 2)
    return dp * dp


cdef inline Py_ssize_t _mom_full_chunks(Py_ssize_t n, Py_ssize_t d) noexcept nogil:
    """At most 8 chunks: each holds a whole G."""
    cdef Py_ssize_t c = _n_chunks(n, d * (d + 1) // 2 + 2 * d + 2)
    return c if c < 8 else 8


cdef void _moments_all(const floating* X, const floating* y, const floating* w, Py_ssize_t n,
                       Py_ssize_t d, const double* x0, double y0, bint full,
                       double* work, Py_ssize_t nch) noexcept nogil:
    """Each chunk c of the rows summed into ``work + c * stride`` (row-parallel)."""
    cdef Py_ssize_t c, lo, hi, stride, dp = _st_padded(d + 2)
    cdef Py_ssize_t scratch = 2 * STATS_BLOCK * dp
    cdef double* buf
    cdef int nthreads = _team_size(nch)
    if full:
        stride = _mom_full_size(d) + scratch
        if nthreads > 1:
            for c in prange(nch, schedule="dynamic", num_threads=nthreads):
                lo = (c * n) // nch
                hi = ((c + 1) * n) // nch
                buf = work + c * stride
                memset(buf, 0, stride * sizeof(double))
                _mom_full_span(X, y, w, d, x0, y0, lo, hi, buf, buf + _mom_full_size(d),
                               buf + _mom_full_size(d) + STATS_BLOCK * dp)
        else:  # no OpenMP region (see _team_size)
            for c in range(nch):
                lo = (c * n) // nch
                hi = ((c + 1) * n) // nch
                buf = work + c * stride
                memset(buf, 0, stride * sizeof(double))
                _mom_full_span(X, y, w, d, x0, y0, lo, hi, buf, buf + _mom_full_size(d),
                               buf + _mom_full_size(d) + STATS_BLOCK * dp)
    else:
        stride = _stride(_mom_width(d))
        if nthreads > 1:
            for c in prange(nch, schedule="dynamic", num_threads=nthreads):
                lo = (c * n) // nch
                hi = ((c + 1) * n) // nch
                buf = work + c * stride
                memset(buf, 0, stride * sizeof(double))
                _mom_diag_span(X, y, w, d, x0, y0, lo, hi, buf)
        else:  # no OpenMP region (see _team_size)
            for c in range(nch):
                lo = (c * n) // nch
                hi = ((c + 1) * n) // nch
                buf = work + c * stride
                memset(buf, 0, stride * sizeof(double))
                _mom_diag_span(X, y, w, d, x0, y0, lo, hi, buf)


def moments(const floating[:, ::1] X, const floating[::1] y, x0, double y0, bint full,
            w=None) -> tuple:
    """Sums over the rows of the rows and of y shifted by an origin, in float64.

    With ``a_i = X[i] - x0`` and ``b_i = y[i] - y0`` (differences in float64)
    and ``w_i`` the weights (1 when ``w`` is None): ``s = sum w_i a_i``,
    ``G = sum w_i a_i a_i^T`` (``(d, d)`` when ``full``, else its diagonal),
    ``sxy = sum w_i a_i b_i``, ``sy = sum w_i b_i``, ``syy = sum w_i b_i**2``.
    One row-parallel read of X (chunk-ordered: the same bits with any number
    of threads).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> X = np.array([[1.0, 2.0], [3.0, 5.0]]); y = np.array([1.0, 2.0])
    >>> s, G, sxy, sy, syy = _cython.moments(X, y, np.zeros(2), 0.0, True)
    >>> s.tolist(), G.tolist(), sxy.tolist(), sy, syy
    ([4.0, 7.0], [[10.0, 17.0], [17.0, 29.0]], [7.0, 12.0], 3.0, 5.0)
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], nch, stride, c, j, k, dp = _st_padded(d + 2)
    cdef const double[::1] x0v = _np.ascontiguousarray(x0, dtype=_np.float64)
    cdef const floating[::1] wv
    cdef const floating* wp = NULL
    cdef double* work = NULL
    cdef double* buf
    cdef double sy = 0.0, syy = 0.0, wi, b
    if x0v.shape[0] != d:
        raise ValueError(f"x0 must have one entry per column of X ({d}), got {x0v.shape[0]}")
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} rows, X has {n}")
    if w is not None:
        wv = w
        _check_w(wv.shape[0], n)
        wp = &wv[0] if n else NULL
    s = _np.zeros(d)
    sxy = _np.zeros(d)
    G = _np.zeros((d, d)) if full else _np.zeros(d)
    if n == 0 or d == 0:  # no rows, or the sums of y alone
        for j in range(n if d == 0 else 0):
            wi = 1.0 if wp == NULL else <double>wp[j]
            b = <double>y[j] - y0
            sy += wi * b
            syy += (wi * b) * b
        return s, G, sxy, sy, syy
    cdef double[::1] sv = s
    cdef double[::1] sxyv = sxy
    cdef double[::1] gv = G.reshape(-1)
    if full:
        nch = _mom_full_chunks(n, d)
        stride = _mom_full_size(d) + 2 * STATS_BLOCK * dp
    else:
        nch = _n_chunks(n, d + 2)
        stride = _stride(_mom_width(d))
    try:
        work = _alloc_doubles(nch * stride)
        with nogil:
            _moments_all(&X[0, 0], &y[0], wp, n, d, &x0v[0], y0, full, work, nch)
            for c in range(nch):
                buf = work + c * stride
                if full:
                    for j in range(d):
                        sv[j] += buf[j * dp + d]
                        sxyv[j] += buf[j * dp + d + 1]
                        for k in range(j, d):
                            gv[j * d + k] += buf[j * dp + k]
                    sy += buf[d * dp + d + 1]
                    syy += buf[(d + 1) * dp + d + 1]
                else:
                    for j in range(d):
                        sv[j] += buf[j]
                        gv[j] += buf[d + j]
                        sxyv[j] += buf[2 * d + j]
                    sy += buf[3 * d]
                    syy += buf[3 * d + 1]
            if full:
                for j in range(d):
                    for k in range(j):
                        gv[j * d + k] = gv[k * d + j]
    finally:
        _free_doubles(work)
    return s, G, sxy, sy, syy


cdef double _rn2_span(int model, const floating* X, const floating* w, Py_ssize_t ncol,
                      Py_ssize_t p, floating sh, floating xs, const double* pre, int kind,
                      double icpt, Py_ssize_t lo, Py_ssize_t hi, double* a,
                      double* nan) noexcept nogil:
    """max over rows lo..hi-1 of w_i |T^T a_i|**2 (``a``: m doubles of scratch);
    ``nan[0]`` = 1 when a value is NaN."""
    cdef Py_ssize_t m = p + 1, i, j, k
    cdef double best = 0.0, v, z, u, t
    cdef const floating* x
    if model == 0 and kind < 2:
        if floating is double:
            return fgd_st_rn2_d(X, w, p, pre if kind else NULL, pre + m if kind else NULL,
                                icpt, lo, hi, nan)
        else:
            return fgd_st_rn2_f(X, w, p, pre if kind else NULL, pre + m if kind else NULL,
                                icpt, lo, hi, nan)
    for i in range(lo, hi):
        x = X + i * ncol
        if model == 0:
            for j in range(p):
                a[j] = <double>x[j]
        else:
            u = <double>((x[0] - sh) * xs)
            t = u
            for j in range(p):
                a[j] = t
                t = t * u
        a[p] = icpt
        v = icpt * icpt
        if kind == 0:
            for j in range(p):
                v += a[j] * a[j]
        elif kind == 1:
            for j in range(p):
                z = pre[j] * a[j] - pre[m + j] * icpt
                v += z * z
        else:
            v = 0.0
            for k in range(m):
                z = 0.0
                for j in range(m):
                    z += a[j] * pre[j * m + k]
                v += z * z
        if w != NULL:
            v = v * <double>w[i]
        if v > best:
            best = v
        elif v != v:
            nan[0] = 1.0
    return best


def max_row_norm2(int model, const floating[:, ::1] X, basis, pre, bint fit_icpt,
                  w=None) -> float:
    """``max_i w_i |T^T a_i|**2`` over the design rows ``a_i = [features, 1 or 0]``.

    Features: the row of X (model 0) or ``u**1 .. u**p`` (model 1, ``u = (x -
    shift) * scale`` in the data dtype, powers in float64, ``p = pre.shape[1]
    - 1``); the last entry 1 when ``fit_icpt``, else 0.  ``pre`` (float64,
    2-D): ``(0, m)`` T = I; ``(2, m)`` centre and scale; ``(2m, m)`` dense,
    ``T = pre[:m]``.  One row-parallel read; NaN when a row gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> X = np.array([[1.0, 2.0], [3.0, -1.0]])
    >>> _cython.max_row_norm2(0, X, 1.0, np.empty((0, 3)), True)
    11.0
    """
    cdef Py_ssize_t n = X.shape[0], ncol = X.shape[1], m, p, nch, c
    cdef const double[:, ::1] pv = _np.ascontiguousarray(pre, dtype=_np.float64)
    cdef const floating[::1] wv
    cdef const floating* wp = NULL
    cdef const double* pp = NULL
    cdef double bs[2]
    cdef double nan = 0.0, best = 0.0, icpt = 1.0 if fit_icpt else 0.0
    cdef double* work = NULL
    cdef int kind, nthreads
    m = pv.shape[1]
    p = m - 1
    if p < 0:
        raise ValueError("pre must have p + 1 >= 1 columns")
    if pv.shape[0] == 0:
        kind = 0
    elif pv.shape[0] == 2:
        kind = 1
    elif pv.shape[0] == 2 * m:
        kind = 2
    else:
        raise ValueError(f"pre must have 0, 2 or 2 (p + 1) = {2 * m} rows, got {pv.shape[0]}")
    if model == 0 and ncol != p:
        raise ValueError(f"the linear model needs pre.shape[1] == X.shape[1] + 1, got "
                         f"{m} for {ncol} columns")
    if model != 0 and ncol != 1:
        raise ValueError(f"the polynomial model needs X of shape (n, 1), got {ncol} columns")
    if w is not None:
        wv = w
        _check_w(wv.shape[0], n)
        wp = &wv[0] if n else NULL
    if n == 0:
        return 0.0
    if kind:
        pp = &pv[0, 0]
    _basis(basis, bs)
    nch = _n_chunks(n, (ncol if model == 0 else p) + 2 + (m * m if kind == 2 else 0))
    try:
        work = _alloc_doubles(nch * _stride(m + 2))
        with nogil:
            nthreads = _team_size(nch)
            if nthreads > 1:
                for c in prange(nch, schedule="dynamic", num_threads=nthreads):
                    work[c * _stride(m + 2) + m + 1] = 0.0
                    work[c * _stride(m + 2) + m] = _rn2_span(
                        model, &X[0, 0], wp, ncol, p, <floating>bs[0], <floating>bs[1], pp, kind,
                        icpt, (c * n) // nch, ((c + 1) * n) // nch, work + c * _stride(m + 2),
                        work + c * _stride(m + 2) + m + 1)
            else:  # no OpenMP region (see _team_size)
                for c in range(nch):
                    work[c * _stride(m + 2) + m + 1] = 0.0
                    work[c * _stride(m + 2) + m] = _rn2_span(
                        model, &X[0, 0], wp, ncol, p, <floating>bs[0], <floating>bs[1], pp, kind,
                        icpt, (c * n) // nch, ((c + 1) * n) // nch, work + c * _stride(m + 2),
                        work + c * _stride(m + 2) + m + 1)
            for c in range(nch):
                if work[c * _stride(m + 2) + m] > best:
                    best = work[c * _stride(m + 2) + m]
                if work[c * _stride(m + 2) + m + 1] != 0:
                    nan = 1.0
    finally:
        _free_doubles(work)
    return float("nan") if nan != 0 else best
