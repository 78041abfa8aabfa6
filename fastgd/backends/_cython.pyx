# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython backend: fastgd's kernels compiled as a C extension.

Design
------
Mirrors ``_numba.py``; both mirror the numpy reference ``_numpy.py``, which is
the executable specification.  Same sections in the same order, same function
names and argument order (see ``fastgd/backends/__init__.py`` for the shapes
and dtypes of the arguments):

    input scan -> losses -> model -> fused objective/gradient -> update rules
    -> preconditioned step -> schedule -> epoch loop -> minimize loop

* Every function is fused over ``floating`` (float32 / float64); inputs are
  ``const`` memoryviews, so read-only arrays (``np.memmap`` mode ``'r'``) are
  read in place.  Sample orders are int32 or int64 (``index_t``).
* The Python-callable functions only unpack memoryviews into pointers and
  release the GIL; every loop runs in ``noexcept nogil`` C functions.
* Operation order follows the reference row by row: Horner for the
  polynomial prediction, a running power for its gradient, residual and loss
  in the data dtype, sums over rows in float64, results stored in the data
  dtype.  The update rules reproduce numpy's type promotion (a Python float
  is cast to the data dtype, a float64 hyperparameter promotes to float64),
  so float32 walks the reference's float32 trajectory.
* Row-parallel passes (full-batch gradient, objective, polynomial moments)
  split the rows into a number of contiguous chunks that depends only on the
  problem size, never on the thread count: each chunk sums into its own
  buffer and the buffers are merged serially in chunk order.  Results are
  therefore bit-identical with 1 or N threads, with or without OpenMP.
  Scratch buffers (accumulators, per-chunk sums) start on a cache line
  (``fgd_alloc64``), so no vector access to them splits a line wherever
  the heap happens to put them.
* Fork safety: libgomp's thread pool does not survive ``fork``, and a child
  of a process that ran a parallel region hangs on entering the next one.
  An ``os.register_at_fork(after_in_child=...)`` hook sets a C flag in the
  child (inherited by its own forks), ``fastgd_max_threads`` then returns 1,
  and every ``prange`` is entered only when ``_team_size`` is > 1, else the
  same chunks run in a plain loop: a forked process (``multiprocessing``
  with the fork start method, ``os.fork``) never enters an OpenMP region,
  runs serially and gets the same bits.  The parent keeps its threads.
* The row primitives (dot product, two-row accumulate, one-sample gd step)
  are small C functions: SSE2 in the default build (no ``-march=native``),
  with an AVX2 variant picked at import when the CPU has it.  Both keep the
  same partial sums in the same order, so they give the same bits.
* Stochastic epochs prefetch the rows ``PREFETCH`` samples ahead into L2 and
  ``PREFETCH_L1`` ahead into L1, every cache line of the row (its last one
  too when the row straddles one more): the order is known in advance, so
  the random row accesses overlap with computation.
  One-sample gd (``batch_size=1``) fuses each step with the next prediction.
* Stochastic epochs over an X of at least ``STAGE_MIN_BYTES`` can stage
  their rows (single-sample: ``STAGING``, ``_set_staging``; mini-batches:
  ``STAGING_BATCHES``, ``_set_staging_batches``) when two threads are available
  (``_staged_epoch``; none in a forked process): a second thread copies
  the rows (and y, and w) of the chunks ahead in the sample order into
  buffers, in visiting order, and the stepping thread reads them in address
  order; it never waits for the copy (rows not yet copied it reads from X,
  as the plain epoch).  Same steps, same code, same bits.
* ``basis`` ``[shift, scale]``: the polynomial input ``u = (x - shift) *
  scale`` is formed in the data dtype wherever u is (rows, moments); the
  public functions also take a float ``s`` for ``[0, s]``, and shift 0 gives
  the bits of a plain ``x * s``.  ``l2w`` is diagonal (p + 1 weights) or a
  dense symmetric ``Q`` ((p + 1)**2, row major; float64 sums over k
  ascending).  ``run(..., pre)`` preconditions every step (``_step``: the
  update rule acts on ``z = T^-1 theta``; centre-and-scale or dense ``T``)
  and tests convergence in z.  Without ``pre`` (kind 0) and with a diagonal
  ``l2w`` every fast path below is the one it was before these existed, same
  speed and bits (shift 0 has its own compile-time specialisation of the row
  functions and moments, ``basis_t``).  The fused one-sample gd path of
  the linear model (``_sgd_gd_linear``, which inlines the diagonal penalty)
  has a centre-and-scale sibling (``_sgd_gd_linear_pre``, kind 1: ``fit``'s
  default SGD) with the general path's bits; with a dense ``T`` or ``Q``
  one-sample gd takes the general batch-gradient + ``_step`` path, and the
  least-squares shortcut below falls back to the exact pass at the noise
  floor (see ``_objective_grad_lsq``, ``strict``).
* Sample weights ``w`` (``objective_grad``, ``objective``, ``batch_grad``,
  ``lsq_stats``, ``run``): a compile-time choice like the shift
  (``weight_t``), made once per call by the Python-level function and passed
  down to every pass.  Without weights (``w=None``) every loop is the one it
  was before, same speed and bits.  With them each row's rho(r_i) and
  psi(r_i) are multiplied by w_i in the data dtype (``_wt``) inside the
  same single pass, and sums are still divided by the row count.  Every
  fast path has a weighted version: the paired-row full-batch pass, both
  fused one-sample gd paths (one product per sample, w[i] prefetched with
  the row), mini-batches, the Gram matrix, and the SIMD moments (their own
  W variants, same lanes, same bits for every vector width).  Weighted
  statistics bound each r_i**2 only through w_i, so a weighted
  least-squares shortcut also checks ``_lsq_guard`` before trusting them
  near overflow (per ``run``: one read of w; with weights below WLIGHT,
  also of y and x, or of the light rows).  Costs against unweighted (2
  threads): objective_grad on 1e6 x 100 float64 the same (13.7 ms), an
  SGD epoch +2% (40.6 ms), mini-batch Adam ~+10%, degree-3 moments of 1e7
  rows 5.7 ms (3.7), the guard 1.7 ms (5.6 ms with light weights).
* ``sched_hp[2]`` (optional): the schedule's epoch offset; the Python-level
  ``schedule`` and ``run`` read it (0 for a length-2 ``sched_hp``) and pass
  it down as a double.
* Full-batch polynomial MSE epochs reduce the data to the moments
  ``sum u**m`` (m <= 2p), ``sum y u**j`` and ``sum y**2`` in one pass; each
  epoch's objective and gradient are then O(p**2) (the normal equations of
  the power basis), independent of n.  Near overflow (the reference's
  divergence signal) an epoch falls back to the exact pass over the rows.
* The moments pass (``lsq_stats(1, ...)``, ``run``'s least-squares
  shortcut; C kernel ``fgd_moments_*``) is memory-bound, not a per-row chain
  of dependent adds: every moment is summed in eight lanes (row i of a chunk
  into lane i mod 8, each lane in row order, the lanes combined as a fixed
  tree), u and its running powers stay in registers (degrees 1..4, compiled
  per degree) or in L1 (any degree: blocks of 512 rows, four powers per
  sweep).  The lanes do not depend on the vector width, so the baseline
  (SSE2), AVX2 and AVX-512 variants (chosen at import, ``simd_stats``) give
  the same bits, and no FMA contraction is allowed in them.  u is formed as
  before, ``(x - shift) * scale`` in the data dtype, its powers in float64;
  only the summation order changed (last bits against the reference).
  Degree 3 on 1e7 float64 rows: ~3.3 ms with 2 threads, about the read
  bandwidth (it was ~14 ms).
* ``value_range(a)``: min and max of a 1-D float array in one parallel read
  (``np.min`` + ``np.max`` read it twice), NaN for both when ``a`` holds a
  NaN; it maps the polynomial x onto [-1, 1].  minpd / maxpd skip a NaN,
  an unordered compare flags it.  The result does not depend on the chunking.
"""

from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport NAN, fabs, sqrt, pow, isfinite, isnan
from libc.stdlib cimport malloc, free
from libc.string cimport memset, memcpy
from libc.stdint cimport int32_t, int64_t
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid

import os as _os

import numpy as _np

cdef extern from * nogil:
    """
    /* 1 in a process made by fork (and in its forks): libgomp's thread pool
       does not survive fork, so such a process never enters a parallel
       region (see _after_fork_in_child).  Written once, in the child, right
       after fork, before any other thread of the child exists. */
    static int fastgd_forked = 0;
    static void fastgd_set_forked(void) { fastgd_forked = 1; }
    static int fastgd_is_forked(void) { return fastgd_forked; }
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTGD_OPENMP 1
    static int fastgd_max_threads(void) { return fastgd_forked ? 1 : omp_get_max_threads(); }
    #else
    #define FASTGD_OPENMP 0
    static int fastgd_max_threads(void) { return 1; }
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    /* Two distances: far ahead into L2 (prefetcht1), near into L1 (t0). */
    #define fastgd_prefetch(p) __builtin_prefetch((const void *)(p), 0, 2)
    #define fastgd_prefetch_l1(p) __builtin_prefetch((const void *)(p), 0, 3)
    #else
    #define fastgd_prefetch(p) ((void)(p))
    #define fastgd_prefetch_l1(p) ((void)(p))
    #endif

    /* Row primitives: dot product, two-row accumulate, one-sample gd step.

       The dot product keeps NP partial sums (8 for float64, 16 for float32):
       partial k sums the products j = k (mod NP) in increasing j, the rest
       (p mod NP) is summed separately, and everything is combined in one
       fixed pairwise order.  The adds then do not wait on one another, and
       the result is the same bits whatever the SIMD width: the x86-64
       baseline (SSE2) and the AVX2 variant, chosen at import from the CPU,
       compute identical numbers (no FMA contraction in either).  Generic
       vectors are a GCC/Clang extension; other compilers get the same
       partial sums in scalar code. */
    #if defined(_MSC_VER) && !defined(__clang__)
    #define FGD_RESTRICT __restrict
    #else
    #define FGD_RESTRICT __restrict__
    #endif

    /* The partial sums are combined as a halving tree (s_k + s_{k+NP/2},
       ...), which is what a vector horizontal sum does anyway. */
    static inline double fgd_tree8_d(const double *s)
    {
        double t0 = s[0] + s[4], t1 = s[1] + s[5], t2 = s[2] + s[6], t3 = s[3] + s[7];
        return (t0 + t2) + (t1 + t3);
    }
    static inline float fgd_tree16_f(const float *s)
    {
        float t[8];
        for (int k = 0; k < 8; k++) t[k] = s[k] + s[k + 8];
        float u0 = t[0] + t[4], u1 = t[1] + t[5], u2 = t[2] + t[6], u3 = t[3] + t[7];
        return (u0 + u2) + (u1 + u3);
    }

    #if defined(__GNUC__) || defined(__clang__)
    typedef double fgd_v2d __attribute__((vector_size(16)));
    typedef float fgd_v4f __attribute__((vector_size(16)));
    typedef double fgd_v4d __attribute__((vector_size(32)));
    typedef float fgd_v8f __attribute__((vector_size(32)));
    /* V: vector type with L lanes; NP partial sums in NP / L vectors. */
    #define FGD_DOT_BODY(T, V, L, NP)                                          \\
        V acc[(NP) / (L)], u, v;                                               \\
        T s[NP], tail = 0;                                                     \\
        Py_ssize_t j = 0;                                                      \\
        for (int k = 0; k < (NP) / (L); k++)                                   \\
            for (int l = 0; l < (L); l++) acc[k][l] = 0;                       \\
        for (; j + (NP) <= p; j += (NP))                                       \\
            for (int k = 0; k < (NP) / (L); k++) {                             \\
                memcpy(&u, x + j + k * (L), sizeof(V));                        \\
                memcpy(&v, w + j + k * (L), sizeof(V));                        \\
                acc[k] += u * v;                                               \\
            }                                                                  \\
        for (int k = 0; k < (NP) / (L); k++)                                   \\
            for (int l = 0; l < (L); l++) s[k * (L) + l] = acc[k][l];          \\
        for (; j < p; j++) tail += x[j] * w[j];
    /* theta -= lr (s x + l2w theta), then return theta . xn with the dot
       product's partial sums: the gd step of one sample fused with the
       prediction of the next (float64), one sweep over theta. */
    #define FGD_STEP_DOT_BODY(V, L)                                            \\
        V acc[8 / (L)], t, u, v, lw, sv, lv;                                   \\
        double s8[8], tail = 0;                                                \\
        Py_ssize_t j = 0;                                                      \\
        for (int l = 0; l < (L); l++) { sv[l] = s; lv[l] = lr; }               \\
        for (int k = 0; k < 8 / (L); k++)                                      \\
            for (int l = 0; l < (L); l++) acc[k][l] = 0;                       \\
        for (; j + 8 <= p; j += 8)                                             \\
            for (int k = 0; k < 8 / (L); k++) {                                \\
                memcpy(&t, theta + j + k * (L), sizeof(V));                    \\
                memcpy(&u, x + j + k * (L), sizeof(V));                        \\
                memcpy(&lw, l2w + j + k * (L), sizeof(V));                     \\
                t -= lv * (sv * u + lw * t);                                   \\
                memcpy(theta + j + k * (L), &t, sizeof(V));                    \\
                memcpy(&v, xn + j + k * (L), sizeof(V));                       \\
                acc[k] += v * t;                                               \\
            }                                                                  \\
        for (int k = 0; k < 8 / (L); k++)                                      \\
            for (int l = 0; l < (L); l++) s8[k * (L) + l] = acc[k][l];         \\
        for (; j < p; j++) {                                                   \\
            theta[j] -= lr * (s * x[j] + l2w[j] * theta[j]);                   \\
            tail += xn[j] * theta[j];                                          \\
        }                                                                      \\
        return fgd_tree8_d(s8) + tail;
    /* The same with the centre-and-scale preconditioner (rows a, b): per
       coordinate g = s x_j + l2w_j theta_j, g' = a_j g - b_j gp, the gd
       rule's move of a zero vector d = 0 - lr g', theta_j += a_j d, and
       *s2 = sum_j b_j d (float64, j ascending: one scalar add per lane, in
       lane order); then theta . xn as the dot product (p < 8: its tail). */
    #define FGD_PRE_STEP_DOT_BODY(V, L)                                        \\
        V acc[8 / (L)], t, u, v, lw, av, bv, dl, bd, sv, lv, gv, zv;           \\
        double s8[8], tail = 0, sb = 0, d;                                     \\
        Py_ssize_t j = 0;                                                      \\
        for (int l = 0; l < (L); l++) { sv[l] = s; lv[l] = lr; gv[l] = gp; zv[l] = 0; } \\
        for (int k = 0; k < 8 / (L); k++)                                      \\
            for (int l = 0; l < (L); l++) acc[k][l] = 0;                       \\
        for (; j + 8 <= p; j += 8)                                             \\
            for (int k = 0; k < 8 / (L); k++) {                                \\
                memcpy(&t, theta + j + k * (L), sizeof(V));                    \\
                memcpy(&u, x + j + k * (L), sizeof(V));                        \\
                memcpy(&lw, l2w + j + k * (L), sizeof(V));                     \\
                memcpy(&av, a + j + k * (L), sizeof(V));                       \\
                memcpy(&bv, b + j + k * (L), sizeof(V));                       \\
                dl = zv - lv * (av * (sv * u + lw * t) - bv * gv);             \\
                t += av * dl;                                                  \\
                memcpy(theta + j + k * (L), &t, sizeof(V));                    \\
                bd = bv * dl;                                                  \\
                for (int l = 0; l < (L); l++) sb += bd[l];                     \\
                memcpy(&v, xn + j + k * (L), sizeof(V));                       \\
                acc[k] += v * t;                                               \\
            }                                                                  \\
        for (int k = 0; k < 8 / (L); k++)                                      \\
            for (int l = 0; l < (L); l++) s8[k * (L) + l] = acc[k][l];         \\
        for (; j < p; j++) {                                                   \\
            d = 0.0 - lr * (a[j] * (s * x[j] + l2w[j] * theta[j]) - b[j] * gp); \\
            theta[j] += a[j] * d;                                              \\
            sb += b[j] * d;                                                    \\
            tail += xn[j] * theta[j];                                          \\
        }                                                                      \\
        *s2 = sb;                                                              \\
        return p >= 8 ? fgd_tree8_d(s8) + tail : tail;
    #define FGD_PRIMITIVES(SUF, ATTR, VD, LD, VF, LF)                          \\
    ATTR static double fgd_dot_d_##SUF(const double *x, const double *w, Py_ssize_t p) \\
    { FGD_DOT_BODY(double, VD, LD, 8) return fgd_tree8_d(s) + tail; }          \\
    ATTR static float fgd_dot_f_##SUF(const float *x, const float *w, Py_ssize_t p) \\
    { FGD_DOT_BODY(float, VF, LF, 16) return fgd_tree16_f(s) + tail; } \\
    ATTR static double fgd_gd_step_dot_d_##SUF(double *FGD_RESTRICT theta,    \\
        const double *FGD_RESTRICT x, const double *FGD_RESTRICT l2w, double s, double lr, \\
        const double *FGD_RESTRICT xn, Py_ssize_t p)                           \\
    { FGD_STEP_DOT_BODY(VD, LD) }                                              \\
    ATTR static double fgd_gd_pre_step_dot_d_##SUF(double *FGD_RESTRICT theta, \\
        const double *FGD_RESTRICT x, const double *FGD_RESTRICT l2w,          \\
        const double *FGD_RESTRICT a, const double *FGD_RESTRICT b, double s, double lr, \\
        double gp, const double *FGD_RESTRICT xn, Py_ssize_t p, double *s2)    \\
    { FGD_PRE_STEP_DOT_BODY(VD, LD) }                                          \\
    FGD_ELEMENTWISE(SUF, ATTR)
    #else
    #define FGD_DOT_BODY(T, NP)                                                \\
        T s[NP], tail = 0;                                                     \\
        Py_ssize_t j = 0;                                                      \\
        for (int k = 0; k < (NP); k++) s[k] = 0;                               \\
        for (; j + (NP) <= p; j += (NP))                                       \\
            for (int k = 0; k < (NP); k++) s[k] += x[j + k] * w[j + k];        \\
        for (; j < p; j++) tail += x[j] * w[j];
    #define FGD_PRIMITIVES(SUF, ATTR, VD, LD, VF, LF)                          \\
    static double fgd_dot_d_##SUF(const double *x, const double *w, Py_ssize_t p) \\
    { FGD_DOT_BODY(double, 8) return fgd_tree8_d(s) + tail; }                  \\
    static float fgd_dot_f_##SUF(const float *x, const float *w, Py_ssize_t p) \\
    { FGD_DOT_BODY(float, 16) return fgd_tree16_f(s) + tail; } \\
    static double fgd_gd_step_dot_d_##SUF(double *FGD_RESTRICT theta,         \\
        const double *FGD_RESTRICT x, const double *FGD_RESTRICT l2w, double s, double lr, \\
        const double *FGD_RESTRICT xn, Py_ssize_t p)                           \\
    {                                                                          \\
        double s8[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0;                     \\
        Py_ssize_t j = 0;                                                      \\
        for (; j + 8 <= p; j += 8)                                             \\
            for (int k = 0; k < 8; k++) {                                      \\
                theta[j + k] -= lr * (s * x[j + k] + l2w[j + k] * theta[j + k]); \\
                s8[k] += xn[j + k] * theta[j + k];                             \\
            }                                                                  \\
        for (; j < p; j++) {                                                   \\
            theta[j] -= lr * (s * x[j] + l2w[j] * theta[j]);                   \\
            tail += xn[j] * theta[j];                                          \\
        }                                                                      \\
        return fgd_tree8_d(s8) + tail;                                         \\
    }                                                                          \\
    static double fgd_gd_pre_step_dot_d_##SUF(double *FGD_RESTRICT theta,     \\
        const double *FGD_RESTRICT x, const double *FGD_RESTRICT l2w,          \\
        const double *FGD_RESTRICT a, const double *FGD_RESTRICT b, double s, double lr, \\
        double gp, const double *FGD_RESTRICT xn, Py_ssize_t p, double *s2)    \\
    {                                                                          \\
        double s8[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0, sb = 0, d;          \\
        Py_ssize_t j = 0;                                                      \\
        for (; j + 8 <= p; j += 8)                                             \\
            for (int k = 0; k < 8; k++) {                                      \\
                d = 0.0 - lr * (a[j + k] * (s * x[j + k] + l2w[j + k] * theta[j + k]) \\
                                - b[j + k] * gp);                              \\
                theta[j + k] += a[j + k] * d;                                  \\
                sb += b[j + k] * d;                                            \\
                s8[k] += xn[j + k] * theta[j + k];                             \\
            }                                                                  \\
        for (; j < p; j++) {                                                   \\
            d = 0.0 - lr * (a[j] * (s * x[j] + l2w[j] * theta[j]) - b[j] * gp); \\
            theta[j] += a[j] * d;                                              \\
            sb += b[j] * d;                                                    \\
            tail += xn[j] * theta[j];                                          \\
        }                                                                      \\
        *s2 = sb;                                                              \\
        return p >= 8 ? fgd_tree8_d(s8) + tail : tail;                         \\
    }                                                                          \\
    FGD_ELEMENTWISE(SUF, ATTR)
    #endif

    /* One coordinate of the float32 preconditioned gd step (see
       FGD_PRE_STEP_DOT_BODY), products in float32, sums in float64, each
       value rounded to float32 where the general path stores it: leaves the
       move d_j in g and the new theta_j in t. */
    #define FGD_PRE_STEP_F(J)                                                  \\
        g = (float)((double)(s * x[J]) + (double)(l2w[J] * theta[J]));         \\
        g = (float)(a[J] * (double)g - b[J] * gp);                             \\
        g = 0.0f - lr * g;                                                     \\
        t = (float)((double)theta[J] + a[J] * (double)g);                      \\
        theta[J] = t;
    /* Elementwise loops (the compiler vectorizes them; any width gives the
       same bits).  axpy2: acc += sa * xa + sb * xb, two rows per sweep over
       the accumulator.  acc64: acc += s * x into a float64 accumulator (the
       product in the data dtype), one row of a mini-batch.  gd_step: the gradient of one row, g_j = s x_j +
       l2w_j theta_j (float64 sum of data-dtype products, rounded to the data
       dtype), and theta_j -= lr g_j.  pre_step_dot_f: the float32 sibling of
       FGD_PRE_STEP_DOT_BODY, the same partial sums as the float32 dot product
       (16 of them) for the next prediction; the compiler vectorizes the
       16 coordinates of a block and keeps the sum of b_j d_j in order. */
    #define FGD_ELEMENTWISE(SUF, ATTR)                                         \\
    ATTR static void fgd_axpy2_d_##SUF(double *FGD_RESTRICT acc, double sa,    \\
        const double *FGD_RESTRICT xa, double sb, const double *FGD_RESTRICT xb, Py_ssize_t p) \\
    { for (Py_ssize_t j = 0; j < p; j++) acc[j] += sa * xa[j] + sb * xb[j]; } \\
    ATTR static void fgd_axpy2_f_##SUF(float *FGD_RESTRICT acc, float sa,      \\
        const float *FGD_RESTRICT xa, float sb, const float *FGD_RESTRICT xb, Py_ssize_t p) \\
    { for (Py_ssize_t j = 0; j < p; j++) acc[j] += sa * xa[j] + sb * xb[j]; } \\
    ATTR static void fgd_acc64_d_##SUF(double *FGD_RESTRICT acc, double s,     \\
        const double *FGD_RESTRICT x, Py_ssize_t p)                            \\
    { for (Py_ssize_t j = 0; j < p; j++) acc[j] += s * x[j]; }                 \\
    ATTR static void fgd_acc64_f_##SUF(double *FGD_RESTRICT acc, float s,      \\
        const float *FGD_RESTRICT x, Py_ssize_t p)                             \\
    { for (Py_ssize_t j = 0; j < p; j++) acc[j] += (double)(s * x[j]); }       \\
    ATTR static void fgd_gd_step_d_##SUF(double *FGD_RESTRICT theta,          \\
        const double *FGD_RESTRICT x, const double *FGD_RESTRICT l2w, double s, double lr, \\
        Py_ssize_t p)                                                          \\
    { for (Py_ssize_t j = 0; j < p; j++)                                       \\
          theta[j] -= lr * (s * x[j] + l2w[j] * theta[j]); }                   \\
    ATTR static void fgd_gd_step_f_##SUF(float *FGD_RESTRICT theta,           \\
        const float *FGD_RESTRICT x, const float *FGD_RESTRICT l2w, float s, float lr, \\
        Py_ssize_t p)                                                          \\
    { for (Py_ssize_t j = 0; j < p; j++)                                       \\
          theta[j] -= lr * (float)((double)(s * x[j]) + (double)(l2w[j] * theta[j])); } \\
    ATTR static float fgd_gd_pre_step_dot_f_##SUF(float *FGD_RESTRICT theta,  \\
        const float *FGD_RESTRICT x, const float *FGD_RESTRICT l2w,            \\
        const double *FGD_RESTRICT a, const double *FGD_RESTRICT b, float s, float lr, \\
        double gp, const float *FGD_RESTRICT xn, Py_ssize_t p, double *s2)     \\
    {                                                                          \\
        float s16[16] = {0}, tail = 0, g, t;                                   \\
        double sb = 0, bd[16];                                                 \\
        Py_ssize_t j = 0;                                                      \\
        for (; j + 16 <= p; j += 16) {                                         \\
            for (int k = 0; k < 16; k++) {                                     \\
                FGD_PRE_STEP_F(j + k)                                          \\
                bd[k] = b[j + k] * (double)g;                                  \\
                s16[k] += xn[j + k] * t;                                       \\
            }                                                                  \\
            for (int k = 0; k < 16; k++) sb += bd[k];                          \\
        }                                                                      \\
        for (; j < p; j++) {                                                   \\
            FGD_PRE_STEP_F(j)                                                  \\
            sb += b[j] * (double)g;                                            \\
            tail += xn[j] * t;                                                 \\
        }                                                                      \\
        *s2 = sb;                                                              \\
        return p >= 8 ? fgd_tree16_f(s16) + tail : tail;                       \\
    }

    FGD_PRIMITIVES(base, , fgd_v2d, 2, fgd_v4f, 4)

    static double (*fgd_dot_d)(const double *, const double *, Py_ssize_t) = fgd_dot_d_base;
    static float (*fgd_dot_f)(const float *, const float *, Py_ssize_t) = fgd_dot_f_base;
    static void (*fgd_axpy2_d)(double *, double, const double *, double, const double *,
                               Py_ssize_t) = fgd_axpy2_d_base;
    static void (*fgd_axpy2_f)(float *, float, const float *, float, const float *,
                               Py_ssize_t) = fgd_axpy2_f_base;
    static void (*fgd_acc64_d)(double *, double, const double *, Py_ssize_t) = fgd_acc64_d_base;
    static void (*fgd_acc64_f)(double *, float, const float *, Py_ssize_t) = fgd_acc64_f_base;
    static void (*fgd_gd_step_d)(double *, const double *, const double *, double, double,
                                 Py_ssize_t) = fgd_gd_step_d_base;
    static void (*fgd_gd_step_f)(float *, const float *, const float *, float, float,
                                 Py_ssize_t) = fgd_gd_step_f_base;
    static double (*fgd_gd_step_dot_d)(double *, const double *, const double *, double, double,
                                       const double *, Py_ssize_t) = fgd_gd_step_dot_d_base;
    static double (*fgd_gd_pre_step_dot_d)(double *, const double *, const double *,
                                           const double *, const double *, double, double,
                                           double, const double *, Py_ssize_t,
                                           double *) = fgd_gd_pre_step_dot_d_base;
    static float (*fgd_gd_pre_step_dot_f)(float *, const float *, const float *,
                                          const double *, const double *, float, float, double,
                                          const float *, Py_ssize_t,
                                          double *) = fgd_gd_pre_step_dot_f_base;

    /* One Adam step of float64 parameters (the update rule's float64 loop,
       see _update): every operation elementwise and correctly rounded, so
       the AVX2 variant (four coordinates at a time, no FMA) gives the same
       bits as the scalar loop. */
    static void fgd_adam_d_base(double *FGD_RESTRICT theta, double *FGD_RESTRICT s0,
                                double *FGD_RESTRICT s1, const double *FGD_RESTRICT g,
                                Py_ssize_t j0, Py_ssize_t m, double b1, double b2, double lr,
                                double bc1, double bc2, double eps)
    {
        for (Py_ssize_t j = j0; j < m; j++) {
            s0[j] = s0[j] * b1;
            s0[j] = s0[j] + (1.0 - b1) * g[j];
            s1[j] = s1[j] * b2;
            s1[j] = s1[j] + (1.0 - b2) * (g[j] * g[j]);
            theta[j] = theta[j] - lr * (s0[j] / bc1) / (sqrt(s1[j] / bc2) + eps);
        }
    }
    static void (*fgd_adam_d)(double *, double *, double *, const double *, Py_ssize_t,
                              Py_ssize_t, double, double, double, double, double,
                              double) = fgd_adam_d_base;
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    #include <immintrin.h>
    __attribute__((target("avx2")))
    static void fgd_adam_d_avx2(double *FGD_RESTRICT theta, double *FGD_RESTRICT s0,
                                double *FGD_RESTRICT s1, const double *FGD_RESTRICT g,
                                Py_ssize_t j0, Py_ssize_t m, double b1, double b2, double lr,
                                double bc1, double bc2, double eps)
    {
        __m256d vb1 = _mm256_set1_pd(b1), vc1 = _mm256_set1_pd(1.0 - b1);
        __m256d vb2 = _mm256_set1_pd(b2), vc2 = _mm256_set1_pd(1.0 - b2);
        __m256d vlr = _mm256_set1_pd(lr), vbc1 = _mm256_set1_pd(bc1);
        __m256d vbc2 = _mm256_set1_pd(bc2), veps = _mm256_set1_pd(eps), a, b, gg, t;
        Py_ssize_t j = j0;
        for (; j + 4 <= m; j += 4) {
            gg = _mm256_loadu_pd(g + j);
            a = _mm256_mul_pd(_mm256_loadu_pd(s0 + j), vb1);
            a = _mm256_add_pd(a, _mm256_mul_pd(vc1, gg));
            _mm256_storeu_pd(s0 + j, a);
            b = _mm256_mul_pd(_mm256_loadu_pd(s1 + j), vb2);
            b = _mm256_add_pd(b, _mm256_mul_pd(vc2, _mm256_mul_pd(gg, gg)));
            _mm256_storeu_pd(s1 + j, b);
            t = _mm256_div_pd(_mm256_mul_pd(vlr, _mm256_div_pd(a, vbc1)),
                              _mm256_add_pd(_mm256_sqrt_pd(_mm256_div_pd(b, vbc2)), veps));
            _mm256_storeu_pd(theta + j, _mm256_sub_pd(_mm256_loadu_pd(theta + j), t));
        }
        fgd_adam_d_base(theta, s0, s1, g, j, m, b1, b2, lr, bc1, bc2, eps);
    }
    #endif
    static void fgd_select_stats(void);  /* the moments and value_range kernels, below */
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    FGD_PRIMITIVES(avx2, __attribute__((target("avx2"))), fgd_v4d, 4, fgd_v8f, 8)
    static int fgd_select_simd(void)
    {
        __builtin_cpu_init();
        fgd_select_stats();
        if (!__builtin_cpu_supports("avx2")) return 0;
        fgd_dot_d = fgd_dot_d_avx2;
        fgd_dot_f = fgd_dot_f_avx2;
        fgd_axpy2_d = fgd_axpy2_d_avx2;
        fgd_axpy2_f = fgd_axpy2_f_avx2;
        fgd_gd_step_d = fgd_gd_step_d_avx2;
        fgd_gd_step_f = fgd_gd_step_f_avx2;
        fgd_adam_d = fgd_adam_d_avx2;
        fgd_acc64_d = fgd_acc64_d_avx2;
        fgd_acc64_f = fgd_acc64_f_avx2;
        fgd_gd_step_dot_d = fgd_gd_step_dot_d_avx2;
        fgd_gd_pre_step_dot_d = fgd_gd_pre_step_dot_d_avx2;
        fgd_gd_pre_step_dot_f = fgd_gd_pre_step_dot_f_avx2;
        return 1;
    }
    #else
    static int fgd_select_simd(void) { fgd_select_stats(); return 0; }
    #endif

    #include <math.h>
    /* Moments of polynomial least squares over rows lo..hi-1, added to buf:
       buf[m] = sum u**m (m <= 2p), buf[2p+1+j] = sum y u**j (j <= p),
       buf[3p+2] = sum y**2, with u = (x - sh) * xs formed in the data dtype
       and its running powers (pw *= u) in float64; buf[0] = hi - lo.
       With sample weights w (non-NULL; the W variants, chosen per call) each
       row's terms are multiplied by w_i in float64: buf[0] = sum w,
       buf[m] = sum w u**m (the running power starts at w u), buf[2p+1+j] =
       sum y (w u**j) and buf[3p+2] = sum y (w y): the weighted statistics
       of lsq_stats, in the same lanes and order.

       Eight lanes: row lo + i is summed into lane i mod 8, each lane in
       increasing row order, and the lanes are combined as fgd_tree8_d.  The
       adds of consecutive rows then do not wait on one another, and the
       sums do not depend on the SIMD width: a variant with L doubles per
       vector (SSE2 2, AVX2 4, AVX-512 8) sweeps a block of FGD_MBLOCK rows
       8 / L times, lanes k..k+L-1 per sweep (the other rows of the block
       are read from L1), so every variant computes the same bits.  No FMA
       contraction (GCC contracts across statements, and AVX-512 implies FMA
       for it: fp-contract=off on these functions; Clang contracts only
       within an expression, and the products are separate statements).
       Degrees 1..4 have compile-time specialisations with every sum in a
       register; any degree (FGD_MOM_GENERIC) keeps a block's u, y and
       running power in L1 and sums 4 powers per sweep, with its lanes in
       scratch (8 (3p + 3) doubles): the same bits as the specialisations.  SHIFT
       (compile time) is 0 for sh == 0: x - 0 is x, so the subtraction is
       left out without changing any bit.  W = 0 is the unweighted loop,
       unchanged (w is never read). */
    #define FGD_MBLOCK 512
    /* Rows n8..hi-1 (the last, partial group of 8) into their lanes, then
       the lanes into buf.  Alone, over every row, it is the scalar kernel. */
    #define FGD_MOM_TAIL(T, P, SHIFT, W)                                       \\
        for (i = n8; i < hi; i++) {                                            \\
            double ui = (double)(T)((SHIFT ? x[i] - sh : x[i]) * xs),          \\
                   yi = (double)y[i], yw = yi, pi = ui, ti;                    \\
            l = (int)((i - lo) & 7);                                           \\
            if (W) {                                                           \\
                double wi = (double)w[i];                                      \\
                lane[0][l] += wi;                                              \\
                yw = wi * yi;                                                  \\
                pi = wi * ui;                                                  \\
            }                                                                  \\
            lane[2 * (P) + 1][l] += yw;                                        \\
            for (m = 1; m <= 2 * (P); m++) {                                   \\
                if (m > 1) pi = pi * ui;                                       \\
                lane[m][l] += pi;                                              \\
                if (m <= (P)) { ti = yi * pi; lane[2 * (P) + 1 + m][l] += ti; } \\
            }                                                                  \\
            ti = yi * yw;                                                      \\
            lane[3 * (P) + 2][l] += ti;                                        \\
        }                                                                      \\
        buf[0] += W ? fgd_tree8_d(lane[0]) : (double)(hi - lo);                \\
        for (m = 1; m <= 3 * (P) + 2; m++) buf[m] += fgd_tree8_d(lane[m]);
    #if defined(__GNUC__) || defined(__clang__)
    typedef double fgd_v8d __attribute__((vector_size(64)));
    typedef float fgd_v2f __attribute__((vector_size(8)));
    #if defined(__clang__)
    #define FGD_NOCONTRACT
    #define FGD_NOCONTRACT_BODY _Pragma("clang fp contract(off)")
    #else
    #define FGD_NOCONTRACT __attribute__((optimize("fp-contract=off")))
    #define FGD_NOCONTRACT_BODY
    #endif
    /* Degree P (a constant): V holds L doubles, TV L values of the data
       type T. */
    #define FGD_MOM_BODY(T, TV, V, L, CVT, P, SHIFT, W)                        \\
        V am[2 * (P) + 1], ay[(P) + 1], a2, aw, u, yv, yw, pw, t, wv;          \\
        TV xv, yt, wt, shv, xsv;                                               \\
        double lane[3 * (P) + 3][8];                                           \\
        Py_ssize_t i, b, be, n8 = lo + ((hi - lo) / 8) * 8;                    \\
        int m, l, k;                                                           \\
        (void)scratch;                                                         \\
        for (l = 0; l < (L); l++) { shv[l] = sh; xsv[l] = xs; }                \\
        memset(lane, 0, sizeof(lane));                                         \\
        for (b = lo; b < n8; b = be) {                                         \\
            be = n8 - b > FGD_MBLOCK ? b + FGD_MBLOCK : n8;                    \\
            for (k = 0; k < 8; k += (L)) {                                     \\
                for (m = 1; m <= 2 * (P); m++) memcpy(&am[m], &lane[m][k], sizeof(V)); \\
                for (m = 0; m <= (P); m++)                                     \\
                    memcpy(&ay[m], &lane[2 * (P) + 1 + m][k], sizeof(V));      \\
                memcpy(&a2, &lane[3 * (P) + 2][k], sizeof(V));                 \\
                if (W) memcpy(&aw, &lane[0][k], sizeof(V));                    \\
                for (i = b + k; i < be; i += 8) {                              \\
                    memcpy(&xv, x + i, sizeof(TV));                            \\
                    memcpy(&yt, y + i, sizeof(TV));                            \\
                    if (SHIFT) xv = xv - shv;                                  \\
                    xv = xv * xsv;                                             \\
                    u = CVT(xv, V);                                            \\
                    yv = CVT(yt, V);                                           \\
                    yw = yv;                                                   \\
                    pw = u;                                                    \\
                    if (W) {                                                   \\
                        memcpy(&wt, w + i, sizeof(TV));                        \\
                        wv = CVT(wt, V);                                       \\
                        aw += wv;                                              \\
                        yw = wv * yv;                                          \\
                        pw = wv * u;                                           \\
                    }                                                          \\
                    ay[0] += yw;                                               \\
                    for (m = 1; m <= 2 * (P); m++) {                           \\
                        if (m > 1) pw = pw * u;                                \\
                        am[m] += pw;                                           \\
                        if (m <= (P)) { t = yv * pw; ay[m] += t; }             \\
                    }                                                          \\
                    t = yv * yw;                                               \\
                    a2 += t;                                                   \\
                }                                                              \\
                for (m = 1; m <= 2 * (P); m++) memcpy(&lane[m][k], &am[m], sizeof(V)); \\
                for (m = 0; m <= (P); m++)                                     \\
                    memcpy(&lane[2 * (P) + 1 + m][k], &ay[m], sizeof(V));      \\
                memcpy(&lane[3 * (P) + 2][k], &a2, sizeof(V));                 \\
                if (W) memcpy(&lane[0][k], &aw, sizeof(V));                    \\
            }                                                                  \\
        }                                                                      \\
        FGD_MOM_TAIL(T, P, SHIFT, W)
    /* Any degree.  A block's first sweep reads x and y, keeps u and y (as
       doubles) in ub, yb and sums y, y**2 and powers 1..4; each further
       sweep sums 4 more powers from L1, the running power kept in pb.  A
       sweep's powers past 2p are computed and dropped, its y u**j past p
       too (am / ay NULL: not stored). */
    #define FGD_MOM_TILE(V, WY)                                                \\
        for (j = k; j < ne; j += 8) {                                          \\
            memcpy(&u, ub + j, sizeof(V));                                     \\
            memcpy(&q, pb + j, sizeof(V));                                     \\
            if (WY) memcpy(&yv, yb + j, sizeof(V));                            \\
            q = q * u; a0 += q; if (WY) { t = yv * q; c0 += t; }               \\
            q = q * u; a1 += q; if (WY) { t = yv * q; c1 += t; }               \\
            q = q * u; a2 += q; if (WY) { t = yv * q; c2 += t; }               \\
            q = q * u; a3 += q; if (WY) { t = yv * q; c3 += t; }               \\
            memcpy(pb + j, &q, sizeof(V));                                     \\
        }
    #define FGD_MOM_SUMS(m, P)                                                 \\
        for (r = 0; r < 4; r++) {                                              \\
            am[r] = (m) + r <= 2 * (P) ? lane[(m) + r] : NULL;                 \\
            ay[r] = (m) + r <= (P) ? lane[2 * (P) + 1 + (m) + r] : NULL;       \\
        }
    #define FGD_MOM_LOAD4(V, k)                                                \\
        memcpy(&a0, (am[0] ? am[0] : zero) + k, sizeof(V));                    \\
        memcpy(&a1, (am[1] ? am[1] : zero) + k, sizeof(V));                    \\
        memcpy(&a2, (am[2] ? am[2] : zero) + k, sizeof(V));                    \\
        memcpy(&a3, (am[3] ? am[3] : zero) + k, sizeof(V));                    \\
        memcpy(&c0, (ay[0] ? ay[0] : zero) + k, sizeof(V));                    \\
        memcpy(&c1, (ay[1] ? ay[1] : zero) + k, sizeof(V));                    \\
        memcpy(&c2, (ay[2] ? ay[2] : zero) + k, sizeof(V));                    \\
        memcpy(&c3, (ay[3] ? ay[3] : zero) + k, sizeof(V));
    #define FGD_MOM_STORE4(V, k)                                               \\
        if (am[0]) memcpy(am[0] + k, &a0, sizeof(V));                          \\
        if (am[1]) memcpy(am[1] + k, &a1, sizeof(V));                          \\
        if (am[2]) memcpy(am[2] + k, &a2, sizeof(V));                          \\
        if (am[3]) memcpy(am[3] + k, &a3, sizeof(V));                          \\
        if (ay[0]) memcpy(ay[0] + k, &c0, sizeof(V));                          \\
        if (ay[1]) memcpy(ay[1] + k, &c1, sizeof(V));                          \\
        if (ay[2]) memcpy(ay[2] + k, &c2, sizeof(V));                          \\
        if (ay[3]) memcpy(ay[3] + k, &c3, sizeof(V));
    #define FGD_MOM_GENERIC(T, TV, V, L, CVT, P, SHIFT, W)                     \\
        double ub[FGD_MBLOCK], yb[FGD_MBLOCK], pb[FGD_MBLOCK];                 \\
        double zero[8] = {0, 0, 0, 0, 0, 0, 0, 0}, *am[4], *ay[4];             \\
        double (*lane)[8] = (double (*)[8])scratch;                            \\
        V a0, a1, a2, a3, c0, c1, c2, c3, e0, e2, ew, q, u, t, yv, yw, wv;     \\
        TV xv, yt, wt, shv, xsv;                                               \\
        Py_ssize_t i, j, b, ne, n8 = lo + ((hi - lo) / 8) * 8;                 \\
        int m, l, k, r;                                                        \\
        for (l = 0; l < (L); l++) { shv[l] = sh; xsv[l] = xs; }                \\
        memset(scratch, 0, (size_t)(3 * (P) + 3) * 8 * sizeof(double));        \\
        for (b = lo; b < n8; b += ne) {                                        \\
            ne = n8 - b > FGD_MBLOCK ? FGD_MBLOCK : n8 - b;                    \\
            FGD_MOM_SUMS(1, P)                                                 \\
            for (k = 0; k < 8; k += (L)) {                                     \\
                FGD_MOM_LOAD4(V, k)                                            \\
                memcpy(&e0, &lane[2 * (P) + 1][k], sizeof(V));                 \\
                memcpy(&e2, &lane[3 * (P) + 2][k], sizeof(V));                 \\
                if (W) memcpy(&ew, &lane[0][k], sizeof(V));                    \\
                for (j = k; j < ne; j += 8) {                                  \\
                    memcpy(&xv, x + b + j, sizeof(TV));                        \\
                    memcpy(&yt, y + b + j, sizeof(TV));                        \\
                    if (SHIFT) xv = xv - shv;                                  \\
                    xv = xv * xsv;                                             \\
                    u = CVT(xv, V);                                            \\
                    yv = CVT(yt, V);                                           \\
                    memcpy(ub + j, &u, sizeof(V));                             \\
                    memcpy(yb + j, &yv, sizeof(V));                            \\
                    yw = yv;                                                   \\
                    q = u;                                                     \\
                    if (W) {                                                   \\
                        memcpy(&wt, w + b + j, sizeof(TV));                    \\
                        wv = CVT(wt, V);                                       \\
                        ew += wv;                                              \\
                        yw = wv * yv;                                          \\
                        q = wv * u;                                            \\
                    }                                                          \\
                    e0 += yw; t = yv * yw; e2 += t;                            \\
                    a0 += q; t = yv * q; c0 += t;                              \\
                    q = q * u; a1 += q; t = yv * q; c1 += t;                   \\
                    q = q * u; a2 += q; t = yv * q; c2 += t;                   \\
                    q = q * u; a3 += q; t = yv * q; c3 += t;                   \\
                    memcpy(pb + j, &q, sizeof(V));                             \\
                }                                                              \\
                FGD_MOM_STORE4(V, k)                                           \\
                memcpy(&lane[2 * (P) + 1][k], &e0, sizeof(V));                 \\
                memcpy(&lane[3 * (P) + 2][k], &e2, sizeof(V));                 \\
                if (W) memcpy(&lane[0][k], &ew, sizeof(V));                    \\
            }                                                                  \\
            for (m = 5; m <= 2 * (P); m += 4) {                                \\
                FGD_MOM_SUMS(m, P)                                             \\
                for (k = 0; k < 8; k += (L)) {                                 \\
                    FGD_MOM_LOAD4(V, k)                                        \\
                    if (m <= (P)) { FGD_MOM_TILE(V, 1) }                       \\
                    else { FGD_MOM_TILE(V, 0) }                                \\
                    FGD_MOM_STORE4(V, k)                                       \\
                }                                                              \\
            }                                                                  \\
        }                                                                      \\
        FGD_MOM_TAIL(T, P, SHIFT, W)
    #define FGD_MOM_FN(FN, ATTR, T, TV, V, L, CVT, P, SHIFT, W)                \\
    ATTR FGD_NOCONTRACT static __attribute__((noinline)) void FN(const T *x,   \\
        const T *y, const T *w, Py_ssize_t lo, Py_ssize_t hi, T sh, T xs, int p, \\
        double *buf, double *scratch)                                          \\
    { FGD_NOCONTRACT_BODY FGD_MOM_BODY(T, TV, V, L, CVT, P, SHIFT, W) }
    #define FGD_MOM_GFN(FN, ATTR, T, TV, V, L, CVT, SHIFT, W)                  \\
    ATTR FGD_NOCONTRACT static __attribute__((noinline)) void FN(const T *x,   \\
        const T *y, const T *w, Py_ssize_t lo, Py_ssize_t hi, T sh, T xs, int p, \\
        double *buf, double *scratch)                                          \\
    { FGD_NOCONTRACT_BODY FGD_MOM_GENERIC(T, TV, V, L, CVT, p, SHIFT, W) }
    #define FGD_MOM_CASES(N, S)                                                \\
        switch (p) {                                                           \\
        case 1: N##_1##S(x, y, w, lo, hi, sh, xs, p, buf, scratch); return;    \\
        case 2: N##_2##S(x, y, w, lo, hi, sh, xs, p, buf, scratch); return;    \\
        case 3: N##_3##S(x, y, w, lo, hi, sh, xs, p, buf, scratch); return;    \\
        case 4: N##_4##S(x, y, w, lo, hi, sh, xs, p, buf, scratch); return;    \\
        default: N##_g##S(x, y, w, lo, hi, sh, xs, p, buf, scratch); return;   \\
        }
    /* Suffix: SHIFT, or w then SHIFT for the weighted variants. */
    #define FGD_MOMENTS(N, ATTR, T, TV, V, L, CVT)                             \\
    FGD_MOM_FN(N##_10, ATTR, T, TV, V, L, CVT, 1, 0, 0)                        \\
    FGD_MOM_FN(N##_11, ATTR, T, TV, V, L, CVT, 1, 1, 0)                        \\
    FGD_MOM_FN(N##_20, ATTR, T, TV, V, L, CVT, 2, 0, 0)                        \\
    FGD_MOM_FN(N##_21, ATTR, T, TV, V, L, CVT, 2, 1, 0)                        \\
    FGD_MOM_FN(N##_30, ATTR, T, TV, V, L, CVT, 3, 0, 0)                        \\
    FGD_MOM_FN(N##_31, ATTR, T, TV, V, L, CVT, 3, 1, 0)                        \\
    FGD_MOM_FN(N##_40, ATTR, T, TV, V, L, CVT, 4, 0, 0)                        \\
    FGD_MOM_FN(N##_41, ATTR, T, TV, V, L, CVT, 4, 1, 0)                        \\
    FGD_MOM_GFN(N##_g0, ATTR, T, TV, V, L, CVT, 0, 0)                          \\
    FGD_MOM_GFN(N##_g1, ATTR, T, TV, V, L, CVT, 1, 0)                          \\
    FGD_MOM_FN(N##_1w0, ATTR, T, TV, V, L, CVT, 1, 0, 1)                       \\
    FGD_MOM_FN(N##_1w1, ATTR, T, TV, V, L, CVT, 1, 1, 1)                       \\
    FGD_MOM_FN(N##_2w0, ATTR, T, TV, V, L, CVT, 2, 0, 1)                       \\
    FGD_MOM_FN(N##_2w1, ATTR, T, TV, V, L, CVT, 2, 1, 1)                       \\
    FGD_MOM_FN(N##_3w0, ATTR, T, TV, V, L, CVT, 3, 0, 1)                       \\
    FGD_MOM_FN(N##_3w1, ATTR, T, TV, V, L, CVT, 3, 1, 1)                       \\
    FGD_MOM_FN(N##_4w0, ATTR, T, TV, V, L, CVT, 4, 0, 1)                       \\
    FGD_MOM_FN(N##_4w1, ATTR, T, TV, V, L, CVT, 4, 1, 1)                       \\
    FGD_MOM_GFN(N##_gw0, ATTR, T, TV, V, L, CVT, 0, 1)                         \\
    FGD_MOM_GFN(N##_gw1, ATTR, T, TV, V, L, CVT, 1, 1)                         \\
    static void N(const T *x, const T *y, const T *w, Py_ssize_t lo, Py_ssize_t hi, T sh, \\
                  T xs, int p, double *buf, double *scratch)                   \\
    {                                                                          \\
        if (w) {                                                               \\
            if (sh == 0) FGD_MOM_CASES(N, w0)                                  \\
            FGD_MOM_CASES(N, w1)                                               \\
        }                                                                      \\
        if (sh == 0) FGD_MOM_CASES(N, 0)                                       \\
        FGD_MOM_CASES(N, 1)                                                    \\
    }
    /* Data dtype -> float64 vectors (GCC 12 splits the wider conversions
       in halves: the AVX2 / AVX-512 float variants use the intrinsic). */
    #define FGD_CVT(v, V) __builtin_convertvector(v, V)
    FGD_MOMENTS(fgd_moments_d_base, , double, fgd_v2d, fgd_v2d, 2, FGD_CVT)
    FGD_MOMENTS(fgd_moments_f_base, , float, fgd_v2f, fgd_v2d, 2, FGD_CVT)
    #else
    /* Other compilers: the same lanes, row by row. */
    #define FGD_MOMENTS_SCALAR(N, T)                                           \\
    static void N(const T *x, const T *y, const T *w, Py_ssize_t lo, Py_ssize_t hi, T sh, \\
                  T xs, int p, double *buf, double *scratch)                   \\
    {                                                                          \\
        double (*lane)[8] = (double (*)[8])scratch;                            \\
        Py_ssize_t i, n8 = lo;                                                 \\
        int m, l;                                                              \\
        memset(scratch, 0, (size_t)(3 * p + 3) * 8 * sizeof(double));          \\
        if (w) { FGD_MOM_TAIL(T, p, 1, 1) }                                    \\
        else { FGD_MOM_TAIL(T, p, 1, 0) }                                      \\
    }
    FGD_MOMENTS_SCALAR(fgd_moments_d_base, double)
    FGD_MOMENTS_SCALAR(fgd_moments_f_base, float)
    #endif

    /* value_range over a[lo:hi]: out = [min, max, 1 if a NaN was seen else
       0].  The min and max skip NaN (a NaN never compares less or greater;
       minpd / maxpd keep their second operand, the running value, when one
       is NaN), the flag catches it (an unordered compare, OR-ed).  One read
       of the data, two running vectors of each kind. */
    #define FGD_RANGE_SCALAR(T)                                                \\
        for (; i < hi; i++) {                                                  \\
            T v = a[i];                                                        \\
            if (v < mn) mn = v;                                                \\
            if (v > mx) mx = v;                                                \\
            if (v != v) nan = 1;                                               \\
        }                                                                      \\
        out[0] = (double)mn; out[1] = (double)mx; out[2] = nan;
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    #include <immintrin.h>
    #define FGD_RANGE_FN(NAME, ATTR, T, V, W, LOAD, MIN, MAX, UNORD, OR, SET1, STOREU) \\
    ATTR static void NAME(const T *a, Py_ssize_t lo, Py_ssize_t hi, double *out) \\
    {                                                                          \\
        V mn0 = SET1((T)INFINITY), mn1 = mn0, mx0 = SET1(-(T)INFINITY), mx1 = mx0; \\
        V nn0 = SET1(0), nn1 = nn0, v0, v1;                                    \\
        T mn = (T)INFINITY, mx = -(T)INFINITY, s[W];                           \\
        double nan = 0;                                                        \\
        Py_ssize_t i = lo;                                                     \\
        int l;                                                                 \\
        for (; i + 2 * (W) <= hi; i += 2 * (W)) {                              \\
            v0 = LOAD(a + i);                                                  \\
            v1 = LOAD(a + i + (W));                                            \\
            mn0 = MIN(v0, mn0); mn1 = MIN(v1, mn1);                            \\
            mx0 = MAX(v0, mx0); mx1 = MAX(v1, mx1);                            \\
            nn0 = OR(nn0, UNORD(v0)); nn1 = OR(nn1, UNORD(v1));                \\
        }                                                                      \\
        STOREU(s, MIN(mn0, mn1));                                              \\
        for (l = 0; l < (W); l++) if (s[l] < mn) mn = s[l];                    \\
        STOREU(s, MAX(mx0, mx1));                                              \\
        for (l = 0; l < (W); l++) if (s[l] > mx) mx = s[l];                    \\
        STOREU(s, OR(nn0, nn1));                                               \\
        for (l = 0; l < (W); l++) if (s[l] != 0) nan = 1;                      \\
        FGD_RANGE_SCALAR(T)                                                    \\
    }
    #define FGD_UNORD_PD(v) _mm_cmpunord_pd(v, v)
    #define FGD_UNORD_PS(v) _mm_cmpunord_ps(v, v)
    #define FGD_UNORD256_PD(v) _mm256_cmp_pd(v, v, _CMP_UNORD_Q)
    #define FGD_UNORD256_PS(v) _mm256_cmp_ps(v, v, _CMP_UNORD_Q)
    FGD_RANGE_FN(fgd_range_d_base, , double, __m128d, 2, _mm_loadu_pd, _mm_min_pd, _mm_max_pd,
                 FGD_UNORD_PD, _mm_or_pd, _mm_set1_pd, _mm_storeu_pd)
    FGD_RANGE_FN(fgd_range_f_base, , float, __m128, 4, _mm_loadu_ps, _mm_min_ps, _mm_max_ps,
                 FGD_UNORD_PS, _mm_or_ps, _mm_set1_ps, _mm_storeu_ps)
    #else
    #define FGD_RANGE_GENERIC(NAME, T)                                         \\
    static void NAME(const T *a, Py_ssize_t lo, Py_ssize_t hi, double *out)    \\
    {                                                                          \\
        T mn = (T)INFINITY, mx = -(T)INFINITY;                                 \\
        double nan = 0;                                                        \\
        Py_ssize_t i = lo;                                                     \\
        FGD_RANGE_SCALAR(T)                                                    \\
    }
    FGD_RANGE_GENERIC(fgd_range_d_base, double)
    FGD_RANGE_GENERIC(fgd_range_f_base, float)
    #endif

    /* The moments and value_range kernels in use: chosen at import like the
       row primitives (fgd_select_simd), AVX-512 for the moments when the CPU
       has it; every variant gives the same bits. */
    static void (*fgd_moments_d)(const double *, const double *, const double *, Py_ssize_t,
                                 Py_ssize_t, double, double, int, double *,
                                 double *) = fgd_moments_d_base;
    static void (*fgd_moments_f)(const float *, const float *, const float *, Py_ssize_t,
                                 Py_ssize_t, float, float, int, double *,
                                 double *) = fgd_moments_f_base;
    static void (*fgd_range_d)(const double *, Py_ssize_t, Py_ssize_t, double *) = fgd_range_d_base;
    static void (*fgd_range_f)(const float *, Py_ssize_t, Py_ssize_t, double *) = fgd_range_f_base;
    static int fgd_stats_level = 0;
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    #define FGD_CVT_AVX2(v, V) ((V)_mm256_cvtps_pd((__m128)(v)))
    #define FGD_CVT_AVX512(v, V) ((V)_mm512_cvtps_pd((__m256)(v)))
    FGD_MOMENTS(fgd_moments_d_avx2, __attribute__((target("avx2"))), double, fgd_v4d, fgd_v4d, 4,
                FGD_CVT)
    FGD_MOMENTS(fgd_moments_f_avx2, __attribute__((target("avx2"))), float, fgd_v4f, fgd_v4d, 4,
                FGD_CVT_AVX2)
    FGD_MOMENTS(fgd_moments_d_avx512, __attribute__((target("avx512f"))), double, fgd_v8d,
                fgd_v8d, 8, FGD_CVT)
    FGD_MOMENTS(fgd_moments_f_avx512, __attribute__((target("avx512f"))), float, fgd_v8f,
                fgd_v8d, 8, FGD_CVT_AVX512)
    FGD_RANGE_FN(fgd_range_d_avx2, __attribute__((target("avx2"))), double, __m256d, 4,
                 _mm256_loadu_pd, _mm256_min_pd, _mm256_max_pd, FGD_UNORD256_PD, _mm256_or_pd,
                 _mm256_set1_pd, _mm256_storeu_pd)
    FGD_RANGE_FN(fgd_range_f_avx2, __attribute__((target("avx2"))), float, __m256, 8,
                 _mm256_loadu_ps, _mm256_min_ps, _mm256_max_ps, FGD_UNORD256_PS, _mm256_or_ps,
                 _mm256_set1_ps, _mm256_storeu_ps)
    static void fgd_select_stats(void)
    {
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx2")) return;
        fgd_moments_d = fgd_moments_d_avx2;
        fgd_moments_f = fgd_moments_f_avx2;
        fgd_range_d = fgd_range_d_avx2;
        fgd_range_f = fgd_range_f_avx2;
        fgd_stats_level = 1;
        if (!__builtin_cpu_supports("avx512f")) return;
        fgd_moments_d = fgd_moments_d_avx512;
        fgd_moments_f = fgd_moments_f_avx512;
        fgd_stats_level = 2;
    }
    /* FASTGD_SIMD=avx2: the AVX2 moments on an AVX-512 CPU (to compare). */
    static void fgd_stats_avx2(void)
    {
        if (fgd_stats_level < 2) return;
        fgd_moments_d = fgd_moments_d_avx2;
        fgd_moments_f = fgd_moments_f_avx2;
        fgd_stats_level = 1;
    }
    #else
    static void fgd_select_stats(void) { }
    static void fgd_stats_avx2(void) { }
    #endif
    static int fgd_simd_stats(void) { return fgd_stats_level; }

    /* Scratch buffers on a cache line (64 bytes): a row pass adds every row
       into the same accumulator with 16- or 32-byte vectors, and malloc's
       16-byte alignment left it to the heap whether half of those accesses
       split a line (mini-batch epochs, 1e6 x 100 float64: +15-20%).  Freed
       with fgd_free64 only. */
    #if defined(_WIN32)
    #include <malloc.h>
    static void *fgd_alloc64(size_t size) { return _aligned_malloc(size, 64); }
    static void fgd_free64(void *ptr) { _aligned_free(ptr); }
    #else
    static void *fgd_alloc64(size_t size)
    {
        void *ptr = NULL;
        return posix_memalign(&ptr, 64, size) == 0 ? ptr : NULL;
    }
    static void fgd_free64(void *ptr) { free(ptr); }
    #endif

    /* Staging buffers of a single-sample epoch (_staged_epoch): 2 MB aligned
       and, on Linux, advised to the kernel as huge pages, so that the steps
       reading a buffer in address order take one TLB entry per 2 MB.  Freed
       with fgd_free_stage only. */
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    static void *fgd_alloc_stage(size_t size)
    {
    #if defined(_WIN32)
        return _aligned_malloc(size, 64);
    #else
        void *ptr = NULL;
        size_t huge = (size_t)1 << 21;
        if (size >= huge) {
            size = (size + huge - 1) & ~(huge - 1);
            if (posix_memalign(&ptr, huge, size) != 0) return NULL;
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
            madvise(ptr, size, MADV_HUGEPAGE);
    #endif
            return ptr;
        }
        return posix_memalign(&ptr, 64, size) == 0 ? ptr : NULL;
    #endif
    }
    static void fgd_free_stage(void *ptr)
    {
    #if defined(_WIN32)
        _aligned_free(ptr);
    #else
        free(ptr);
    #endif
    }

    /* The progress marks of a staged epoch (_staged_epoch): 64-bit integers
       loaded with acquire and stored with release order, and, where a
       thread stores one mark and then loads the other thread's (the chunk
       each is on), sequentially consistent. */
    #if defined(__GNUC__) || defined(__clang__)
    static inline long long fgd_load_acquire(const long long *p)
    { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void fgd_store_release(long long *p, long long v)
    { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline long long fgd_load_seq(const long long *p)
    { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
    static inline void fgd_store_seq(long long *p, long long v)
    { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
    #else
    static inline long long fgd_load_acquire(const long long *p)
    { return *(const volatile long long *)p; }
    static inline void fgd_store_release(long long *p, long long v)
    { *(volatile long long *)p = v; }
    static inline long long fgd_load_seq(const long long *p)
    { return *(const volatile long long *)p; }
    static inline void fgd_store_seq(long long *p, long long v)
    { *(volatile long long *)p = v; }
    #endif
    /* One round of a wait: a pause instruction, and after a while a yield of
       the processor to other threads (a machine busy with other work). */
    #if !defined(_WIN32)
    #include <sched.h>
    #endif
    static inline Py_ssize_t fgd_spin_wait(Py_ssize_t spins)
    {
        if (spins < 2000) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
            __builtin_ia32_pause();
    #endif
            return spins + 1;
        }
    #if !defined(_WIN32)
        sched_yield();
    #endif
        return spins;
    }
    """
    const int FASTGD_OPENMP
    void fastgd_set_forked()
    int fastgd_is_forked()
    int fastgd_max_threads()
    void fastgd_prefetch(const void *p)
    void fastgd_prefetch_l1(const void *p)
    double fgd_dot_d(const double* x, const double* w, Py_ssize_t p)
    float fgd_dot_f(const float* x, const float* w, Py_ssize_t p)
    void fgd_axpy2_d(double* acc, double sa, const double* xa, double sb, const double* xb,
                     Py_ssize_t p)
    void fgd_axpy2_f(float* acc, float sa, const float* xa, float sb, const float* xb,
                     Py_ssize_t p)
    void fgd_adam_d(double* theta, double* s0, double* s1, const double* g, Py_ssize_t j0,
                    Py_ssize_t m, double b1, double b2, double lr, double bc1, double bc2,
                    double eps)
    void fgd_acc64_d(double* acc, double s, const double* x, Py_ssize_t p)
    void fgd_acc64_f(double* acc, float s, const float* x, Py_ssize_t p)
    void fgd_gd_step_d(double* theta, const double* x, const double* l2w, double s, double lr,
                       Py_ssize_t p)
    void fgd_gd_step_f(float* theta, const float* x, const float* l2w, float s, float lr,
                       Py_ssize_t p)
    double fgd_gd_step_dot_d(double* theta, const double* x, const double* l2w, double s,
                             double lr, const double* xn, Py_ssize_t p)
    double fgd_gd_pre_step_dot_d(double* theta, const double* x, const double* l2w,
                                 const double* a, const double* b, double s, double lr, double gp,
                                 const double* xn, Py_ssize_t p, double* s2)
    float fgd_gd_pre_step_dot_f(float* theta, const float* x, const float* l2w,
                                const double* a, const double* b, float s, float lr, double gp,
                                const float* xn, Py_ssize_t p, double* s2)
    int fgd_select_simd()
    void fgd_moments_d(const double* x, const double* y, const double* w, Py_ssize_t lo,
                       Py_ssize_t hi, double sh, double xs, int p, double* buf, double* scratch)
    void fgd_moments_f(const float* x, const float* y, const float* w, Py_ssize_t lo,
                       Py_ssize_t hi, float sh, float xs, int p, double* buf, double* scratch)
    void fgd_range_d(const double* a, Py_ssize_t lo, Py_ssize_t hi, double* out)
    void fgd_range_f(const float* a, Py_ssize_t lo, Py_ssize_t hi, double* out)
    int fgd_simd_stats()
    void* fgd_alloc64(size_t size)
    void fgd_free64(void* ptr)
    void* fgd_alloc_stage(size_t size)
    void fgd_free_stage(void* ptr)
    long long fgd_load_acquire(const long long* p)
    void fgd_store_release(long long* p, long long v)
    long long fgd_load_seq(const long long* p)
    void fgd_store_seq(long long* p, long long v)
    Py_ssize_t fgd_spin_wait(Py_ssize_t spins)
    void fgd_stats_avx2()

#: Full-batch polynomial MSE epochs cost O(degree**2) after one pass over the
#: rows (the moments), so ``run`` can take many epochs per call.
POLY_MSE_MOMENTS: bool = True
#: True when this extension was compiled with OpenMP (row-parallel passes).
openmp: bool = bool(FASTGD_OPENMP)
#: The row primitives in use: "avx2" (chosen at import when the CPU has it)
#: or "baseline" (the compile target, SSE2 on x86-64).  Both give the same
#: bits; FASTGD_SIMD=baseline in the environment keeps the baseline.
simd: str = ("avx2" if _os.environ.get("FASTGD_SIMD", "") != "baseline" and fgd_select_simd()
             else "baseline")
if _os.environ.get("FASTGD_SIMD", "") == "avx2":
    fgd_stats_avx2()
#: The polynomial moments and ``value_range`` kernels in use, chosen with
#: ``simd``: "avx512" (the moments; value_range stays AVX2) when the CPU has
#: AVX-512F, else as ``simd``.  Every variant gives the same bits;
#: FASTGD_SIMD=avx2 keeps the AVX2 moments on an AVX-512 CPU.
simd_stats: str = ("baseline", "avx2", "avx512")[fgd_simd_stats()]

ctypedef fused index_t:
    int32_t
    int64_t

# The polynomial basis' shift as a compile-time choice: the row functions
# are specialised for shift 0 (u = x * scale, the loop they had before there
# was a shift: x - 0 is x) and for a shift (u = (x - shift) * scale).  The
# passes pick one per call (``_og_all``, ``_batch_grad``).
ctypedef signed char noshift_t
ctypedef short shifted_t
ctypedef fused basis_t:
    noshift_t
    shifted_t

# Sample weights, a compile-time choice too: every function that reads rows
# takes ``w`` (NULL without weights) and a ``weight_t`` whose type alone
# counts.  ``unweighted_t`` compiles to the loops there were before weights
# (``w`` is never read); ``weighted_t`` multiplies each row's rho(r) and
# psi(r) by w_i in the data dtype (``_wt``).  The Python-level functions pick
# one per call, and it is passed down to every pass of ``_run``.
ctypedef unsigned char unweighted_t
ctypedef unsigned short weighted_t
ctypedef fused weight_t:
    unweighted_t
    weighted_t

# Row-parallel passes: about CHUNK_COST multiply-adds per chunk, at most
# MAX_CHUNKS chunks.  The chunking depends on (n, cost per row) only.
cdef Py_ssize_t CHUNK_COST = 1 << 15
cdef Py_ssize_t MAX_CHUNKS = 64
# float32 row sums are gathered in float32 over FBLOCK rows, then added to
# the float64 accumulator (the reference sums float32 products per block of
# rows too, with blocks of 16384).
cdef Py_ssize_t FBLOCK = 64
# Stochastic batches: prefetch the row this many samples ahead into L2, and
# PREFETCH_L1 samples ahead into L1 (measured on 800-byte rows: 147 -> 113 ms
# per 1e6-sample epoch against one distance alone).
cdef Py_ssize_t PREFETCH = 32
cdef Py_ssize_t PREFETCH_L1 = 6
cdef Py_ssize_t CACHE_LINE = 64
# Single-sample epochs over an X of at least STAGE_MIN_BYTES stage their rows
# (``_staged_epoch``) when two threads are available: one thread copies the
# rows of the next chunk of the sample order into a buffer, in visiting
# order, while the other steps through the current chunk.  Chunks of at most
# STAGE_BYTES of rows (and 1/64 of X), in STAGE_SLOTS buffers; the staging
# thread prefetches rows STAGE_PREFETCH positions ahead.
#: X size (bytes) from which single-sample epochs stage their rows (when on).
STAGE_MIN_BYTES: int = 64 << 20
cdef Py_ssize_t _stage_min_bytes = STAGE_MIN_BYTES
#: Whether staging is on.  Off by default: on a 2-core machine busy with
#: other work the second thread costs the stepping thread more than it saves
#: (one epoch of 1e6 x 100 float64: 112 ms staged, 80 ms plain; 1e7 x 10:
#: 29 against 22 ns per row); ``_set_staging(True)`` turns it on.
STAGING: bool = False
cdef bint _staging = STAGING
#: Whether mini-batch epochs (``batch_size`` > 1) stage their rows, by the
#: same rule, in chunks of whole batches -- unless no core is free for the
#: second thread when the epochs start (``_busy_elsewhere``).  On by default:
#: 2 epochs of batch 256 on 1e6 x 100 float64, 144 -> 124 ms; on a machine
#: with a busy core the copy thread would cost the steps more than it saves
#: (166 -> 195 ms), which the check avoids.  ``_set_staging_batches`` sets it.
STAGING_BATCHES: bool = True
cdef bint _staging_batches = STAGING_BATCHES
cdef bint _check_busy = True
cdef Py_ssize_t STAGE_BYTES = 1 << 21
cdef Py_ssize_t STAGE_PREFETCH = 16
cdef Py_ssize_t STAGE_SLOTS = 4


def max_threads() -> int:
    """Threads the row-parallel passes may use.

    Returns
    -------
    int
        OpenMP's ``omp_get_max_threads()``; 1 without OpenMP, and 1 in a
        process made by ``fork`` (see :func:`forked`).
    """
    return fastgd_max_threads()


def forked() -> bool:
    """Whether this process was made by ``fork`` after this module was imported.

    Such a process (a ``multiprocessing`` worker with the fork start method,
    an ``os.fork`` child, and their own forks) runs every row-parallel pass
    serially: the OpenMP runtime's threads do not survive ``fork``, and
    libgomp hangs on the next parallel region.  The results are the same
    bits (the chunking does not depend on the thread count).

    Returns
    -------
    bool
        True in a forked process, False in the process that imported fastgd.

    Examples
    --------
    >>> from fastgd.backends import _cython
    >>> _cython.forked()
    False
    """
    return bool(fastgd_is_forked())


def _after_fork_in_child() -> None:
    """``os.register_at_fork`` hook: the forked child runs serial passes only.

    Runs in the child, in its only thread, before ``os.fork`` returns there;
    the parent's threads are untouched.
    """
    fastgd_set_forked()


if hasattr(_os, "register_at_fork"):  # POSIX; there is no fork elsewhere
    _os.register_at_fork(after_in_child=_after_fork_in_child)


def _set_stage_min_bytes(n) -> int:
    """Stage single-sample epochs from X of ``n`` bytes on (tests: small data); returns the old value."""
    global _stage_min_bytes
    old = _stage_min_bytes
    _stage_min_bytes = n
    return old


def _set_staging(on) -> bool:
    """Turn staged single-sample epochs on or off; returns the old setting."""
    global _staging
    old = bool(_staging)
    _staging = bool(on)
    return old


def _set_staging_batches(on) -> bool:
    """Turn staged mini-batch epochs on or off; returns the old setting."""
    global _staging_batches
    old = bool(_staging_batches)
    _staging_batches = bool(on)
    return old


def _set_busy_check(on) -> bool:
    """Turn the free-core check of staging on or off (tests); returns the old setting."""
    global _check_busy
    old = bool(_check_busy)
    _check_busy = bool(on)
    return old


def _busy_elsewhere() -> bool:
    """True when other threads, not this process's, are runnable now on more cores
    than a staged epoch leaves them (Linux ``/proc``; elsewhere False).

    ``procs_running`` counts every runnable thread of the machine, this
    process's too (the caller, OpenMP workers still spinning after a pass),
    so those are subtracted: staging takes two cores, the rest must suffice
    for the others.
    """
    cdef Py_ssize_t total = -1, own = 0
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"procs_running"):
                    total = int(line.split()[1])
                    break
        if total < 0:
            return False
        for tid in _os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                    st = f.read()
            except OSError:  # the thread ended
                continue
            k = st.rfind(b")")
            if k >= 0 and st[k + 2:k + 3] == b"R":
                own += 1
        ncpu = len(_os.sched_getaffinity(0)) if hasattr(_os, "sched_getaffinity") else (
            _os.cpu_count() or 1)
    except (OSError, ValueError, IndexError):
        return False
    return total - own > ncpu - 2


def _set_stage_bytes(n) -> int:
    """Bytes of rows per staged chunk (at most; also at most 1/64 of X); returns the old value."""
    global STAGE_BYTES
    old = STAGE_BYTES
    STAGE_BYTES = n
    return old


def _stage_rows(Py_ssize_t n, Py_ssize_t row_bytes, Py_ssize_t batch_size) -> int:
    """Rows per staged chunk of a stochastic epoch over ``n`` rows; 0: no staging.

    Staging (when on: ``_set_staging`` for single-sample epochs,
    ``_set_staging_batches`` for mini-batches) takes the epochs over an X of
    at least ``_stage_min_bytes`` when two threads are available (none in a
    forked process: ``max_threads``) and no other process keeps the second
    core busy (``_busy_elsewhere``).  A chunk holds whole batches, at most
    ``STAGE_BYTES`` of rows and 1/64 of X (two buffers: within 1/32 of X);
    0 when not even one batch fits.
    """
    cdef Py_ssize_t nbytes = n * row_bytes, cap
    if (batch_size < 1 or n < 2 or row_bytes <= 0 or nbytes < _stage_min_bytes
            or fastgd_max_threads() < 2):
        return 0
    if not (_staging if batch_size == 1 else _staging_batches):
        return 0
    cap = STAGE_BYTES if STAGE_BYTES < nbytes // 64 else nbytes // 64
    if cap < row_bytes * batch_size or (_check_busy and _busy_elsewhere()):
        return 0
    return cap // (row_bytes * batch_size) * batch_size


cdef inline int _team_size(Py_ssize_t n_chunks) noexcept nogil:
    """Threads for a row-parallel pass: all available, at most one per chunk.

    1 in a forked process (``fastgd_max_threads``).  Every ``prange`` of this
    file is entered only when this is > 1; with 1 the same chunks run in a
    plain loop (no OpenMP region at all, the same bits).
    """
    cdef int k = fastgd_max_threads()
    return <int>n_chunks if k > n_chunks else k


# ---------------------------------------------------------------- input scan


cdef floating _nonfinite_span(const floating* a, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """0 when a[lo:hi] is all finite, NaN otherwise: ``x - x`` is NaN exactly
    for NaN and +-inf, and NaN survives any sum.  Eight running sums let the
    loop vectorize without reassociating (reading is the cost)."""
    cdef floating s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t k = lo
    while k + 8 <= hi:
        s0 += a[k] - a[k]
        s1 += a[k + 1] - a[k + 1]
        s2 += a[k + 2] - a[k + 2]
        s3 += a[k + 3] - a[k + 3]
        s4 += a[k + 4] - a[k + 4]
        s5 += a[k + 5] - a[k + 5]
        s6 += a[k + 6] - a[k + 6]
        s7 += a[k + 7] - a[k + 7]
        k += 8
    while k < hi:
        s0 += a[k] - a[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef bint _all_finite_flat(const floating* a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t nch = _n_chunks(n, 1), c
    cdef double part[64]
    cdef double total = 0.0
    cdef int nthreads
    if nch == 1:
        return _nonfinite_span(a, 0, n) == 0
    nthreads = _team_size(nch)
    if nthreads > 1:
        for c in prange(nch, schedule="static", num_threads=nthreads):
            part[c] = _nonfinite_span(a, (c * n) // nch, ((c + 1) * n) // nch)
    else:  # no OpenMP region (a forked process; see _team_size)
        for c in range(nch):
            part[c] = _nonfinite_span(a, (c * n) // nch, ((c + 1) * n) // nch)
    for c in range(nch):
        total += part[c]
    return total == 0


def all_finite(a) -> bool:
    """True when no element of the C-contiguous float array ``a`` is NaN or +-inf.

    One read of ``a``, parallel over chunks for large arrays.
    """
    flat = a.reshape(-1)
    cdef const double[::1] ad
    cdef const float[::1] af
    cdef bint ok
    if flat.dtype.itemsize == 8:
        ad = flat
        with nogil:
            ok = _all_finite_flat(&ad[0], ad.shape[0]) if ad.shape[0] else True
    else:
        af = flat
        with nogil:
            ok = _all_finite_flat(&af[0], af.shape[0]) if af.shape[0] else True
    return bool(ok)


cdef inline void _range_span(const floating* a, Py_ssize_t lo, Py_ssize_t hi,
                             double* out) noexcept nogil:
    """out = [min, max, NaN seen (0 / 1)] of a[lo:hi] (``fgd_range_*``; NaN skipped by min / max)."""
    if floating is double:
        fgd_range_d(a, lo, hi, out)
    else:
        fgd_range_f(a, lo, hi, out)


cdef void _value_range(const floating* a, Py_ssize_t n, double* out) noexcept nogil:
    """out = [min, max, NaN seen] of a[:n] (n >= 1): one read, parallel over chunks."""
    cdef Py_ssize_t nch = _n_chunks(n, 1), c
    cdef double part[3 * 64]
    cdef int nthreads
    if nch == 1:
        _range_span(a, 0, n, out)
        return
    nthreads = _team_size(nch)
    if nthreads > 1:
        for c in prange(nch, schedule="static", num_threads=nthreads):
            _range_span(a, (c * n) // nch, ((c + 1) * n) // nch, part + 3 * c)
    else:  # no OpenMP region (see _team_size)
        for c in range(nch):
            _range_span(a, (c * n) // nch, ((c + 1) * n) // nch, part + 3 * c)
    out[0] = part[0]
    out[1] = part[1]
    out[2] = part[2]
    for c in range(1, nch):
        if part[3 * c] < out[0]:
            out[0] = part[3 * c]
        if part[3 * c + 1] > out[1]:
            out[1] = part[3 * c + 1]
        if part[3 * c + 2] != 0:
            out[2] = 1


def value_range(const floating[::1] a) -> tuple:
    """``(min, max)`` of the C-contiguous 1-D float32 / float64 array ``a``, as Python floats.

    Both in one read of ``a``, parallel over chunks for large arrays (about
    the memory's read bandwidth; ``np.min`` and ``np.max`` read it twice).
    Like them, a NaN anywhere gives NaN for both; +-inf are ordinary values.
    Raises ``ValueError`` on an empty array (no minimum), like ``np.min``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> _cython.value_range(np.array([2.0, -1.5, np.inf, 0.25]))
    (-1.5, inf)
    >>> _cython.value_range(np.array([1.0, np.nan, 3.0], dtype=np.float32))
    (nan, nan)
    """
    cdef Py_ssize_t n = a.shape[0]
    cdef double out[3]
    if n == 0:
        raise ValueError("value_range of an empty array: there is no minimum or maximum")
    with nogil:
        _value_range(&a[0], n, out)
    if out[2] != 0:
        return (float("nan"), float("nan"))
    return (out[0], out[1])


# ---------------------------------------------------------------- losses
# loss 0: mse    rho = r**2                 psi = 2 r
# loss 1: huber  rho = r**2/2 (|r|<=d)      psi = clip(r, -d, d)
#                d (|r| - d/2) otherwise


cdef inline floating _clip(floating r, floating delta) noexcept nogil:
    """clip(r, -delta, delta), written so that it compiles to min/max (no branch)."""
    cdef floating c = delta if r > delta else r
    return -delta if c < -delta else c


cdef inline floating rho(int loss, floating r, floating delta) noexcept nogil:
    """Loss of the residual ``r`` (in the data dtype, like the reference).

    Huber as c (r - c/2) with c = clip(r): inside the kink r - r/2 is exact,
    so this is the reference's r**2/2 bit for bit; outside it is
    delta (|r| - delta/2) up to an exact sign flip.  No data-dependent branch.
    """
    cdef floating c, half = 0.5
    if loss == 0:
        return r * r
    c = _clip(r, delta)
    return c * (r - half * c)


cdef inline floating psi(int loss, floating r, floating delta) noexcept nogil:
    """Derivative of the loss at ``r``."""
    cdef floating two = 2
    if loss == 0:
        return two * r
    return _clip(r, delta)


cdef inline floating _wt(floating v, const floating* w, Py_ssize_t i,
                         weight_t wtd) noexcept nogil:
    """Row i's term ``v`` (rho or psi) times its weight, the product in the data
    dtype as the reference's; ``v`` itself without weights (``unweighted_t``)."""
    if weight_t is weighted_t:
        return v * w[i]
    else:
        return v


# ---------------------------------------------------------------- model
# model 0: linear  pred = X @ coef + b
# model 1: poly    pred = b + sum_j coef[j-1] u**j, by Horner, with
#                  u = (x - shift) * scale formed in the data dtype (``basis``)


cdef inline floating _dot(const floating* x, const floating* w, Py_ssize_t p) noexcept nogil:
    """x . w with many partial sums (see the C primitives above)."""
    cdef floating s = 0
    cdef Py_ssize_t j
    if p < 8:  # all of it is the primitive's sequential tail: same bits, no call
        for j in range(p):
            s += x[j] * w[j]
        return s
    if floating is double:
        return fgd_dot_d(x, w, p)
    else:
        return fgd_dot_f(x, w, p)


cdef inline void _axpy2(floating* acc, floating sa, const floating* xa, floating sb,
                        const floating* xb, Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t j
    if p < 8:
        for j in range(p):
            acc[j] += sa * xa[j] + sb * xb[j]
        return
    if floating is double:
        fgd_axpy2_d(acc, sa, xa, sb, xb, p)
    else:
        fgd_axpy2_f(acc, sa, xa, sb, xb, p)


cdef inline floating predict_row(int model, const floating* x, Py_ssize_t p,
                                 const floating* theta, floating sh, floating xs,
                                 basis_t shifted) noexcept nogil:
    """Prediction for one row ``x`` (``p`` features, or the degree for poly).

    ``sh``, ``xs``: the basis ``[shift, scale]`` in the data dtype (poly only);
    ``shifted``: only its type counts (``noshift_t``: ``sh`` is 0).
    """
    cdef floating u, pred
    cdef Py_ssize_t j
    if model == 0:
        return _dot(x, theta, p) + theta[p]
    if basis_t is shifted_t:
        u = (x[0] - sh) * xs
    else:
        u = x[0] * xs
    pred = 0
    for j in range(p - 1, -1, -1):  # Horner: ((c_k u + c_{k-1}) u + ... + c_1) u
        pred = (pred + theta[j]) * u
    return pred + theta[p]


cdef inline void accumulate_row(int model, const floating* x, Py_ssize_t p, floating s,
                                floating sh, floating xs, basis_t shifted,
                                floating* acc) noexcept nogil:
    """acc[:p] += s dpred/dcoef, acc[p] += s for one row (data-dtype products)."""
    cdef floating u, pw
    cdef Py_ssize_t j
    if model == 0:
        for j in range(p):
            acc[j] += s * x[j]
    else:
        if basis_t is shifted_t:
            u = (x[0] - sh) * xs
        else:
            u = x[0] * xs
        pw = u
        for j in range(p):  # running power u**(j+1)
            acc[j] += pw * s
            pw *= u
    acc[p] += s


cdef inline void accumulate_row64(int model, const floating* x, Py_ssize_t p, floating s,
                                  floating sh, floating xs, basis_t shifted,
                                  double* acc) noexcept nogil:
    """As ``accumulate_row`` into a float64 accumulator (products in the data dtype).

    The linear model's row goes through the elementwise C loop (AVX2 where
    the CPU has it; any width gives the same bits)."""
    cdef floating u, pw
    cdef Py_ssize_t j
    if model == 0:
        if p >= 8:
            if floating is double:
                fgd_acc64_d(acc, s, x, p)
            else:
                fgd_acc64_f(acc, s, x, p)
        else:
            for j in range(p):
                acc[j] += <double>(s * x[j])
    else:
        if basis_t is shifted_t:
            u = (x[0] - sh) * xs
        else:
            u = x[0] * xs
        pw = u
        for j in range(p):
            acc[j] += <double>(pw * s)
            pw *= u
    acc[p] += <double>s


# The penalty 0.5 theta.Q.theta: ``l2w`` holds p + 1 diagonal weights
# (l2d 0: Q = diag(l2w)) or a dense symmetric Q, (p + 1)**2 entries row major
# (l2d 1).  Dense sums run in float64 over k ascending, as the reference's.


cdef inline double _dot_asc(const floating* a, const floating* b, Py_ssize_t m) noexcept nogil:
    """sum_k a[k]*b[k] in float64, k ascending."""
    cdef double s = 0.0
    cdef Py_ssize_t k
    for k in range(m):
        s += <double>a[k] * <double>b[k]
    return s


cdef inline void _finish(const double* acc, Py_ssize_t m_rows, const floating* theta,
                         const floating* l2w, int l2d, int fit_icpt, floating* grad,
                         Py_ssize_t p) noexcept nogil:
    """grad = acc / m + penalty gradient, intercept slot zero when not fitted.

    The penalty gradient: l2w * theta (the product in the data dtype) or
    Q @ theta (float64, each row summed over k ascending).
    """
    cdef Py_ssize_t j, m = p + 1
    if l2d:
        for j in range(m):
            grad[j] = <floating>(acc[j] / m_rows + _dot_asc(l2w + j * m, theta, m))
    else:
        for j in range(m):
            grad[j] = <floating>(acc[j] / m_rows + <double>(l2w[j] * theta[j]))
    if not fit_icpt:
        grad[p] = 0


cdef inline double _penalty(const floating* theta, const floating* l2w, int l2d,
                            Py_ssize_t p) noexcept nogil:
    """0.5 * sum(l2w*theta**2) (diagonal) or 0.5 * theta @ Q @ theta (dense)."""
    cdef double s = 0.0, th
    cdef Py_ssize_t j, m = p + 1
    if l2d:
        for j in range(m):
            s += <double>theta[j] * _dot_asc(l2w + j * m, theta, m)
        return 0.5 * s
    for j in range(m):
        th = <double>theta[j]
        s += <double>l2w[j] * (th * th)
    return 0.5 * s


# ---------------------------------------------------------------- fused objective/gradient


cdef inline Py_ssize_t _row_cost(int model, Py_ssize_t ncol, Py_ssize_t p) noexcept nogil:
    return ncol + 2 if model == 0 else 2 * p + 4


cdef inline Py_ssize_t _n_chunks(Py_ssize_t n, Py_ssize_t row_cost) noexcept nogil:
    """Chunks of a row-parallel pass: a function of the problem size only."""
    cdef Py_ssize_t c = (n * row_cost) // CHUNK_COST
    if c > MAX_CHUNKS:
        c = MAX_CHUNKS
    if c > n:
        c = n
    return c if c > 1 else 1


cdef inline Py_ssize_t _stride(Py_ssize_t width) noexcept nogil:
    """Per-chunk buffer stride in doubles: padded so chunks never share a cache line."""
    return ((width + 7) // 8 + 1) * 8


cdef double _og_chunk(int model, int loss, const floating* X, const floating* y,
                      const floating* w, weight_t wtd, Py_ssize_t ncol, Py_ssize_t p,
                      const floating* theta, floating sh, floating xs, basis_t shifted,
                      floating delta, Py_ssize_t lo, Py_ssize_t hi, double* acc,
                      int want_grad) noexcept nogil:
    """sum rho(r_i) over rows lo..hi-1; acc[:p+1] += sum psi(r_i) dpred_i/dtheta.

    With weights (``weighted_t``) rho(r_i) and psi(r_i) are first multiplied
    by w_i (``_wt``).  float64: the products go straight into the float64
    ``acc``.  float32: they are summed in float32 over ``FBLOCK`` rows, then
    added to ``acc``.  The linear model takes rows two at a time (one sweep
    of the accumulator for both); each row's own arithmetic is unchanged.
    """
    cdef double f = 0.0
    cdef Py_ssize_t i = lo, j, m = p + 1, nb = 0, step
    cdef floating r, s, rb, sb
    cdef const floating* x
    cdef floating stack_blk[64]
    cdef floating* a
    if floating is double:
        a = acc
    else:
        a = &stack_blk[0]
        if want_grad and m > 64:
            a = <floating*>malloc(m * sizeof(floating))
            if a == NULL:  # out of memory: sum straight into float64
                for i in range(lo, hi):
                    x = X + i * ncol
                    r = predict_row(model, x, p, theta, sh, xs, shifted) - y[i]
                    f += <double>_wt(rho(loss, r, delta), w, i, wtd)
                    accumulate_row64(model, x, p, _wt(psi(loss, r, delta), w, i, wtd), sh, xs,
                                     shifted, acc)
                return f
        if want_grad:
            memset(a, 0, m * sizeof(floating))
    while i < hi:
        x = X + i * ncol
        if model == 0 and i + 1 < hi:
            r = (_dot(x, theta, p) + theta[p]) - y[i]
            rb = (_dot(x + ncol, theta, p) + theta[p]) - y[i + 1]
            f += <double>_wt(rho(loss, r, delta), w, i, wtd)
            f += <double>_wt(rho(loss, rb, delta), w, i + 1, wtd)
            if want_grad:
                s = _wt(psi(loss, r, delta), w, i, wtd)
                sb = _wt(psi(loss, rb, delta), w, i + 1, wtd)
                _axpy2(a, s, x, sb, x + ncol, p)
                a[p] += s
                a[p] += sb
            step = 2
        else:
            r = predict_row(model, x, p, theta, sh, xs, shifted) - y[i]
            f += <double>_wt(rho(loss, r, delta), w, i, wtd)
            if want_grad:
                accumulate_row(model, x, p, _wt(psi(loss, r, delta), w, i, wtd), sh, xs,
                               shifted, a)
            step = 1
        i += step
        if floating is float:
            if want_grad:
                nb += step
                if nb >= FBLOCK:
                    for j in range(m):
                        acc[j] += <double>a[j]
                        a[j] = 0
                    nb = 0
    if floating is float:
        if want_grad:
            for j in range(m):
                acc[j] += <double>a[j]
            if a != &stack_blk[0]:
                free(a)
    return f


cdef double _og_all(int model, int loss, const floating* X, const floating* y,
                    const floating* w, weight_t wtd, Py_ssize_t n, Py_ssize_t ncol,
                    Py_ssize_t p, const floating* theta, floating sh, floating xs,
                    basis_t shifted, floating delta, double* acc, int want_grad,
                    double* work) noexcept nogil:
    """Row sums of the objective (returned) and gradient (``acc``) over all rows.

    ``work`` holds ``_n_chunks * _stride(p + 2)`` doubles (unused with 1 chunk).
    ``shifted`` and ``wtd``: their types pick the row functions (see ``basis_t``,
    ``weight_t``).
    """
    cdef Py_ssize_t nch = _n_chunks(n, _row_cost(model, ncol, p))
    cdef Py_ssize_t stride = _stride(p + 2), m = p + 1
    cdef Py_ssize_t c, j, lo, hi
    cdef double* buf
    cdef double f = 0.0
    cdef int nthreads
    memset(acc, 0, m * sizeof(double))
    if nch == 1:
        return _og_chunk(model, loss, X, y, w, wtd, ncol, p, theta, sh, xs, shifted, delta, 0, n,
                         acc, want_grad)
    nthreads = _team_size(nch)
    if nthreads > 1:
        for c in prange(nch, schedule="dynamic", num_threads=nthreads):
            lo = (c * n) // nch
            hi = ((c + 1) * n) // nch
            buf = work + c * stride
            memset(buf, 0, m * sizeof(double))
            buf[m] = _og_chunk(model, loss, X, y, w, wtd, ncol, p, theta, sh, xs, shifted, delta,
                               lo, hi, buf, want_grad)
    else:  # the same chunks without an OpenMP region (see _team_size)
        for c in range(nch):
            lo = (c * n) // nch
            hi = ((c + 1) * n) // nch
            buf = work + c * stride
            memset(buf, 0, m * sizeof(double))
            buf[m] = _og_chunk(model, loss, X, y, w, wtd, ncol, p, theta, sh, xs, shifted, delta,
                               lo, hi, buf, want_grad)
    for c in range(nch):  # merged serially, in chunk order: deterministic
        buf = work + c * stride
        f += buf[m]
        for j in range(m):
            acc[j] += buf[j]
    return f


cdef double _objective_grad(int model, int loss, const floating* X, const floating* y,
                            const floating* w, weight_t wtd, Py_ssize_t n, Py_ssize_t ncol,
                            Py_ssize_t p, const floating* theta, double shift, double xscale,
                            double delta, const floating* l2w, int l2d, int fit_icpt,
                            floating* grad, double* acc, double* work) noexcept nogil:
    """Objective (returned) and gradient (``grad``) over all rows; the sums are
    divided by n, weighted or not."""
    cdef floating sh = <floating>shift
    cdef double f
    if sh == 0:
        f = _og_all(model, loss, X, y, w, wtd, n, ncol, p, theta, sh, <floating>xscale,
                    <noshift_t>0, <floating>delta, acc, 1, work)
    else:
        f = _og_all(model, loss, X, y, w, wtd, n, ncol, p, theta, sh, <floating>xscale,
                    <shifted_t>1, <floating>delta, acc, 1, work)
    _finish(acc, n, theta, l2w, l2d, fit_icpt, grad, p)
    return f / n + _penalty(theta, l2w, l2d, p)


cdef double _objective(int model, int loss, const floating* X, const floating* y,
                       const floating* w, weight_t wtd, Py_ssize_t n, Py_ssize_t ncol,
                       Py_ssize_t p, const floating* theta, double shift, double xscale,
                       double delta, const floating* l2w, int l2d, double* acc,
                       double* work) noexcept nogil:
    cdef floating sh = <floating>shift
    cdef double f
    if sh == 0:
        f = _og_all(model, loss, X, y, w, wtd, n, ncol, p, theta, sh, <floating>xscale,
                    <noshift_t>0, <floating>delta, acc, 0, work)
    else:
        f = _og_all(model, loss, X, y, w, wtd, n, ncol, p, theta, sh, <floating>xscale,
                    <shifted_t>1, <floating>delta, acc, 0, work)
    return f / n + _penalty(theta, l2w, l2d, p)


cdef inline void _prefetch_row(const floating* X, const floating* y, const floating* w,
                               weight_t wtd, Py_ssize_t ncol, Py_ssize_t i) noexcept nogil:
    """Row i, y[i] and (weighted) w[i] into L2.

    One prefetch per ``CACHE_LINE`` from the row's start, then one of its
    last byte: a row that does not start on a line boundary (numpy's large
    arrays start 16 bytes into one, and 800-byte rows alternate) ends in one
    more line than ``nbytes / CACHE_LINE``.  Without that last line an SGD
    epoch (1e6 x 100, float64) took 50-90 ms depending on where X and theta
    happen to lie; with it, 41-45 ms wherever they lie.
    """
    cdef const char* row = <const char*>(X + i * ncol)
    cdef Py_ssize_t off, nbytes = ncol * <Py_ssize_t>sizeof(floating)
    off = 0
    while off < nbytes:
        fastgd_prefetch(row + off)
        off += CACHE_LINE
    fastgd_prefetch(row + nbytes - 1)
    fastgd_prefetch(y + i)
    if weight_t is weighted_t:
        fastgd_prefetch(w + i)


cdef inline void _prefetch_row_l1(const floating* X, Py_ssize_t ncol,
                                  Py_ssize_t i) noexcept nogil:
    """Row i into L1 (already on its way to L2), its last line included."""
    cdef const char* row = <const char*>(X + i * ncol)
    cdef Py_ssize_t off = 0, nbytes = ncol * <Py_ssize_t>sizeof(floating)
    while off < nbytes:
        fastgd_prefetch_l1(row + off)
        off += CACHE_LINE
    fastgd_prefetch_l1(row + nbytes - 1)


cdef void _batch_grad(int model, int loss, const floating* X, const floating* y,
                      const floating* w, weight_t wtd, Py_ssize_t ncol, Py_ssize_t p,
                      const floating* theta, double shift, double xscale, double delta,
                      const floating* l2w, int l2d, int fit_icpt, const index_t* idx,
                      Py_ssize_t n_idx, Py_ssize_t start, Py_ssize_t stop, floating* grad,
                      double* acc, double* lsum) noexcept nogil:
    """Gradient over the rows idx[start:stop], prefetching rows PREFETCH samples ahead.

    Weighted, row idx[k]'s psi is multiplied by w[idx[k]]; the sum is still
    divided by stop - start.  ``lsum[0]`` += the rows' (weighted) losses
    ``w_i rho(r_i)``, float64, from the same residuals (the progressive loss
    of ``_run``), one add per row in visiting order: the running sum is
    carried through, so however an epoch is split (``_staged_epoch``'s
    stretches depend on the threads' timing) the sum has the same bits.
    """
    cdef floating sh = <floating>shift, xs = <floating>xscale, d = <floating>delta
    memset(acc, 0, (p + 1) * sizeof(double))
    if sh == 0:
        _batch_rows(model, loss, X, y, w, wtd, ncol, p, theta, sh, xs, <noshift_t>0, d, idx,
                    n_idx, start, stop, acc, lsum)
    else:
        _batch_rows(model, loss, X, y, w, wtd, ncol, p, theta, sh, xs, <shifted_t>1, d, idx,
                    n_idx, start, stop, acc, lsum)
    _finish(acc, stop - start, theta, l2w, l2d, fit_icpt, grad, p)


cdef inline void _batch_rows(int model, int loss, const floating* X, const floating* y,
                             const floating* w, weight_t wtd, Py_ssize_t ncol, Py_ssize_t p,
                             const floating* theta, floating sh, floating xs, basis_t shifted,
                             floating d, const index_t* idx, Py_ssize_t n_idx,
                             Py_ssize_t start, Py_ssize_t stop, double* acc,
                             double* lsum) noexcept nogil:
    """acc += the row sums of the gradient over idx[start:stop], lsum[0] += their
    losses (see ``_batch_grad``)."""
    cdef floating r
    cdef double ls = lsum[0]
    cdef Py_ssize_t k, i
    cdef const floating* x
    for k in range(start, stop):
        if k + PREFETCH < n_idx:
            _prefetch_row(X, y, w, wtd, ncol, <Py_ssize_t>idx[k + PREFETCH])
        if k + PREFETCH_L1 < n_idx:
            _prefetch_row_l1(X, ncol, <Py_ssize_t>idx[k + PREFETCH_L1])
        i = <Py_ssize_t>idx[k]
        x = X + i * ncol
        r = predict_row(model, x, p, theta, sh, xs, shifted) - y[i]
        ls += <double>_wt(rho(loss, r, d), w, i, wtd)
        accumulate_row64(model, x, p, _wt(psi(loss, r, d), w, i, wtd), sh, xs, shifted, acc)
    lsum[0] = ls


cdef inline void _moments_chunk(const floating* X, const floating* y, const floating* w,
                                Py_ssize_t p, floating sh, floating xs, Py_ssize_t lo,
                                Py_ssize_t hi, double* buf, double* scratch) noexcept nogil:
    """buf[m] += sum u**m (m <= 2p), buf[2p+1+j] += sum y u**j (j <= p), buf[3p+2] += sum y**2.

    ``u = (x - sh) * xs`` in the data dtype, its powers in float64; eight
    lane sums per moment (``fgd_moments_*``), ``scratch`` holds
    ``8 (3p + 3)`` doubles for them.  ``w`` NULL: buf[0] += hi - lo; else the
    weighted moments (each term times w_i in float64) and buf[0] += sum w.
    """
    if floating is double:
        fgd_moments_d(X, y, w, lo, hi, sh, xs, <int>p, buf, scratch)
    else:
        fgd_moments_f(X, y, w, lo, hi, sh, xs, <int>p, buf, scratch)


cdef inline Py_ssize_t _moments_stride(Py_ssize_t p) noexcept nogil:
    """Doubles per chunk of the moments pass: its sums (padded), then its lane scratch."""
    return _stride(3 * p + 3) + 8 * (3 * p + 3)


cdef void _moments(const floating* X, const floating* y, const floating* w, Py_ssize_t n,
                   Py_ssize_t p, floating sh, floating xs, double* mom,
                   double* work) noexcept nogil:
    """mom (3p + 3 doubles) = the moments of the polynomial MSE problem, in one pass.

    ``w``: NULL, or the sample weights (weighted moments).  ``work`` holds
    ``_n_chunks * _moments_stride(p)`` doubles.
    """
    cdef Py_ssize_t nch = _n_chunks(n, _row_cost(1, 1, p))
    cdef Py_ssize_t width = 3 * p + 3, stride = _moments_stride(p), sums = _stride(3 * p + 3)
    cdef Py_ssize_t c, j, lo, hi
    cdef double* buf
    cdef int nthreads
    memset(mom, 0, width * sizeof(double))
    if nch == 1:
        _moments_chunk(X, y, w, p, sh, xs, 0, n, mom, work)
        return
    nthreads = _team_size(nch)
    if nthreads > 1:
        for c in prange(nch, schedule="dynamic", num_threads=nthreads):
            lo = (c * n) // nch
            hi = ((c + 1) * n) // nch
            buf = work + c * stride
            memset(buf, 0, width * sizeof(double))
            _moments_chunk(X, y, w, p, sh, xs, lo, hi, buf, buf + sums)
    else:  # the same chunks without an OpenMP region (see _team_size)
        for c in range(nch):
            lo = (c * n) // nch
            hi = ((c + 1) * n) // nch
            buf = work + c * stride
            memset(buf, 0, width * sizeof(double))
            _moments_chunk(X, y, w, p, sh, xs, lo, hi, buf, buf + sums)
    for c in range(nch):
        buf = work + c * stride
        for j in range(width):
            mom[j] += buf[j]


# Least squares from sufficient statistics.  With a_i the row of the design
# ([x_i, 1] linear, [u**1 .. u**p, 1] poly), G = sum a_i a_i^T, c = sum y_i a_i
# and S = sum y_i**2:  sum r_i a_i = G theta - c  and
# sum r_i**2 = S + theta.(G theta - 2 c).  With sample weights every sum
# carries w_i (G = sum w_i a_i a_i^T, ...), and so do both results.
# Polynomial: G[j, k] = M[pow_j + pow_k] from the moments.  Linear: the Gram
# matrix itself, worth it when a run has more epochs than parameters
# (building G costs about p/2 passes).
# st = [G ((p+1)**2, row major), c (p+1), S].


cdef inline Py_ssize_t _lsq_size(Py_ssize_t p) noexcept nogil:
    return (p + 1) * (p + 1) + p + 2


cdef inline Py_ssize_t _gram_chunks(Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    """At most 8 chunks: each holds a whole G."""
    cdef Py_ssize_t c = _n_chunks(n, p * (p + 1) // 2 + p + 2)
    return c if c < 8 else 8


cdef inline Py_ssize_t _lsq_work_size(int model, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    if model == 1:
        return _n_chunks(n, _row_cost(1, 1, p)) * _moments_stride(p) + 3 * p + 3
    return _gram_chunks(n, p) * _stride(_lsq_size(p))


cdef void _gram_chunk(const floating* X, const floating* y, const floating* w, weight_t wtd,
                      Py_ssize_t p, Py_ssize_t lo, Py_ssize_t hi, double* st) noexcept nogil:
    """Upper triangle of G, and c, S over rows lo..hi-1 (products in float64).

    Weighted, row i's terms are (w_i x_ij) x_ik, (w_i x_ij), (w_i y_i) x_ij,
    w_i, w_i y_i and (w_i y_i) y_i: one product more per feature, none in
    the O(p**2) loop.
    """
    cdef Py_ssize_t p1 = p + 1, i, j, k
    cdef double* c = st + p1 * p1
    cdef double* row
    cdef const floating* x
    cdef double xj, yi, wi, yw
    for i in range(lo, hi):
        x = X + i * p
        yi = <double>y[i]
        if weight_t is weighted_t:
            wi = <double>w[i]
            yw = wi * yi
            for j in range(p):
                xj = wi * <double>x[j]
                row = st + j * p1
                for k in range(j, p):
                    row[k] += xj * <double>x[k]
                row[p] += xj
                c[j] += yw * <double>x[j]
            st[p1 * p1 - 1] += wi
            c[p] += yw
            c[p1] += yw * yi
        else:
            for j in range(p):
                xj = <double>x[j]
                row = st + j * p1
                for k in range(j, p):
                    row[k] += xj * <double>x[k]
                row[p] += xj
                c[j] += yi * xj
            st[p1 * p1 - 1] += 1.0
            c[p] += yi
            c[p1] += yi * yi


cdef void _lsq_stats(int model, const floating* X, const floating* y, const floating* w,
                     weight_t wtd, Py_ssize_t n, Py_ssize_t p, floating sh, floating xs,
                     double* st, double* work) noexcept nogil:
    """st = [G, c, S] in one (row-parallel, chunk-ordered) pass over the rows.

    ``w``: NULL (``unweighted_t``) or the sample weights (the weighted statistics).
    """
    cdef Py_ssize_t p1 = p + 1, size = _lsq_size(p), nch, stride, c, j, k, lo, hi
    cdef Py_ssize_t pj, pk
    cdef double* mom
    cdef double* buf
    cdef int nthreads
    if model == 1:
        mom = work + _n_chunks(n, _row_cost(1, 1, p)) * _moments_stride(p)
        _moments(X, y, w, n, p, sh, xs, mom, work)
        for j in range(p1):
            pj = j + 1 if j < p else 0
            st[p1 * p1 + j] = mom[2 * p + 1 + pj]
            for k in range(p1):
                pk = k + 1 if k < p else 0
                st[j * p1 + k] = mom[pj + pk]
        st[size - 1] = mom[3 * p + 2]
        return
    nch = _gram_chunks(n, p)
    stride = _stride(size)
    nthreads = _team_size(nch)
    if nthreads > 1:
        for c in prange(nch, schedule="dynamic", num_threads=nthreads):
            lo = (c * n) // nch
            hi = ((c + 1) * n) // nch
            buf = work + c * stride
            memset(buf, 0, size * sizeof(double))
            _gram_chunk(X, y, w, wtd, p, lo, hi, buf)
    else:  # one chunk, or a forked process: no OpenMP region (see _team_size)
        for c in range(nch):
            lo = (c * n) // nch
            hi = ((c + 1) * n) // nch
            buf = work + c * stride
            memset(buf, 0, size * sizeof(double))
            _gram_chunk(X, y, w, wtd, p, lo, hi, buf)
    memset(st, 0, size * sizeof(double))
    for c in range(nch):
        buf = work + c * stride
        for j in range(size):
            st[j] += buf[j]
    for j in range(p1):  # the lower triangle from the upper one
        for k in range(j):
            st[j * p1 + k] = st[k * p1 + j]


# The shortcut's overflow test with sample weights.  Without them no r_i**2
# exceeds sum r**2 (see _objective_grad_lsq); with them the statistics give
# sum w r**2, which bounds r_i**2 only through w_i: r_i**2 <= sum w r**2 / w_i.
# When every weight is >= WLIGHT that holds with wh = min(w).  Otherwise the
# rows >= WLIGHT take wh = WLIGHT, and the lighter rows (weight 0 too: the
# reference's 0 * inf is NaN, a divergence as well) are bounded through their
# largest |y| and |features|: |r_i| <= max|y| + |theta_p| + sum_j |theta_j|
# max|a_ij| (poly: a_ij = u**(j+1), with max|y| and max|u| over all rows).
# guard (p + 2 doubles) = [min(1, wh), max|y| (-1: no light rows), max|a_ij|
# (j < p)], once per ``run``: one read of w (``_value_range``), and only
# with light rows, of y and x (poly) or of the light rows (linear).
cdef double WLIGHT = 0.0625


cdef void _lsq_guard_light(const floating* X, const floating* y, const floating* w,
                           Py_ssize_t p, Py_ssize_t lo, Py_ssize_t hi, double* g) noexcept nogil:
    """g = [max|y_i|, max|x_i0|, ..., max|x_i,p-1|] over the rows of lo..hi-1 with
    w_i < WLIGHT (linear model; -1 and zeros when there are none)."""
    cdef Py_ssize_t i, j
    cdef double v
    g[0] = -1.0
    for j in range(p):
        g[1 + j] = 0.0
    for i in range(lo, hi):
        if <double>w[i] >= WLIGHT:
            continue
        v = fabs(<double>y[i])
        if v > g[0]:
            g[0] = v
        for j in range(p):
            v = fabs(<double>X[i * p + j])
            if v > g[1 + j]:
                g[1 + j] = v


cdef void _lsq_guard(int model, const floating* X, const floating* y, const floating* w,
                     Py_ssize_t n, Py_ssize_t p, double shift, double xscale, double* guard,
                     double* work) noexcept nogil:
    """guard (see above); ``work`` holds ``_n_chunks(n, 1) * _stride(p + 2)``
    doubles (``_work_size`` is at least that; a stride, >= 16, holds two ranges).
    Row-parallel; max and min give the same result in any order."""
    cdef Py_ssize_t nch, stride = _stride(p + 2), c, j
    cdef double r[3]
    cdef double* g
    cdef double ym, um
    cdef int nthreads
    _value_range(w, n, r)
    if r[0] >= WLIGHT:
        guard[0] = r[0] if r[0] < 1.0 else 1.0
        guard[1] = -1.0
        return
    guard[0] = WLIGHT
    nch = _n_chunks(n, 1)
    nthreads = _team_size(nch)
    if model == 1:  # y and x (its min and max) in one parallel read
        if nthreads > 1:
            for c in prange(nch, schedule="static", num_threads=nthreads):
                _range_span(y, (c * n) // nch, ((c + 1) * n) // nch, work + c * stride)
                _range_span(X, (c * n) // nch, ((c + 1) * n) // nch, work + c * stride + 3)
        else:  # no OpenMP region (see _team_size)
            for c in range(nch):
                _range_span(y, (c * n) // nch, ((c + 1) * n) // nch, work + c * stride)
                _range_span(X, (c * n) // nch, ((c + 1) * n) // nch, work + c * stride + 3)
        ym = um = 0.0
        for c in range(nch):
            g = work + c * stride
            for j in range(2):
                if fabs(g[j]) > ym:
                    ym = fabs(g[j])
                if fabs(g[3 + j] - shift) > um:
                    um = fabs(g[3 + j] - shift)
        um *= fabs(xscale)
        guard[1] = ym
        guard[2] = um
        for j in range(1, p):
            guard[2 + j] = guard[1 + j] * um
        return
    if nthreads > 1:
        for c in prange(nch, schedule="static", num_threads=nthreads):
            _lsq_guard_light(X, y, w, p, (c * n) // nch, ((c + 1) * n) // nch, work + c * stride)
    else:  # no OpenMP region (see _team_size)
        for c in range(nch):
            _lsq_guard_light(X, y, w, p, (c * n) // nch, ((c + 1) * n) // nch, work + c * stride)
    memcpy(guard + 1, work, (p + 1) * sizeof(double))
    for c in range(1, nch):
        g = work + c * stride
        for j in range(p + 1):
            if g[j] > guard[1 + j]:
                guard[1 + j] = g[j]


cdef inline bint _lsq_guard_ok(const double* guard, const floating* theta, Py_ssize_t p,
                               double ssr, double big) noexcept nogil:
    """No r_i**2 can overflow (weighted; see ``_lsq_guard``): ssr <= big wh and
    the light rows' bound squared <= big."""
    cdef double rb
    cdef Py_ssize_t j
    if not (ssr <= big * guard[0]):
        return False
    if guard[1] < 0:
        return True
    rb = guard[1] + fabs(<double>theta[p])
    for j in range(p):
        rb += fabs(<double>theta[j]) * guard[2 + j]
    return rb * rb <= big


cdef double _objective_grad_lsq(const double* st, Py_ssize_t n, Py_ssize_t p,
                                const floating* theta, const floating* l2w, int l2d,
                                int fit_icpt, floating* grad, double* acc, int strict,
                                const double* guard) noexcept nogil:
    """MSE objective and gradient from [G, c, S] in O(p**2), or NaN.

    NaN (the caller then takes the exact pass over the rows) when the sum of
    squares is near overflow -- the reference's divergence signal is r**2
    overflowing in the data dtype, and no r_i**2 <= sum r**2 can overflow
    below half (float32) / a quarter (float64) of the largest finite value --,
    when it has lost precision to cancellation, or when the gradient is
    within rounding of zero, where the exact zero the reference may compute
    decides convergence.  ``strict`` (a preconditioned run or a dense
    penalty, which reach that noise floor within a few dozen epochs) also
    takes the exact pass when every fitted component of the whole gradient,
    penalty included, is within the rounding of G theta - c: there the
    reference settles on a fixed point (theta unchanged to the bit, the
    stopping rule's signal) that this shortcut's cancellation noise would
    keep moving.  ``strict`` -1 (those runs with ``tol > 0``, where a step at
    the noise floor stops the fit either way): neither fallback.  ``guard``:
    NULL without weights; with them the overflow test is ``_lsq_guard_ok``
    (weighted statistics bound each r_i**2 only through w_i).
    """
    cdef Py_ssize_t p1 = p + 1, j, k
    cdef const double* c = st + p1 * p1
    cdef double ssr = st[p1 * p1 + p1], g, gk, mag, big, eps
    cdef double terms = ssr  # the size of the terms ssr is summed from
    cdef bint tiny = True
    if floating is float:
        big, eps = 0.5 * FLT_MAX, 64.0 * 1.1920928955078125e-07
    else:
        big, eps = 0.25 * DBL_MAX, 64.0 * 2.220446049250313e-16
    for j in range(p1):
        g = 0.0
        mag = fabs(c[j])
        for k in range(p1):
            gk = st[j * p1 + k] * <double>theta[k]
            g += gk
            mag += fabs(gk)
        g -= c[j]  # sum_i r_i a_ij
        if fabs(g) > eps * mag and (j < p or fit_icpt):
            tiny = False
        acc[j] = 2.0 * g
        ssr += <double>theta[j] * (g - c[j])
        terms += fabs(<double>theta[j]) * (mag + fabs(c[j]))
    # sum r**2 comes out of a cancellation between terms of size ``terms``
    # (S and theta^T G theta: large for data far from the origin, or for
    # large coefficients that cancel): its rounding error is about eps64 *
    # terms.  Below 1e-6 * terms that is more than 1e-10 relative, and an
    # exact pass over the rows is taken instead (the reference's loss
    # history keeps its precision).
    if strict < 0:  # tol > 0 (see _run): no fallback at the noise floor
        tiny = False
    if tiny or not (ssr <= big) or ssr < 1e-6 * terms:
        return NAN
    if guard != NULL and not _lsq_guard_ok(guard, theta, p, ssr, big):
        return NAN
    _finish(acc, n, theta, l2w, l2d, fit_icpt, grad, p)
    if strict > 0:
        tiny = True
        for j in range(p1):
            if j == p and not fit_icpt:
                continue
            mag = fabs(c[j])
            for k in range(p1):
                mag += fabs(st[j * p1 + k] * <double>theta[k])
            if fabs(<double>grad[j]) > eps * (2.0 * mag / n):
                tiny = False
                break
        if tiny:
            return NAN
    return ssr / n + _penalty(theta, l2w, l2d, p)


cdef inline Py_ssize_t _work_size(int model, Py_ssize_t n, Py_ssize_t ncol, Py_ssize_t p) noexcept nogil:
    """Doubles of scratch for _og_all on this problem."""
    cdef Py_ssize_t w = _n_chunks(n, _row_cost(model, ncol, p)) * _stride(p + 2)
    return w if w > 0 else 1


cdef double* _alloc_doubles(Py_ssize_t k) except NULL:
    """k doubles of scratch on a cache line (``fgd_alloc64``); free with ``_free_doubles``."""
    cdef double* buf = <double*>fgd_alloc64((k if k > 0 else 1) * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    return buf


cdef inline void _free_doubles(double* buf) noexcept nogil:
    """Frees an ``_alloc_doubles`` buffer (NULL is a no-op)."""
    if buf != NULL:
        fgd_free64(buf)


cdef int _basis(object basis, double* out) except -1:
    """out = [shift, scale] from a float ``s`` ([0, s]) or a float64 array of length 2."""
    if isinstance(basis, float) or isinstance(basis, int):
        out[0] = 0.0
        out[1] = <double>basis
        return 0
    b = _np.asarray(basis, dtype=_np.float64)
    if b.ndim == 0:
        out[0] = 0.0
        out[1] = float(b)
        return 0
    if b.shape != (2,):
        raise ValueError(f"basis must be a float or a float64 array [shift, scale], "
                         f"got shape {b.shape}")
    out[0] = float(b[0])
    out[1] = float(b[1])
    return 0


cdef int _l2w_dense(Py_ssize_t n_l2w, Py_ssize_t m) except -1:
    """0 for diagonal weights (m entries), 1 for a dense Q (m**2 entries, row major)."""
    if n_l2w == m:
        return 0
    if n_l2w == m * m:
        return 1
    raise ValueError(f"l2w must have p + 1 = {m} (diagonal) or (p + 1)**2 = {m * m} (dense) "
                     f"entries, got {n_l2w}")


cdef int _check_w(Py_ssize_t n_w, Py_ssize_t n) except -1:
    """Sample weights: one per row (their dtype is the data's: the memoryview checks it)."""
    if n_w != n:
        raise ValueError(f"w must have one weight per row of X ({n}), got {n_w}")
    return 0


def objective_grad(int model, int loss, const floating[:, ::1] X, const floating[::1] y,
                   const floating[::1] theta, basis, double delta,
                   const floating[::1] l2w, int fit_icpt, floating[::1] grad, w=None) -> float:
    """Objective and gradient over all rows, one fused pass (row-parallel).

    Returns ``mean(rho(r)) + penalty`` and writes ``mean(psi(r) dpred/dtheta)
    + penalty gradient`` into ``grad`` (``grad[p] = 0`` when ``fit_icpt`` is
    0).  ``basis``: ``[shift, scale]`` (float64) or a float ``s`` for
    ``[0, s]``; ``l2w``: diagonal weights or a dense row-major ``Q``.
    ``w``: None, or sample weights (C-contiguous (n,), the data dtype):
    each row's rho(r_i) and psi(r_i) are multiplied by w_i (in the data
    dtype) and the sums are still divided by n.  None runs the unweighted
    loops, unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> X = np.array([[1.0], [2.0]]); y = np.array([1.0, 2.0]); g = np.empty(2)
    >>> _cython.objective_grad(0, 0, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2), 1, g)
    2.5
    >>> g.tolist()
    [-5.0, -3.0]
    >>> _cython.objective_grad(0, 0, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2), 1, g,
    ...                        w=np.array([1.0, 3.0]))
    6.5
    >>> g.tolist()
    [-13.0, -7.0]
    """
    cdef Py_ssize_t n = X.shape[0], ncol = X.shape[1], p = theta.shape[0] - 1
    cdef double f
    cdef double bs[2]
    cdef int l2d = _l2w_dense(l2w.shape[0], p + 1)
    cdef const floating[::1] wv
    cdef const floating* wp = NULL
    if w is not None:
        wv = w
        _check_w(wv.shape[0], n)
        wp = &wv[0]
    _basis(basis, bs)
    cdef double* acc = _alloc_doubles(p + 1)
    cdef double* work = NULL
    try:
        work = _alloc_doubles(_work_size(model, n, ncol, p))
        with nogil:
            if wp == NULL:
                f = _objective_grad(model, loss, &X[0, 0], &y[0], wp, <unweighted_t>0, n, ncol,
                                    p, &theta[0], bs[0], bs[1], delta, &l2w[0], l2d, fit_icpt,
                                    &grad[0], acc, work)
            else:
                f = _objective_grad(model, loss, &X[0, 0], &y[0], wp, <weighted_t>1, n, ncol,
                                    p, &theta[0], bs[0], bs[1], delta, &l2w[0], l2d, fit_icpt,
                                    &grad[0], acc, work)
    finally:
        _free_doubles(acc)
        _free_doubles(work)
    return f


def objective(int model, int loss, const floating[:, ::1] X, const floating[::1] y,
              const floating[::1] theta, basis, double delta,
              const floating[::1] l2w, w=None) -> float:
    """Objective over all rows (row-parallel); ``w`` as in :func:`objective_grad`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> X = np.array([[1.0], [2.0]]); y = np.array([1.0, 2.0])
    >>> _cython.objective(0, 1, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2))
    1.0
    >>> _cython.objective(0, 1, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2), w=np.array([2.0, 0.0]))
    0.5
    """
    cdef Py_ssize_t n = X.shape[0], ncol = X.shape[1], p = theta.shape[0] - 1
    cdef double f
    cdef double bs[2]
    cdef int l2d = _l2w_dense(l2w.shape[0], p + 1)
    cdef const floating[::1] wv
    cdef const floating* wp = NULL
    if w is not None:
        wv = w
        _check_w(wv.shape[0], n)
        wp = &wv[0]
    _basis(basis, bs)
    cdef double* acc = _alloc_doubles(p + 1)
    cdef double* work = NULL
    try:
        work = _alloc_doubles(_work_size(model, n, ncol, p))
        with nogil:
            if wp == NULL:
                f = _objective(model, loss, &X[0, 0], &y[0], wp, <unweighted_t>0, n, ncol, p,
                               &theta[0], bs[0], bs[1], delta, &l2w[0], l2d, acc, work)
            else:
                f = _objective(model, loss, &X[0, 0], &y[0], wp, <weighted_t>1, n, ncol, p,
                               &theta[0], bs[0], bs[1], delta, &l2w[0], l2d, acc, work)
    finally:
        _free_doubles(acc)
        _free_doubles(work)
    return f


def lsq_stats(int model, const floating[:, ::1] X, const floating[::1] y, basis,
              Py_ssize_t p, w=None) -> tuple:
    """``G = A^T W A``, ``c = A^T W y`` and ``S = y^T W y`` in float64, one pass over the rows.

    ``A`` has the design rows ``a_i = [features, 1]`` (poly: ``[u**1, ...,
    u**p, 1]``, ``u = (x - shift) * scale`` in the data dtype, its powers in
    float64; the linear model needs ``p == X.shape[1]``).  ``W = diag(w)``,
    the identity when ``w`` is None; the weights are converted to float64
    and every term is multiplied by its row's weight in float64.  Sums, not
    means; ``G`` is the full symmetric ``(p + 1, p + 1)`` matrix.
    Row-parallel (chunk-ordered, so the same bits with any thread count).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> X = np.array([[1.0], [2.0]]); y = np.array([1.0, 3.0])
    >>> G, c, S = _cython.lsq_stats(0, X, y, 1.0, 1)
    >>> G.tolist(), c.tolist(), S
    ([[5.0, 3.0], [3.0, 2.0]], [7.0, 4.0], 10.0)
    >>> G, c, S = _cython.lsq_stats(0, X, y, 1.0, 1, w=np.array([2.0, 1.0]))
    >>> G.tolist(), c.tolist(), S
    ([[6.0, 4.0], [4.0, 3.0]], [8.0, 5.0], 11.0)
    """
    cdef Py_ssize_t n = X.shape[0], ncol = X.shape[1], m = p + 1, j
    cdef double bs[2]
    cdef double* st = NULL
    cdef double* work = NULL
    cdef const floating[::1] wv
    cdef const floating* wp = NULL
    if p < 0:
        raise ValueError(f"p must be >= 0, got {p}")
    if model == 0 and ncol != p:
        raise ValueError(f"the linear model needs p == X.shape[1] ({ncol}), got p={p}")
    if model != 0 and ncol != 1:
        raise ValueError(f"the polynomial model needs X of shape (n, 1), got {ncol} columns")
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} rows, X has {n}")
    if w is not None:
        wv = w
        _check_w(wv.shape[0], n)
        wp = &wv[0]
    _basis(basis, bs)
    G = _np.empty((m, m))
    c = _np.empty(m)
    cdef double[:, ::1] Gv = G
    cdef double[::1] cv = c
    cdef double S
    try:
        st = _alloc_doubles(_lsq_size(p))
        work = _alloc_doubles(_lsq_work_size(model, n, p))
        with nogil:
            if wp == NULL:
                _lsq_stats(model, &X[0, 0], &y[0], wp, <unweighted_t>0, n, p, <floating>bs[0],
                           <floating>bs[1], st, work)
            else:
                _lsq_stats(model, &X[0, 0], &y[0], wp, <weighted_t>1, n, p, <floating>bs[0],
                           <floating>bs[1], st, work)
            memcpy(&Gv[0, 0], st, m * m * sizeof(double))
            memcpy(&cv[0], st + m * m, m * sizeof(double))
            S = st[m * m + m]
    finally:
        _free_doubles(st)
        _free_doubles(work)
    return G, c, S


def batch_grad(int model, int loss, const floating[:, ::1] X, const floating[::1] y,
               const floating[::1] theta, basis, double delta,
               const floating[::1] l2w, int fit_icpt, const index_t[::1] idx,
               Py_ssize_t start, Py_ssize_t stop, floating[::1] grad, w=None) -> None:
    """Gradient over the rows ``idx[start:stop]`` (mean over them + penalty).

    ``w``: None or sample weights (n,) in the data dtype: row ``idx[k]``'s
    psi is multiplied by ``w[idx[k]]``, the sum still divided by
    ``stop - start``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> X = np.array([[1.0], [2.0]]); y = np.array([1.0, 2.0]); g = np.empty(2)
    >>> _cython.batch_grad(0, 0, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2), 1,
    ...                    np.array([1, 0], dtype=np.int32), 0, 1, g)
    >>> g.tolist()
    [-8.0, -4.0]
    >>> _cython.batch_grad(0, 0, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2), 1,
    ...                    np.array([1, 0], dtype=np.int32), 0, 1, g, w=np.array([1.0, 0.5]))
    >>> g.tolist()
    [-4.0, -2.0]
    """
    cdef Py_ssize_t p = theta.shape[0] - 1
    cdef double bs[2]
    cdef int l2d = _l2w_dense(l2w.shape[0], p + 1)
    cdef const floating[::1] wv
    cdef const floating* wp = NULL
    if w is not None:
        wv = w
        _check_w(wv.shape[0], X.shape[0])
        wp = &wv[0]
    _basis(basis, bs)
    cdef double* acc = _alloc_doubles(p + 1)
    cdef double lsum = 0.0  # (the rows' losses: not needed here)
    with nogil:
        if wp == NULL:
            _batch_grad(model, loss, &X[0, 0], &y[0], wp, <unweighted_t>0, X.shape[1], p,
                        &theta[0], bs[0], bs[1], delta, &l2w[0], l2d, fit_icpt, &idx[0],
                        idx.shape[0], start, stop, &grad[0], acc, &lsum)
        else:
            _batch_grad(model, loss, &X[0, 0], &y[0], wp, <weighted_t>1, X.shape[1], p,
                        &theta[0], bs[0], bs[1], delta, &l2w[0], l2d, fit_icpt, &idx[0],
                        idx.shape[0], start, stop, &grad[0], acc, &lsum)
    _free_doubles(acc)

# ---------------------------------------------------------------- update rules
# hp = [momentum, beta1, beta2, eps, rho]; state rows: 0 = v / s / m, 1 = Adam's v.
# numpy's promotion is reproduced: lr (a Python float) is cast to the data
# dtype; a float64 hyperparameter (a numpy scalar) promotes the expression to
# float64, and the in-place store rounds back to the data dtype.


cdef void _update(int opt, floating* theta, const floating* g, floating* s0, floating* s1,
                  Py_ssize_t m, double lr, const double* hp, long long t) noexcept nogil:
    cdef floating lrf = <floating>lr, v
    cdef double mu = hp[0], b1 = hp[1], b2 = hp[2], eps = hp[3], rh = hp[4]
    cdef double bc1, bc2, den
    cdef Py_ssize_t j
    if opt == 0:    # gd
        for j in range(m):
            theta[j] -= lrf * g[j]
    elif opt == 1:  # momentum (heavy ball, torch SGD with dampening 0)
        for j in range(m):
            v = <floating>(s0[j] * mu) + g[j]
            s0[j] = v
            theta[j] -= lrf * v
    elif opt == 2:  # nesterov (torch's form)
        for j in range(m):
            v = <floating>(s0[j] * mu) + g[j]
            s0[j] = v
            theta[j] = <floating>(theta[j] - lr * (g[j] + mu * v))
    elif opt == 3:  # adagrad; eps outside the root (torch)
        for j in range(m):
            s0[j] += g[j] * g[j]
            den = <double><floating>sqrt(<double>s0[j]) + eps
            theta[j] = <floating>(theta[j] - <double>(lrf * g[j]) / den)
    elif opt == 4:  # rmsprop
        for j in range(m):
            s0[j] = <floating>(s0[j] * rh)
            s0[j] = <floating>(s0[j] + (1.0 - rh) * <double>(g[j] * g[j]))
            den = <double><floating>sqrt(<double>s0[j]) + eps
            theta[j] = <floating>(theta[j] - <double>(lrf * g[j]) / den)
    else:           # adam, with bias correction of both moments
        bc1 = 1.0 - pow(b1, <double>t)
        bc2 = 1.0 - pow(b2, <double>t)
        if floating is double:  # the same loop in C (AVX2 where the CPU has it)
            fgd_adam_d(theta, s0, s1, g, 0, m, b1, b2, lr, bc1, bc2, eps)
            return
        for j in range(m):
            s0[j] = <floating>(s0[j] * b1)
            s0[j] = <floating>(s0[j] + (1.0 - b1) * g[j])
            s1[j] = <floating>(s1[j] * b2)
            s1[j] = <floating>(s1[j] + (1.0 - b2) * <double>(g[j] * g[j]))
            theta[j] = <floating>(theta[j] - lr * (s0[j] / bc1) / (sqrt(s1[j] / bc2) + eps))


def update(int opt, floating[::1] theta, const floating[::1] grad, floating[:, ::1] state,
           double lr, const double[::1] hp, long long t) -> None:
    """One step of update rule ``opt`` on ``theta`` in place (torch's conventions).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> th = np.array([1.0, 2.0]); st = np.zeros((2, 2))
    >>> hp = np.array([0.9, 0.9, 0.999, 1e-8, 0.99])
    >>> _cython.update(0, th, np.array([1.0, -1.0]), st, 0.5, hp, 1)
    >>> th.tolist()
    [0.5, 2.5]
    """
    cdef Py_ssize_t m = theta.shape[0]
    with nogil:
        _update(opt, &theta[0], &grad[0], &state[0, 0], &state[1, 0], m, lr, &hp[0], t)


# ---------------------------------------------------------------- preconditioned step
# The optimizer runs on internal parameters z with theta = T z (theta: the
# kernel's parameters, in which predictions and gradients are formed).  A
# step maps the gradient g' = T^T g, lets the update rule move a zero vector
# by delta (state slots live in internal coordinates), then theta += T delta.
# Only T acts on theta: z itself is never stored.  ``pre`` (float64, row
# major, ``kind`` from its number of rows):
#   kind 0, (0, p+1)        no preconditioning: the update rule acts on theta.
#   kind 1, (2, p+1)        centre-and-scale (linear model), rows a and b:
#                             theta_j = a_j z_j (j < p), theta_p = z_p - sum_j b_j z_j
#   kind 2, (2(p+1), p+1)   dense: rows 0..p are T, rows p+1..2p+1 are T^-1.
# Every sum below runs in float64 over its index ascending.


cdef inline int _pre_kind(Py_ssize_t rows) noexcept nogil:
    """0 none, 1 centre-and-scale, 2 dense (from the number of rows of ``pre``)."""
    if rows == 0:
        return 0
    return 1 if rows == 2 else 2


cdef inline void _pre_grad(const double* pre, int kind, floating* grad, Py_ssize_t m,
                           double* out) noexcept nogil:
    """grad = T^T grad, summed in float64 (``out``: m doubles of scratch), stored in the data dtype."""
    cdef Py_ssize_t p = m - 1, j, k
    cdef double s, gp
    if kind == 1:
        gp = <double>grad[p]
        for j in range(p):
            out[j] = pre[j] * <double>grad[j] - pre[m + j] * gp
        out[p] = gp
    else:
        for k in range(m):
            s = 0.0
            for j in range(m):
                s += pre[j * m + k] * <double>grad[j]
            out[k] = s
    for j in range(m):
        grad[j] = <floating>out[j]


cdef inline void _pre_apply(const double* pre, int kind, floating* theta, const floating* delta,
                            Py_ssize_t m) noexcept nogil:
    """theta += T delta (float64 sums, stored in the data dtype)."""
    cdef Py_ssize_t p = m - 1, j, k
    cdef double s = 0.0, d
    if kind == 1:
        for j in range(p):
            d = <double>delta[j]
            theta[j] = <floating>(<double>theta[j] + pre[j] * d)
            s += pre[m + j] * d
        theta[p] = <floating>(<double>theta[p] + (<double>delta[p] - s))
    else:
        for j in range(m):
            s = 0.0
            for k in range(m):
                s += pre[j * m + k] * <double>delta[k]
            theta[j] = <floating>(<double>theta[j] + s)


cdef inline void _pre_internal(const double* pre, int kind, const floating* theta,
                               Py_ssize_t m, double* z) noexcept nogil:
    """z = T^-1 theta in float64 (``theta`` itself for kind 0)."""
    cdef Py_ssize_t p = m - 1, j, k
    cdef double s = 0.0
    if kind == 0:
        for j in range(m):
            z[j] = <double>theta[j]
    elif kind == 1:
        for j in range(p):
            z[j] = <double>theta[j] / pre[j]
            s += pre[m + j] * z[j]
        z[p] = <double>theta[p] + s
    else:
        for j in range(m):
            s = 0.0
            for k in range(m):
                s += pre[(m + j) * m + k] * <double>theta[k]
            z[j] = s


cdef inline void _step(int opt, floating* theta, floating* grad, floating* s0, floating* s1,
                       Py_ssize_t m, double lr, const double* hp, long long t,
                       const double* pre, int kind, double* work,
                       floating* delta) noexcept nogil:
    """One step of update rule ``opt``, preconditioned by ``pre``; ``grad`` is scratch.

    ``work`` (m doubles) and ``delta`` (m values) are scratch, unused for kind 0.
    """
    if kind == 0:
        _update(opt, theta, grad, s0, s1, m, lr, hp, t)
        return
    _pre_grad(pre, kind, grad, m, work)
    memset(delta, 0, m * sizeof(floating))
    _update(opt, delta, grad, s0, s1, m, lr, hp, t)
    _pre_apply(pre, kind, theta, delta, m)


# ---------------------------------------------------------------- schedule


cdef inline double _schedule(int sched, double lr0, const double* sched_hp, double offset,
                             long long epoch) noexcept nogil:
    """Learning rate of ``epoch``, counted from ``offset`` (``sched_hp[2]``, 0 when absent)."""
    cdef double e
    if sched == 0:
        return lr0
    e = <double>epoch + offset  # offset 0: the epoch itself (whole numbers, exact)
    if sched == 1:
        return lr0 / pow(e + 1.0, sched_hp[0])
    return lr0 * pow(sched_hp[1], e)


cdef inline double _sched_offset(const double[::1] sched_hp) noexcept:
    """``sched_hp[2]``, the schedule's epoch offset, or 0 for ``[power_t, gamma]``."""
    return sched_hp[2] if sched_hp.shape[0] > 2 else 0.0


def schedule(int sched, double lr0, const double[::1] sched_hp, long long epoch) -> float:
    """Learning rate of (0-based) ``epoch``.

    ``sched_hp`` is ``[power_t, gamma]`` or ``[power_t, gamma, offset]``:
    epoch ``e`` takes ``lr0`` (constant), ``lr0 / (e + offset + 1)**power_t``
    (invscaling) or ``lr0 * gamma**(e + offset)`` (exponential); the offset
    (a whole number, 0 when absent) lets a fit that continues an earlier one
    keep its schedule.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> _cython.schedule(2, 1.0, np.array([0.25, 0.5]), 3)
    0.125
    >>> _cython.schedule(2, 1.0, np.array([0.25, 0.5, 2.0]), 1)
    0.125
    """
    return _schedule(sched, lr0, &sched_hp[0], _sched_offset(sched_hp), epoch)


# ---------------------------------------------------------------- epoch loop


cdef inline bint _all_finite(const floating* theta, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(m):
        if not isfinite(theta[j]):
            return False
    return True


cdef inline bint _converged(const floating* theta, const floating* theta_prev, Py_ssize_t m,
                            double tol, const double* pre, int kind,
                            double* work) noexcept nogil:
    """The stopping rule, in internal coordinates z = T^-1 theta:
    max|z - z_prev| <= tol * max(1, max|z|).  Without preconditioning (kind 0)
    the difference is taken in the data dtype.  ``work``: 2m doubles (kind > 0)."""
    cdef double step = 0.0, scale = 1.0, a
    cdef Py_ssize_t j
    cdef double* z
    cdef double* zp
    if kind != 0:
        z = work
        zp = work + m
        _pre_internal(pre, kind, theta, m, z)
        _pre_internal(pre, kind, theta_prev, m, zp)
        for j in range(m):
            a = fabs(z[j] - zp[j])
            if a != a:  # NaN: numpy's max is NaN, and NaN <= x is False
                return False
            if a > step:
                step = a
            a = fabs(z[j])
            if a > scale:
                scale = a
        return step <= tol * scale
    for j in range(m):
        a = fabs(<double>(theta[j] - theta_prev[j]))  # difference in the data dtype
        if a > step:
            step = a
        a = fabs(<double>theta[j])
        if a > scale:
            scale = a
    return step <= tol * scale


cdef void _sgd_gd_linear(int loss, const floating* X, const floating* y, const floating* w,
                         weight_t wtd, Py_ssize_t ncol, floating* theta, Py_ssize_t p,
                         double delta, const floating* l2w, int fit_icpt, const index_t* idx,
                         Py_ssize_t n_idx, Py_ssize_t start, Py_ssize_t stop,
                         double lr, double* lsum) noexcept nogil:
    """Samples idx[start:stop], one gd step each, linear model (batch_size 1).

    The same arithmetic as ``_batch_grad`` over one row followed by
    ``_update`` (opt 0), in one sweep over the row: g_j = s x_j + l2w_j
    theta_j (float64 sum, rounded to the data dtype), theta_j -= lr g_j,
    with s = psi(r) (weighted: psi(r) w_i, in the data dtype -- the only
    change, one product per sample).  float64 fuses each step with the next
    sample's dot product (same partial sums as ``_dot``, so the same bits).
    ``lsum[0]`` += the samples' (weighted) losses rho(r) w_i at their
    residuals (float64; one add per sample, off the steps' dependency chain).
    """
    cdef floating d = <floating>delta, lrf = <floating>lr, r, s, g, dotv
    cdef double ls = lsum[0]
    cdef Py_ssize_t k, i
    cdef const floating* x
    cdef const floating* xn
    if start >= stop:
        return
    i = <Py_ssize_t>idx[start]
    x = X + i * ncol
    dotv = _dot(x, theta, p)
    for k in range(start, stop):
        if k + PREFETCH < n_idx:
            _prefetch_row(X, y, w, wtd, ncol, <Py_ssize_t>idx[k + PREFETCH])
        if k + PREFETCH_L1 < n_idx:
            _prefetch_row_l1(X, ncol, <Py_ssize_t>idx[k + PREFETCH_L1])
        r = (dotv + theta[p]) - y[i]
        ls += <double>_wt(rho(loss, r, d), w, i, wtd)
        s = _wt(psi(loss, r, d), w, i, wtd)
        xn = X + <Py_ssize_t>idx[k + 1] * ncol if k + 1 < stop else x
        if floating is double:
            dotv = fgd_gd_step_dot_d(theta, x, l2w, s, lrf, xn, p)
        else:
            fgd_gd_step_f(theta, x, l2w, s, lrf, p)
            dotv = _dot(xn, theta, p)
        if fit_icpt:
            g = <floating>(<double>s + <double>(l2w[p] * theta[p]))
            theta[p] -= lrf * g
        if k + 1 < stop:
            i = <Py_ssize_t>idx[k + 1]
            x = xn
    lsum[0] = ls


cdef void _sgd_gd_linear_pre(int loss, const floating* X, const floating* y,
                             const floating* w, weight_t wtd, Py_ssize_t ncol, floating* theta,
                             Py_ssize_t p, double delta, const floating* l2w, const double* pre,
                             int fit_icpt, const index_t* idx, Py_ssize_t n_idx,
                             Py_ssize_t start, Py_ssize_t stop, double lr,
                             double* lsum) noexcept nogil:
    """``_sgd_gd_linear`` with the centre-and-scale preconditioner (kind 1, rows a, b).

    The same arithmetic as ``_batch_grad`` over one row, then ``_step``
    (opt 0: ``_pre_grad``, ``_update`` of a zero vector, ``_pre_apply``), in
    one sweep over the row: per coordinate j, g_j = s x_j + l2w_j theta_j
    (float64 sum, rounded to the data dtype), g'_j = a_j g_j - b_j g_p
    (float64, rounded), d_j = 0 - lr g'_j (data dtype), theta_j += a_j d_j
    (float64, rounded) and s2 += b_j d_j (float64, j ascending); then
    theta_p += d_p - s2.  The gradient's zero signs, which the general path
    may flip (its sums start at +0), cannot reach theta: 0 - lr g' is +0
    for either zero.  Each step is fused with the next sample's dot
    product (same partial sums as ``_dot``, so the same bits), float32 too.
    The ordered sum s2 is a chain of p dependent float64 adds per sample, on
    the way to the next prediction: it bounds the epoch (1e6 x 100 float64:
    ~70 ms against ~40 ms without ``pre`` and ~200 ms on the general path).
    Weighted: s = psi(r) w_i (data dtype), as in ``_sgd_gd_linear``; ``lsum``
    too.
    """
    cdef floating d = <floating>delta, lrf = <floating>lr, zero = 0, r, s, gp, dp, dotv
    cdef double s2 = 0.0, ls = lsum[0]
    cdef const double* a = pre
    cdef const double* b = pre + p + 1
    cdef Py_ssize_t k, i
    cdef const floating* x
    cdef const floating* xn
    if start >= stop:
        return
    i = <Py_ssize_t>idx[start]
    x = X + i * ncol
    dotv = _dot(x, theta, p)
    for k in range(start, stop):
        if k + PREFETCH < n_idx:
            _prefetch_row(X, y, w, wtd, ncol, <Py_ssize_t>idx[k + PREFETCH])
        if k + PREFETCH_L1 < n_idx:
            _prefetch_row_l1(X, ncol, <Py_ssize_t>idx[k + PREFETCH_L1])
        r = (dotv + theta[p]) - y[i]
        ls += <double>_wt(rho(loss, r, d), w, i, wtd)
        s = _wt(psi(loss, r, d), w, i, wtd)
        xn = X + <Py_ssize_t>idx[k + 1] * ncol if k + 1 < stop else x
        if fit_icpt:
            gp = <floating>(<double>s + <double>(l2w[p] * theta[p]))
        else:
            gp = 0
        if floating is double:
            dotv = fgd_gd_pre_step_dot_d(theta, x, l2w, a, b, s, lrf, gp, xn, p, &s2)
        else:
            dotv = fgd_gd_pre_step_dot_f(theta, x, l2w, a, b, s, lrf, <double>gp, xn, p, &s2)
        dp = zero - lrf * gp
        theta[p] = <floating>(<double>theta[p] + (<double>dp - s2))
        if k + 1 < stop:
            i = <Py_ssize_t>idx[k + 1]
            x = xn
    lsum[0] = ls


# Progress marks of a staged epoch (``_staged_epoch``), int64, each group on
# its own cache line: marks[0] the chunk the stepping thread is on; slot k
# (``_slot``): [0] the chunk the staging thread has claimed for buffer k
# (-1: none), [9] positions below it are copied, [16] positions from it on
# the stepping thread takes from X itself.
cdef inline long long* _slot(long long* marks, Py_ssize_t k) noexcept nogil:
    return marks + 8 + 24 * k


cdef inline void _copy_row(const floating* X, const floating* y, const floating* w,
                           weight_t wtd, Py_ssize_t ncol, Py_ssize_t i, floating* xb,
                           floating* yb, floating* wb, Py_ssize_t r) noexcept nogil:
    """Row i of X (and y[i], w[i]) to row r of the buffers."""
    cdef const floating* x = X + i * ncol
    cdef floating* o = xb + r * ncol
    cdef Py_ssize_t j
    for j in range(ncol):
        o[j] = x[j]
    yb[r] = y[i]
    if weight_t is weighted_t:
        wb[r] = w[i]


cdef void _stage_front(const floating* X, const floating* y, const floating* w, weight_t wtd,
                       Py_ssize_t ncol, const index_t* idx, Py_ssize_t n, Py_ssize_t lo,
                       Py_ssize_t hi, floating* xb, floating* yb, floating* wb,
                       long long* sl, long long* marks, long long c) noexcept nogil:
    """The staging thread: copy positions lo.. of ``idx`` to the buffer (q to q - lo).

    Each position is published as copied (``sl[9]``, release) after its
    copy.  Stops at the position from which the stepping thread takes the
    chunk from X itself (``sl[16]``), or when that thread is past chunk
    ``c``.  A copy the stepping thread no longer reads is harmless: the
    buffer is written for another chunk only by this thread, later.
    """
    cdef Py_ssize_t q, a
    for q in range(lo, hi):
        if q >= fgd_load_acquire(&sl[16]):
            return
        if (q & 63) == 0 and fgd_load_acquire(&marks[0]) > c:
            return
        a = q + STAGE_PREFETCH
        if a < n:
            _prefetch_row(X, y, w, wtd, ncol, <Py_ssize_t>idx[a])
        _copy_row(X, y, w, wtd, ncol, <Py_ssize_t>idx[q], xb, yb, wb, q - lo)
        fgd_store_release(&sl[9], q + 1)


cdef long long _steps(int model, int loss, const floating* X, const floating* y,
                      const floating* w, weight_t wtd, Py_ssize_t n, Py_ssize_t ncol,
                      floating* theta, Py_ssize_t p, double shift, double xscale,
                      double delta, const floating* l2w, int l2d, int fit_icpt, int opt,
                      const double* hp, floating* s0, floating* s1, long long t, double lr,
                      const index_t* idx, Py_ssize_t n_idx, Py_ssize_t start, Py_ssize_t stop,
                      bint last, floating* grad, double* acc, const double* pre, int kind,
                      double* pre_work, floating* pre_delta, double* lsum,
                      Py_ssize_t bsz) noexcept nogil:
    """The steps of the plain epoch (``_run``) over positions start..stop-1 of
    ``idx``; returns t.  ``lsum[0]`` += the samples' losses.

    ``bsz`` > 1: mini-batches of ``bsz`` positions from ``start`` (a batch
    boundary of the epoch; ``stop`` is one too, or the epoch's end).

    ``last``: this stretch ends the epoch, whose last sample takes the batch
    gradient and ``_step`` (all others the fused gd paths where they apply).
    A fused path restarts at ``start`` with the dot product of its first row,
    the same bits as the fused one (same partial sums), so an epoch split
    into stretches takes the same steps.  Rows ``n_idx`` positions and more
    are not prefetched (0: the staged buffers, read in address order).
    """
    cdef Py_ssize_t m = p + 1, fstop, bstop
    if bsz > 1:
        while start < stop:
            bstop = start + bsz if start + bsz < stop else stop
            _batch_grad(model, loss, X, y, w, wtd, ncol, p, theta, shift, xscale, delta, l2w,
                        l2d, fit_icpt, idx, n_idx, start, bstop, grad, acc, lsum)
            t += 1
            _step(opt, theta, grad, s0, s1, m, lr, hp, t, pre, kind, pre_work, pre_delta)
            start = bstop
        return t
    fstop = stop - 1 if last else stop
    if opt == 0 and model == 0 and n > 1 and kind == 0 and not l2d:
        _sgd_gd_linear(loss, X, y, w, wtd, ncol, theta, p, delta, l2w, fit_icpt, idx,
                       n_idx, start, fstop, lr, lsum)
        if fstop > start:
            t += fstop - start
            start = fstop
    elif opt == 0 and model == 0 and n > 1 and kind == 1 and not l2d:
        _sgd_gd_linear_pre(loss, X, y, w, wtd, ncol, theta, p, delta, l2w, pre, fit_icpt,
                           idx, n_idx, start, fstop, lr, lsum)
        if fstop > start:
            t += fstop - start
            start = fstop
    while start < stop:
        _batch_grad(model, loss, X, y, w, wtd, ncol, p, theta, shift, xscale, delta, l2w,
                    l2d, fit_icpt, idx, n_idx, start, start + 1, grad, acc, lsum)
        t += 1
        _step(opt, theta, grad, s0, s1, m, lr, hp, t, pre, kind, pre_work, pre_delta)
        start += 1
    return t


cdef long long _staged_epoch(int model, int loss, const floating* X, const floating* y,
                             const floating* w, weight_t wtd, Py_ssize_t n, Py_ssize_t ncol,
                             floating* theta, Py_ssize_t p, double shift, double xscale,
                             double delta, const floating* l2w, int l2d, int fit_icpt, int opt,
                             const double* hp, floating* s0, floating* s1, long long t,
                             double lr, const index_t* idx, floating* grad, double* acc,
                             const double* pre, int kind, double* pre_work,
                             floating* pre_delta, Py_ssize_t rows, floating* Xs,
                             Py_ssize_t xstride, floating* ys, floating* ws,
                             const index_t* ident, long long* marks,
                             double* lsum, Py_ssize_t bsz) noexcept nogil:
    """One stochastic epoch over ``idx`` (batches of ``bsz``), the rows staged by a
    second thread; returns t.

    ``lsum[0]`` += the samples' losses (the stepping thread's ``_steps``).
    ``rows`` is a multiple of ``bsz``: a chunk holds whole batches, and the
    stepping thread takes from a buffer only the whole batches copied so far.

    The epoch goes in chunks of ``rows`` positions of ``idx``; chunk c is
    staged in buffer k = c % STAGE_SLOTS (``Xs + k * xstride``, ``ys + k *
    rows``, ``ws`` likewise), rows in visiting order.  Thread 1 stages the
    chunks ahead of the stepping thread, at most STAGE_SLOTS - 1 ahead (a
    buffer is reused once its chunk is stepped), skipping chunks already
    reached (``_stage_front``).  Thread 0 takes the steps, chunk by chunk,
    and never waits for the other: on a chunk the staging thread has
    claimed (``_slot``) it steps through the buffer as far as the rows are
    copied, and when it catches up with the copy it takes the rest of the
    chunk from X (the staging thread then goes on to the next chunk); any
    other chunk it steps straight from X, as the plain epoch (the staging
    thread may be slow, descheduled or not running at all).  The steps are
    those of the plain epoch (``_steps``), so the bits are too.  Called only
    when two threads are available (never in a forked process).
    """
    cdef Py_ssize_t n_chunks = (n + rows - 1) // rows
    cdef Py_ssize_t c = 0, k = 0, lo = 0, hi = 0, pos = 0, d = 0, spins = 0
    cdef long long s = 0
    cdef long long* sl
    cdef int tid = 0
    cdef long long tt[1]
    tt[0] = t
    for k in range(STAGE_SLOTS):
        sl = _slot(marks, k)
        sl[0] = -1
    marks[0] = 0
    # chunk 0 is claimed before the threads start (its copy starts at once)
    sl = _slot(marks, 0)
    sl[9] = 0
    sl[16] = rows if rows < n else n
    sl[0] = 0
    with parallel(num_threads=2):
        tid = threadid()
        if tid == 0:  # the steps
            for c in range(n_chunks):
                lo = c * rows
                hi = lo + rows if lo + rows < n else n
                k = c % STAGE_SLOTS
                sl = _slot(marks, k)
                fgd_store_seq(&marks[0], c)
                if fgd_load_seq(&sl[0]) == c:
                    # the rows copied so far from the buffer, the rest from X
                    pos = lo
                    while pos < hi:
                        d = fgd_load_acquire(&sl[9])
                        if bsz > 1 and d < hi:  # whole batches only
                            d = lo + (d - lo) // bsz * bsz
                        if d > pos:
                            tt[0] = _steps(model, loss, Xs + k * xstride, ys + k * rows,
                                           ws + k * rows if ws != NULL else ws, wtd, n, ncol,
                                           theta, p, shift, xscale, delta, l2w, l2d, fit_icpt,
                                           opt, hp, s0, s1, tt[0], lr, ident, d - lo, pos - lo,
                                           d - lo, d == n, grad, acc, pre, kind, pre_work,
                                           pre_delta, lsum, bsz)
                            pos = d
                        else:  # caught up with the copy: the staging thread stops here
                            fgd_store_seq(&sl[16], pos)
                            tt[0] = _steps(model, loss, X, y, w, wtd, n, ncol, theta, p, shift,
                                           xscale, delta, l2w, l2d, fit_icpt, opt, hp, s0, s1,
                                           tt[0], lr, idx, n, pos, hi, hi == n, grad, acc, pre,
                                           kind, pre_work, pre_delta, lsum, bsz)
                            pos = hi
                else:  # not staged: the plain epoch's steps
                    tt[0] = _steps(model, loss, X, y, w, wtd, n, ncol, theta, p, shift, xscale,
                                   delta, l2w, l2d, fit_icpt, opt, hp, s0, s1, tt[0], lr, idx,
                                   n, lo, hi, hi == n, grad, acc, pre, kind, pre_work,
                                   pre_delta, lsum, bsz)
            fgd_store_seq(&marks[0], n_chunks)
        else:  # the staging
            c = 0
            while c < n_chunks:
                k = c % STAGE_SLOTS
                sl = _slot(marks, k)
                lo = c * rows
                hi = lo + rows if lo + rows < n else n
                if c > 0:
                    # buffer k is free once chunk c - STAGE_SLOTS is stepped
                    spins = 0
                    s = fgd_load_seq(&marks[0])
                    while s < c - STAGE_SLOTS + 1:
                        spins = fgd_spin_wait(spins)
                        s = fgd_load_seq(&marks[0])
                    if s >= c:  # reached already (or the epoch is done): skip ahead
                        c = s + 1
                        continue
                    fgd_store_release(&sl[9], lo)
                    fgd_store_release(&sl[16], hi)
                    fgd_store_seq(&sl[0], c)
                _stage_front(X, y, w, wtd, ncol, idx, n, lo, hi, Xs + k * xstride,
                             ys + k * rows, ws + k * rows if ws != NULL else ws, sl, marks, c)
                c = c + 1
    return tt[0]


cdef void _run(int model, int loss, const floating* X, const floating* y, const floating* w,
               weight_t wtd, Py_ssize_t n, Py_ssize_t ncol, floating* theta, Py_ssize_t p,
               double shift, double xscale, double delta, const floating* l2w, int l2d,
               int fit_icpt, int opt, const double* hp, floating* state, long long t0,
               int sched, double lr0, const double* sched_hp, double sched_off,
               long long epoch0, long long n_epochs, Py_ssize_t batch_size,
               const index_t* order, double tol, int need_obj, floating* grad, double f0,
               double* hist_loss, int rec_loss, floating* hist_params, int rec_params,
               const double* pre, int kind, floating* theta_prev, double* acc, double* work,
               double* lsq, double* lsq_work, double* guard, double* pre_work,
               floating* pre_delta, Py_ssize_t stage_rows, floating* Xs, Py_ssize_t xstride,
               floating* ys, floating* ws, const index_t* ident, long long* marks,
               long long* out_done, int* out_status, long long* out_t,
               double* out_f) noexcept nogil:
    """The epoch loop of ``run`` (see ``_numpy.run``, the specification).

    Every update goes through ``_step`` (the plain update rule for kind 0).
    ``pre_work`` (2m doubles) and ``pre_delta`` (m values) are the
    preconditioner's scratch, NULL for kind 0.  ``w``, ``wtd``: the sample
    weights (NULL, ``unweighted_t``) of every pass; ``guard`` (p + 2 doubles,
    weighted least-squares shortcut only, else NULL) receives
    ``_lsq_guard``.  ``sched_off``: the schedule's epoch offset.
    ``stage_rows`` > 0: stochastic epochs are staged (``_staged_epoch``)
    in chunks of that many rows (whole batches), through the buffers ``Xs`` (STAGE_SLOTS of
    ``xstride`` values), ``ys``, ``ws`` (STAGE_SLOTS of ``stage_rows``; NULL
    without weights), the identity order ``ident`` and the progress ``marks``.
    Stochastic epochs without ``need_obj`` return in ``out_f`` the last
    completed epoch's progressive loss (see ``_numpy.run``): every path sums
    its samples' losses into ``lsum``.
    """
    cdef bint full = batch_size == 0
    cdef bint progressive = not full and not need_obj
    cdef double lsum = 0.0, prog = NAN
    cdef bint use_lsq = lsq != NULL
    # the shortcut's stricter fallback (see _objective_grad_lsq) for the new
    # cases only: without preconditioner and with diagonal weights it is
    # today's path, bit for bit
    cdef int strict = kind != 0 or l2d
    # ... and only where an exact zero step decides convergence (tol == 0): with
    # tol > 0 a gradient at the noise floor stops the fit on either path, and
    # a preconditioned fit reaches that floor within a few epochs
    if strict and tol > 0.0:
        strict = -1
    cdef Py_ssize_t m = p + 1, start, stop
    cdef floating* s0 = state
    cdef floating* s1 = state + m
    cdef const index_t* idx
    cdef long long t = t0, k, e, n_done = 0
    cdef int status = 0
    cdef double f, lr

    if use_lsq and lsq_work != NULL:  # full-batch least squares: one pass, then O(p**2) epochs
        _lsq_stats(model, X, y, w, wtd, n, p, <floating>shift, <floating>xscale, lsq, lsq_work)
    if guard != NULL:
        _lsq_guard(model, X, y, w, n, p, shift, xscale, guard, work)
    if not isnan(f0) and not progressive:
        f = f0
    elif use_lsq:
        f = _objective_grad_lsq(lsq, n, p, theta, l2w, l2d, fit_icpt, grad, acc, strict, guard)
        if isnan(f):
            f = _objective_grad(model, loss, X, y, w, wtd, n, ncol, p, theta, shift, xscale,
                                delta, l2w, l2d, fit_icpt, grad, acc, work)
    elif full:
        f = _objective_grad(model, loss, X, y, w, wtd, n, ncol, p, theta, shift, xscale, delta,
                            l2w, l2d, fit_icpt, grad, acc, work)
    elif need_obj:
        f = _objective(model, loss, X, y, w, wtd, n, ncol, p, theta, shift, xscale, delta, l2w,
                       l2d, acc, work)
    else:
        f = 0.0
    if not isfinite(f):
        out_done[0] = 0
        out_status[0] = 2
        out_t[0] = t
        out_f[0] = f
        return
    if rec_loss:
        hist_loss[epoch0] = f
    if rec_params:
        memcpy(hist_params + epoch0 * m, theta, m * sizeof(floating))

    for k in range(n_epochs):
        e = epoch0 + k
        lr = _schedule(sched, lr0, sched_hp, sched_off, e)
        memcpy(theta_prev, theta, m * sizeof(floating))
        if full:
            t += 1
            _step(opt, theta, grad, s0, s1, m, lr, hp, t, pre, kind, pre_work, pre_delta)
            if use_lsq:
                f = _objective_grad_lsq(lsq, n, p, theta, l2w, l2d, fit_icpt, grad, acc,
                                        strict, guard)
            if not use_lsq or isnan(f):
                f = _objective_grad(model, loss, X, y, w, wtd, n, ncol, p, theta, shift, xscale,
                                    delta, l2w, l2d, fit_icpt, grad, acc, work)
        else:
            idx = order + k * n
            start = 0
            lsum = 0.0
            if stage_rows > 0:  # the same steps, the rows staged by a second thread
                t = _staged_epoch(model, loss, X, y, w, wtd, n, ncol, theta, p, shift, xscale,
                                  delta, l2w, l2d, fit_icpt, opt, hp, s0, s1, t, lr, idx, grad,
                                  acc, pre, kind, pre_work, pre_delta, stage_rows, Xs, xstride,
                                  ys, ws, ident, marks, &lsum, batch_size)
                start = n
            elif (batch_size == 1 and opt == 0 and model == 0 and n > 1 and kind == 0
                    and not l2d):
                # all but the last sample fused (plain gd, diagonal penalty, no
                # preconditioner); the last one below leaves ``grad`` as the
                # reference does
                _sgd_gd_linear(loss, X, y, w, wtd, ncol, theta, p, delta, l2w, fit_icpt, idx,
                               n, 0, n - 1, lr, &lsum)
                t += n - 1
                start = n - 1
            elif (batch_size == 1 and opt == 0 and model == 0 and n > 1 and kind == 1
                    and not l2d):
                # the same with the centre-and-scale preconditioner
                _sgd_gd_linear_pre(loss, X, y, w, wtd, ncol, theta, p, delta, l2w, pre,
                                   fit_icpt, idx, n, 0, n - 1, lr, &lsum)
                t += n - 1
                start = n - 1
            while start < n:
                stop = start + batch_size
                if stop > n:
                    stop = n
                _batch_grad(model, loss, X, y, w, wtd, ncol, p, theta, shift, xscale, delta,
                            l2w, l2d, fit_icpt, idx, n, start, stop, grad, acc, &lsum)
                t += 1
                _step(opt, theta, grad, s0, s1, m, lr, hp, t, pre, kind, pre_work, pre_delta)
                start = stop
            if need_obj:
                f = _objective(model, loss, X, y, w, wtd, n, ncol, p, theta, shift, xscale,
                               delta, l2w, l2d, acc, work)
        if not (_all_finite(theta, m) and isfinite(f)):
            memcpy(theta, theta_prev, m * sizeof(floating))
            status = 2
            break
        n_done += 1
        if progressive:
            prog = lsum / <double>n
        if rec_loss:
            hist_loss[e + 1] = f
        if rec_params:
            memcpy(hist_params + (e + 1) * m, theta, m * sizeof(floating))
        if _converged(theta, theta_prev, m, tol, pre, kind, pre_work):
            status = 1
            break
    out_done[0] = n_done
    out_status[0] = status
    out_t[0] = t
    out_f[0] = prog if progressive else f


def run(int model, int loss, const floating[:, ::1] X, const floating[::1] y,
        floating[::1] theta, basis, double delta, const floating[::1] l2w,
        int fit_icpt, int opt, const double[::1] hp, floating[:, ::1] state, long long t0,
        int sched, double lr0, const double[::1] sched_hp, long long epoch0,
        long long n_epochs, Py_ssize_t batch_size, const index_t[:, ::1] order, double tol,
        int need_obj, floating[::1] grad, double f0, double[::1] hist_loss,
        floating[:, ::1] hist_params, pre=None, stats=None, w=None) -> tuple:
    """Run epochs ``epoch0 .. epoch0+n_epochs-1``; returns ``(n_done, status, t, f)``.

    Exactly ``_numpy.run`` (the specification), with the whole loop in C and
    the GIL released.  Full-batch MSE (polynomial always, linear with more
    epochs than parameters) gathers the data's least-squares statistics in
    one pass and then costs O(p**2) per epoch.  ``pre`` (float64, 2-D): None
    or (0, p+1) none, (2, p+1) centre-and-scale, (2(p+1), p+1) dense ``T``
    then ``T^-1``; the update rules then act on ``z = T^-1 theta``.  ``stats``:
    ``lsq_stats(model, X, y, basis, p)`` of these arrays, already computed
    (the caller's statistics pass): the least-squares shortcut then takes
    them instead of its own pass.  ``w``: None, or sample weights (n,) in the
    data dtype, applied in every pass (see :func:`objective_grad`; ``stats``
    are then the weighted statistics); None runs the unweighted loops,
    unchanged.  ``sched_hp[2]``, when present, is the schedule's epoch offset
    (see :func:`schedule`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _cython
    >>> X = np.array([[1.0], [2.0]]); y = np.array([2.0, 4.0])
    >>> theta = np.zeros(2); grad = np.zeros(2); state = np.zeros((2, 2))
    >>> hp = np.array([0.9, 0.9, 0.999, 1e-8, 0.99]); shp = np.array([0.25, 0.99])
    >>> done, status, t, f = _cython.run(
    ...     0, 0, X, y, theta, 1.0, 1.0, np.zeros(2), 0, 0, hp, state, 0, 0, 0.1, shp,
    ...     0, 500, 0, np.empty((0, 0), dtype=np.int32), 1e-12, 1, grad, float("nan"),
    ...     np.empty(0), np.empty((0, 2)))
    >>> status, round(float(theta[0]), 6)
    (1, 2.0)
    """
    cdef Py_ssize_t n = X.shape[0], ncol = X.shape[1], p = theta.shape[0] - 1, m = p + 1
    cdef long long n_done = 0, t = t0
    cdef int status = 0, kind = 0
    cdef double f = f0
    cdef double bs[2]
    cdef int l2d = _l2w_dense(l2w.shape[0], m)
    cdef const double[:, ::1] pre_v
    cdef const double* pre_ptr = NULL
    cdef const floating[::1] wv
    cdef const floating* wp = NULL
    cdef double sched_off = _sched_offset(sched_hp)
    _basis(basis, bs)
    if w is not None:
        wv = w
        _check_w(wv.shape[0], n)
        wp = &wv[0]
    if pre is not None:
        pre_v = pre
        kind = _pre_kind(pre_v.shape[0])
        if kind != 0:
            if pre_v.shape[1] != m or (kind == 2 and pre_v.shape[0] != 2 * m):
                raise ValueError(f"pre must have shape (0, {m}), (2, {m}) or ({2 * m}, {m}), "
                                 f"got ({pre_v.shape[0]}, {pre_v.shape[1]})")
            pre_ptr = &pre_v[0, 0]
    cdef floating* theta_prev = <floating*>malloc(m * sizeof(floating))
    cdef double* acc = NULL
    cdef double* work = NULL
    cdef double* lsq = NULL
    cdef double* lsq_work = NULL
    cdef double* guard = NULL
    cdef double* pre_work = NULL
    cdef floating* pre_delta = NULL
    cdef const index_t* order_ptr = &order[0, 0] if order.shape[0] > 0 else NULL
    # single-sample epochs on large data: rows staged by a second thread
    cdef Py_ssize_t stage_rows = 0, xstride = 0, q
    cdef floating* Xs = NULL
    cdef floating* ys = NULL
    cdef floating* ws = NULL
    cdef index_t* ident = NULL
    cdef long long* marks = NULL
    if n_epochs > 0 and order.shape[0] > 0:
        stage_rows = _stage_rows(n, ncol * <Py_ssize_t>sizeof(floating), batch_size)
    # Full-batch MSE takes the sufficient statistics: always for the
    # polynomial (a pass of moments), for the linear model when this call has
    # more epochs than parameters (the Gram matrix costs about p/2 passes) and
    # the rule is not adaptive.  Adaptive rules (opt >= 3) scale each
    # coordinate's gradient to a step of about lr whatever its size, so a
    # coordinate at its optimum (the intercept of the default start) steps by
    # the sign of rounding noise, and the Gram matrix's noise is not the row
    # pass's: the path would depend on how many epochs one call runs (a fit
    # continued epoch by epoch, partial_fit, must equal one fit).
    cdef bint use_lsq = batch_size == 0 and loss == 0 and (
        model == 1 or (n_epochs > p + 1 and opt < 3))
    cdef bint have_stats = False
    cdef const double[:, ::1] Gs
    cdef const double[::1] cs
    if stats is not None and batch_size == 0 and loss == 0:
        Gs = _np.ascontiguousarray(stats[0], dtype=_np.float64)
        cs = _np.ascontiguousarray(stats[1], dtype=_np.float64)
        if Gs.shape[0] != m or Gs.shape[1] != m or cs.shape[0] != m:
            raise ValueError(f"stats must be (G ({m}, {m}), c ({m},), S)")
        use_lsq = have_stats = True
    try:
        if theta_prev == NULL:
            raise MemoryError()
        acc = _alloc_doubles(m)
        work = _alloc_doubles(_work_size(model, n, ncol, p))
        if use_lsq:
            lsq = _alloc_doubles(_lsq_size(p))
            if have_stats:
                memcpy(lsq, &Gs[0, 0], m * m * sizeof(double))
                memcpy(lsq + m * m, &cs[0], m * sizeof(double))
                lsq[m * m + m] = float(stats[2])
            else:
                lsq_work = _alloc_doubles(_lsq_work_size(model, n, p))
            if wp != NULL:
                guard = _alloc_doubles(p + 2)
        if kind != 0:
            pre_work = _alloc_doubles(2 * m)
            pre_delta = <floating*>malloc(m * sizeof(floating))
            if pre_delta == NULL:
                raise MemoryError()
        if stage_rows > 0:
            # two buffers, each starting on a cache line
            xstride = (stage_rows * ncol + 15) // 16 * 16
            Xs = <floating*>fgd_alloc_stage(STAGE_SLOTS * xstride * sizeof(floating))
            ys = <floating*>fgd_alloc64(STAGE_SLOTS * stage_rows * sizeof(floating))
            ident = <index_t*>fgd_alloc64(stage_rows * sizeof(index_t))
            marks = <long long*>fgd_alloc64((8 + 24 * STAGE_SLOTS) * sizeof(long long))
            if Xs == NULL or ys == NULL or ident == NULL or marks == NULL:
                raise MemoryError()
            if wp != NULL:
                ws = <floating*>fgd_alloc64(STAGE_SLOTS * stage_rows * sizeof(floating))
                if ws == NULL:
                    raise MemoryError()
            for q in range(stage_rows):
                ident[q] = <index_t>q
        with nogil:
            if wp == NULL:
                _run(model, loss, &X[0, 0], &y[0], wp, <unweighted_t>0, n, ncol, &theta[0], p,
                     bs[0], bs[1], delta, &l2w[0], l2d, fit_icpt, opt, &hp[0], &state[0, 0], t0,
                     sched, lr0, &sched_hp[0], sched_off, epoch0, n_epochs, batch_size,
                     order_ptr, tol, need_obj, &grad[0], f0, &hist_loss[0],
                     hist_loss.shape[0] > 0, &hist_params[0, 0], hist_params.shape[0] > 0,
                     pre_ptr, kind, theta_prev, acc, work, lsq, lsq_work, guard, pre_work,
                     pre_delta, stage_rows, Xs, xstride, ys, ws, ident, marks,
                     &n_done, &status, &t, &f)
            else:
                _run(model, loss, &X[0, 0], &y[0], wp, <weighted_t>1, n, ncol, &theta[0], p,
                     bs[0], bs[1], delta, &l2w[0], l2d, fit_icpt, opt, &hp[0], &state[0, 0], t0,
                     sched, lr0, &sched_hp[0], sched_off, epoch0, n_epochs, batch_size,
                     order_ptr, tol, need_obj, &grad[0], f0, &hist_loss[0],
                     hist_loss.shape[0] > 0, &hist_params[0, 0], hist_params.shape[0] > 0,
                     pre_ptr, kind, theta_prev, acc, work, lsq, lsq_work, guard, pre_work,
                     pre_delta, stage_rows, Xs, xstride, ys, ws, ident, marks,
                     &n_done, &status, &t, &f)
    finally:
        free(theta_prev)
        _free_doubles(acc)
        _free_doubles(work)
        _free_doubles(lsq)
        _free_doubles(lsq_work)
        _free_doubles(guard)
        _free_doubles(pre_work)
        free(pre_delta)
        if Xs != NULL:
            fgd_free_stage(Xs)
        fgd_free64(ys)
        fgd_free64(ws)
        fgd_free64(ident)
        fgd_free64(marks)
    return n_done, status, t, f


# ---------------------------------------------------------------- minimize loop
# The minimize loop calls user Python functions every step, so a compiled
# loop would gain nothing: the reference loop is used (same update rules).

from fastgd.backends._numpy import minimize_run  # noqa: E402,F401
include "_stats.pxi"
