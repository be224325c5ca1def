//! The calls of the kernels of cuda/adam.cu (kernel names and argument lists; see call.rs):
//! `adam_step_*`, one Adam step (`AdamStep`) over one parameter tensor.
//!
//! Invariants: the step scalars come from `AdamStep` by field name, in the kernel's order, so no two
//! of its eight doubles can trade places at a call site; outputs are separate from the inputs.

use super::call::KernelCall;
use super::suffix;
use crate::optim::adam::AdamStep;
use crate::DType;

/// `adam_step_<T>(i64 n, double lr, double b1, double b2, double eps, double wd, double inv,
/// double bias1, double bias2, const T* p, const T* g, const T* m, const T* v, T* p_out, T* m_out,
/// T* v_out)`: one Adam step of `k` over n elements; all seven buffers hold n elements of `dtype`.
#[allow(clippy::too_many_arguments)]
pub fn adam_step<P>(
    dtype: DType,
    n: usize,
    k: &AdamStep,
    p: P,
    g: P,
    m: P,
    v: P,
    p_out: P,
    m_out: P,
    v_out: P,
) -> KernelCall<P> {
    KernelCall::new("adam", format!("adam_step_{}", suffix(dtype)))
        .i64(n)
        .f64(k.lr)
        .f64(k.beta1)
        .f64(k.beta2)
        .f64(k.eps)
        .f64(k.weight_decay)
        .f64(k.inv_scale)
        .f64(k.bias1)
        .f64(k.bias2)
        .ptr(p)
        .ptr(g)
        .ptr(m)
        .ptr(v)
        .ptr(p_out)
        .ptr(m_out)
        .ptr(v_out)
}
