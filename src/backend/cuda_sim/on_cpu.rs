//! `run_on_cpu`: a kernel's CPU implementation on host copies of simulated-device inputs, its outputs
//! copied back. Used only when `ENGINE_SIM_ON_CPU` names the kernel (bisecting a mismatch between the
//! simulated device and the CPU down to one launcher); every kernel otherwise runs its real launcher.

use super::CudaStorage;
use crate::backend::cpu::{self, CpuKernel, CpuStorage};
use crate::{DType, Result};

/// `kernel` on host copies of `inputs`, its outputs copied back to the simulated device.
pub(super) fn run_on_cpu<K: CpuKernel>(
    kernel: &K,
    inputs: &[&CudaStorage],
    out_dtypes: &[DType],
) -> Result<Vec<CudaStorage>> {
    let host: Vec<CpuStorage> = inputs.iter().map(|s| s.to_cpu_uncounted()).collect();
    let refs: Vec<&CpuStorage> = host.iter().collect();
    cpu::run(kernel, &refs, out_dtypes)?
        .iter()
        .map(|s| CudaStorage::from_cpu(s, 0))
        .collect()
}
