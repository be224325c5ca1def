//! The CUDA half of the backend seam in a build *without* the `cuda` feature. `CudaStorage` has no
//! values, so every CUDA code path type-checks but cannot be reached; asking for a CUDA device returns
//! `Error::CudaUnavailable` saying how to get a CUDA build.

use super::{CpuStorage, Device};
use crate::{DType, Error, Result};

/// No CUDA storage can exist in this build.
pub enum CudaStorage {}

/// In a build without CUDA every kernel trivially "implements" the CUDA half.
pub trait CudaKernel {}
impl<T: ?Sized> CudaKernel for T {}

const HOW: &str = "this binary was built without the `cuda` feature; rebuild with `cargo build --release --features cuda` \
                   (needs nvcc: run scripts/setup.sh)";

/// Elements widened f16 → f32 by CUDA kernel calls on this thread, per kernel (none without CUDA).
pub fn take_widened_elements() -> std::collections::BTreeMap<&'static str, u64> {
    std::collections::BTreeMap::new()
}

pub fn ensure_device(_ordinal: usize) -> Result<()> {
    Err(Error::CudaUnavailable(HOW.to_string()))
}

pub fn synchronize(_ordinal: usize) -> Result<()> {
    Err(Error::CudaUnavailable(HOW.to_string()))
}

pub fn device_report(_ordinal: usize) -> Result<super::CudaDeviceReport> {
    Err(Error::CudaUnavailable(HOW.to_string()))
}

pub fn reset_peak_memory(_ordinal: usize) -> Result<()> {
    Err(Error::CudaUnavailable(HOW.to_string()))
}

/// Unreachable in this build (no tensor can live on a CUDA device); answers like `ensure_device`.
pub fn multi_tensor_sgd_step(
    _ordinal: usize,
    _slots: &[crate::optim::sgd::MultiTensorSlot<'_>],
    _hp: &crate::optim::sgd::MultiTensorHyper,
) -> Result<bool> {
    Err(Error::CudaUnavailable(HOW.to_string()))
}

impl CudaStorage {
    pub fn device(&self) -> Device {
        match *self {}
    }
    pub fn dtype(&self) -> DType {
        match *self {}
    }
    pub fn len(&self) -> usize {
        match *self {}
    }
    pub fn is_empty(&self) -> bool {
        match *self {}
    }
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        match *self {}
    }
    pub fn try_clone(&self) -> Result<CudaStorage> {
        match *self {}
    }
    pub fn from_cpu(_s: &CpuStorage, _ordinal: usize) -> Result<CudaStorage> {
        Err(Error::CudaUnavailable(HOW.to_string()))
    }
    pub fn from_cpu_input(_s: &CpuStorage, _ordinal: usize) -> Result<CudaStorage> {
        Err(Error::CudaUnavailable(HOW.to_string()))
    }
    pub fn zeros_on(_dtype: DType, _len: usize, _ordinal: usize) -> Result<CudaStorage> {
        Err(Error::CudaUnavailable(HOW.to_string()))
    }
}

pub fn run<K: super::CpuKernel>(
    _kernel: &K,
    inputs: &[&CudaStorage],
    _out: &[DType],
) -> Result<Vec<CudaStorage>> {
    match *inputs[0] {}
}
