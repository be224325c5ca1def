// Small helper kernels around the cuDNN convolutions (src/backend/cuda/conv.rs); the convolutions
// themselves are cuDNN calls.
//
// - `conv_fill_bias_<T>`: y[i] = bias[(i / plane) % c] over a dense [n, c, plane] tensor. The launcher
//   then runs the cuDNN convolution with beta = 1, so the bias is added inside cuDNN's epilogue, in the
//   compute type, and the result is rounded once (f16 included). 1-d grid-stride over all elements.
// - `conv_bias_grad_<T>`: db[ch] = Σ_{i < n, p < plane} dy[(i·c + ch)·plane + p]. One 256-thread block
//   per channel (grid-stride over channels); each thread sums a fixed strided share of the channel's
//   n·plane elements in Acc<T>, then BlockGroup's fixed shuffle/shared-memory tree combines them:
//   deterministic (bit-identical run to run), no atomics; rounded once.
// - `conv_window_<bits>`: dst[p, y, x] = (y < hs && x < ws) ? src[p, y, x] : 0 for planes of
//   [hs, ws] → [hd, wd] (top-left aligned; crops and/or zero-pads). Moves bits only (u16/u32/u64; an
//   all-zero bit pattern is +0.0 in every float type). 1-d grid-stride over the destination.
//
// Invariants: 64-bit indexing; no aliasing between inputs and outputs (fill_bias writes its own
// output only); nothing is launched for empty tensors (the launcher skips them).
#include "rowops.cuh"

template <typename T>
__device__ void fill_bias_impl(i64 total, i64 plane, i64 c, const T *bias, T *y) {
    for (i64 i = gs_start(); i < total; i += gs_step()) y[i] = bias[(i / plane) % c];
}

template <typename T>
__device__ void bias_grad_impl(i64 n, i64 c, i64 plane, const T *dy, T *db) {
    typedef typename Acc<T>::type A;
    const i64 m = n * plane;
    for (i64 ch = BlockGroup::first(); ch < c; ch += BlockGroup::step()) {
        A s = A(0);
        for (i64 k = BlockGroup::rank(); k < m; k += BlockGroup::size()) {
            const i64 i = k / plane, p = k - i * plane;
            s += ld(dy, (i * c + ch) * plane + p);
        }
        s = BlockGroup::sum(s);
        if (BlockGroup::rank() == 0) st(db, ch, s);
    }
}

template <typename U>
__device__ void window_impl(i64 planes, i64 hs, i64 ws, i64 hd, i64 wd, const U *src, U *dst) {
    const i64 plane_d = hd * wd, total = planes * plane_d;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        const i64 p = i / plane_d, r = i - p * plane_d;
        const i64 y = r / wd, x = r - y * wd;
        dst[i] = (y < hs && x < ws) ? src[(p * hs + y) * ws + x] : U(0);
    }
}

#define CONV_FLOAT(SUF, T)                                                                                   \
    extern "C" __global__ void conv_fill_bias_##SUF(i64 total, i64 plane, i64 c, const T *bias, T *y) {      \
        fill_bias_impl<T>(total, plane, c, bias, y);                                                         \
    }                                                                                                        \
    extern "C" __global__ void conv_bias_grad_##SUF(i64 n, i64 c, i64 plane, const T *dy, T *db) {           \
        bias_grad_impl<T>(n, c, plane, dy, db);                                                              \
    }

CONV_FLOAT(f16, __half)
CONV_FLOAT(f32, float)
CONV_FLOAT(f64, double)

#define CONV_BITS(SUF, U)                                                                                    \
    extern "C" __global__ void conv_window_##SUF(i64 planes, i64 hs, i64 ws, i64 hd, i64 wd, const U *src,  \
                                                 U *dst) {                                                   \
        window_impl<U>(planes, hs, ws, hd, wd, src, dst);                                                    \
    }

CONV_BITS(u16, unsigned short)
CONV_BITS(u32, unsigned int)
CONV_BITS(u64, unsigned long long)
