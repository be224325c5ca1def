//! Launch plans and calls of cuda/loss.cu: the pair-loss codes and chunking, `mean_finish`'s single
//! block, and each kernel's name and argument list (see call.rs). The row kernels' group
//! (`RowGroup::for_contiguous(k)`, rows.rs) is the launcher's pick; the tests also run the other.
//!
//! Invariants: `pair_code` ↔ the `switch` of `pair_partial_*`/`pair_bwd_*`; the number of pair-loss
//! chunks depends on the element count only (never on the GPU), so a loss sums in the same order on
//! every device and is bit-for-bit reproducible; the f64 scalars the kernels take (1/T, T/N, N) are
//! computed here from the op's parameters, once for the launcher and the tests.

use super::call::KernelCall;
use super::rows::RowGroup;
use super::{suffix, Launch1d};
use crate::ops::loss::PairLossKind;
use crate::DType;

/// Elements per chunk of a pair-loss partial sum (`PAIR_CHUNK` in cuda/loss.cu).
pub const PAIR_CHUNK: usize = 8192;
/// The most chunks (partials) of a pair loss.
pub const PAIR_MAX_PARTS: usize = 1024;

/// The loss code of `pair_partial_*` and `pair_bwd_*`.
pub fn pair_code(kind: PairLossKind) -> i32 {
    match kind {
        PairLossKind::Mse => 0,
        PairLossKind::L1 => 1,
        PairLossKind::BceWithLogits => 2,
    }
}

/// Partial sums of a pair loss over `n` elements: one block each (0 for an empty input).
pub fn pair_parts(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.div_ceil(PAIR_CHUNK).clamp(1, PAIR_MAX_PARTS)
    }
}

/// `pair_partial_*`'s grid: exactly one block per partial (each writes `partial[blockIdx.x]`).
pub fn pair_partial_launch(parts: usize) -> Launch1d {
    Launch1d::exact(parts)
}

/// `mean_finish_*`'s grid: one block reduces every partial in a fixed order.
pub fn mean_finish_launch() -> Launch1d {
    Launch1d::one_block()
}

/// The name of row kernel `<stem>_{warp,block}_<T>`.
fn row_kernel(stem: &str, grp: RowGroup, dtype: DType) -> String {
    format!("{stem}_{}_{}", grp.name(), suffix(dtype))
}

/// `ce_soft_rows_{warp,block}_<T>(i64 n, i64 k, const T *x, const T *t, A *rows)`: the soft
/// cross-entropy of each of the n rows of k logits `x` against targets `t` into `rows[r]`
/// (A = `Acc<T>`); x and t hold n·k elements, rows n.
pub fn ce_soft_rows<P>(
    grp: RowGroup,
    dtype: DType,
    n: usize,
    k: usize,
    x: P,
    t: P,
    rows: P,
) -> KernelCall<P> {
    KernelCall::new("loss", row_kernel("ce_soft_rows", grp, dtype))
        .i64(n)
        .i64(k)
        .ptr(x)
        .ptr(t)
        .ptr(rows)
}

/// `ce_soft_bwd_{warp,block}_<T>(i64 n, i64 k, double nd, const T *x, const T *t, const T *dy,
/// T *dx)`: the gradient of `dy[0]` · (the batch mean of the row losses), `nd` = n; x, t and dx hold
/// n·k elements, dy one.
#[allow(clippy::too_many_arguments)]
pub fn ce_soft_bwd<P>(
    grp: RowGroup,
    dtype: DType,
    n: usize,
    k: usize,
    x: P,
    t: P,
    dy: P,
    dx: P,
) -> KernelCall<P> {
    KernelCall::new("loss", row_kernel("ce_soft_bwd", grp, dtype))
        .i64(n)
        .i64(k)
        .f64(n as f64)
        .ptr(x)
        .ptr(t)
        .ptr(dy)
        .ptr(dx)
}

/// `distill_rows_{warp,block}_<T>(i64 n, i64 k, double inv_t, const T *s, const T *t, A *rows)`:
/// each row's KL(teacher ‖ student) at `temperature` (`inv_t` = 1/temperature) into `rows[r]`
/// (A = `Acc<T>`); s and t hold n·k elements, rows n.
#[allow(clippy::too_many_arguments)]
pub fn distill_rows<P>(
    grp: RowGroup,
    dtype: DType,
    n: usize,
    k: usize,
    temperature: f64,
    s: P,
    t: P,
    rows: P,
) -> KernelCall<P> {
    KernelCall::new("loss", row_kernel("distill_rows", grp, dtype))
        .i64(n)
        .i64(k)
        .f64(1.0 / temperature)
        .ptr(s)
        .ptr(t)
        .ptr(rows)
}

/// `distill_bwd_{warp,block}_<T>(i64 n, i64 k, double inv_t, double t_over_n, const T *s,
/// const T *t, const T *dy, T *dx)`: the gradient of `dy[0]` · (the distillation loss) w.r.t. the
/// student, `inv_t` = 1/temperature, `t_over_n` = temperature/n; s, t and dx hold n·k elements, dy
/// one.
#[allow(clippy::too_many_arguments)]
pub fn distill_bwd<P>(
    grp: RowGroup,
    dtype: DType,
    n: usize,
    k: usize,
    temperature: f64,
    s: P,
    t: P,
    dy: P,
    dx: P,
) -> KernelCall<P> {
    KernelCall::new("loss", row_kernel("distill_bwd", grp, dtype))
        .i64(n)
        .i64(k)
        .f64(1.0 / temperature)
        .f64(temperature / n as f64)
        .ptr(s)
        .ptr(t)
        .ptr(dy)
        .ptr(dx)
}

/// `pair_partial_<T>(i64 n, int kind, const T *a, const T *b, A *parts)`: loss `kind` summed per
/// block into `parts[blockIdx.x]` (A = `Acc<T>`; launched on [`pair_partial_launch`]); a and b hold
/// n elements, parts one per block.
pub fn pair_partial<P>(
    kind: PairLossKind,
    dtype: DType,
    n: usize,
    a: P,
    b: P,
    parts: P,
) -> KernelCall<P> {
    KernelCall::new("loss", format!("pair_partial_{}", suffix(dtype)))
        .i64(n)
        .i32(pair_code(kind))
        .ptr(a)
        .ptr(b)
        .ptr(parts)
}

/// `pair_bwd_<T>(i64 n, int kind, double nd, const T *a, const T *b, const T *dy, T *da, T *db)`:
/// the gradients of `dy[0]` · (the mean of loss `kind`) w.r.t. both sides, `nd` = max(n, 1); a, b,
/// da and db hold n elements, dy one.
#[allow(clippy::too_many_arguments)]
pub fn pair_bwd<P>(
    kind: PairLossKind,
    dtype: DType,
    n: usize,
    a: P,
    b: P,
    dy: P,
    da: P,
    db: P,
) -> KernelCall<P> {
    KernelCall::new("loss", format!("pair_bwd_{}", suffix(dtype)))
        .i64(n)
        .i32(pair_code(kind))
        .f64(n.max(1) as f64)
        .ptr(a)
        .ptr(b)
        .ptr(dy)
        .ptr(da)
        .ptr(db)
}

/// `mean_finish_<T>(i64 count, const A *v, double div, double mul, T *out)`:
/// `out[0] = (Σ v[..count] / div) · mul` in T, summed in a fixed order by one block
/// ([`mean_finish_launch`]); v holds at least `count` values of A = `Acc<T>`, out one T.
pub fn mean_finish<P>(
    dtype: DType,
    count: usize,
    v: P,
    div: f64,
    mul: f64,
    out: P,
) -> KernelCall<P> {
    KernelCall::new("loss", format!("mean_finish_{}", suffix(dtype)))
        .i64(count)
        .ptr(v)
        .f64(div)
        .f64(mul)
        .ptr(out)
}
