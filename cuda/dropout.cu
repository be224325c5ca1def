// Dropout's `MaskScale` (src/ops/dropout.rs): y = x · mask · scale, for f16 (computed in f32), f32 and
// f64. The mask (0/1 values) is drawn on the host, so this is a plain elementwise kernel.
//
// Grid mapping (launcher in src/backend/cuda/dropout.rs): 1-d grid-stride, one thread per element.
// Math as the CPU: scale is rounded to the compute type first (`T::c(scale)`), then (x · m) · scale,
// each product rounded (no FMA involved).
//
// Invariants: 64-bit indexing; x, mask and y hold n elements; y aliases neither input.
#include "common.cuh"

template <typename T>
__device__ void mask_scale_impl(i64 n, double scale, const T *x, const T *m, T *y) {
    typedef typename Acc<T>::type A;
    const A s = (A)scale;
    for (i64 i = gs_start(); i < n; i += gs_step()) st(y, i, (ld(x, i) * ld(m, i)) * s);
}

#define DROPOUT(SUF, T)                                                                                       \
    extern "C" __global__ void mask_scale_##SUF(i64 n, double scale, const T *x, const T *m, T *y) {          \
        mask_scale_impl<T>(n, scale, x, m, y);                                                                \
    }

DROPOUT(f16, __half)
DROPOUT(f32, float)
DROPOUT(f64, double)
