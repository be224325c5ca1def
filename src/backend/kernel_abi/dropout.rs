//! The call of dropout's kernel in cuda/dropout.cu, `mask_scale_*` (kernel name and argument list;
//! see call.rs): y = x · mask · scale elementwise, the mask drawn on the host.
//!
//! Invariants: x, mask and y hold the same n elements, all in the one dtype that picks the kernel.

use super::call::KernelCall;
use super::suffix;
use crate::DType;

/// `mask_scale_<T>(i64 n, double scale, const T* x, const T* m, T* y)`: y = (x·m)·scale over n
/// elements (scale rounded to the compute type first).
pub fn mask_scale<P>(dtype: DType, n: usize, scale: f64, x: P, m: P, y: P) -> KernelCall<P> {
    KernelCall::new("dropout", format!("mask_scale_{}", suffix(dtype)))
        .i64(n)
        .f64(scale)
        .ptr(x)
        .ptr(m)
        .ptr(y)
}
