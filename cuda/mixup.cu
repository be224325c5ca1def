// Mixup (src/ops/mixup.rs): images and soft targets of a batch blended with a permutation of their
// rows in one pass, x' = l·x + r·x[perm] and t' = l·t + r·t[perm], for f16 (computed in f32), f32 and
// f64.
//
// Grid mapping (launcher in src/backend/cuda/mixup.rs): one 1-d grid-stride loop over the
// n·per + n·k outputs, images first: item i < n·per is image element (i / per, i mod per), the rest
// target element ((i − n·per) / k, (i − n·per) mod k). Bytes per output element: two reads, one write.
//
// Math as the CPU: l = (A)lambda, r = 1 − l in the compute type A, then l·a + r·b with each product and
// the sum rounded (no FMA).
//
// Invariants: 64-bit indexing; perm holds n indices, a permutation of 0..n (checked by the op); the
// outputs alias no input.
#include "common.cuh"

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

template <typename T>
__device__ void mixup_impl(i64 n, i64 per, i64 k, double lambda, const i64 *perm, const T *x, const T *t,
                           T *xo, T *to) {
    typedef typename Acc<T>::type A;
    const A l = (A)lambda, r = A(1) - l;
    const i64 nx = n * per, total = nx + n * k;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        if (i < nx) {
            const i64 row = i / per, col = i - row * per;
            st(xo, i, add_rn(mul_rn(l, ld(x, i)), mul_rn(r, ld(x, perm[row] * per + col))));
        } else {
            const i64 j = i - nx, row = j / k, col = j - row * k;
            st(to, j, add_rn(mul_rn(l, ld(t, j)), mul_rn(r, ld(t, perm[row] * k + col))));
        }
    }
}

#define MIXUP(SUF, T)                                                                                         \
    extern "C" __global__ void mixup_##SUF(i64 n, i64 per, i64 k, double lambda, const i64 *perm,           \
                                           const T *x, const T *t, T *xo, T *to) {                           \
        mixup_impl<T>(n, per, k, lambda, perm, x, t, xo, to);                                                \
    }

MIXUP(f16, __half)
MIXUP(f32, float)
MIXUP(f64, double)
