// Spatial resizing (src/ops/resize.rs): `UpsampleNearest2d`, `UpsampleNearest2dBackward`, `Pad2d`
// (zero and reflect) and `Pad2dBackward`, for f16 (computed in f32), f32 and f64; A = Acc<T>.
//
// Grid mappings (launchers in src/backend/cuda/resize.rs): every kernel is a 1-d grid-stride loop with
// one thread per OUTPUT element (forward: per y element; backward: per dx element).
// - upsample: y[p, oy, ox] = x[p, oy / s, ox / s].
// - upsample backward (gather): dx[p, iy, ix] = Σ dy[p, iy·s + a, ix·s + b] over a, b < s, summed in
//   row-major (a, b) order — the CPU scatter's order, so the sums are bit-identical.
// - pad: y[p, oy, ox] = x[p, src(oy), src(ox)], or 0 where a zero pad has no source; reflect:
//   src(o) = |o − pad| mirrored at the far edge (2(n − 1) − i), the edge itself not repeated.
// - pad backward (gather): along each dim an input index i is the source of at most three outputs,
//   in increasing order: the left reflection pl − i (reflect, 1 ≤ i ≤ pl), the interior i + pl, the
//   right reflection pl + 2(n − 1) − i (reflect, n − 1 − pr ≤ i ≤ n − 2). dx sums dy over the product
//   of the two lists in row-major order, the order in which the CPU's scatter adds them.
//
// Invariants: 64-bit indexing; inputs never alias outputs; reflect pads are smaller than their dim
// (checked by the launcher); deterministic (no atomics).
#include "common.cuh"

__device__ __forceinline__ void split3(i64 i, i64 rows, i64 cols, i64 &pl, i64 &r, i64 &cl) {
    const i64 q = i / cols;
    cl = i - q * cols;
    pl = q / rows;
    r = q - pl * rows;
}

template <typename T>
__device__ void upsample_impl(i64 planes, i64 h, i64 w, i64 s, const T *x, T *y) {
    const i64 oh = h * s, ow = w * s, total = planes * oh * ow;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        i64 pl, oy, ox;
        split3(i, oh, ow, pl, oy, ox);
        y[i] = x[(pl * h + oy / s) * w + ox / s];
    }
}

template <typename T>
__device__ void upsample_bwd_impl(i64 planes, i64 h, i64 w, i64 s, const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    const i64 ow = w * s, total = planes * h * w;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        i64 pl, iy, ix;
        split3(i, h, w, pl, iy, ix);
        const T *row = dy + ((pl * h + iy) * s) * ow + ix * s;
        A acc = A(0);
        for (i64 a = 0; a < s; ++a)
            for (i64 b = 0; b < s; ++b) acc += ld(row, a * ow + b);
        st(dx, i, acc);
    }
}

// Source of output o along a dim of n with leading pad p, or −1 (zero pad).
__device__ __forceinline__ i64 pad_src(i64 o, i64 p, i64 n, int reflect) {
    const i64 i = o - p;
    if (i >= 0 && i < n) return i;
    if (!reflect) return -1;
    return i < 0 ? -i : 2 * (n - 1) - i;
}

// The outputs (ascending) whose source along this dim is input i; returns how many (≤ 3).
__device__ __forceinline__ int pad_dsts(i64 i, i64 pl, i64 pr, i64 n, int reflect, i64 (&o)[3]) {
    int c = 0;
    if (reflect && i >= 1 && i <= pl) o[c++] = pl - i;
    o[c++] = i + pl;
    if (reflect && i <= n - 2 && i >= n - 1 - pr) o[c++] = pl + 2 * (n - 1) - i;
    return c;
}

template <typename T>
__device__ void pad_impl(i64 planes, i64 h, i64 w, i64 pl, i64 pr, i64 pt, i64 pb, int reflect, const T *x, T *y) {
    const i64 oh = h + pt + pb, ow = w + pl + pr, total = planes * oh * ow;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        i64 p, oy, ox;
        split3(i, oh, ow, p, oy, ox);
        const i64 sy = pad_src(oy, pt, h, reflect), sx = pad_src(ox, pl, w, reflect);
        if (sy < 0 || sx < 0)
            st(y, i, typename Acc<T>::type(0));
        else
            y[i] = x[(p * h + sy) * w + sx];
    }
}

template <typename T>
__device__ void pad_bwd_impl(i64 planes, i64 h, i64 w, i64 pl, i64 pr, i64 pt, i64 pb, int reflect, const T *dy,
                             T *dx) {
    typedef typename Acc<T>::type A;
    const i64 oh = h + pt + pb, ow = w + pl + pr, total = planes * h * w;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        i64 p, iy, ix;
        split3(i, h, w, p, iy, ix);
        i64 ys[3], xs[3];
        const int ny = pad_dsts(iy, pt, pb, h, reflect, ys), nx = pad_dsts(ix, pl, pr, w, reflect, xs);
        const T *plane = dy + p * oh * ow;
        A acc = A(0);
        for (int a = 0; a < ny; ++a)
            for (int b = 0; b < nx; ++b) acc += ld(plane, ys[a] * ow + xs[b]);
        st(dx, i, acc);
    }
}

#define RESIZE(SUF, T)                                                                                        \
    extern "C" __global__ void upsample_nearest2d_##SUF(i64 planes, i64 h, i64 w, i64 s, const T *x, T *y) { \
        upsample_impl<T>(planes, h, w, s, x, y);                                                              \
    }                                                                                                         \
    extern "C" __global__ void upsample_nearest2d_bwd_##SUF(i64 planes, i64 h, i64 w, i64 s, const T *dy,     \
                                                            T *dx) {                                          \
        upsample_bwd_impl<T>(planes, h, w, s, dy, dx);                                                        \
    }                                                                                                         \
    extern "C" __global__ void pad2d_##SUF(i64 planes, i64 h, i64 w, i64 pl, i64 pr, i64 pt, i64 pb,          \
                                           int reflect, const T *x, T *y) {                                   \
        pad_impl<T>(planes, h, w, pl, pr, pt, pb, reflect, x, y);                                             \
    }                                                                                                         \
    extern "C" __global__ void pad2d_bwd_##SUF(i64 planes, i64 h, i64 w, i64 pl, i64 pr, i64 pt, i64 pb,      \
                                               int reflect, const T *dy, T *dx) {                             \
        pad_bwd_impl<T>(planes, h, w, pl, pr, pt, pb, reflect, dy, dx);                                       \
    }

RESIZE(f16, __half)
RESIZE(f32, float)
RESIZE(f64, double)
