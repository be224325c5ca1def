//! Ops: each file holds one family of ops — the `Tensor` method a user calls, its kernel struct with
//! the CPU implementation (`CpuKernel`), and its backward rule right beside the forward (passed to
//! `Tensor::track`). CUDA launchers for the same kernel structs live in `src/backend/cuda/` when the
//! `cuda` feature is on, named after the op, and the `.cu` sources in `cuda/<op>.cu`.

pub mod adain;
pub mod batch_norm;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod layout;
pub mod loss;
pub mod matmul;
pub mod mixup;
pub mod pool;
pub mod reduce;
pub mod resize;
pub(crate) mod simd;
pub mod softmax;

pub use conv::{Conv2dParams, ConvTranspose2dParams};
pub use elementwise::{BinaryOp, UnaryOp};

use crate::backend::{run_kernel, Kernel};
use crate::tensor::{MemoryFormat, Tensor};
use crate::{DType, Result, Shape};

/// Runs `kernel` on `inputs` and wraps each output `(shape, dtype)` as a tensor with no history.
/// Inputs in another memory format are made contiguous first.
pub(crate) fn apply<K: Kernel>(
    kernel: &K,
    inputs: &[&Tensor],
    outs: &[(Shape, DType)],
) -> Result<Vec<Tensor>> {
    apply_in(MemoryFormat::Contiguous, kernel, inputs, outs)
}

/// `apply` for kernels that compute in `format`: every 4-d input is converted to it first (a no-op
/// when it already is), and every 4-d output is tagged with it. Tensors of other ranks have one
/// layout in both formats and pass as they are.
pub(crate) fn apply_in<K: Kernel>(
    format: MemoryFormat,
    kernel: &K,
    inputs: &[&Tensor],
    outs: &[(Shape, DType)],
) -> Result<Vec<Tensor>> {
    let converted: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            // Only 4-d tensors can be channels-last (`Tensor::from_storage` checks).
            if t.format() == format || t.rank() != 4 {
                Ok((*t).clone())
            } else {
                t.to_format(format)
            }
        })
        .collect::<Result<_>>()?;
    let guards: Vec<_> = converted.iter().map(|t| t.storage()).collect();
    let storages: Vec<&crate::backend::Storage> = guards.iter().map(|g| &**g).collect();
    let dtypes: Vec<DType> = outs.iter().map(|(_, d)| *d).collect();
    let results = run_kernel(kernel, &storages, &dtypes)?;
    drop(guards);
    results
        .into_iter()
        .zip(outs)
        .map(|(s, (shape, _))| {
            let f = if shape.rank() == 4 {
                format
            } else {
                MemoryFormat::Contiguous
            };
            Tensor::from_storage(s, shape.clone(), f)
        })
        .collect()
}

/// `apply_in` for single-output kernels.
pub(crate) fn apply1_in<K: Kernel>(
    format: MemoryFormat,
    kernel: &K,
    inputs: &[&Tensor],
    shape: Shape,
    dtype: DType,
) -> Result<Tensor> {
    Ok(apply_in(format, kernel, inputs, &[(shape, dtype)])?
        .pop()
        .expect("one output"))
}

/// `apply` for single-output kernels.
pub(crate) fn apply1<K: Kernel>(
    kernel: &K,
    inputs: &[&Tensor],
    shape: Shape,
    dtype: DType,
) -> Result<Tensor> {
    Ok(apply(kernel, inputs, &[(shape, dtype)])?
        .pop()
        .expect("one output"))
}

/// Splits `0..n` work into chunks for rayon: at most a few per thread, none smaller than `min`.
pub(crate) fn chunk_len(n: usize, min: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    (n.div_ceil(threads * 4)).max(min).max(1)
}

/// Checks that two tensors share dtype and device (ops that mix dtypes say so explicitly).
pub(crate) fn same_dtype_device(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.device() != b.device() {
        return Err(crate::Error::DeviceMismatch {
            op,
            a: a.device().to_string(),
            b: b.device().to_string(),
        });
    }
    if a.dtype() != b.dtype() {
        return Err(crate::Error::DType {
            op,
            msg: format!(
                "{} and {} inputs; cast one with to_dtype",
                a.dtype(),
                b.dtype()
            ),
        });
    }
    Ok(())
}
