// Batch normalisation (src/ops/batch_norm.rs): `BatchNormForward` and `BatchNormBackward` over NCHW
// ([N, C] inputs are hw = 1), with the fused ReLU and residual-add + ReLU variants, for f16 (computed
// in f32), f32 and f64. T is the storage type of the big tensors (x, residual, y, dy); A = Acc<T> is
// the type of everything per channel: γ, β, the running and saved statistics, the partials and the
// coefficients. So f16 activations with f32 parameters (mixed-precision training) run the f16 kernels
// directly, with the f32 finalize kernels (there are no f16 ones: the launcher casts f16 parameters to
// f32 first). `TO` is the storage type of the big outputs (y, dx, dresidual): T itself, or f16 for f32
// inputs (when the launcher had to widen big tensors of mixed dtypes to f32, the kernel rounds the
// result straight to f16, exactly once, like the CPU runner's final narrowing).
//
// Bytes moved per element of x (sx = sizeof(input T), so = sizeof(TO)); the GB/s ceiling of a launch
// is (bytes/element × N·C·H·W) / time. Per-channel scratch (≤ 5·C values) is negligible.
//   forward, training:  stats pass reads x (sx); apply pass reads x (sx) [+ residual (sx)], writes y (so)
//                       → 2·sx + so [+ sx]:  f32 12 B (16 with residual), f16 6 B (8),
//                         f32-in/f16-out 10 B (14), f64 24 B (32)
//   forward, eval:      apply pass only → sx + so [+ sx]: f32 8 B (12), f16 4 B (6), f64 16 B (24)
//   backward, training: reduce pass reads x, dy [+ y when relu]; apply pass reads x, dy [+ y], writes
//                       dx [+ dresidual] → 4·sx + so [+ 2·sx] [+ so]: f32 relu 28 B, relu+residual 32 B,
//                         plain 20 B; f16 relu 14 B (16); f64 relu 56 B (64)
//   backward, eval:     reduce pass as above (for dγ); apply pass reads dy [+ y], writes dx [+ dres]
//                       → f32 relu 24 B (28), plain 16 B
// (f16 activations with f32 parameters move the f16 figures: nothing is widened.)
//
// Grid mappings (launchers in src/backend/cuda/batch_norm.rs):
// - `bn_stats_*` / `bn_bwd_reduce_*`: one 256-thread block per (channel, split): block b handles channel
//   b / S, items [s·chunk, (s+1)·chunk) of that channel, s = b mod S. A channel's items are
//   (n, k) pairs, n < N, k < hw/V, item j = n·(hw/V) + k, at element offset (n·C + c)·hw + k·V; a thread
//   walks items j = start + tid, step 256, with a division-free cursor. V = 16 bytes / sizeof(T) when
//   hw % V == 0 (16-byte vector loads: every plane starts 16-byte aligned), else 1. Each block writes
//   its partial (count, mean, M2) (forward, Welford/Chan) or (Σg, Σg·x̂) (backward) to scratch
//   part[3·b..] / part[2·b..], b = c·S + s.
// - `bn_stats_rows_*` / `bn_bwd_reduce_rows_*` (hw = 1: x is [R, C] row-major, R = N): one 256-thread
//   block per (channel tile, split): block b handles channels [t·32, t·32 + 32) ∩ [0, C), t = b / S,
//   rows [s·chunk, (s+1)·chunk) ∩ [0, R), s = b mod S. Thread tx = tid mod 32 owns channel t·32 + tx,
//   thread ty = tid / 32 walks rows start + ty, step 8, so a warp (one ty) loads 32 consecutive
//   elements of one row (coalesced). The 8 row-threads of a channel merge in shared memory in
//   increasing ty (ty = 0 folds in 1, 2, …, 7), and ty = 0 writes the (channel, split) partial at the
//   same place and in the same form as the kernels above (c·S + s), so the finalize kernels are shared.
// - `bn_fwd_finalize_*` / `bn_bwd_finalize_*`: one thread per channel (grid-stride); merges the S
//   partials of its channel in increasing s (deterministic), writes the per-channel outputs and the
//   coefficients of the apply pass.
// - `bn_fwd_apply_<T>_<TO>_<v|s>` / `bn_bwd_apply_<T>_<TO>_<v|s>`: 1-d grid-stride over all N·C·hw/V
//   items; the cursor tracks the plane p = n·C + c and its channel c without divisions. V as for the
//   reductions (16 bytes / sizeof(T) when hw % V == 0 and every big buffer is 16-byte aligned, else 1).
// - `bn_fwd_apply_rows_*` / `bn_bwd_apply_rows_*` (hw = 1: x is [R, C] row-major, R = N): 1-d
//   grid-stride over the R·C/V items, V = 16 bytes / sizeof(T), launched only when C % V == 0 and every
//   big buffer is 16-byte aligned. Item j is elements [j·V, j·V + V): channels ch0 … ch0 + V − 1 of one
//   row (ch0 = (j·V) mod C; V | C, so an item never straddles rows), each element with its own
//   channel's coefficients. ch0 is tracked without divisions (`RowCursor`). The per-item math is shared
//   with the kernels above (`bn_fwd_apply_item` / `bn_bwd_apply_item`, parametrised by the lane stride
//   of the coefficients), so the results are bit-identical to the `_s` kernels'.
//
// Math (term by term as the CPU, with explicitly rounded multiplies/adds so no FMA contraction changes
// a result the CPU rounds twice):
//   training stats: mean, biased var = M2 / M (M = N·hw; NaN when M = 0); eval: running stats.
//   save_mean = mean, save_invstd = 1/sqrt(var + eps) (computed in f64, rounded to A);
//   scale = γ·invstd, shift = β − mean·scale;  y = act(x·scale + shift [+ r]), act = fmax(·, 0) (NaN → 0,
//   like Rust's max); running (training): (1 − mo)·old + mo·stat in f64, var × M/(M − 1) (NaN for M ≤ 1).
//   backward: g = (relu && y <= 0) ? 0 : dy;  dβ = Σg, dγ = Σg·x̂, x̂ = (x − mean)·invstd;
//   k = γ·invstd; dx = k·((g − Σg/M) − x̂·(Σg·x̂/M)) (training) or k·g (eval); dresidual = g.
//
// Invariants: 64-bit indexing; inputs never alias outputs; reductions are deterministic (fixed per-
// thread share, fixed shuffle tree, fixed serial merge of warps, of row-threads and of splits); no
// atomics; every (channel, split) partial is written, empty splits included (count 0 / zero sums).
#include "rowops.cuh"

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

#define BN_THREADS 256

// V contiguous elements moved as one (16-byte when V = 16 / sizeof(T)) access.
template <typename T, int V> struct alignas(sizeof(T) * V) Pack { T v[V]; };

template <int V, typename T>
__device__ __forceinline__ void load_pack(const T *p, i64 off, typename Acc<T>::type (&out)[V]) {
    const Pack<T, V> pk = *reinterpret_cast<const Pack<T, V> *>(p + off);
#pragma unroll
    for (int i = 0; i < V; ++i) out[i] = ld(pk.v, i);
}

template <int V, typename TO, typename A>
__device__ __forceinline__ void store_pack(TO *p, i64 off, const A (&in)[V]) {
    Pack<TO, V> pk;
#pragma unroll
    for (int i = 0; i < V; ++i) st(pk.v, i, in[i]);
    *reinterpret_cast<Pack<TO, V> *>(p + off) = pk;
}

// The gradient reaching batch norm's output at elements [off, off + V): dy, or 0 where the fused ReLU
// clipped (`relu` and y ≤ 0). y is read only when `relu`.
template <int V, typename T>
__device__ __forceinline__ void load_bn_grad(const T *dy, const T *y, i64 off, int relu,
                                             typename Acc<T>::type (&g)[V]) {
    load_pack<V>(dy, off, g);
    if (relu) {
        typename Acc<T>::type yv[V];
        load_pack<V>(y, off, yv);
#pragma unroll
        for (int i = 0; i < V; ++i)
            if (yv[i] <= 0) g[i] = 0;
    }
}

// Division-free walk over items j = row·len + k advancing by a constant `step`: (row, k) and, when
// rows are planes n·C + c, the channel c = row mod C.
struct Cursor {
    i64 row, k, ch;
    i64 dq, dr, dc;
    __device__ __forceinline__ void init(i64 j, i64 len, i64 step, i64 c) {
        row = j / len;
        k = j - row * len;
        ch = row % c;
        dq = step / len;
        dr = step - dq * len;
        dc = dq % c;
    }
    __device__ __forceinline__ void next(i64 len, i64 c) {
        k += dr;
        row += dq;
        ch += dc;
        if (k >= len) {
            k -= len;
            ++row;
            ++ch;
        }
        if (ch >= c) ch -= c; // ch ≤ 2c − 1 here
    }
};

// Division-free walk of ch0 = (j·V) mod c over the items j = j0, j0 + step, … of a row-major [rows, c]
// matrix in packs of V (V | c): ch0 advances by (step·V) mod c and wraps at most once per step.
struct RowCursor {
    i64 ch0, dch;
    __device__ __forceinline__ void init(i64 j, i64 step, i64 c, int v) {
        ch0 = (j * v) % c;
        dch = (step * v) % c;
    }
    __device__ __forceinline__ void next(i64 c) {
        ch0 += dch;
        if (ch0 >= c) ch0 -= c; // ch0 ≤ 2c − 2 here
    }
};

// Chan et al.'s merge of Welford states (count n, mean, M2): (n, mean, m2) ← (n, mean, m2) ∪ (nb, mb, m2b).
template <typename A>
__device__ __forceinline__ void welford_merge(A &n, A &mean, A &m2, A nb, A mb, A m2b) {
    if (nb == A(0)) return;
    if (n == A(0)) {
        n = nb;
        mean = mb;
        m2 = m2b;
        return;
    }
    const A nn = n + nb, d = mb - mean, r = nb / nn;
    mean += d * r;
    m2 += m2b + d * d * n * r;
    n = nn;
}

// ---------------------------------------------------------------------------------------------------
// Forward

template <typename T, int V>
__device__ void bn_stats_impl(i64 c, i64 hw, i64 items, i64 splits, const T *x, typename Acc<T>::type *part) {
    typedef typename Acc<T>::type A;
    __shared__ A sh[3][BN_THREADS / 32];
    const i64 len = hw / V, chunk = (items + splits - 1) / splits;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (i64 b = blockIdx.x; b < c * splits; b += gridDim.x) {
        const i64 ch = b / splits, s = b - ch * splits;
        const i64 start = s * chunk, end = min(items, start + chunk);
        A n = A(0), mean = A(0), m2 = A(0);
        i64 j = start + threadIdx.x;
        if (j < end) {
            Cursor cur;
            cur.init(j, len, blockDim.x, 1);
            for (; j < end; j += blockDim.x, cur.next(len, 1)) {
                A v[V];
                load_pack<V>(x, (cur.row * c + ch) * hw + cur.k * V, v);
                A sum = A(0);
#pragma unroll
                for (int i = 0; i < V; ++i) sum += v[i];
                const A lm = sum * (A(1) / A(V));
                A lm2 = A(0);
#pragma unroll
                for (int i = 0; i < V; ++i) {
                    const A d = v[i] - lm;
                    lm2 += d * d;
                }
                welford_merge(n, mean, m2, A(V), lm, lm2);
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const A nb = __shfl_down_sync(0xffffffffu, n, o);
            const A mb = __shfl_down_sync(0xffffffffu, mean, o);
            const A m2b = __shfl_down_sync(0xffffffffu, m2, o);
            if (lane + o < 32) welford_merge(n, mean, m2, nb, mb, m2b);
        }
        if (lane == 0) {
            sh[0][warp] = n;
            sh[1][warp] = mean;
            sh[2][warp] = m2;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < (int)(blockDim.x >> 5); ++w) welford_merge(n, mean, m2, sh[0][w], sh[1][w], sh[2][w]);
            part[3 * b] = n;
            part[3 * b + 1] = mean;
            part[3 * b + 2] = m2;
        }
        __syncthreads(); // sh is rewritten by the next block iteration
    }
}

template <typename T>
__device__ void bn_fwd_finalize_impl(i64 c, i64 splits, int training, double m, double eps, double momentum,
                                     const T *gamma, const T *beta, const T *rm, const T *rv,
                                     const typename Acc<T>::type *part, typename Acc<T>::type *save_mean,
                                     typename Acc<T>::type *save_invstd, typename Acc<T>::type *new_rm,
                                     typename Acc<T>::type *new_rv, typename Acc<T>::type *coef) {
    typedef typename Acc<T>::type A;
    for (i64 ch = gs_start(); ch < c; ch += gs_step()) {
        double mu, var;
        if (training) {
            A n = A(0), mean = A(0), m2 = A(0);
            for (i64 s = 0; s < splits; ++s) {
                const A *q = part + 3 * (ch * splits + s);
                welford_merge(n, mean, m2, q[0], q[1], q[2]);
            }
            if (m > 0.0) {
                mu = (double)mean;
                var = (double)m2 / m;
            } else {
                mu = var = (double)NAN;
            }
        } else {
            mu = (double)ld(rm, ch);
            var = (double)ld(rv, ch);
        }
        const A sm = (A)mu, si = (A)(1.0 / sqrt(var + eps));
        save_mean[ch] = sm;
        save_invstd[ch] = si;
        const A scale = mul_rn((A)ld(gamma, ch), si);
        coef[2 * ch] = scale;
        coef[2 * ch + 1] = sub_rn((A)ld(beta, ch), mul_rn(sm, scale));
        if (training) {
            const double unbias = m > 1.0 ? m / (m - 1.0) : (double)NAN;
            const double keep = 1.0 - momentum;
            new_rm[ch] = (A)__dadd_rn(__dmul_rn(keep, (double)ld(rm, ch)), __dmul_rn(momentum, mu));
            new_rv[ch] = (A)__dadd_rn(__dmul_rn(keep, (double)ld(rv, ch)), __dmul_rn(__dmul_rn(momentum, var), unbias));
        } else {
            new_rm[ch] = (A)ld(rm, ch);
            new_rv[ch] = (A)ld(rv, ch);
        }
    }
}

// The forward per-item math, shared by the planes and the rows apply passes: elements [off, off + V)
// of x (and res) → y, lane i with (scale, shift) = q[QS·i], q[QS·i + 1]. QS = 0: every lane uses the
// one channel's coefficients at q (planes); QS = 2: lane i is channel ch0 + i (rows, q = coef + 2·ch0).
// `res` is read only when `has_res`.
template <int V, int QS, typename T, typename TO, typename A>
__device__ __forceinline__ void bn_fwd_apply_item(i64 off, int relu, int has_res, const T *x, const T *res,
                                                  const A *q, TO *y) {
    A v[V];
    load_pack<V>(x, off, v);
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = add_rn(mul_rn(v[i], q[QS * i]), q[QS * i + 1]);
    if (has_res) {
        A r[V];
        load_pack<V>(res, off, r);
#pragma unroll
        for (int i = 0; i < V; ++i) v[i] = add_rn(v[i], r[i]);
    }
    if (relu) {
#pragma unroll
        for (int i = 0; i < V; ++i) v[i] = r_max(v[i], A(0));
    }
    store_pack<V>(y, off, v);
}

// `res` is read only when `has_res` (the launcher passes x otherwise).
template <typename T, typename TO, int V>
__device__ void bn_fwd_apply_impl(i64 items, i64 c, i64 hw, int relu, int has_res, const T *x, const T *res,
                                  const typename Acc<T>::type *coef, TO *y) {
    const i64 len = hw / V;
    i64 j = gs_start();
    if (j >= items) return;
    Cursor cur;
    cur.init(j, len, gs_step(), c);
    for (; j < items; j += gs_step(), cur.next(len, c))
        bn_fwd_apply_item<V, 0>(cur.row * hw + cur.k * V, relu, has_res, x, res, coef + 2 * cur.ch, y);
}

// ---------------------------------------------------------------------------------------------------
// Backward

template <typename T, int V>
__device__ void bn_bwd_reduce_impl(i64 c, i64 hw, i64 items, i64 splits, int relu, const T *x,
                                   const typename Acc<T>::type *mean, const typename Acc<T>::type *invstd,
                                   const T *y, const T *dy, typename Acc<T>::type *part) {
    typedef typename Acc<T>::type A;
    const i64 len = hw / V, chunk = (items + splits - 1) / splits;
    for (i64 b = blockIdx.x; b < c * splits; b += gridDim.x) {
        const i64 ch = b / splits, s = b - ch * splits;
        const i64 start = s * chunk, end = min(items, start + chunk);
        const A mu = ld(mean, ch), is = ld(invstd, ch);
        A sg = A(0), sgx = A(0);
        i64 j = start + threadIdx.x;
        if (j < end) {
            Cursor cur;
            cur.init(j, len, blockDim.x, 1);
            for (; j < end; j += blockDim.x, cur.next(len, 1)) {
                const i64 off = (cur.row * c + ch) * hw + cur.k * V;
                A xv[V], g[V];
                load_pack<V>(x, off, xv);
                load_bn_grad<V>(dy, y, off, relu, g);
#pragma unroll
                for (int i = 0; i < V; ++i) {
                    sg += g[i];
                    sgx += g[i] * ((xv[i] - mu) * is);
                }
            }
        }
        // Block sum (fixed tree: deterministic); every thread gets it, thread 0 writes.
        sg = block_allreduce<A, false>(sg);
        sgx = block_allreduce<A, false>(sgx);
        if (threadIdx.x == 0) {
            part[2 * b] = sg;
            part[2 * b + 1] = sgx;
        }
    }
}

// coef per channel: [mean, invstd, k = γ·invstd, Σg/M, Σg·x̂/M].
template <typename T>
__device__ void bn_bwd_finalize_impl(i64 c, i64 splits, double m, const T *gamma, const T *mean, const T *invstd,
                                     const typename Acc<T>::type *part, typename Acc<T>::type *dgamma,
                                     typename Acc<T>::type *dbeta, typename Acc<T>::type *coef) {
    typedef typename Acc<T>::type A;
    for (i64 ch = gs_start(); ch < c; ch += gs_step()) {
        A sg = A(0), sgx = A(0);
        for (i64 s = 0; s < splits; ++s) {
            sg += part[2 * (ch * splits + s)];
            sgx += part[2 * (ch * splits + s) + 1];
        }
        dgamma[ch] = sgx;
        dbeta[ch] = sg;
        const A is = ld(invstd, ch);
        coef[5 * ch] = ld(mean, ch);
        coef[5 * ch + 1] = is;
        coef[5 * ch + 2] = mul_rn((A)ld(gamma, ch), is);
        coef[5 * ch + 3] = (A)((double)sg / m);
        coef[5 * ch + 4] = (A)((double)sgx / m);
    }
}

// The backward per-item math, shared by the planes and the rows apply passes: elements [off, off + V)
// of dy (and y, x) → dx (and dres), lane i with coefficients (mean, invstd, k, Σg/M, Σg·x̂/M) =
// q[QS·i .. QS·i + 5). QS = 0: every lane uses the one channel's coefficients at q (planes); QS = 5:
// lane i is channel ch0 + i (rows, q = coef + 5·ch0).
// `dres` is written only when `want_dres`; `x` is read only when `training`, `y` only when `relu`.
template <int V, int QS, typename T, typename TO, typename A>
__device__ __forceinline__ void bn_bwd_apply_item(i64 off, int training, int relu, int want_dres, const T *x,
                                                  const T *y, const T *dy, const A *q, TO *dx, TO *dres) {
    A g[V];
    load_bn_grad<V>(dy, y, off, relu, g);
    if (want_dres) store_pack<V>(dres, off, g);
    A d[V];
    if (training) {
        A xv[V];
        load_pack<V>(x, off, xv);
#pragma unroll
        for (int i = 0; i < V; ++i) {
            const A *qi = q + QS * i;
            const A xh = mul_rn(sub_rn(xv[i], qi[0]), qi[1]);
            d[i] = mul_rn(qi[2], sub_rn(sub_rn(g[i], qi[3]), mul_rn(xh, qi[4])));
        }
    } else {
#pragma unroll
        for (int i = 0; i < V; ++i) d[i] = mul_rn(q[QS * i + 2], g[i]);
    }
    store_pack<V>(dx, off, d);
}

// `dres` is written only when `want_dres`; `x` is read only when `training`, `y` only when `relu`.
template <typename T, typename TO, int V>
__device__ void bn_bwd_apply_impl(i64 items, i64 c, i64 hw, int training, int relu, int want_dres, const T *x,
                                  const T *y, const T *dy, const typename Acc<T>::type *coef, TO *dx, TO *dres) {
    const i64 len = hw / V;
    i64 j = gs_start();
    if (j >= items) return;
    Cursor cur;
    cur.init(j, len, gs_step(), c);
    for (; j < items; j += gs_step(), cur.next(len, c))
        bn_bwd_apply_item<V, 0>(cur.row * hw + cur.k * V, training, relu, want_dres, x, y, dy, coef + 5 * cur.ch,
                                dx, dres);
}

// ---------------------------------------------------------------------------------------------------
// Row-major reductions (hw = 1): x, y, dy are [rows, c], element (r, ch) at r·c + ch.

#define BN_ROWS_TILE 32 // channels per block: tx = threadIdx.x mod 32

// Block iteration b's share of a row reduction: split s of the rows, [start, end), of channel tile
// b / splits; ch is this thread's channel (tile·32 + tx, possibly ≥ c in the last tile).
struct RowsSpan {
    i64 s, ch, start, end;
};

// The grid of the row reductions: one block iteration per (channel tile, split), 32 channel lanes
// (tx) by ny = blockDim.x / 32 row-threads (ty) per block; row-thread ty walks rows start + ty, step ny.
struct RowsGrid {
    int tx, ty, ny;
    i64 splits, tiles, chunk, rows;
    __device__ RowsGrid(i64 c, i64 rows_, i64 splits_)
        : tx(threadIdx.x % BN_ROWS_TILE), ty(threadIdx.x / BN_ROWS_TILE), ny(blockDim.x / BN_ROWS_TILE),
          splits(splits_), tiles((c + BN_ROWS_TILE - 1) / BN_ROWS_TILE), chunk((rows_ + splits_ - 1) / splits_),
          rows(rows_) {}
    __device__ i64 blocks() const { return tiles * splits; }
    __device__ RowsSpan span(i64 b) const {
        const i64 tile = b / splits, s = b - tile * splits, start = s * chunk;
        return RowsSpan{s, tile * BN_ROWS_TILE + tx, start, min(rows, start + chunk)};
    }
};

// Forward statistics of channels [tile·32, tile·32 + 32) over a split of the rows; the per-row update
// is bn_stats_impl's with V = 1 (a merge of the one-item state (1, x, 0)).
template <typename T>
__device__ void bn_stats_rows_impl(i64 c, i64 rows, i64 splits, const T *x, typename Acc<T>::type *part) {
    typedef typename Acc<T>::type A;
    __shared__ A sh[3][BN_THREADS / BN_ROWS_TILE][BN_ROWS_TILE];
    const RowsGrid grid(c, rows, splits);
    const int tx = grid.tx, ty = grid.ty;
    for (i64 b = blockIdx.x; b < grid.blocks(); b += gridDim.x) {
        const RowsSpan sp = grid.span(b);
        const i64 ch = sp.ch, s = sp.s;
        A n = A(0), mean = A(0), m2 = A(0);
        if (ch < c)
            for (i64 r = sp.start + ty; r < sp.end; r += grid.ny)
                welford_merge(n, mean, m2, A(1), (A)ld(x, r * c + ch), A(0));
        sh[0][ty][tx] = n;
        sh[1][ty][tx] = mean;
        sh[2][ty][tx] = m2;
        __syncthreads();
        if (ty == 0 && ch < c) {
            for (int k = 1; k < grid.ny; ++k) welford_merge(n, mean, m2, sh[0][k][tx], sh[1][k][tx], sh[2][k][tx]);
            A *q = part + 3 * (ch * splits + s);
            q[0] = n;
            q[1] = mean;
            q[2] = m2;
        }
        __syncthreads(); // sh is rewritten by the next block iteration
    }
}

// Backward (Σg, Σg·x̂) of channels [tile·32, tile·32 + 32) over a split of the rows; per row the terms
// of bn_bwd_reduce_impl with V = 1.
template <typename T>
__device__ void bn_bwd_reduce_rows_impl(i64 c, i64 rows, i64 splits, int relu, const T *x,
                                        const typename Acc<T>::type *mean, const typename Acc<T>::type *invstd,
                                        const T *y, const T *dy, typename Acc<T>::type *part) {
    typedef typename Acc<T>::type A;
    __shared__ A sh[2][BN_THREADS / BN_ROWS_TILE][BN_ROWS_TILE];
    const RowsGrid grid(c, rows, splits);
    const int tx = grid.tx, ty = grid.ty;
    for (i64 b = blockIdx.x; b < grid.blocks(); b += gridDim.x) {
        const RowsSpan sp = grid.span(b);
        const i64 ch = sp.ch, s = sp.s;
        A sg = A(0), sgx = A(0);
        if (ch < c) {
            const A mu = ld(mean, ch), is = ld(invstd, ch);
            for (i64 r = sp.start + ty; r < sp.end; r += grid.ny) {
                const i64 off = r * c + ch;
                A g = ld(dy, off);
                if (relu && ld(y, off) <= A(0)) g = A(0);
                sg += g;
                sgx += g * ((ld(x, off) - mu) * is);
            }
        }
        sh[0][ty][tx] = sg;
        sh[1][ty][tx] = sgx;
        __syncthreads();
        if (ty == 0 && ch < c) {
            for (int k = 1; k < grid.ny; ++k) {
                sg += sh[0][k][tx];
                sgx += sh[1][k][tx];
            }
            part[2 * (ch * splits + s)] = sg;
            part[2 * (ch * splits + s) + 1] = sgx;
        }
        __syncthreads(); // sh is rewritten by the next block iteration
    }
}

// ---------------------------------------------------------------------------------------------------
// Row-major elementwise passes (hw = 1, V | c, 16-byte aligned buffers): item j is elements
// [j·V, j·V + V) of the [rows, c] matrix, channels ch0 + i (i < V) of one row, coefficients per lane.

// bn_fwd_apply_impl's loop over items, sharing its per-item math (bn_fwd_apply_item) with each lane's
// own (scale, shift) = coef[2·ch], coef[2·ch + 1] (QS = 2).
// `res` is read only when `has_res` (the launcher passes x otherwise).
template <typename T, typename TO, int V>
__device__ void bn_fwd_apply_rows_impl(i64 items, i64 c, int relu, int has_res, const T *x, const T *res,
                                       const typename Acc<T>::type *coef, TO *y) {
    i64 j = gs_start();
    if (j >= items) return;
    RowCursor cur;
    cur.init(j, gs_step(), c, V);
    for (; j < items; j += gs_step(), cur.next(c))
        bn_fwd_apply_item<V, 2>(j * V, relu, has_res, x, res, coef + 2 * cur.ch0, y);
}

// bn_bwd_apply_impl's loop over items, sharing its per-item math (bn_bwd_apply_item) with each lane's
// own coefficients coef[5·ch .. 5·ch + 5) (QS = 5).
// `dres` is written only when `want_dres`; `x` is read only when `training`, `y` only when `relu`.
template <typename T, typename TO, int V>
__device__ void bn_bwd_apply_rows_impl(i64 items, i64 c, int training, int relu, int want_dres, const T *x,
                                       const T *y, const T *dy, const typename Acc<T>::type *coef, TO *dx,
                                       TO *dres) {
    i64 j = gs_start();
    if (j >= items) return;
    RowCursor cur;
    cur.init(j, gs_step(), c, V);
    for (; j < items; j += gs_step(), cur.next(c))
        bn_bwd_apply_item<V, 5>(j * V, training, relu, want_dres, x, y, dy, coef + 5 * cur.ch0, dx, dres);
}

// ---------------------------------------------------------------------------------------------------
// Entry points. SUF = input dtype, OSUF = big-output dtype, VS = `v` (vector width VW) or `s` (scalar).

#define BN_REDUCE(SUF, T, VS, VW)                                                                              \
    extern "C" __global__ void __launch_bounds__(BN_THREADS)                                                  \
        bn_stats_##SUF##_##VS(i64 c, i64 hw, i64 items, i64 splits, const T *x, Acc<T>::type *part) {         \
        bn_stats_impl<T, VW>(c, hw, items, splits, x, part);                                                   \
    }                                                                                                          \
    extern "C" __global__ void __launch_bounds__(BN_THREADS)                                                  \
        bn_bwd_reduce_##SUF##_##VS(i64 c, i64 hw, i64 items, i64 splits, int relu, const T *x,                \
                                   const Acc<T>::type *mean, const Acc<T>::type *invstd, const T *y,           \
                                   const T *dy, Acc<T>::type *part) {                                          \
        bn_bwd_reduce_impl<T, VW>(c, hw, items, splits, relu, x, mean, invstd, y, dy, part);                  \
    }

// The row-major reductions (hw = 1), launched with BN_THREADS threads per block.
#define BN_REDUCE_ROWS(SUF, T)                                                                                 \
    extern "C" __global__ void __launch_bounds__(BN_THREADS)                                                   \
        bn_stats_rows_##SUF(i64 c, i64 rows, i64 splits, const T *x, Acc<T>::type *part) {                     \
        bn_stats_rows_impl<T>(c, rows, splits, x, part);                                                       \
    }                                                                                                          \
    extern "C" __global__ void __launch_bounds__(BN_THREADS)                                                   \
        bn_bwd_reduce_rows_##SUF(i64 c, i64 rows, i64 splits, int relu, const T *x, const Acc<T>::type *mean,  \
                                 const Acc<T>::type *invstd, const T *y, const T *dy, Acc<T>::type *part) {    \
        bn_bwd_reduce_rows_impl<T>(c, rows, splits, relu, x, mean, invstd, y, dy, part);                       \
    }

#define BN_APPLY(SUF, T, OSUF, TO, VS, VW)                                                                     \
    extern "C" __global__ void bn_fwd_apply_##SUF##_##OSUF##_##VS(i64 items, i64 c, i64 hw, int relu,          \
                                                                  int has_res, const T *x, const T *res,       \
                                                                  const Acc<T>::type *coef, TO *y) {           \
        bn_fwd_apply_impl<T, TO, VW>(items, c, hw, relu, has_res, x, res, coef, y);                           \
    }                                                                                                          \
    extern "C" __global__ void bn_bwd_apply_##SUF##_##OSUF##_##VS(                                             \
        i64 items, i64 c, i64 hw, int training, int relu, int want_dres, const T *x, const T *y, const T *dy,  \
        const Acc<T>::type *coef, TO *dx, TO *dres) {                                                          \
        bn_bwd_apply_impl<T, TO, VW>(items, c, hw, training, relu, want_dres, x, y, dy, coef, dx, dres);      \
    }

// The row-major apply passes (hw = 1), V = VW = 16 bytes / sizeof(T), launched only when VW | c.
#define BN_APPLY_ROWS(SUF, T, OSUF, TO, VW)                                                                    \
    extern "C" __global__ void bn_fwd_apply_rows_##SUF##_##OSUF(i64 items, i64 c, int relu, int has_res,       \
                                                                const T *x, const T *res,                      \
                                                                const Acc<T>::type *coef, TO *y) {             \
        bn_fwd_apply_rows_impl<T, TO, VW>(items, c, relu, has_res, x, res, coef, y);                           \
    }                                                                                                          \
    extern "C" __global__ void bn_bwd_apply_rows_##SUF##_##OSUF(i64 items, i64 c, int training, int relu,      \
                                                                int want_dres, const T *x, const T *y,         \
                                                                const T *dy, const Acc<T>::type *coef,         \
                                                                TO *dx, TO *dres) {                            \
        bn_bwd_apply_rows_impl<T, TO, VW>(items, c, training, relu, want_dres, x, y, dy, coef, dx, dres);      \
    }

#define BN_FINALIZE(SUF, T)                                                                                    \
    extern "C" __global__ void bn_fwd_finalize_##SUF(i64 c, i64 splits, int training, double m, double eps,    \
                                                     double momentum, const T *gamma, const T *beta,           \
                                                     const T *rm, const T *rv, const Acc<T>::type *part,       \
                                                     Acc<T>::type *save_mean, Acc<T>::type *save_invstd,       \
                                                     Acc<T>::type *new_rm, Acc<T>::type *new_rv,               \
                                                     Acc<T>::type *coef) {                                     \
        bn_fwd_finalize_impl<T>(c, splits, training, m, eps, momentum, gamma, beta, rm, rv, part, save_mean,   \
                                save_invstd, new_rm, new_rv, coef);                                            \
    }                                                                                                          \
    extern "C" __global__ void bn_bwd_finalize_##SUF(i64 c, i64 splits, double m, const T *gamma,              \
                                                     const T *mean, const T *invstd, const Acc<T>::type *part, \
                                                     Acc<T>::type *dgamma, Acc<T>::type *dbeta,                \
                                                     Acc<T>::type *coef) {                                     \
        bn_bwd_finalize_impl<T>(c, splits, m, gamma, mean, invstd, part, dgamma, dbeta, coef);                 \
    }

BN_REDUCE(f16, __half, s, 1)
BN_REDUCE(f16, __half, v, 8)
BN_REDUCE(f32, float, s, 1)
BN_REDUCE(f32, float, v, 4)
BN_REDUCE(f64, double, s, 1)
BN_REDUCE(f64, double, v, 2)

BN_REDUCE_ROWS(f16, __half)
BN_REDUCE_ROWS(f32, float)
BN_REDUCE_ROWS(f64, double)

BN_APPLY(f16, __half, f16, __half, s, 1)
BN_APPLY(f16, __half, f16, __half, v, 8)
BN_APPLY(f32, float, f32, float, s, 1)
BN_APPLY(f32, float, f32, float, v, 4)
BN_APPLY(f32, float, f16, __half, s, 1)
BN_APPLY(f32, float, f16, __half, v, 4)
BN_APPLY(f64, double, f64, double, s, 1)
BN_APPLY(f64, double, f64, double, v, 2)

BN_APPLY_ROWS(f16, __half, f16, __half, 8)
BN_APPLY_ROWS(f32, float, f32, float, 4)
BN_APPLY_ROWS(f32, float, f16, __half, 4)
BN_APPLY_ROWS(f64, double, f64, double, 2)

BN_FINALIZE(f32, float)
BN_FINALIZE(f64, double)
