// Softmax and log-softmax over any dim (src/ops/softmax.rs: `Softmax`, `SoftmaxBackward`), for f16
// (computed in f32), f32 and f64. A tensor is viewed as [outer, len, inner] around the reduced dim;
// a *row* (lane) is the `len` elements at base + k·inner, base = o·len·inner + i, for row r = o·inner + i.
//
// Grid mappings (chosen by src/backend/cuda/softmax.rs):
// - `*_warp_*`:  one warp per row, 256-thread blocks (8 rows per block), grid-stride over rows. Used for
//   inner == 1 and len ≤ 1024 (coalesced: lanes read consecutive elements).
// - `*_block_*`: one 256-thread block per row, grid-stride over rows. Used for long rows (inner == 1,
//   len > 1024), and for inner > 1 when there are few rows but each is long.
// - `*_lane_*`:  one thread per row, a sequential loop over the row (same order as the CPU). Used for
//   inner > 1 with many rows or short rows: neighbouring threads own neighbouring i, so reads coalesce.
//
// Math (term by term as the CPU's `softmax_block`): m = max_k x; s = Σ exp(x − m);
// softmax y = exp(x − m) · (1/s); log-softmax y = x − m − ln s. Backward from the saved output y:
// softmax dx = y·(dy − Σ dy·y); log-softmax dx = dy − exp(y)·Σ dy.
//
// Invariants: 64-bit indexing throughout; x/y (or y/dy/dx) hold outer·len·inner elements and never alias;
// nothing is launched for zero rows or len == 0 (the output is then empty or untouched by design).
#include "rowops.cuh"

template <typename T, typename G>
__device__ void softmax_group_impl(i64 rows, i64 len, i64 inner, int log, const T *x, T *y) {
    typedef typename Acc<T>::type A;
    for (i64 r = G::first(); r < rows; r += G::step()) {
        const i64 o = r / inner, i = r - o * inner;
        const i64 base = o * len * inner + i;
        A m = r_neg_inf(A(0));
        for (i64 k = G::rank(); k < len; k += G::size()) m = r_max(m, ld(x, base + k * inner));
        m = G::max(m);
        A s = A(0);
        for (i64 k = G::rank(); k < len; k += G::size()) s += r_exp(ld(x, base + k * inner) - m);
        s = G::sum(s);
        if (log) {
            const A ls = r_log(s);
            for (i64 k = G::rank(); k < len; k += G::size()) {
                const i64 idx = base + k * inner;
                st(y, idx, ld(x, idx) - m - ls);
            }
        } else {
            const A rs = A(1) / s;
            for (i64 k = G::rank(); k < len; k += G::size()) {
                const i64 idx = base + k * inner;
                st(y, idx, r_exp(ld(x, idx) - m) * rs);
            }
        }
    }
}

template <typename T>
__device__ void softmax_lane_impl(i64 rows, i64 len, i64 inner, int log, const T *x, T *y) {
    typedef typename Acc<T>::type A;
    for (i64 r = gs_start(); r < rows; r += gs_step()) {
        const i64 o = r / inner, i = r - o * inner;
        const i64 base = o * len * inner + i;
        A m = r_neg_inf(A(0));
        for (i64 k = 0; k < len; ++k) m = r_max(m, ld(x, base + k * inner));
        A s = A(0);
        for (i64 k = 0; k < len; ++k) s += r_exp(ld(x, base + k * inner) - m);
        if (log) {
            const A ls = r_log(s);
            for (i64 k = 0; k < len; ++k) {
                const i64 idx = base + k * inner;
                st(y, idx, ld(x, idx) - m - ls);
            }
        } else {
            const A rs = A(1) / s;
            for (i64 k = 0; k < len; ++k) {
                const i64 idx = base + k * inner;
                st(y, idx, r_exp(ld(x, idx) - m) * rs);
            }
        }
    }
}

template <typename A>
__device__ __forceinline__ A softmax_dx(int log, A yv, A g, A s) {
    return log ? g - r_exp(yv) * s : yv * (g - s);
}

template <typename T, typename G>
__device__ void softmax_bwd_group_impl(i64 rows, i64 len, i64 inner, int log, const T *y, const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    for (i64 r = G::first(); r < rows; r += G::step()) {
        const i64 o = r / inner, i = r - o * inner;
        const i64 base = o * len * inner + i;
        A s = A(0);
        for (i64 k = G::rank(); k < len; k += G::size()) {
            const i64 idx = base + k * inner;
            const A g = ld(dy, idx);
            s += log ? g : g * ld(y, idx);
        }
        s = G::sum(s);
        for (i64 k = G::rank(); k < len; k += G::size()) {
            const i64 idx = base + k * inner;
            st(dx, idx, softmax_dx<A>(log, ld(y, idx), ld(dy, idx), s));
        }
    }
}

template <typename T>
__device__ void softmax_bwd_lane_impl(i64 rows, i64 len, i64 inner, int log, const T *y, const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    for (i64 r = gs_start(); r < rows; r += gs_step()) {
        const i64 o = r / inner, i = r - o * inner;
        const i64 base = o * len * inner + i;
        A s = A(0);
        for (i64 k = 0; k < len; ++k) {
            const i64 idx = base + k * inner;
            const A g = ld(dy, idx);
            s += log ? g : g * ld(y, idx);
        }
        for (i64 k = 0; k < len; ++k) {
            const i64 idx = base + k * inner;
            st(dx, idx, softmax_dx<A>(log, ld(y, idx), ld(dy, idx), s));
        }
    }
}

#define SOFTMAX(SUF, T)                                                                                      \
    extern "C" __global__ void softmax_warp_##SUF(i64 rows, i64 len, i64 inner, int log, const T *x, T *y) { \
        softmax_group_impl<T, WarpGroup>(rows, len, inner, log, x, y);                                      \
    }                                                                                                        \
    extern "C" __global__ void softmax_block_##SUF(i64 rows, i64 len, i64 inner, int log, const T *x, T *y) { \
        softmax_group_impl<T, BlockGroup>(rows, len, inner, log, x, y);                                     \
    }                                                                                                        \
    extern "C" __global__ void softmax_lane_##SUF(i64 rows, i64 len, i64 inner, int log, const T *x, T *y) { \
        softmax_lane_impl<T>(rows, len, inner, log, x, y);                                                  \
    }                                                                                                        \
    extern "C" __global__ void softmax_bwd_warp_##SUF(i64 rows, i64 len, i64 inner, int log, const T *y,    \
                                                      const T *dy, T *dx) {                                 \
        softmax_bwd_group_impl<T, WarpGroup>(rows, len, inner, log, y, dy, dx);                             \
    }                                                                                                        \
    extern "C" __global__ void softmax_bwd_block_##SUF(i64 rows, i64 len, i64 inner, int log, const T *y,   \
                                                       const T *dy, T *dx) {                                \
        softmax_bwd_group_impl<T, BlockGroup>(rows, len, inner, log, y, dy, dx);                            \
    }                                                                                                        \
    extern "C" __global__ void softmax_bwd_lane_##SUF(i64 rows, i64 len, i64 inner, int log, const T *y,    \
                                                      const T *dy, T *dx) {                                 \
        softmax_bwd_lane_impl<T>(rows, len, inner, log, y, dy, dx);                                         \
    }

SOFTMAX(f16, __half)
SOFTMAX(f32, float)
SOFTMAX(f64, double)
