//! The backend seam. A tensor's bytes live in a `Storage`: either `Storage::Cpu` or `Storage::Cuda`.
//! Every op is a *kernel* value (a struct holding the op's parameters) that implements `CpuKernel`
//! (generic over the compute type) and, in builds with the `cuda` feature, `CudaKernel`. `run_kernel`
//! looks at the inputs' device and calls the matching implementation, so models and training code never
//! know where they run. Without the `cuda` feature, `CudaStorage` is an empty enum: no CUDA tensor can
//! exist, and asking for the CUDA device returns `Error::CudaUnavailable`.

pub mod cpu;
pub mod cpu_profile;
#[cfg(not(any(feature = "cuda", feature = "cuda-sim")))]
#[path = "cuda_stub.rs"]
pub mod cuda;
#[cfg(feature = "cuda")]
pub mod cuda;
// The simulated device (tests without a GPU): the real launchers over the emulator.
#[cfg(all(feature = "cuda-sim", not(feature = "cuda")))]
#[path = "cuda_sim/mod.rs"]
pub mod cuda;
#[cfg(feature = "cuda-emu")]
pub mod cuda_emu;
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub mod kernel_abi;

pub use cpu::{CpuKernel, CpuStorage};
pub use cuda::{CudaKernel, CudaStorage};

/// What a CUDA device says about itself and its memory (for benchmarks: `engine bench-step`).
/// Byte counts come from the driver: `cuMemGetInfo` and the device's default stream-ordered memory
/// pool, which serves every allocation of this backend.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CudaDeviceReport {
    pub name: String,
    /// e.g. `sm_90`.
    pub compute_capability: String,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Bytes of live allocations in the pool now.
    pub pool_used_bytes: u64,
    /// High-water mark of `pool_used_bytes` since the last `cuda_reset_peak_memory` (the analogue of
    /// PyTorch's `max_memory_allocated`).
    pub pool_used_high_bytes: u64,
    /// High-water mark of the memory the pool mapped from the driver.
    pub pool_reserved_high_bytes: u64,
}

thread_local! {
    static DEVICE_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one host-blocking read of CUDA device memory made by this thread.
#[cfg_attr(not(any(feature = "cuda", feature = "cuda-sim")), allow(dead_code))]
pub(crate) fn count_device_read() {
    DEVICE_READS.with(|c| c.set(c.get() + 1));
}

/// Host-blocking reads of CUDA device memory (`to_cpu`, `to_scalar`, the optimiser's finiteness
/// flag) this thread made since its last call. Each waits for the device's queue to drain, so the
/// GPU idles until the host queues more: a training step should make two (the loss and the flag).
pub fn take_device_reads() -> u64 {
    DEVICE_READS.with(|c| c.replace(0))
}

/// Waits until all work queued on CUDA device `ordinal` has finished (and surfaces its errors).
pub fn cuda_synchronize(ordinal: usize) -> Result<()> {
    cuda::synchronize(ordinal)
}

/// Name, capability and memory figures of CUDA device `ordinal`.
pub fn cuda_device_report(ordinal: usize) -> Result<CudaDeviceReport> {
    cuda::device_report(ordinal)
}

/// Resets the pool's high-water marks of CUDA device `ordinal` to the current usage.
pub fn cuda_reset_peak_memory(ordinal: usize) -> Result<()> {
    cuda::reset_peak_memory(ordinal)
}

use crate::{DType, Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// The CUDA device `ordinal`, or a typed error when the build or the machine has none.
    pub fn cuda(ordinal: usize) -> Result<Device> {
        cuda::ensure_device(ordinal)?;
        Ok(Device::Cuda(ordinal))
    }
    /// CUDA device 0 when one is usable, else the CPU.
    pub fn cuda_if_available() -> Device {
        Device::cuda(0).unwrap_or(Device::Cpu)
    }
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

pub enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaStorage),
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(s) => s.device(),
        }
    }
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(s) => s.dtype(),
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Cuda(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies to the host.
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        match self {
            Storage::Cpu(s) => Ok(s.clone()),
            Storage::Cuda(s) => s.to_cpu(),
        }
    }
    /// `len` zeros of `dtype` on `device` (set on a CUDA device, nothing uploaded).
    pub fn zeros(dtype: DType, len: usize, device: Device) -> Result<Storage> {
        Ok(match device {
            Device::Cpu => Storage::Cpu(CpuStorage::F64(vec![0.0; len]).to_dtype(dtype)),
            Device::Cuda(i) => Storage::Cuda(CudaStorage::zeros_on(dtype, len, i)?),
        })
    }
    /// `to_device` for a step's input (a batch, its targets): from the host to a CUDA device it
    /// transfers on the copy stream, overlapping the kernels already queued
    /// (`CudaStorage::from_cpu_input`); otherwise as `to_device`.
    pub fn to_device_input(&self, device: Device) -> Result<Storage> {
        match (self, device) {
            (Storage::Cpu(s), Device::Cuda(i)) => {
                Ok(Storage::Cuda(CudaStorage::from_cpu_input(s, i)?))
            }
            _ => self.to_device(device),
        }
    }
    pub fn to_device(&self, device: Device) -> Result<Storage> {
        match (self, device) {
            (Storage::Cpu(s), Device::Cpu) => Ok(Storage::Cpu(s.clone())),
            (Storage::Cpu(s), Device::Cuda(i)) => Ok(Storage::Cuda(CudaStorage::from_cpu(s, i)?)),
            (Storage::Cuda(s), Device::Cpu) => Ok(Storage::Cpu(s.to_cpu()?)),
            (Storage::Cuda(s), Device::Cuda(i)) => {
                if s.device() == Device::Cuda(i) {
                    Ok(Storage::Cuda(s.try_clone()?))
                } else {
                    Ok(Storage::Cuda(CudaStorage::from_cpu(&s.to_cpu()?, i)?))
                }
            }
        }
    }
}

/// Every op's kernel implements both halves of the seam.
pub trait Kernel: CpuKernel + CudaKernel {}
impl<K: CpuKernel + CudaKernel> Kernel for K {}

/// Runs `kernel` on `inputs` (all on one device); output `i` gets dtype `out_dtypes[i]` (on the CPU, a
/// computation with any f64 input is done and returned in f64).
pub fn run_kernel<K: Kernel>(
    kernel: &K,
    inputs: &[&Storage],
    out_dtypes: &[DType],
) -> Result<Vec<Storage>> {
    let Some(first) = inputs.first() else {
        return Err(Error::bad(K::NAME, "kernel called with no inputs"));
    };
    let device = first.device();
    for s in inputs {
        if s.device() != device {
            return Err(Error::DeviceMismatch {
                op: K::NAME,
                a: device.to_string(),
                b: s.device().to_string(),
            });
        }
    }
    match device {
        Device::Cpu => {
            let cpu: Vec<&CpuStorage> = inputs
                .iter()
                .map(|s| match s {
                    Storage::Cpu(c) => c,
                    Storage::Cuda(_) => unreachable!("device checked above"),
                })
                .collect();
            Ok(cpu::run(kernel, &cpu, out_dtypes)?
                .into_iter()
                .map(Storage::Cpu)
                .collect())
        }
        Device::Cuda(_) => {
            let gpu: Vec<&CudaStorage> = inputs
                .iter()
                .map(|s| match s {
                    Storage::Cuda(c) => c,
                    Storage::Cpu(_) => unreachable!("device checked above"),
                })
                .collect();
            Ok(cuda::run(kernel, &gpu, out_dtypes)?
                .into_iter()
                .map(Storage::Cuda)
                .collect())
        }
    }
}
