//! The calls of the softmax kernels (cuda/softmax.cu): `Tensor::softmax` / `log_softmax` over the
//! middle dim of `[outer, len, inner]` and their backward. The row group comes from
//! `RowGroup::for_softmax` (rows.rs); the tests also run the groups it did not pick.

use super::call::KernelCall;
use super::rows::RowGroup;
use super::suffix;
use crate::DType;

/// `softmax_{warp,block,lane}_<T>(i64 rows, i64 len, i64 inner, int log, const T* x, T* y)`:
/// `rows = outer·inner` rows; x and y hold `outer·len·inner` elements.
#[allow(clippy::too_many_arguments)]
pub fn forward<P>(
    grp: RowGroup,
    dtype: DType,
    rows: usize,
    len: usize,
    inner: usize,
    log: bool,
    x: P,
    y: P,
) -> KernelCall<P> {
    KernelCall::new(
        "softmax",
        format!("softmax_{}_{}", grp.name(), suffix(dtype)),
    )
    .i64(rows)
    .i64(len)
    .i64(inner)
    .i32(log as i32)
    .ptr(x)
    .ptr(y)
}

/// `softmax_bwd_{warp,block,lane}_<T>(i64 rows, i64 len, i64 inner, int log, const T* y,
/// const T* dy, T* dx)`: the gradient of Σ y·dy through the forward; buffers as in [`forward`].
#[allow(clippy::too_many_arguments)]
pub fn backward<P>(
    grp: RowGroup,
    dtype: DType,
    rows: usize,
    len: usize,
    inner: usize,
    log: bool,
    y: P,
    dy: P,
    dx: P,
) -> KernelCall<P> {
    KernelCall::new(
        "softmax",
        format!("softmax_bwd_{}_{}", grp.name(), suffix(dtype)),
    )
    .i64(rows)
    .i64(len)
    .i64(inner)
    .i32(log as i32)
    .ptr(y)
    .ptr(dy)
    .ptr(dx)
}
