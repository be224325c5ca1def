//! The launches of cuda/batch_norm.cu: how many blocks share one channel's reduction, the vector
//! width of the `_v` kernels, the reduction grid, the dtype the big outputs are written in, and the
//! calls (kernel names and argument lists) of its eight kernels: `bn_stats_*`, `bn_fwd_finalize_*`,
//! `bn_fwd_apply_*` (forward) and `bn_bwd_reduce_*`, `bn_bwd_finalize_*`, `bn_bwd_apply_*` (backward),
//! plus the row-major reductions `bn_stats_rows_*` / `bn_bwd_reduce_rows_*` that replace the first
//! and fourth when hw = 1 ([`ReducePlan`] picks one family; both write the partials the finalize
//! kernels read) and the row-major apply passes `bn_fwd_apply_rows_*` / `bn_bwd_apply_rows_*` that
//! replace the third and sixth when hw = 1 and the vector width divides c ([`ApplyPlan`] picks).
//! A kernel with five or more pointers takes them as a struct with one named field per pointer
//! (`FwdFinalizeBufs`, …), so each call site names every buffer it passes. Every per-channel buffer
//! (γ, β, running and saved statistics, partials, coefficients) is in A = [`acc_dtype`] of the big
//! tensors' T: f16 activations with f32 parameters run the f16 kernels as they are.
//!
//! Invariants: a channel is split over several blocks only while each block keeps at least
//! [`MIN_ITEMS_PER_BLOCK`] items (the row kernels: [`MIN_ROWS_PER_BLOCK`] rows, the same elements per
//! thread); 16-byte vector kernels (`_v`) are picked only when a plane's length is a multiple of the
//! vector width and every big buffer is 16-byte aligned (the caller says which); the row reductions
//! are picked exactly when hw = 1; the row apply kernels (16-byte accesses too) exactly when hw = 1,
//! the vector width divides c and every big buffer is 16-byte aligned; every call's arguments are in
//! the order and C types of its kernel's signature (quoted on each builder).

use super::call::KernelCall;
use super::{acc_dtype, suffix, Launch1d};
use crate::DType;

/// Threads per block of the per-channel reductions (`BN_THREADS` in cuda/batch_norm.cu).
pub const BN_THREADS: u32 = 256;
/// A channel is split over several blocks only while each block keeps at least this many items.
pub const MIN_ITEMS_PER_BLOCK: usize = 4096;
/// The reductions aim for this many blocks per SM in total.
pub const REDUCE_BLOCKS_PER_SM: usize = 8;

/// Blocks per channel for a reduction over `items` items per channel on a GPU of `sm_count` SMs:
/// enough blocks in total to fill the GPU, but no block with fewer than [`MIN_ITEMS_PER_BLOCK`].
pub fn splits(sm_count: usize, c: usize, items: usize) -> usize {
    let target = sm_count * REDUCE_BLOCKS_PER_SM;
    let want = target.div_ceil(c.max(1));
    want.min(items.div_ceil(MIN_ITEMS_PER_BLOCK)).max(1)
}

/// The grid of `bn_stats_*` / `bn_bwd_reduce_*`: exactly `blocks` (= channels × splits) blocks.
pub fn reduce_launch(blocks: usize) -> Launch1d {
    Launch1d {
        blocks: blocks.clamp(1, i32::MAX as usize) as u32,
        threads: BN_THREADS,
    }
}

/// Channels per block of the row-major reductions (`BN_ROWS_TILE`): thread `tid mod 32` owns one
/// channel, so a warp reads 32 consecutive elements of a row.
pub const ROWS_TILE: usize = 32;
/// Rows a block of the row-major reductions reads at once: thread `tid / 32` of its
/// [`BN_THREADS`] walks every `ROWS_STEP`-th row of its split.
pub const ROWS_STEP: usize = BN_THREADS as usize / ROWS_TILE;
/// The row kernels split a channel tile's rows over several blocks only while each block keeps at
/// least this many rows: [`MIN_ITEMS_PER_BLOCK`] / [`ROWS_TILE`], i.e. the same 16 elements per
/// thread as the per-channel kernels.
pub const MIN_ROWS_PER_BLOCK: usize = MIN_ITEMS_PER_BLOCK / ROWS_TILE;

/// Blocks per channel tile of a row-major reduction over `rows` rows of `c` channels on a GPU of
/// `sm_count` SMs: as [`splits`], with ceil(c / [`ROWS_TILE`]) tiles in place of channels and
/// [`MIN_ROWS_PER_BLOCK`] rows per block.
pub fn rows_splits(sm_count: usize, c: usize, rows: usize) -> usize {
    let target = sm_count * REDUCE_BLOCKS_PER_SM;
    let want = target.div_ceil(c.div_ceil(ROWS_TILE).max(1));
    want.min(rows.div_ceil(MIN_ROWS_PER_BLOCK)).max(1)
}

/// The grid of `bn_stats_rows_*` / `bn_bwd_reduce_rows_*`: exactly ceil(c / [`ROWS_TILE`]) ×
/// `splits` blocks of [`BN_THREADS`].
pub fn rows_launch(c: usize, splits: usize) -> Launch1d {
    reduce_launch(c.div_ceil(ROWS_TILE) * splits)
}

/// The per-channel reduction of a launch (the forward's statistics, the backward's (Σg, Σg·x̂)):
/// which kernel family runs it, over how many splits, on which grid. Both families write
/// 3·c·`splits` (forward) or 2·c·`splits` (backward) partials in the layout the finalize kernels
/// read, so only this choice differs between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReducePlan {
    pub c: usize,
    pub hw: usize,
    /// Blocks per channel (per channel tile for [`Reduce::Rows`]); the finalize's `splits`.
    pub splits: usize,
    pub kind: Reduce,
}

/// The kernel family of a [`ReducePlan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// `bn_stats_<T>_<vs>` / `bn_bwd_reduce_<T>_<vs>`: one channel per block, `items` = N·hw/V
    /// items per channel.
    Planes { vs: &'static str, items: usize },
    /// `bn_stats_rows_<T>` / `bn_bwd_reduce_rows_<T>` (hw = 1): [`ROWS_TILE`] channels per block
    /// over `rows` = N rows.
    Rows { rows: usize },
}

impl ReducePlan {
    /// The reduction over `n` × `c` × `hw` elements on a GPU of `sm_count` SMs: the row kernels
    /// when `hw` = 1 (channels are then contiguous: an [N, C] or channels-last tensor), else the
    /// per-channel kernels with the vector pick `(v, vs)` of [`pick_vec`].
    pub fn new(
        sm_count: usize,
        n: usize,
        c: usize,
        hw: usize,
        (v, vs): (usize, &'static str),
    ) -> ReducePlan {
        if hw == 1 {
            ReducePlan {
                c,
                hw,
                splits: rows_splits(sm_count, c, n),
                kind: Reduce::Rows { rows: n },
            }
        } else {
            let items = n * (hw / v);
            ReducePlan {
                c,
                hw,
                splits: splits(sm_count, c, items),
                kind: Reduce::Planes { vs, items },
            }
        }
    }

    /// The plan's grid.
    pub fn launch(&self) -> Launch1d {
        match self.kind {
            Reduce::Planes { .. } => reduce_launch(self.c * self.splits),
            Reduce::Rows { .. } => rows_launch(self.c, self.splits),
        }
    }

    /// The forward statistics call ([`stats`] or [`stats_rows`]): x holds N·c·hw T, part 3·c·splits A.
    pub fn stats<P>(&self, dtype: DType, x: P, part: P) -> KernelCall<P> {
        match self.kind {
            Reduce::Planes { vs, items } => {
                stats(dtype, vs, self.c, self.hw, items, self.splits, x, part)
            }
            Reduce::Rows { rows } => stats_rows(dtype, self.c, rows, self.splits, x, part),
        }
    }

    /// The backward reduction call ([`bwd_reduce`] or [`bwd_reduce_rows`]): part holds
    /// 2·c·splits A.
    pub fn bwd_reduce<P>(&self, dtype: DType, relu: bool, b: BwdReduceBufs<P>) -> KernelCall<P> {
        match self.kind {
            Reduce::Planes { vs, items } => {
                bwd_reduce(dtype, vs, self.c, self.hw, items, self.splits, relu, b)
            }
            Reduce::Rows { rows } => bwd_reduce_rows(dtype, self.c, rows, self.splits, relu, b),
        }
    }
}

/// The elementwise pass of a launch (the forward's y, the backward's dx and dresidual): which
/// kernel family runs it and over how many items. Its grid is the 1-d grid-stride launch of
/// `items` (the launchers' `g.grid(items)`, [`super::Launch1d::per_item`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyPlan {
    pub c: usize,
    pub hw: usize,
    /// Items of the grid-stride loop: N·c·hw / V.
    pub items: usize,
    pub kind: Apply,
}

/// The kernel family of an [`ApplyPlan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// `bn_fwd_apply_<T>_<TO>_<vs>` / `bn_bwd_apply_<T>_<TO>_<vs>`: V elements of one (n, c) plane
    /// per item, `(v, vs)` the pick of [`pick_vec`].
    Planes { v: usize, vs: &'static str },
    /// `bn_fwd_apply_rows_<T>_<TO>` / `bn_bwd_apply_rows_<T>_<TO>` (hw = 1, `v` | c): `v` =
    /// [`vec_width`] consecutive channels of one row per item, one 16-byte access per buffer.
    Rows { v: usize },
}

impl ApplyPlan {
    /// The elementwise pass over `n` × `c` × `hw` elements of `dtype` (the input dtype T; n·c·hw
    /// must fit, as the launchers check), when `all_aligned` says every big buffer starts on a
    /// 16-byte boundary: the row kernels when `hw` = 1, [`vec_width`] divides `c` and `all_aligned`
    /// (an item is then V consecutive channels of one row), else the per-plane kernels with the
    /// pick of [`pick_vec`] (scalar for hw = 1).
    pub fn new(n: usize, c: usize, hw: usize, dtype: DType, all_aligned: bool) -> ApplyPlan {
        let total = n * c * hw;
        let vw = vec_width(dtype);
        let kind = if hw == 1 && c % vw == 0 && all_aligned {
            Apply::Rows { v: vw }
        } else {
            let (v, vs) = pick_vec(hw, dtype, all_aligned);
            Apply::Planes { v, vs }
        };
        let v = match kind {
            Apply::Planes { v, .. } | Apply::Rows { v } => v,
        };
        ApplyPlan {
            c,
            hw,
            items: total / v,
            kind,
        }
    }

    /// The forward apply call ([`fwd_apply`] or [`fwd_apply_rows`]); TO = `out_dtype`
    /// ([`big_out_dtype`]), `res` None without a residual.
    #[allow(clippy::too_many_arguments)]
    pub fn fwd_apply<P: Copy>(
        &self,
        dtype: DType,
        out_dtype: DType,
        relu: bool,
        x: P,
        res: Option<P>,
        coef: P,
        y: P,
    ) -> KernelCall<P> {
        match self.kind {
            Apply::Planes { vs, .. } => fwd_apply(
                dtype, out_dtype, vs, self.items, self.c, self.hw, relu, x, res, coef, y,
            ),
            Apply::Rows { .. } => {
                fwd_apply_rows(dtype, out_dtype, self.items, self.c, relu, x, res, coef, y)
            }
        }
    }

    /// The backward apply call ([`bwd_apply`] or [`bwd_apply_rows`]); TO = `out_dtype`.
    pub fn bwd_apply<P>(
        &self,
        dtype: DType,
        out_dtype: DType,
        training: bool,
        relu: bool,
        want_dres: bool,
        b: BwdApplyBufs<P>,
    ) -> KernelCall<P> {
        match self.kind {
            Apply::Planes { vs, .. } => bwd_apply(
                dtype, out_dtype, vs, self.items, self.c, self.hw, training, relu, want_dres, b,
            ),
            Apply::Rows { .. } => bwd_apply_rows(
                dtype, out_dtype, self.items, self.c, training, relu, want_dres, b,
            ),
        }
    }
}

/// Elements per 16-byte vector of `dtype`.
pub fn vec_width(dtype: DType) -> usize {
    16 / dtype.size_in_bytes()
}

/// `(V, "v" | "s")`: the vector width and kernel-name suffix for planes of `hw` elements of `dtype`,
/// when `all_aligned` says every big buffer starts on a 16-byte boundary.
pub fn pick_vec(hw: usize, dtype: DType, all_aligned: bool) -> (usize, &'static str) {
    let vw = vec_width(dtype);
    if hw % vw == 0 && all_aligned {
        (vw, "v")
    } else {
        (1, "s")
    }
}

/// The big outputs' dtype (y, dx, dresidual): f16 when the op asked for f16 and the inputs were
/// widened to f32 (written straight in f16: one rounding, like the CPU runner), else the inputs'.
pub fn big_out_dtype(input: DType, requested: DType) -> DType {
    if input == DType::F32 && requested == DType::F16 {
        DType::F16
    } else {
        input
    }
}

/// `bn_stats_<T>_<v|s>(i64 c, i64 hw, i64 items, i64 splits, const T* x, A* part)`: block b
/// reduces channel b / splits over its share of the channel's `items` (= N·hw/V) items and writes
/// its (count, mean, M2) to `part[3·b..]`. `vs` is the pick of [`pick_vec`]; x holds N·c·hw T, part
/// 3·c·splits A (A = [`super::acc_dtype`]).
#[allow(clippy::too_many_arguments)]
pub fn stats<P>(
    dtype: DType,
    vs: &str,
    c: usize,
    hw: usize,
    items: usize,
    splits: usize,
    x: P,
    part: P,
) -> KernelCall<P> {
    KernelCall::new("batch_norm", format!("bn_stats_{}_{vs}", suffix(dtype)))
        .i64(c)
        .i64(hw)
        .i64(items)
        .i64(splits)
        .ptr(x)
        .ptr(part)
}

/// `bn_stats_rows_<T>(i64 c, i64 rows, i64 splits, const T* x, A* part)`: x is [rows, c]
/// (hw = 1); block b reduces channels [t·32, t·32 + 32) ∩ [0, c), t = b / splits, over its share of
/// the rows, s = b mod splits, and writes each channel's (count, mean, M2) to `part[3·(ch·splits +
/// s)..]`, the layout of [`stats`]. Grid: [`rows_launch`]. x holds rows·c T, part 3·c·splits A.
pub fn stats_rows<P>(
    dtype: DType,
    c: usize,
    rows: usize,
    splits: usize,
    x: P,
    part: P,
) -> KernelCall<P> {
    KernelCall::new("batch_norm", format!("bn_stats_rows_{}", suffix(dtype)))
        .i64(c)
        .i64(rows)
        .i64(splits)
        .ptr(x)
        .ptr(part)
}

/// The buffers of `bn_fwd_finalize_*`, in signature order: the parameters and running statistics
/// (c A each), the stats partials (3·c·splits A, read only in training), the per-channel outputs
/// (c A each) and the apply's coefficients (2·c A: scale, shift per channel).
pub struct FwdFinalizeBufs<P> {
    pub gamma: P,
    pub beta: P,
    pub rm: P,
    pub rv: P,
    pub part: P,
    pub save_mean: P,
    pub save_invstd: P,
    pub new_rm: P,
    pub new_rv: P,
    pub coef: P,
}

/// `bn_fwd_finalize_<A>(i64 c, i64 splits, int training, double m, double eps, double momentum,
/// const A* gamma, const A* beta, const A* rm, const A* rv, const A* part, A* save_mean,
/// A* save_invstd, A* new_rm, A* new_rv, A* coef)`: one thread per channel merges its `splits`
/// partials (training) or reads the running statistics (eval); `m` = N·hw items per channel.
/// `dtype` is the big tensors' T; the kernel is A's = [`acc_dtype`]`(T)` (f32 for f16 and f32: every
/// per-channel buffer is in A, whatever the activations' storage type).
#[allow(clippy::too_many_arguments)]
pub fn fwd_finalize<P>(
    dtype: DType,
    c: usize,
    splits: usize,
    training: bool,
    m: usize,
    eps: f64,
    momentum: f64,
    b: FwdFinalizeBufs<P>,
) -> KernelCall<P> {
    KernelCall::new(
        "batch_norm",
        format!("bn_fwd_finalize_{}", suffix(acc_dtype(dtype))),
    )
    .i64(c)
    .i64(splits)
    .i32(training as i32)
    .f64(m as f64)
    .f64(eps)
    .f64(momentum)
    .ptr(b.gamma)
    .ptr(b.beta)
    .ptr(b.rm)
    .ptr(b.rv)
    .ptr(b.part)
    .ptr(b.save_mean)
    .ptr(b.save_invstd)
    .ptr(b.new_rm)
    .ptr(b.new_rv)
    .ptr(b.coef)
}

/// `bn_fwd_apply_<T>_<TO>_<v|s>(i64 items, i64 c, i64 hw, int relu, int has_res, const T* x,
/// const T* res, const A* coef, TO* y)`: y = act(x·scale + shift [+ res]) over `items` (= N·c·hw/V)
/// items; TO = `out_dtype` ([`big_out_dtype`]). Without a residual (`res` None) x is passed in its
/// place, unread (`has_res` = 0). x, res and y hold N·c·hw elements, coef 2·c A.
#[allow(clippy::too_many_arguments)]
pub fn fwd_apply<P: Copy>(
    dtype: DType,
    out_dtype: DType,
    vs: &str,
    items: usize,
    c: usize,
    hw: usize,
    relu: bool,
    x: P,
    res: Option<P>,
    coef: P,
    y: P,
) -> KernelCall<P> {
    KernelCall::new(
        "batch_norm",
        format!("bn_fwd_apply_{}_{}_{vs}", suffix(dtype), suffix(out_dtype)),
    )
    .i64(items)
    .i64(c)
    .i64(hw)
    .i32(relu as i32)
    .i32(res.is_some() as i32)
    .ptr(x)
    .ptr(res.unwrap_or(x))
    .ptr(coef)
    .ptr(y)
}

/// `bn_fwd_apply_rows_<T>_<TO>(i64 items, i64 c, int relu, int has_res, const T* x, const T* res,
/// const A* coef, TO* y)`: x, res and y are [rows, c] (hw = 1); item j < `items` (= rows·c/V,
/// V = [`vec_width`] of `dtype`, which must divide c) is elements [j·V, j·V + V), channels
/// (j·V) mod c + i (i < V) of one row, y = act(x·scale + shift [+ res]) with each channel's own
/// coefficients; every big buffer must be 16-byte aligned (the pick of [`ApplyPlan`]). Without a
/// residual x is passed in its place, unread. x, res and y hold rows·c elements, coef 2·c A.
#[allow(clippy::too_many_arguments)]
pub fn fwd_apply_rows<P: Copy>(
    dtype: DType,
    out_dtype: DType,
    items: usize,
    c: usize,
    relu: bool,
    x: P,
    res: Option<P>,
    coef: P,
    y: P,
) -> KernelCall<P> {
    KernelCall::new(
        "batch_norm",
        format!("bn_fwd_apply_rows_{}_{}", suffix(dtype), suffix(out_dtype)),
    )
    .i64(items)
    .i64(c)
    .i32(relu as i32)
    .i32(res.is_some() as i32)
    .ptr(x)
    .ptr(res.unwrap_or(x))
    .ptr(coef)
    .ptr(y)
}

/// The buffers of `bn_bwd_reduce_*` and `bn_bwd_reduce_rows_*`, in signature order: x, y, dy
/// (N·c·hw T), the saved statistics (c A each) and the partials (2·c·splits A).
pub struct BwdReduceBufs<P> {
    pub x: P,
    pub mean: P,
    pub invstd: P,
    pub y: P,
    pub dy: P,
    pub part: P,
}

/// `bn_bwd_reduce_<T>_<v|s>(i64 c, i64 hw, i64 items, i64 splits, int relu, const T* x,
/// const A* mean, const A* invstd, const T* y, const T* dy, A* part)`: block b sums (Σg, Σg·x̂) of
/// channel b / splits over its share of the channel's `items` (= N·hw/V) items into
/// `part[2·b..]`; g = dy, or 0 where `relu` and y ≤ 0.
#[allow(clippy::too_many_arguments)]
pub fn bwd_reduce<P>(
    dtype: DType,
    vs: &str,
    c: usize,
    hw: usize,
    items: usize,
    splits: usize,
    relu: bool,
    b: BwdReduceBufs<P>,
) -> KernelCall<P> {
    KernelCall::new(
        "batch_norm",
        format!("bn_bwd_reduce_{}_{vs}", suffix(dtype)),
    )
    .i64(c)
    .i64(hw)
    .i64(items)
    .i64(splits)
    .i32(relu as i32)
    .ptr(b.x)
    .ptr(b.mean)
    .ptr(b.invstd)
    .ptr(b.y)
    .ptr(b.dy)
    .ptr(b.part)
}

/// `bn_bwd_reduce_rows_<T>(i64 c, i64 rows, i64 splits, int relu, const T* x, const A* mean,
/// const A* invstd, const T* y, const T* dy, A* part)`: x, y, dy are [rows, c] (hw = 1); block b
/// sums (Σg, Σg·x̂) of channels [t·32, t·32 + 32) ∩ [0, c), t = b / splits, over its share of the
/// rows, s = b mod splits, into `part[2·(ch·splits + s)..]`, the layout of [`bwd_reduce`]; g = dy,
/// or 0 where `relu` and y ≤ 0. Grid: [`rows_launch`].
pub fn bwd_reduce_rows<P>(
    dtype: DType,
    c: usize,
    rows: usize,
    splits: usize,
    relu: bool,
    b: BwdReduceBufs<P>,
) -> KernelCall<P> {
    KernelCall::new(
        "batch_norm",
        format!("bn_bwd_reduce_rows_{}", suffix(dtype)),
    )
    .i64(c)
    .i64(rows)
    .i64(splits)
    .i32(relu as i32)
    .ptr(b.x)
    .ptr(b.mean)
    .ptr(b.invstd)
    .ptr(b.y)
    .ptr(b.dy)
    .ptr(b.part)
}

/// The buffers of `bn_bwd_finalize_*`, in signature order: γ and the saved statistics (c A each),
/// the partials (2·c·splits A), dγ and dβ (c A each) and the apply's coefficients (5·c A: mean,
/// invstd, γ·invstd, Σg/M, Σg·x̂/M per channel).
pub struct BwdFinalizeBufs<P> {
    pub gamma: P,
    pub mean: P,
    pub invstd: P,
    pub part: P,
    pub dgamma: P,
    pub dbeta: P,
    pub coef: P,
}

/// `bn_bwd_finalize_<A>(i64 c, i64 splits, double m, const A* gamma, const A* mean,
/// const A* invstd, const A* part, A* dgamma, A* dbeta, A* coef)`: one thread per channel merges
/// its `splits` partials; `m` = N·hw items per channel. `dtype` is the big tensors' T; the kernel is
/// A's, as for [`fwd_finalize`].
pub fn bwd_finalize<P>(
    dtype: DType,
    c: usize,
    splits: usize,
    m: usize,
    b: BwdFinalizeBufs<P>,
) -> KernelCall<P> {
    KernelCall::new(
        "batch_norm",
        format!("bn_bwd_finalize_{}", suffix(acc_dtype(dtype))),
    )
    .i64(c)
    .i64(splits)
    .f64(m as f64)
    .ptr(b.gamma)
    .ptr(b.mean)
    .ptr(b.invstd)
    .ptr(b.part)
    .ptr(b.dgamma)
    .ptr(b.dbeta)
    .ptr(b.coef)
}

/// The buffers of `bn_bwd_apply_*` and `bn_bwd_apply_rows_*`, in signature order: x, y, dy (N·c·hw T), the coefficients
/// (5·c A), dx and dres (N·c·hw TO; dres is written only when asked for, but must be a valid
/// pointer all the same).
pub struct BwdApplyBufs<P> {
    pub x: P,
    pub y: P,
    pub dy: P,
    pub coef: P,
    pub dx: P,
    pub dres: P,
}

/// `bn_bwd_apply_<T>_<TO>_<v|s>(i64 items, i64 c, i64 hw, int training, int relu, int want_dres,
/// const T* x, const T* y, const T* dy, const A* coef, TO* dx, TO* dres)`: dx (and dres = g when
/// `want_dres`) over `items` (= N·c·hw/V) items; TO = `out_dtype` ([`big_out_dtype`]). x is read
/// only in training, y only with `relu`.
#[allow(clippy::too_many_arguments)]
pub fn bwd_apply<P>(
    dtype: DType,
    out_dtype: DType,
    vs: &str,
    items: usize,
    c: usize,
    hw: usize,
    training: bool,
    relu: bool,
    want_dres: bool,
    b: BwdApplyBufs<P>,
) -> KernelCall<P> {
    KernelCall::new(
        "batch_norm",
        format!("bn_bwd_apply_{}_{}_{vs}", suffix(dtype), suffix(out_dtype)),
    )
    .i64(items)
    .i64(c)
    .i64(hw)
    .i32(training as i32)
    .i32(relu as i32)
    .i32(want_dres as i32)
    .ptr(b.x)
    .ptr(b.y)
    .ptr(b.dy)
    .ptr(b.coef)
    .ptr(b.dx)
    .ptr(b.dres)
}

/// `bn_bwd_apply_rows_<T>_<TO>(i64 items, i64 c, int training, int relu, int want_dres,
/// const T* x, const T* y, const T* dy, const A* coef, TO* dx, TO* dres)`: x, y, dy, dx and dres
/// are [rows, c] (hw = 1); item j < `items` (= rows·c/V, V = [`vec_width`] of `dtype`, which must
/// divide c) is elements [j·V, j·V + V), channels (j·V) mod c + i (i < V) of one row, each with its
/// own channel's 5 coefficients; dx (and dres = g when `want_dres`) as [`bwd_apply`]. Every big
/// buffer must be 16-byte aligned (the pick of [`ApplyPlan`]). x is read only in training, y only
/// with `relu`.
#[allow(clippy::too_many_arguments)]
pub fn bwd_apply_rows<P>(
    dtype: DType,
    out_dtype: DType,
    items: usize,
    c: usize,
    training: bool,
    relu: bool,
    want_dres: bool,
    b: BwdApplyBufs<P>,
) -> KernelCall<P> {
    KernelCall::new(
        "batch_norm",
        format!("bn_bwd_apply_rows_{}_{}", suffix(dtype), suffix(out_dtype)),
    )
    .i64(items)
    .i64(c)
    .i32(training as i32)
    .i32(relu as i32)
    .i32(want_dres as i32)
    .ptr(b.x)
    .ptr(b.y)
    .ptr(b.dy)
    .ptr(b.coef)
    .ptr(b.dx)
    .ptr(b.dres)
}
