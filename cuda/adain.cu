// Per-plane statistics and AdaIN (src/ops/adain.rs): `PlaneStat`, `PlaneStatBackward`, `AdainForward`,
// `AdainBackward`, for f16 (computed in f32), f32 and f64; A = Acc<T>. A *plane* is the hw = H·W
// contiguous elements of one (n, c).
//
// Grid mappings (launchers in src/backend/cuda/adain.rs): every `*_warp_*`/`*_block_*` kernel gives one
// warp (planes of ≤ 1024 elements; 8 planes per 256-thread block) or one 256-thread block per plane,
// grid-striding over planes; `plane_stat_bwd_mean_*` is a 1-d grid-stride over all elements.
//
// Math, term by term as the CPU (two passes, m = (A)M computed from f64 like `T::c`):
//   μ = Σx / m;  σ = sqrt(Σ(x − μ)² / (m − 1) + eps)
//   PlaneStat: out = μ (std_eps none: Σx / (A)hw) or σ.
//   PlaneStatBackward: mean dx = dy/m; std dx = (x − μ) · dy/((m − 1)·σ) with σ the saved (T) output.
//   AdaIN fwd: out = (x − μc) · (σs/σc) + μs.
//   AdaIN bwd (content plane p, style plane sp = p mod C when the style batch is 1, else p):
//     rc = 1/σc; Σdy, Σ dy·(x − μc)·rc;  mean_g = σs·Σdy/m;  k = σs·Σdy·x̂/(m − 1);
//     dc = (dy·σs − mean_g − x̂·k)·rc;  sums[p] = (Σdy, Σdy·x̂).
//   AdaIN style bwd (plane sp): (dμ, dσ) = Σ over the content planes using sp, in increasing p (the
//     CPU's order); ds = dμ/ms + (s − μs)·dσ/((ms − 1)·σs).
// Style statistics are computed once by `style_stats_*` into `stats[2·sp] = μ, stats[2·sp+1] = σ` (A).
//
// Invariants: 64-bit indexing; no aliasing between inputs and outputs; per-plane reductions are
// deterministic (fixed group size and order); the style gradient combines per-content-plane sums in a
// fixed serial order (no atomics).
#include "rowops.cuh"

// Mean and sqrt(unbiased var + eps) of plane [base, base + hw), reduced over group G.
template <typename T, typename G>
__device__ __forceinline__ void plane_mean_std(const T *x, i64 base, i64 hw, typename Acc<T>::type m,
                                               typename Acc<T>::type eps, typename Acc<T>::type &mu,
                                               typename Acc<T>::type &sd) {
    typedef typename Acc<T>::type A;
    A s = A(0);
    for (i64 j = G::rank(); j < hw; j += G::size()) s += ld(x, base + j);
    mu = G::sum(s) / m;
    A ss = A(0);
    for (i64 j = G::rank(); j < hw; j += G::size()) {
        const A d = ld(x, base + j) - mu;
        ss += d * d;
    }
    ss = G::sum(ss);
    sd = r_sqrt(ss / (m - A(1)) + eps);
}

template <typename T, typename G>
__device__ void plane_stat_impl(i64 planes, i64 hw, double md, int want_std, double eps, const T *x, T *out) {
    typedef typename Acc<T>::type A;
    for (i64 p = G::first(); p < planes; p += G::step()) {
        A v;
        if (want_std) {
            A mu;
            plane_mean_std<T, G>(x, p * hw, hw, (A)md, (A)eps, mu, v);
        } else {
            A s = A(0);
            for (i64 j = G::rank(); j < hw; j += G::size()) s += ld(x, p * hw + j);
            v = G::sum(s) / (A)md;
        }
        if (G::rank() == 0) st(out, p, v);
    }
}

template <typename T>
__device__ void plane_stat_bwd_mean_impl(i64 total, i64 hw, double md, const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    const A m = (A)md;
    for (i64 i = gs_start(); i < total; i += gs_step()) st(dx, i, ld(dy, i / hw) / m);
}

template <typename T, typename G>
__device__ void plane_stat_bwd_std_impl(i64 planes, i64 hw, double md, const T *x, const T *sd, const T *dy,
                                        T *dx) {
    typedef typename Acc<T>::type A;
    const A m = (A)md;
    for (i64 p = G::first(); p < planes; p += G::step()) {
        const i64 base = p * hw;
        A s = A(0);
        for (i64 j = G::rank(); j < hw; j += G::size()) s += ld(x, base + j);
        const A mu = G::sum(s) / m;
        const A sc = ld(dy, p) / ((m - A(1)) * ld(sd, p));
        for (i64 j = G::rank(); j < hw; j += G::size()) st(dx, base + j, (ld(x, base + j) - mu) * sc);
    }
}

template <typename T, typename G>
__device__ void style_stats_impl(i64 planes, i64 hw, double md, double eps, const T *s,
                                 typename Acc<T>::type *stats) {
    typedef typename Acc<T>::type A;
    for (i64 p = G::first(); p < planes; p += G::step()) {
        A mu, sd;
        plane_mean_std<T, G>(s, p * hw, hw, (A)md, (A)eps, mu, sd);
        if (G::rank() == 0) {
            stats[2 * p] = mu;
            stats[2 * p + 1] = sd;
        }
    }
}

__device__ __forceinline__ i64 style_plane(i64 p, i64 c, i64 ns) { return ns == 1 ? p % c : p; }

template <typename T, typename G>
__device__ void adain_fwd_impl(i64 planes, i64 hw, i64 c, i64 ns, double md, double eps, const T *x,
                               const typename Acc<T>::type *stats, T *out) {
    typedef typename Acc<T>::type A;
    for (i64 p = G::first(); p < planes; p += G::step()) {
        const i64 base = p * hw, sp = style_plane(p, c, ns);
        A mc, sc;
        plane_mean_std<T, G>(x, base, hw, (A)md, (A)eps, mc, sc);
        const A ms = stats[2 * sp], sd = stats[2 * sp + 1];
        const A a = sd / sc;
        for (i64 j = G::rank(); j < hw; j += G::size()) st(out, base + j, (ld(x, base + j) - mc) * a + ms);
    }
}

template <typename T, typename G>
__device__ void adain_bwd_content_impl(i64 planes, i64 hw, i64 c, i64 ns, double md, double eps, const T *x,
                                       const typename Acc<T>::type *stats, const T *dy, T *dc,
                                       typename Acc<T>::type *sums) {
    typedef typename Acc<T>::type A;
    const A m = (A)md;
    for (i64 p = G::first(); p < planes; p += G::step()) {
        const i64 base = p * hw, sp = style_plane(p, c, ns);
        A mc, sc;
        plane_mean_std<T, G>(x, base, hw, m, (A)eps, mc, sc);
        const A sd = stats[2 * sp + 1];
        const A rc = A(1) / sc;
        A sum_dy = A(0), sum_dy_xh = A(0);
        for (i64 j = G::rank(); j < hw; j += G::size()) {
            const A g = ld(dy, base + j);
            sum_dy += g;
            sum_dy_xh += g * (ld(x, base + j) - mc) * rc;
        }
        sum_dy = G::sum(sum_dy);
        sum_dy_xh = G::sum(sum_dy_xh);
        const A mean_g = sd * sum_dy / m;
        const A k = sd * sum_dy_xh / (m - A(1));
        for (i64 j = G::rank(); j < hw; j += G::size()) {
            const A xh = (ld(x, base + j) - mc) * rc;
            st(dc, base + j, (ld(dy, base + j) * sd - mean_g - xh * k) * rc);
        }
        if (G::rank() == 0) {
            sums[2 * p] = sum_dy;
            sums[2 * p + 1] = sum_dy_xh;
        }
    }
}

// `n` is the content batch; content plane p = b·C + sp for b in 0..n when ns == 1, else p = sp.
template <typename T, typename G>
__device__ void adain_bwd_style_impl(i64 splanes, i64 hws, i64 c, i64 n, i64 ns, double msd, const T *s,
                                     const typename Acc<T>::type *stats, const typename Acc<T>::type *sums,
                                     T *ds) {
    typedef typename Acc<T>::type A;
    const A ms_len = (A)msd;
    for (i64 sp = G::first(); sp < splanes; sp += G::step()) {
        A dmu = A(0), dsd = A(0);
        if (ns == 1) {
            for (i64 b = 0; b < n; ++b) { // every thread of the group: same values, same order
                const i64 p = b * c + sp;
                dmu += sums[2 * p];
                dsd += sums[2 * p + 1];
            }
        } else {
            dmu += sums[2 * sp];
            dsd += sums[2 * sp + 1];
        }
        const A mu = stats[2 * sp], sd = stats[2 * sp + 1];
        const A a = dmu / ms_len;
        const A bb = dsd / ((ms_len - A(1)) * sd);
        const i64 base = sp * hws;
        for (i64 j = G::rank(); j < hws; j += G::size()) st(ds, base + j, a + (ld(s, base + j) - mu) * bb);
    }
}

#define ADAIN_GROUP(SUF, T, A, GN, G)                                                                       \
    extern "C" __global__ void plane_stat_##GN##_##SUF(i64 planes, i64 hw, double md, int want_std,         \
                                                       double eps, const T *x, T *out) {                   \
        plane_stat_impl<T, G>(planes, hw, md, want_std, eps, x, out);                                       \
    }                                                                                                        \
    extern "C" __global__ void plane_stat_bwd_std_##GN##_##SUF(i64 planes, i64 hw, double md, const T *x,   \
                                                               const T *sd, const T *dy, T *dx) {          \
        plane_stat_bwd_std_impl<T, G>(planes, hw, md, x, sd, dy, dx);                                       \
    }                                                                                                        \
    extern "C" __global__ void style_stats_##GN##_##SUF(i64 planes, i64 hw, double md, double eps,          \
                                                        const T *s, A *stats) {                             \
        style_stats_impl<T, G>(planes, hw, md, eps, s, stats);                                              \
    }                                                                                                        \
    extern "C" __global__ void adain_fwd_##GN##_##SUF(i64 planes, i64 hw, i64 c, i64 ns, double md,         \
                                                      double eps, const T *x, const A *stats, T *out) {     \
        adain_fwd_impl<T, G>(planes, hw, c, ns, md, eps, x, stats, out);                                    \
    }                                                                                                        \
    extern "C" __global__ void adain_bwd_content_##GN##_##SUF(i64 planes, i64 hw, i64 c, i64 ns, double md, \
                                                              double eps, const T *x, const A *stats,      \
                                                              const T *dy, T *dc, A *sums) {               \
        adain_bwd_content_impl<T, G>(planes, hw, c, ns, md, eps, x, stats, dy, dc, sums);                   \
    }                                                                                                        \
    extern "C" __global__ void adain_bwd_style_##GN##_##SUF(i64 splanes, i64 hws, i64 c, i64 n, i64 ns,     \
                                                            double msd, const T *s, const A *stats,         \
                                                            const A *sums, T *ds) {                         \
        adain_bwd_style_impl<T, G>(splanes, hws, c, n, ns, msd, s, stats, sums, ds);                        \
    }

#define ADAIN(SUF, T, A)                                                                                     \
    ADAIN_GROUP(SUF, T, A, warp, WarpGroup)                                                                  \
    ADAIN_GROUP(SUF, T, A, block, BlockGroup)                                                                \
    extern "C" __global__ void plane_stat_bwd_mean_##SUF(i64 total, i64 hw, double md, const T *dy, T *dx) { \
        plane_stat_bwd_mean_impl<T>(total, hw, md, dy, dx);                                                 \
    }

ADAIN(f16, __half, float)
ADAIN(f32, float, float)
ADAIN(f64, double, double)
