// Loss kernels (src/ops/loss.rs): `CrossEntropySoft`(+Backward), `Distillation`(+Backward),
// `PairLoss`(+Backward) for f16 (computed in f32), f32 and f64. `A` = Acc<T> (f32 for f16/f32, f64).
//
// Grid mappings (launchers in src/backend/cuda/loss.rs):
// - `ce_soft_rows_*`, `distill_rows_*`: one warp per row (K ≤ 1024; 256-thread blocks hold 8 rows) or
//   one 256-thread block per row (`_block_`), grid-stride over the N rows. Each row's loss is written to
//   `rows[r]` (type A); `mean_finish_*` then reduces `rows` in a fixed order. No float atomics, so the
//   batch mean is bit-for-bit reproducible.
// - `ce_soft_bwd_*`, `distill_bwd_*`: same row mapping; each row's gradient is written in place.
// - `pair_partial_*`: exactly P blocks of 256 threads (P a function of n only, chosen by the launcher);
//   block b sums elements b·256 + t, stepping P·256, reduces in the block and writes parts[b].
// - `pair_bwd_*`: 1-d grid-stride over the n elements.
// - `mean_finish_*`: ONE block of 256 threads: thread t sums v[t], v[t+256], … then a fixed tree;
//   out[0] = (total / div) · mul, rounded once to T.
//
// Math, term by term as the CPU kernels (scalars are rounded from f64 to A like the CPU's `T::c`):
// - CE soft row:  m = max x, s = Σ exp(x − m), ls = ln s, loss_r = −Σ (x − m − ls)·t;
//   loss = (Σ_r loss_r) / N.
// - CE soft bwd:  dx = (exp(x − m)·(1/s) · Σt − t) · (dy / N).
// - Distillation: u = s·(1/T), v = t·(1/T); lq = u − m_u − ln s_u, lp = v − m_v − ln s_v;
//   row = Σ (p = exp(lp); p == 0 ? 0 : p·(lp − lq)); loss = (Σ_r row) · (T²/N).
// - Distillation bwd: dx = (softmax(u) − softmax(v)) · dy · (T/N).
// - Pair values/derivatives: MSE (a−b)², L1 |a−b| (sign, 0 at ties and NaN), BCE with logits
//   max(a,0) − a·b + ln(1 + e^{−|a|}) with derivatives (σ(a) − b, −a), σ computed without overflow.
//
// Invariants: 64-bit indexing; inputs and outputs never alias; `dy` is a one-element device buffer read
// by every thread; nothing is launched for zero rows or elements.
#include "rowops.cuh"

enum PairKind { P_MSE = 0, P_L1 = 1, P_BCE = 2 };

template <typename A>
__device__ __forceinline__ A pair_value(int kind, A a, A b) {
    switch (kind) {
    case P_MSE: return (a - b) * (a - b);
    case P_L1: return r_abs(a - b);
    case P_BCE: return r_max(a, A(0)) - a * b + r_log1p(r_exp(-r_abs(a)));
    default: return a - a + A(NAN);
    }
}

template <typename A>
__device__ __forceinline__ void pair_derivs(int kind, A a, A b, A &da, A &db) {
    switch (kind) {
    case P_MSE: {
        const A g = A(2) * (a - b);
        da = g;
        db = -g;
        break;
    }
    case P_L1: {
        const A d = a - b;
        const A g = d > A(0) ? A(1) : (d < A(0) ? A(-1) : A(0));
        da = g;
        db = -g;
        break;
    }
    case P_BCE: {
        const A e = r_exp(-r_abs(a));
        const A sig = a >= A(0) ? A(1) / (A(1) + e) : e / (A(1) + e);
        da = sig - b;
        db = -a;
        break;
    }
    default: da = db = a - a + A(NAN);
    }
}

// ---- soft-target cross-entropy ----

template <typename T, typename G>
__device__ void ce_soft_rows_impl(i64 n, i64 k, const T *x, const T *t, typename Acc<T>::type *rows) {
    typedef typename Acc<T>::type A;
    for (i64 r = G::first(); r < n; r += G::step()) {
        const i64 base = r * k;
        A m = r_neg_inf(A(0));
        for (i64 j = G::rank(); j < k; j += G::size()) m = r_max(m, ld(x, base + j));
        m = G::max(m);
        A s = A(0);
        for (i64 j = G::rank(); j < k; j += G::size()) s += r_exp(ld(x, base + j) - m);
        s = G::sum(s);
        const A ls = r_log(s);
        A dot = A(0);
        for (i64 j = G::rank(); j < k; j += G::size()) dot += (ld(x, base + j) - m - ls) * ld(t, base + j);
        dot = G::sum(dot);
        if (G::rank() == 0) rows[r] = -dot;
    }
}

template <typename T, typename G>
__device__ void ce_soft_bwd_impl(i64 n, i64 k, double nd, const T *x, const T *t, const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    const A sc = ld(dy, 0) / (A)nd;
    for (i64 r = G::first(); r < n; r += G::step()) {
        const i64 base = r * k;
        A m = r_neg_inf(A(0));
        for (i64 j = G::rank(); j < k; j += G::size()) m = r_max(m, ld(x, base + j));
        m = G::max(m);
        A s = A(0), tsum = A(0);
        for (i64 j = G::rank(); j < k; j += G::size()) {
            s += r_exp(ld(x, base + j) - m);
            tsum += ld(t, base + j);
        }
        s = G::sum(s);
        tsum = G::sum(tsum);
        const A rs = A(1) / s;
        for (i64 j = G::rank(); j < k; j += G::size()) {
            const A p = r_exp(ld(x, base + j) - m) * rs;
            st(dx, base + j, (p * tsum - ld(t, base + j)) * sc);
        }
    }
}

// ---- knowledge distillation ----

// Max and Σ exp(· − max) of u = s·inv and v = t·inv over one row.
template <typename T, typename G>
__device__ __forceinline__ void distill_stats(i64 base, i64 k, typename Acc<T>::type inv, const T *s, const T *t,
                                              typename Acc<T>::type &mu, typename Acc<T>::type &su,
                                              typename Acc<T>::type &mv, typename Acc<T>::type &sv) {
    typedef typename Acc<T>::type A;
    mu = r_neg_inf(A(0));
    mv = r_neg_inf(A(0));
    for (i64 j = G::rank(); j < k; j += G::size()) {
        mu = r_max(mu, ld(s, base + j) * inv);
        mv = r_max(mv, ld(t, base + j) * inv);
    }
    mu = G::max(mu);
    mv = G::max(mv);
    su = A(0);
    sv = A(0);
    for (i64 j = G::rank(); j < k; j += G::size()) {
        su += r_exp(ld(s, base + j) * inv - mu);
        sv += r_exp(ld(t, base + j) * inv - mv);
    }
    su = G::sum(su);
    sv = G::sum(sv);
}

template <typename T, typename G>
__device__ void distill_rows_impl(i64 n, i64 k, double inv_t, const T *s, const T *t,
                                  typename Acc<T>::type *rows) {
    typedef typename Acc<T>::type A;
    const A inv = (A)inv_t;
    for (i64 r = G::first(); r < n; r += G::step()) {
        const i64 base = r * k;
        A mu, su, mv, sv;
        distill_stats<T, G>(base, k, inv, s, t, mu, su, mv, sv);
        const A lsu = r_log(su), lsv = r_log(sv);
        A acc = A(0);
        for (i64 j = G::rank(); j < k; j += G::size()) {
            const A lq = ld(s, base + j) * inv - mu - lsu;
            const A lp = ld(t, base + j) * inv - mv - lsv;
            const A p = r_exp(lp);
            acc += p == A(0) ? A(0) : p * (lp - lq);
        }
        acc = G::sum(acc);
        if (G::rank() == 0) rows[r] = acc;
    }
}

template <typename T, typename G>
__device__ void distill_bwd_impl(i64 n, i64 k, double inv_t, double t_over_n, const T *s, const T *t,
                                 const T *dy, T *dx) {
    typedef typename Acc<T>::type A;
    const A inv = (A)inv_t;
    const A scale = ld(dy, 0) * (A)t_over_n;
    for (i64 r = G::first(); r < n; r += G::step()) {
        const i64 base = r * k;
        A mu, su, mv, sv;
        distill_stats<T, G>(base, k, inv, s, t, mu, su, mv, sv);
        const A ru = A(1) / su, rv = A(1) / sv;
        for (i64 j = G::rank(); j < k; j += G::size()) {
            const A q = r_exp(ld(s, base + j) * inv - mu) * ru;
            const A p = r_exp(ld(t, base + j) * inv - mv) * rv;
            st(dx, base + j, (q - p) * scale);
        }
    }
}

// ---- elementwise (pair) losses ----

template <typename T>
__device__ void pair_partial_impl(i64 n, int kind, const T *a, const T *b, typename Acc<T>::type *parts) {
    typedef typename Acc<T>::type A;
    A acc = A(0);
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        acc += pair_value<A>(kind, ld(a, i), ld(b, i));
    acc = BlockGroup::sum(acc);
    if (threadIdx.x == 0) parts[blockIdx.x] = acc;
}

template <typename T>
__device__ void pair_bwd_impl(i64 n, int kind, double nd, const T *a, const T *b, const T *dy, T *da, T *db) {
    typedef typename Acc<T>::type A;
    const A sc = ld(dy, 0) / (A)nd;
    for (i64 i = gs_start(); i < n; i += gs_step()) {
        A ga, gb;
        pair_derivs<A>(kind, ld(a, i), ld(b, i), ga, gb);
        st(da, i, ga * sc);
        st(db, i, gb * sc);
    }
}

// ---- the fixed-order final reduction ----

template <typename T>
__device__ void mean_finish_impl(i64 count, const typename Acc<T>::type *v, double div, double mul, T *out) {
    typedef typename Acc<T>::type A;
    A acc = A(0);
    for (i64 i = threadIdx.x; i < count; i += blockDim.x) acc += v[i];
    acc = BlockGroup::sum(acc);
    if (threadIdx.x == 0) st(out, 0, acc / (A)div * (A)mul);
}

#define LOSS(SUF, T, A)                                                                                      \
    extern "C" __global__ void ce_soft_rows_warp_##SUF(i64 n, i64 k, const T *x, const T *t, A *rows) {     \
        ce_soft_rows_impl<T, WarpGroup>(n, k, x, t, rows);                                                  \
    }                                                                                                        \
    extern "C" __global__ void ce_soft_rows_block_##SUF(i64 n, i64 k, const T *x, const T *t, A *rows) {    \
        ce_soft_rows_impl<T, BlockGroup>(n, k, x, t, rows);                                                 \
    }                                                                                                        \
    extern "C" __global__ void ce_soft_bwd_warp_##SUF(i64 n, i64 k, double nd, const T *x, const T *t,      \
                                                      const T *dy, T *dx) {                                 \
        ce_soft_bwd_impl<T, WarpGroup>(n, k, nd, x, t, dy, dx);                                             \
    }                                                                                                        \
    extern "C" __global__ void ce_soft_bwd_block_##SUF(i64 n, i64 k, double nd, const T *x, const T *t,     \
                                                       const T *dy, T *dx) {                                \
        ce_soft_bwd_impl<T, BlockGroup>(n, k, nd, x, t, dy, dx);                                            \
    }                                                                                                        \
    extern "C" __global__ void distill_rows_warp_##SUF(i64 n, i64 k, double inv_t, const T *s, const T *t,  \
                                                       A *rows) {                                           \
        distill_rows_impl<T, WarpGroup>(n, k, inv_t, s, t, rows);                                           \
    }                                                                                                        \
    extern "C" __global__ void distill_rows_block_##SUF(i64 n, i64 k, double inv_t, const T *s, const T *t, \
                                                        A *rows) {                                          \
        distill_rows_impl<T, BlockGroup>(n, k, inv_t, s, t, rows);                                          \
    }                                                                                                        \
    extern "C" __global__ void distill_bwd_warp_##SUF(i64 n, i64 k, double inv_t, double t_over_n,          \
                                                      const T *s, const T *t, const T *dy, T *dx) {         \
        distill_bwd_impl<T, WarpGroup>(n, k, inv_t, t_over_n, s, t, dy, dx);                                \
    }                                                                                                        \
    extern "C" __global__ void distill_bwd_block_##SUF(i64 n, i64 k, double inv_t, double t_over_n,         \
                                                       const T *s, const T *t, const T *dy, T *dx) {        \
        distill_bwd_impl<T, BlockGroup>(n, k, inv_t, t_over_n, s, t, dy, dx);                               \
    }                                                                                                        \
    extern "C" __global__ void pair_partial_##SUF(i64 n, int kind, const T *a, const T *b, A *parts) {      \
        pair_partial_impl<T>(n, kind, a, b, parts);                                                         \
    }                                                                                                        \
    extern "C" __global__ void pair_bwd_##SUF(i64 n, int kind, double nd, const T *a, const T *b,           \
                                              const T *dy, T *da, T *db) {                                  \
        pair_bwd_impl<T>(n, kind, nd, a, b, dy, da, db);                                                    \
    }                                                                                                        \
    extern "C" __global__ void mean_finish_##SUF(i64 count, const A *v, double div, double mul, T *out) {   \
        mean_finish_impl<T>(count, v, div, mul, out);                                                       \
    }

LOSS(f16, __half, float)
LOSS(f32, float, float)
LOSS(f64, double, double)
