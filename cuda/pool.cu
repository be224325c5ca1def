// 2-d pooling (src/ops/pool.rs): `MaxPool2d`, `MaxPool2dBackward`, `AvgPool2d`, `AvgPool2dBackward`,
// `GlobalAvgPool`, `GlobalAvgPoolBackward`, for f16 (computed in f32), f32 and f64; A = Acc<T>.
//
// Layouts: `a.channels_last` says how x, y, dy, dx and the argmax are ALL stored. NCHW (0): element
// (n, c, y, x) of a tensor with H × W planes at ((n·C + c)·H + y)·W + x; NHWC (1): at
// ((n·H + y)·W + x)·C + c. `Plane` gives one (n, c) plane's base and row/column strides in either, and
// each thread decodes its flat index in storage order (NHWC: i → (n, y, x, c), so consecutive threads
// touch consecutive channels: coalesced). Everything else — windows, argmax = y·W + x inside the
// plane, scan and gather order — is layout-independent, so an NHWC launch is bit-identical to the NCHW
// launch on transposed data.
//
// Grid mappings (launchers in src/backend/cuda/pool.rs):
// - `max_pool2d_*`, `avg_pool2d_*`: 1-d grid-stride, one thread per output element (plane, oy, ox).
// - `max_pool2d_bwd_*`, `avg_pool2d_bwd_*`: 1-d grid-stride, one thread per INPUT element: a gather over
//   the outputs whose window contains it (at most ⌈k/s⌉ per dim), in increasing output order — the
//   order in which the CPU's scatter adds to that element, so results are bit-identical and there are
//   no atomics.
// - `global_avg_pool_{warp,block}_*`: one warp (planes ≤ 1024 elements) or one 256-thread block per
//   plane, grid-stride over planes; f64 accumulation like the CPU.
// - `global_avg_pool_bwd_*`: 1-d grid-stride over all input elements.
// - `global_avg_pool_cl_*` / `global_avg_pool_bwd_cl_*`: the same on channels-last `[N, H·W, C]`
//   storage; the forward runs a thread per (n, c) output summing its H·W column in order (a warp reads
//   32 neighbouring channels of one pixel), so it equals the CPU bit for bit.
//
// Semantics (as the CPU kernels):
// - Window of output o along a dim of n inputs: start = o·s − p, [max(start, 0), min(start + k, n)) in
//   the input; `size_pad` = min(start + k, n + p) − start for count_include_pad.
// - Max: best starts at −∞ and `at` at the window's first cell; a cell wins when v > best or v is NaN
//   (first NaN wins and ends the scan). argmax = h·W + w inside the plane, stored in A (exact: the op
//   refuses f32 planes above 2^24 elements).
// - Max backward assumes every argmax lies inside its own window (true for the forward's output; the
//   CPU would also accept others, clamping to the plane): dx[i] = Σ dy[o] over the windows o containing
//   i whose argmax == i. Avg backward: dx[i] = Σ dy[o]/div[o] over the windows containing i.
// - Global: y = (A)((Σ x in f64) / hw); backward dx = dy[p] · (A)(1/hw).
//
// Invariants: 64-bit indexing; inputs never alias outputs; deterministic (no atomics); a channels-last
// launch has channels > 0 dividing planes (PoolArgs::new checks).
#include "rowops.cuh"

struct PoolArgs {
    i64 planes, channels, h, w, oh, ow;
    i64 kh, kw, sh, sw, ph, pw;
    int count_include_pad;
    int channels_last;
};

// One (n, c) plane of a tensor with rows × cols planes: element (r, col) at base + r·row + col·col_step.
struct Plane {
    i64 base, row, col_step;
    __device__ __forceinline__ i64 at(i64 r, i64 col) const { return base + r * row + col * col_step; }
};

// Plane `pl` (= n·C + c) of a tensor with rows × cols planes, in the layout of `a`.
__device__ __forceinline__ Plane plane_of(const PoolArgs &a, i64 pl, i64 rows, i64 cols) {
    if (a.channels_last) {
        const i64 n = pl / a.channels;
        return Plane{n * rows * cols * a.channels + (pl - n * a.channels), cols * a.channels, a.channels};
    }
    return Plane{pl * rows * cols, cols, 1};
}

// Clipped window [lo, hi) of output o, and the pad-clipped size.
__device__ __forceinline__ void window(i64 o, i64 k, i64 s, i64 p, i64 n, i64 &lo, i64 &hi, i64 &size_pad) {
    const i64 start = o * s - p;
    const i64 end_pad = min(start + k, n + p);
    size_pad = end_pad - start;
    lo = max(start, (i64)0);
    hi = max(min(start + k, n), (i64)0);
}

// Outputs [first, last] whose window contains input i (may be empty: first > last).
__device__ __forceinline__ void covering(i64 i, i64 k, i64 s, i64 p, i64 on, i64 &first, i64 &last) {
    // o·s − p ≤ i < o·s − p + k  ⇔  (i + p − k) / s < o ≤ (i + p) / s
    const i64 t = i + p - k + 1; // o ≥ ceil(t / s)
    first = t <= 0 ? 0 : (t + s - 1) / s;
    last = min((i + p) / s, on - 1);
}

// Splits a flat index over [outer, rows, cols] into (outer, row, col).
__device__ __forceinline__ void split3(i64 i, i64 rows, i64 cols, i64 &pl, i64 &r, i64 &cl) {
    const i64 q = i / cols;
    cl = i - q * cols;
    pl = q / rows;
    r = q - pl * rows;
}

// Decodes flat storage index i of a tensor with rows × cols planes into (plane, row, col): NCHW
// storage is [planes, rows, cols]; NHWC storage is [N, rows, cols, C] with plane = n·C + c.
__device__ __forceinline__ void decode(const PoolArgs &a, i64 i, i64 rows, i64 cols, i64 &pl, i64 &r, i64 &cl) {
    if (a.channels_last) {
        const i64 q = i / a.channels;
        i64 n;
        split3(q, rows, cols, n, r, cl);
        pl = n * a.channels + (i - q * a.channels);
    } else {
        split3(i, rows, cols, pl, r, cl);
    }
}

template <typename T>
__device__ void max_pool_impl(const PoolArgs a, const T *x, T *y, typename Acc<T>::type *idx) {
    typedef typename Acc<T>::type A;
    const i64 total = a.planes * a.oh * a.ow;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        i64 pl, oy, ox, hs, he, ws, we, unused;
        decode(a, i, a.oh, a.ow, pl, oy, ox);
        window(oy, a.kh, a.sh, a.ph, a.h, hs, he, unused);
        window(ox, a.kw, a.sw, a.pw, a.w, ws, we, unused);
        const Plane xp = plane_of(a, pl, a.h, a.w);
        A best = r_neg_inf(A(0));
        i64 at = hs * a.w + ws;
        bool nan = false;
        for (i64 yy = hs; yy < he && !nan; ++yy) {
            for (i64 xx = ws; xx < we; ++xx) {
                const A v = ld(x, xp.at(yy, xx));
                if (v > best || v != v) {
                    best = v;
                    at = yy * a.w + xx;
                    if (v != v) {
                        nan = true;
                        break;
                    }
                }
            }
        }
        st(y, i, best);
        idx[i] = (A)at;
    }
}

// `idx` has dy's type (the runner widens the f32 argmax and an f16 dy to one dtype).
template <typename T>
__device__ void max_pool_bwd_impl(const PoolArgs a, const T *idx, const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    const i64 total = a.planes * a.h * a.w;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        i64 pl, iy, ix;
        decode(a, i, a.h, a.w, pl, iy, ix);
        i64 y0, y1, x0, x1;
        covering(iy, a.kh, a.sh, a.ph, a.oh, y0, y1);
        covering(ix, a.kw, a.sw, a.pw, a.ow, x0, x1);
        const A me = (A)(iy * a.w + ix);
        const Plane out = plane_of(a, pl, a.oh, a.ow);
        A s = A(0);
        for (i64 oy = y0; oy <= y1; ++oy)
            for (i64 ox = x0; ox <= x1; ++ox) {
                const i64 o = out.at(oy, ox);
                if (ld(idx, o) == me) s += ld(dy, o);
            }
        st(dx, i, s);
    }
}

__device__ __forceinline__ i64 avg_div(const PoolArgs &a, i64 hs, i64 he, i64 hp, i64 ws, i64 we, i64 wp) {
    return a.count_include_pad ? hp * wp : (he - hs) * (we - ws);
}

template <typename T>
__device__ void avg_pool_impl(const PoolArgs a, const T *x, T *y) {
    typedef typename Acc<T>::type A;
    const i64 total = a.planes * a.oh * a.ow;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        i64 pl, oy, ox, hs, he, hp, ws, we, wp;
        decode(a, i, a.oh, a.ow, pl, oy, ox);
        window(oy, a.kh, a.sh, a.ph, a.h, hs, he, hp);
        window(ox, a.kw, a.sw, a.pw, a.w, ws, we, wp);
        const Plane xp = plane_of(a, pl, a.h, a.w);
        A s = A(0);
        for (i64 yy = hs; yy < he; ++yy)
            for (i64 xx = ws; xx < we; ++xx) s += ld(x, xp.at(yy, xx));
        st(y, i, s / (A)avg_div(a, hs, he, hp, ws, we, wp));
    }
}

template <typename T>
__device__ void avg_pool_bwd_impl(const PoolArgs a, const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    const i64 total = a.planes * a.h * a.w;
    for (i64 i = gs_start(); i < total; i += gs_step()) {
        i64 pl, iy, ix;
        decode(a, i, a.h, a.w, pl, iy, ix);
        i64 y0, y1, x0, x1;
        covering(iy, a.kh, a.sh, a.ph, a.oh, y0, y1);
        covering(ix, a.kw, a.sw, a.pw, a.ow, x0, x1);
        const Plane out = plane_of(a, pl, a.oh, a.ow);
        A s = A(0);
        for (i64 oy = y0; oy <= y1; ++oy) {
            i64 hs, he, hp;
            window(oy, a.kh, a.sh, a.ph, a.h, hs, he, hp);
            for (i64 ox = x0; ox <= x1; ++ox) {
                i64 ws, we, wp;
                window(ox, a.kw, a.sw, a.pw, a.w, ws, we, wp);
                s += ld(dy, out.at(oy, ox)) / (A)avg_div(a, hs, he, hp, ws, we, wp);
            }
        }
        st(dx, i, s);
    }
}

template <typename T, typename G>
__device__ void global_avg_pool_impl(i64 planes, i64 hw, const T *x, T *y) {
    for (i64 p = G::first(); p < planes; p += G::step()) {
        double s = 0.0;
        for (i64 j = G::rank(); j < hw; j += G::size()) s += (double)ld(x, p * hw + j);
        s = G::sum(s);
        if (G::rank() == 0) st(y, p, (typename Acc<T>::type)(s / (double)hw));
    }
}

template <typename T>
__device__ void global_avg_pool_bwd_impl(i64 total, i64 hw, double inv, const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    const A k = (A)inv;
    for (i64 i = gs_start(); i < total; i += gs_step()) st(dx, i, ld(dy, i / hw) * k);
}

template <typename T>
__device__ void global_avg_pool_cl_impl(i64 planes, i64 hw, i64 c, const T *x, T *y) {
    for (i64 p = gs_start(); p < planes; p += gs_step()) {
        const i64 first = (p / c) * c * hw + p % c;
        double s = 0.0;
        for (i64 j = 0; j < hw; ++j) s += (double)ld(x, first + j * c);
        st(y, p, (typename Acc<T>::type)(s / (double)hw));
    }
}

template <typename T>
__device__ void global_avg_pool_bwd_cl_impl(i64 total, i64 hw, i64 c, double inv, const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    const A k = (A)inv;
    const i64 block = hw * c;
    for (i64 i = gs_start(); i < total; i += gs_step()) st(dx, i, ld(dy, (i / block) * c + i % c) * k);
}

#define POOL(SUF, T)                                                                                          \
    extern "C" __global__ void max_pool2d_##SUF(PoolArgs a, const T *x, T *y, Acc<T>::type *idx) {            \
        max_pool_impl<T>(a, x, y, idx);                                                                       \
    }                                                                                                         \
    extern "C" __global__ void max_pool2d_bwd_##SUF(PoolArgs a, const T *idx, const T *dy, T *dx) {           \
        max_pool_bwd_impl<T>(a, idx, dy, dx);                                                                 \
    }                                                                                                         \
    extern "C" __global__ void avg_pool2d_##SUF(PoolArgs a, const T *x, T *y) { avg_pool_impl<T>(a, x, y); }  \
    extern "C" __global__ void avg_pool2d_bwd_##SUF(PoolArgs a, const T *dy, T *dx) {                         \
        avg_pool_bwd_impl<T>(a, dy, dx);                                                                      \
    }                                                                                                         \
    extern "C" __global__ void global_avg_pool_warp_##SUF(i64 planes, i64 hw, const T *x, T *y) {             \
        global_avg_pool_impl<T, WarpGroup>(planes, hw, x, y);                                                 \
    }                                                                                                         \
    extern "C" __global__ void global_avg_pool_block_##SUF(i64 planes, i64 hw, const T *x, T *y) {            \
        global_avg_pool_impl<T, BlockGroup>(planes, hw, x, y);                                                \
    }                                                                                                         \
    extern "C" __global__ void global_avg_pool_bwd_##SUF(i64 total, i64 hw, double inv, const T *dy, T *dx) { \
        global_avg_pool_bwd_impl<T>(total, hw, inv, dy, dx);                                                  \
    }                                                                                                         \
    extern "C" __global__ void global_avg_pool_cl_##SUF(i64 planes, i64 hw, i64 c, const T *x, T *y) {        \
        global_avg_pool_cl_impl<T>(planes, hw, c, x, y);                                                      \
    }                                                                                                         \
    extern "C" __global__ void global_avg_pool_bwd_cl_##SUF(i64 total, i64 hw, i64 c, double inv, const T *dy, \
                                                           T *dx) {                                           \
        global_avg_pool_bwd_cl_impl<T>(total, hw, c, inv, dy, dx);                                            \
    }

POOL(f16, __half)
POOL(f32, float)
POOL(f64, double)
