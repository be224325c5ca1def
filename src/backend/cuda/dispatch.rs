//! `run`: how every CUDA kernel is called (shared by the CUDA backend and the simulated device of
//! `cuda-sim`, which compiles this same file). It normalises dtypes like the CPU runner (f64 may not
//! be mixed with other dtypes; f16 inputs mixed with f32 are widened to f32 first, unless the kernel
//! says `TAKES_MIXED_F16`), calls the kernel's launcher, checks the number of outputs, and casts each
//! output to the dtype the op asked for.
//!
//! Invariants: a launcher sees inputs on one device, of one dtype (f16 and f32 together only when it
//! takes them); `run` returns exactly one storage per requested dtype, each in that dtype.

use super::{layout, CudaKernel, CudaStorage};
use crate::{DType, Error, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    /// Elements `run` widened f16 → f32 on this thread, per kernel name.
    static WIDENED: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Elements of f16 inputs that `run` widened to f32 on this thread since the last call, per kernel
/// name (and resets the count). Mixed f16/f32 inputs cost a full f32 copy of each f16 input; the
/// kernels of FP16 training take their mixed inputs natively, and tests assert that a training step
/// widens nothing (`tests/cuda_vs_cpu_train.rs`).
pub fn take_widened_elements() -> BTreeMap<&'static str, u64> {
    WIDENED.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

/// Runs `kernel` on CUDA inputs (see the module docs for the dtype rules).
pub fn run<K: CudaKernel>(
    kernel: &K,
    inputs: &[&CudaStorage],
    out_dtypes: &[DType],
) -> Result<Vec<CudaStorage>> {
    let Some(first) = inputs.first() else {
        return Err(Error::bad(K::NAME, "kernel called with no inputs"));
    };
    let any_f64 = inputs.iter().any(|s| s.dtype() == DType::F64);
    let uniform = inputs.iter().all(|s| s.dtype() == first.dtype());
    let widened: Vec<CudaStorage>;
    // Handed over as they are: one dtype, or f16 with f32 to a kernel that takes both.
    let inputs: Vec<&CudaStorage> = if uniform || (K::TAKES_MIXED_F16 && !any_f64) {
        inputs.to_vec()
    } else if any_f64 {
        let other = inputs
            .iter()
            .find(|s| s.dtype() != DType::F64)
            .expect("mixed");
        return Err(Error::DType {
            op: K::NAME,
            msg: format!(
                "an f64 computation got an {} input; cast all inputs to f64",
                other.dtype()
            ),
        });
    } else {
        widened = inputs
            .iter()
            .map(|s| widen(K::NAME, s))
            .collect::<Result<_>>()?;
        widened.iter().collect()
    };
    let outs = kernel.launch(&inputs, out_dtypes)?;
    if outs.len() != out_dtypes.len() {
        return Err(Error::bad(
            K::NAME,
            format!(
                "CUDA kernel returned {} outputs, op expected {}",
                outs.len(),
                out_dtypes.len()
            ),
        ));
    }
    outs.into_iter()
        .zip(out_dtypes)
        .map(|(s, &dt)| {
            if s.dtype() == dt {
                Ok(s)
            } else {
                layout::cast(&s, dt)
            }
        })
        .collect()
}

/// `s` in f32 (a copy), counted in [`take_widened_elements`] under `kernel` when it was f16.
pub(super) fn widen(kernel: &'static str, s: &CudaStorage) -> Result<CudaStorage> {
    if s.dtype() == DType::F16 {
        WIDENED.with(|w| *w.borrow_mut().entry(kernel).or_default() += s.len() as u64);
    }
    layout::cast(s, DType::F32)
}
