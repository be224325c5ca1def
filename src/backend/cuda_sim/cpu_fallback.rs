//! The kernels the simulated device runs on the CPU: those whose CUDA launcher is a vendor-library call
//! and nothing else (the cuBLAS GEMM), which has no emulated twin. (The convolution launchers do more
//! than call cuDNN, so they run, over a CPU stand-in for the cuDNN call: `conv.rs`.) Each gets the default
//! `CudaKernel::launch`: inputs are copied to host storage, the CPU kernel runs, the outputs are copied
//! back. Every other kernel runs its real launcher (src/backend/cuda/) in the emulator.
//!
//! Invariant: this list and the launcher files compiled by `cuda_sim/mod.rs` together cover every
//! `CpuKernel` (a build with `cuda-sim` fails otherwise, as `Kernel` needs both halves).

use super::{CudaKernel, CudaStorage};
use crate::backend::cpu::{self, CpuKernel, CpuStorage};
use crate::ops::matmul::Matmul;
use crate::{DType, Result};

impl CudaKernel for Matmul {}

/// `kernel` on host copies of `inputs`, its outputs copied back to the simulated device.
pub(super) fn run_on_cpu<K: CpuKernel>(
    kernel: &K,
    inputs: &[&CudaStorage],
    out_dtypes: &[DType],
) -> Result<Vec<CudaStorage>> {
    let host: Vec<CpuStorage> = inputs.iter().map(|s| s.to_cpu()).collect::<Result<_>>()?;
    let refs: Vec<&CpuStorage> = host.iter().collect();
    cpu::run(kernel, &refs, out_dtypes)?
        .iter()
        .map(|s| CudaStorage::from_cpu(s, 0))
        .collect()
}
