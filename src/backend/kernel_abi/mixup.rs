//! The call of mixup's kernel in cuda/mixup.cu, `mixup_*` (kernel name and argument list; see
//! call.rs): images and soft targets blended with a permutation of their rows, one launch.
//!
//! Invariants: x/xo hold n·per elements and t/to n·k, all in the one dtype that picks the kernel;
//! perm holds n i64 indices forming a permutation of 0..n.

use super::call::KernelCall;
use super::suffix;
use crate::DType;

/// `mixup_<T>(i64 n, i64 per, i64 k, double lambda, const i64* perm, const T* x, const T* t, T* xo,
/// T* to)`: xo = λ·x + (1 − λ)·x[perm] over rows of `per`, to likewise over rows of `k`; one
/// grid-stride loop over the n·(per + k) outputs.
#[allow(clippy::too_many_arguments)]
pub fn mixup<P>(
    dtype: DType,
    (n, per, k): (usize, usize, usize),
    lambda: f64,
    perm: P,
    x: P,
    t: P,
    xo: P,
    to: P,
) -> KernelCall<P> {
    KernelCall::new("mixup", format!("mixup_{}", suffix(dtype)))
        .i64(n)
        .i64(per)
        .i64(k)
        .f64(lambda)
        .ptr(perm)
        .ptr(x)
        .ptr(t)
        .ptr(xo)
        .ptr(to)
}
