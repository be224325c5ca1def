//! The simulated CUDA device (feature `cuda-sim`, builds without `cuda`): `backend::cuda` for machines
//! with no GPU, so that `Device::Cuda(0)` exists and every device-aware test (`cuda_vs_cpu*`, the
//! PyTorch fixtures, the models, the optimisers) runs the real CUDA launchers of `src/backend/cuda/`.
//!
//! How: this module compiles the launcher files of `src/backend/cuda/` themselves (`#[path]` below:
//! the same `CudaKernel` impls, buffer checks, allocations, launch plans, `kernel_abi` calls and
//! `dispatch::run`), against a stand-in for the cudarc half of `cuda/mod.rs`: device memory is host
//! memory, and `Gpu::launch` runs the call's kernel in the CUDA emulator (`cuda_emu`: the `.cu` files
//! compiled for the host, one fiber per GPU thread). cuDNN and cuBLAS have no emulated twin: the
//! convolution launchers run over a CPU stand-in for the cuDNN call (`conv.rs`), the matmul launcher
//! over a host reference of cuBLAS's column-major GEMM (`blas.rs`).
//!
//! Invariants:
//! - One device, ordinal 0, with [`SIM_SMS`] SMs (few, so emulated grids stay small and the
//!   launchers' grid caps are reached); other ordinals are `CudaUnavailable`.
//! - Fresh buffers are NaN-poisoned (0xFF bytes) like `ENGINE_POISON=1` on a GPU, and every buffer
//!   sits between guard zones; after each launch every live buffer's guards are checked, so a
//!   launcher that allocates too little (or a kernel that writes past a buffer) is an error naming the
//!   kernel, not silent corruption.
//! - What it cannot show: speed, the driver/cuDNN/cuBLAS, real concurrency.

#[path = "../cuda/adain.rs"]
mod adain;
#[path = "../cuda/adam.rs"]
mod adam;
#[path = "../cuda/batch_norm.rs"]
mod batch_norm;
mod blas;
mod conv;
#[path = "../cuda/dispatch.rs"]
mod dispatch;
#[path = "../cuda/dropout.rs"]
mod dropout;
#[path = "../cuda/elementwise.rs"]
mod elementwise;
#[path = "../cuda/layout.rs"]
mod layout;
#[path = "../cuda/loss.rs"]
mod loss;
#[path = "../cuda/matmul.rs"]
mod matmul;
#[path = "../cuda/mixup.rs"]
mod mixup;
mod on_cpu;
#[path = "../cuda/pending.rs"]
mod pending;
#[path = "../cuda/pool.rs"]
mod pool;
#[path = "../cuda/reduce.rs"]
mod reduce;
#[path = "../cuda/resize.rs"]
mod resize;
#[path = "../cuda/sgd.rs"]
mod sgd;
#[path = "../cuda/softmax.rs"]
mod softmax;

use super::{CpuKernel, CpuStorage, Device};
use crate::backend::cuda_emu::{self, Arg};
use crate::backend::kernel_abi::call::KernelCall;
use crate::backend::kernel_abi::Launch1d;
use crate::{DType, Error, Result};
use std::collections::BTreeMap;
use std::sync::Mutex;

pub use dispatch::take_widened_elements;
pub use sgd::multi_tensor_sgd_step;

/// SMs of the simulated GPU.
pub const SIM_SMS: usize = 4;
/// 16-byte words of guard zone on each side of a buffer.
const GUARD_WORDS: usize = 4;
/// The guard zones' byte pattern.
const GUARD_BYTE: u8 = 0xA5;

/// Kernels with a CUDA launcher override `launch`; the default says the op is not implemented on
/// CUDA, as in the CUDA backend (kernels listed in `cuda/pending.rs`, compiled here too).
pub trait CudaKernel: CpuKernel + Sized {
    /// True when the launcher takes f16 and f32 inputs together itself (batch norm: f16 activations
    /// with f32 parameters), so `run` hands them over without widening the f16 ones.
    const TAKES_MIXED_F16: bool = false;
    fn launch(&self, inputs: &[&CudaStorage], out_dtypes: &[DType]) -> Result<Vec<CudaStorage>> {
        let _ = (inputs, out_dtypes);
        Err(Error::NotImplemented {
            op: Self::NAME,
            device: "cuda".to_string(),
        })
    }
}

/// Simulated device memory: `len` elements of `dtype` in 16-byte-aligned host memory between guard
/// zones.
pub struct CudaStorage {
    words: Vec<u128>,
    dtype: DType,
    len: usize,
}

/// The simulated device's memory: `ENGINE_SIM_MEMORY_BYTES`, else 80 GiB (an A100's or H100's). An
/// allocation that would take the live buffers past it is `Error::OutOfMemory`, as on a GPU (no host
/// memory is touched for it).
fn capacity_bytes() -> u64 {
    static CAP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("ENGINE_SIM_MEMORY_BYTES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(80 << 30)
    })
}

/// The live buffers: their guard zones (address of the payload → payload bytes), checked after each
/// launch, and the memory accounting a CUDA pool would report. Entries are added at allocation and
/// removed on drop; `used` is always the sum of the entries' bytes, `high` its maximum since the last
/// `reset_peak_memory`.
struct Live {
    buffers: BTreeMap<usize, usize>,
    used: u64,
    high: u64,
}

static LIVE: Mutex<Live> = Mutex::new(Live {
    buffers: BTreeMap::new(),
    used: 0,
    high: 0,
});

fn live() -> std::sync::MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

impl Live {
    fn add(&mut self, addr: usize, bytes: usize) {
        self.buffers.insert(addr, bytes);
        self.used += bytes as u64;
        self.high = self.high.max(self.used);
    }
    fn remove(&mut self, addr: usize) {
        if let Some(bytes) = self.buffers.remove(&addr) {
            self.used -= bytes as u64;
        }
    }
}

impl CudaStorage {
    fn new(dtype: DType, len: usize, fill: u8) -> Result<CudaStorage> {
        let bytes = len
            .checked_mul(dtype.size_in_bytes())
            .ok_or_else(|| Error::Msg(format!("cuda-sim: {len} × {dtype} overflows")))?;
        let in_use = live().used;
        let total = capacity_bytes();
        if in_use.saturating_add(bytes as u64) > total {
            return Err(Error::OutOfMemory {
                device: "cuda:0 (simulated)".to_string(),
                requested: bytes as u64,
                in_use,
                free: total.saturating_sub(in_use),
                total,
            });
        }
        let payload_words = bytes.div_ceil(16).max(1);
        let mut words = vec![0u128; payload_words + 2 * GUARD_WORDS];
        let all = bytemuck::cast_slice_mut::<u128, u8>(&mut words);
        all.fill(GUARD_BYTE);
        all[GUARD_WORDS * 16..GUARD_WORDS * 16 + bytes].fill(fill);
        let s = CudaStorage { words, dtype, len };
        live().add(s.addr(), bytes);
        Ok(s)
    }
    fn addr(&self) -> usize {
        self.words[GUARD_WORDS..].as_ptr() as usize
    }
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u128, u8>(&self.words)
            [GUARD_WORDS * 16..GUARD_WORDS * 16 + self.num_bytes()]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.num_bytes();
        &mut bytemuck::cast_slice_mut::<u128, u8>(&mut self.words)
            [GUARD_WORDS * 16..GUARD_WORDS * 16 + n]
    }

    pub fn device(&self) -> Device {
        Device::Cuda(0)
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub(crate) fn ordinal(&self) -> usize {
        0
    }
    /// The buffer's "device" address, for a `kernel_abi` call that reads it.
    pub(crate) fn dptr(&self, _g: &Gpu) -> u64 {
        self.addr() as u64
    }
    /// The buffer's "device" address, for a `kernel_abi` call that writes it.
    pub(crate) fn dptr_mut(&mut self, _g: &Gpu) -> u64 {
        self.addr() as u64
    }
    pub(crate) fn num_bytes(&self) -> usize {
        self.len * self.dtype.size_in_bytes()
    }

    /// Copies to the host (a counted device read, as on a GPU: `backend::take_device_reads`).
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        crate::backend::count_device_read();
        Ok(self.to_cpu_uncounted())
    }

    /// `to_cpu` without counting a device read: for the CPU stand-ins of cuDNN and cuBLAS, which on
    /// a GPU read device memory on the device.
    pub(crate) fn to_cpu_uncounted(&self) -> CpuStorage {
        match self.dtype {
            DType::F16 => CpuStorage::F16(self.copy_out()),
            DType::F32 => CpuStorage::F32(self.copy_out()),
            DType::F64 => CpuStorage::F64(self.copy_out()),
        }
    }

    /// A counted device read into a vector (the launchers' small read-backs: the SGD flag).
    fn download<T: bytemuck::Pod>(&self) -> Result<Vec<T>> {
        crate::backend::count_device_read();
        Ok(self.copy_out())
    }

    fn copy_out<T: bytemuck::Pod>(&self) -> Vec<T> {
        let mut v = vec![T::zeroed(); self.len];
        bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(self.bytes());
        v
    }

    /// Replaces the contents with `s` (same dtype and length): how the CPU stand-ins for cuDNN and
    /// cuBLAS write their results.
    pub(crate) fn overwrite(&mut self, s: &CpuStorage) -> Result<()> {
        if s.dtype() != self.dtype || s.len() != self.len {
            return Err(Error::Msg(format!(
                "cuda-sim: writing {} {} into a buffer of {} {}",
                s.len(),
                s.dtype(),
                self.len,
                self.dtype
            )));
        }
        self.bytes_mut().copy_from_slice(s.as_bytes());
        Ok(())
    }

    /// A "device-side" copy.
    pub fn try_clone(&self) -> Result<CudaStorage> {
        let mut out = CudaStorage::new(self.dtype, self.len, 0xFF)?;
        out.bytes_mut().copy_from_slice(self.bytes());
        Ok(out)
    }

    /// Uploads host storage to the simulated device.
    pub fn from_cpu(s: &CpuStorage, ordinal: usize) -> Result<CudaStorage> {
        gpu(ordinal)?;
        let mut out = CudaStorage::new(s.dtype(), s.len(), 0xFF)?;
        out.bytes_mut().copy_from_slice(s.as_bytes());
        Ok(out)
    }

    /// A step's input: the simulated device has one queue and no transfers, so as `from_cpu`.
    pub fn from_cpu_input(s: &CpuStorage, ordinal: usize) -> Result<CudaStorage> {
        Self::from_cpu(s, ordinal)
    }

    /// `len` zeros of `dtype` on the simulated device.
    pub fn zeros_on(dtype: DType, len: usize, ordinal: usize) -> Result<CudaStorage> {
        gpu(ordinal)?;
        CudaStorage::new(dtype, len, 0)
    }
}

impl Drop for CudaStorage {
    fn drop(&mut self) {
        live().remove(self.addr());
    }
}

/// Checks every live buffer's guard zones; Err names the first one written over.
fn check_all_guards(kernel: &str) -> Result<()> {
    for (&addr, &bytes) in live().buffers.iter() {
        let front = GUARD_WORDS * 16;
        let back_start = addr + bytes;
        let back_end = addr + bytes.div_ceil(16).max(1) * 16 + GUARD_WORDS * 16;
        // SAFETY: `addr` is the payload of a live `CudaStorage` (registered at allocation, removed
        // on drop, under the lock held here), whose allocation spans [addr − front, back_end).
        let (pre, post) = unsafe {
            (
                std::slice::from_raw_parts((addr - front) as *const u8, front),
                std::slice::from_raw_parts(back_start as *const u8, back_end - back_start),
            )
        };
        if pre.iter().any(|&b| b != GUARD_BYTE) {
            return Err(Error::Msg(format!(
                "cuda-sim: {kernel} wrote before the start of a {bytes}-byte buffer"
            )));
        }
        if post.iter().any(|&b| b != GUARD_BYTE) {
            return Err(Error::Msg(format!(
                "cuda-sim: {kernel} wrote past the end of a {bytes}-byte buffer"
            )));
        }
    }
    Ok(())
}

/// The launch shape of the simulated device (the fields of cudarc's `LaunchConfig` the launchers use).
pub(crate) struct LaunchConfig {
    pub grid_dim: (u32, u32, u32),
    pub block_dim: (u32, u32, u32),
    pub shared_mem_bytes: u32,
}

/// The simulated device.
pub(crate) struct Gpu {
    pub(crate) ordinal: usize,
}

static SIM_GPU: Gpu = Gpu { ordinal: 0 };

/// The simulated device; only ordinal 0 exists.
pub(crate) fn gpu(ordinal: usize) -> Result<&'static Gpu> {
    if ordinal == 0 {
        Ok(&SIM_GPU)
    } else {
        Err(Error::CudaUnavailable(format!(
            "the simulated CUDA device (cuda-sim) has only ordinal 0, not {ordinal}"
        )))
    }
}

impl Gpu {
    /// NaN-poisoned memory for `len` elements of `dtype`.
    pub(crate) fn alloc(&self, dtype: DType, len: usize) -> Result<CudaStorage> {
        CudaStorage::new(dtype, len, 0xFF)
    }
    /// Zero-filled memory.
    pub(crate) fn zeros(&self, dtype: DType, len: usize) -> Result<CudaStorage> {
        CudaStorage::new(dtype, len, 0)
    }
    /// `Gpu::grid` of the CUDA backend on [`SIM_SMS`] SMs.
    pub(crate) fn grid(&self, n: usize) -> LaunchConfig {
        self.launch_cfg(Launch1d::per_item(n, self.sms()))
    }
    pub(crate) fn launch_cfg(&self, l: Launch1d) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (l.blocks, 1, 1),
            block_dim: (l.threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }
    pub(crate) fn sms(&self) -> usize {
        SIM_SMS
    }

    /// Runs `call` in the emulator, then checks every live buffer's guards.
    ///
    /// # Safety
    /// As `Gpu::launch` of the CUDA backend: every pointer in `call` addresses a live buffer big
    /// enough for the kernel under `cfg` (here: a host buffer; an overrun the guards cannot see is
    /// host memory corruption).
    pub(crate) unsafe fn launch(&self, call: &KernelCall<u64>, cfg: LaunchConfig) -> Result<()> {
        if cfg.shared_mem_bytes != 0 {
            return Err(Error::Msg(format!(
                "cuda-sim: {} asks for dynamic shared memory, which the emulator does not model",
                call.name
            )));
        }
        let args: Vec<Arg> = call
            .args
            .iter()
            .map(|a| a.map_ptr(|&p| p as usize))
            .collect();
        let (g, b) = (cfg.grid_dim, cfg.block_dim);
        cuda_emu::launch(&call.name, [g.0, g.1, g.2], [b.0, b.1, b.2], &args)
            .map_err(|e| Error::Msg(format!("cuda-sim: {}: {e}", call.name)))?;
        check_all_guards(&call.name)
    }

    /// A copy of the first `bytes` bytes of `src` into `dst`.
    pub(crate) fn copy_prefix(
        &self,
        src: &CudaStorage,
        dst: &mut CudaStorage,
        bytes: usize,
    ) -> Result<()> {
        if bytes > src.num_bytes() || bytes > dst.num_bytes() {
            return Err(Error::Msg(format!(
                "cuda-sim copy of {bytes} bytes between buffers of {} and {} bytes",
                src.num_bytes(),
                dst.num_bytes()
            )));
        }
        dst.bytes_mut()[..bytes].copy_from_slice(&src.bytes()[..bytes]);
        Ok(())
    }

    /// A table of 8-byte words (nominally F64, as in the CUDA backend).
    pub(crate) fn upload_words(&self, words: &[u64]) -> Result<CudaStorage> {
        let mut s = CudaStorage::new(DType::F64, words.len(), 0xFF)?;
        s.bytes_mut()
            .copy_from_slice(bytemuck::cast_slice::<u64, u8>(words));
        Ok(s)
    }
}

/// Runs `kernel` on simulated-device inputs: `dispatch::run` of the CUDA backend (its launcher in the
/// emulator), or the CPU kernel on host copies when `ENGINE_SIM_ON_CPU` names the kernel (a
/// comma-separated list of `CpuKernel::NAME`s, `all` for every kernel): a way to bisect a mismatch
/// between the simulated device and the CPU down to one launcher.
pub fn run<K: CudaKernel>(
    kernel: &K,
    inputs: &[&CudaStorage],
    out_dtypes: &[DType],
) -> Result<Vec<CudaStorage>> {
    if on_cpu(K::NAME) {
        on_cpu::run_on_cpu(kernel, inputs, out_dtypes)
    } else {
        dispatch::run(kernel, inputs, out_dtypes)
    }
}

fn on_cpu(name: &str) -> bool {
    static LIST: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let list = LIST.get_or_init(|| {
        std::env::var("ENGINE_SIM_ON_CPU")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    });
    list.iter().any(|s| s == name || s == "all")
}

/// Device 0 exists; others do not.
pub fn ensure_device(ordinal: usize) -> Result<()> {
    gpu(ordinal).map(|_| ())
}

/// Launches run synchronously; nothing to wait for.
pub fn synchronize(ordinal: usize) -> Result<()> {
    ensure_device(ordinal)
}

/// A report naming the simulation, with the bytes of live buffers now and at their high-water mark
/// (payload bytes, as the pool counts a CUDA allocation's; the simulated device reserves nothing
/// beyond them, so the reserved mark is the used one) and its capacity as total. What it leaves out
/// of a GPU's figure: cuDNN workspaces (the convolution stand-in needs none), pool rounding.
pub fn device_report(ordinal: usize) -> Result<super::CudaDeviceReport> {
    ensure_device(ordinal)?;
    let l = live();
    Ok(super::CudaDeviceReport {
        name: format!("simulated CUDA device (cuda-sim, {SIM_SMS} SMs, kernels in the emulator)"),
        compute_capability: "emulated".to_string(),
        total_bytes: capacity_bytes(),
        free_bytes: capacity_bytes().saturating_sub(l.used),
        pool_used_bytes: l.used,
        pool_used_high_bytes: l.high,
        pool_reserved_high_bytes: l.high,
    })
}

/// Sets the high-water mark to the bytes live now (as the driver does for a pool).
pub fn reset_peak_memory(ordinal: usize) -> Result<()> {
    ensure_device(ordinal)?;
    let mut l = live();
    l.high = l.used;
    Ok(())
}
