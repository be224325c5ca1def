//! `run`: how every CUDA kernel is called (shared by the CUDA backend and the simulated device of
//! `cuda-sim`, which compiles this same file). It normalises dtypes like the CPU runner (f64 may not
//! be mixed with other dtypes; f16 inputs mixed with f32 are widened to f32 first), calls the kernel's
//! launcher, checks the number of outputs, and casts each output to the dtype the op asked for.
//!
//! Invariants: a launcher sees inputs of one dtype on one device; `run` returns exactly one storage
//! per requested dtype, each in that dtype.

use super::{layout, CudaKernel, CudaStorage};
use crate::{DType, Error, Result};

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
    let inputs: Vec<&CudaStorage> = if uniform {
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
            .map(|s| layout::cast(s, DType::F32))
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
