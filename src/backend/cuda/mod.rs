//! The CUDA half of the backend seam (built with the `cuda` feature). Same public surface as
//! `cuda_stub.rs`: `CudaStorage`, `CudaKernel`, `ensure_device` and `run`.
//!
//! Design and invariants:
//! - One `Gpu` per device ordinal, created lazily on first use and cached for the process in a
//!   `OnceLock` (a failure is cached too, so a machine without CUDA answers quickly every time). It holds
//!   the primary context, ONE non-blocking compute stream on which everything (kernels, copies,
//!   cuBLAS, cuDNN) is ordered, the kernel modules loaded from the fatbins that build.rs embeds (`KERNELS`), a cache of
//!   looked-up functions and, lazily, a cuBLAS handle bound to the same stream.
//! - Before touching the driver, `ensure_device` checks that libcuda (and libcublas, which matmul needs)
//!   can be loaded and otherwise returns `Error::CudaUnavailable` with advice; cudarc would panic.
//! - Because every buffer lives on the compute stream, cudarc's per-buffer event tracking is turned off
//!   (it would create two CUDA events per allocation). The one other stream, the copy stream of
//!   `staging.rs`, touches only the staging cache's own buffers and synchronises with the compute
//!   stream through explicit events.
//! - Allocation is stream-ordered: cudarc uses `cuMemAllocAsync`/`cuMemFreeAsync` on the device's default
//!   memory pool when the device supports pools (every GPU we target). We raise the pool's release
//!   threshold to "never", so freed blocks stay in the pool and, after the first training step, steps do
//!   not map new device memory; dropping a `CudaStorage` enqueues its free on the stream.
//! - Uploads of 1 MiB and more go through pinned staging slots (`staging.rs`), so the host does not
//!   wait for the queue to drain; a step's inputs (`from_cpu_input`, from 64 KiB) also transfer on
//!   a copy stream, overlapping the kernels queued before them; smaller ones are plain copies
//!   (which the driver may make wait for the queue).
//! - `CudaStorage` is an untyped byte buffer tagged with its dtype and element count. Buffers are never
//!   zero-sized (at least one byte is allocated) and kernels are never launched for zero elements.
//! - Every kernel launch goes through `Gpu::launch` with a `KernelCall` built by `kernel_abi` (kernel
//!   name and argument list written once, also run by the emulator tests); this file is the only one
//!   that uses cudarc's launch builder.
//! - Kernel launches are asynchronous; their errors surface at the next synchronising call
//!   (`to_cpu`). Errors cudarc records in `Drop`s (a failed asynchronous free) surface at its next
//!   call that binds the context (any allocation, copy or launch), so such an error may carry the name
//!   of an unrelated op.
//! - `run` normalises dtypes like the CPU runner: f64 may not be mixed with other dtypes; f16 inputs
//!   mixed with f32 are widened to f32 first. A launcher receives inputs of one dtype and may return
//!   outputs in it; `run` then casts each output to the dtype the op asked for.

mod adain;
mod adam;
mod batch_norm;
mod blas;
mod conv;
mod dispatch;
mod dropout;
mod elementwise;
mod layout;
mod loss;
mod matmul;
mod mixup;
mod pending;
mod pool;
mod reduce;
mod resize;
mod sgd;
mod softmax;
mod staging;

use super::{CpuKernel, CpuStorage, Device};
use crate::{DType, Error, Result};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, DriverError,
    LaunchConfig, PushKernelArg,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}
pub use conv::{conv_cache_stats, ConvCacheStats};
pub use dispatch::{run, take_widened_elements};
pub use generated::KERNELS;
pub use sgd::multi_tensor_sgd_step;

/// Device ordinals above this are refused.
pub const MAX_DEVICES: usize = 16;
pub(crate) use crate::backend::kernel_abi::call::{KArg, KernelCall, MAX_POD_BYTES};
pub(crate) use crate::backend::kernel_abi::Launch1d;

const LIB_ADVICE: &str =
    "CUDA needs an NVIDIA driver (libcuda.so.1) and, from PyTorch's pip wheels, \
    the CUDA 13 libraries: set LD_LIBRARY_PATH (before starting the process) to include \
    <site-packages>/nvidia/cu13/lib and <site-packages>/nvidia/cudnn/lib of the Python that holds \
    PyTorch (`python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))'` prints \
    <site-packages>)";

/// Kernels with a CUDA implementation override `launch`; the default says the op is not implemented
/// on CUDA (such kernels are listed in `pending.rs`).
///
/// Contract: `inputs` live on one device and all have one dtype (`run` ensures it), except for
/// kernels with `TAKES_MIXED_F16`, which may get f16 and f32 inputs together; `out_dtypes` are
/// the dtypes the op asked for. The launcher returns one storage per output, either in the requested
/// dtype or in the inputs' dtype (then `run` casts it).
pub trait CudaKernel: CpuKernel {
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

/// Dense device memory: `len` elements of `dtype` on device `ordinal`.
pub struct CudaStorage {
    buf: CudaSlice<u8>,
    dtype: DType,
    len: usize,
    ordinal: usize,
}

/// Makes sure CUDA device `ordinal` is usable (initialising it on first call).
pub fn ensure_device(ordinal: usize) -> Result<()> {
    gpu(ordinal).map(|_| ())
}

/// Waits for all work queued on device `ordinal` (the compute stream and the staging cache's copy
/// stream) and reports errors recorded by the driver.
pub fn synchronize(ordinal: usize) -> Result<()> {
    let g = gpu(ordinal)?;
    g.stream.synchronize().cu("synchronize")?;
    g.staging
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .synchronize()
        .cu("synchronize")?;
    g.ctx.check_err().cu("synchronize")
}

/// Name, capability and memory figures of device `ordinal` (see `backend::CudaDeviceReport`).
pub fn device_report(ordinal: usize) -> Result<super::CudaDeviceReport> {
    use cudarc::driver::sys::CUmemPool_attribute as A;
    let g = gpu(ordinal)?;
    let (free, total) = g.ctx.mem_get_info().cu("mem_get_info")?;
    let mut r = super::CudaDeviceReport {
        name: g.ctx.name().cu("device name")?,
        compute_capability: g
            .ctx
            .compute_capability()
            .map(|(a, b)| format!("sm_{a}{b}"))
            .cu("compute capability")?,
        total_bytes: total as u64,
        free_bytes: free as u64,
        ..Default::default()
    };
    if g.ctx.has_async_alloc() {
        // SAFETY: the pool belongs to this context's device; each attribute is a u64.
        unsafe {
            let pool = cudarc::driver::result::device::get_default_mem_pool(g.ctx.cu_device())
                .cu("default memory pool")?;
            for (attr, dst) in [
                (A::CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &mut r.pool_used_bytes),
                (
                    A::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                    &mut r.pool_used_high_bytes,
                ),
                (
                    A::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH,
                    &mut r.pool_reserved_high_bytes,
                ),
            ] {
                cudarc::driver::result::mem_pool::get_attribute(
                    pool,
                    attr,
                    dst as *mut u64 as *mut std::ffi::c_void,
                )
                .cu("memory pool attribute")?;
            }
        }
    }
    Ok(r)
}

/// Resets the high-water marks of device `ordinal`'s memory pool (the driver sets them to the
/// current values).
pub fn reset_peak_memory(ordinal: usize) -> Result<()> {
    use cudarc::driver::sys::CUmemPool_attribute as A;
    let g = gpu(ordinal)?;
    if !g.ctx.has_async_alloc() {
        return Ok(());
    }
    // SAFETY: as in `device_report`; resetting a high-water mark takes a u64 zero.
    unsafe {
        let pool = cudarc::driver::result::device::get_default_mem_pool(g.ctx.cu_device())
            .cu("default memory pool")?;
        for attr in [
            A::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
            A::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH,
        ] {
            let mut zero: u64 = 0;
            cudarc::driver::result::mem_pool::set_attribute(
                pool,
                attr,
                &mut zero as *mut u64 as *mut std::ffi::c_void,
            )
            .cu("memory pool attribute")?;
        }
    }
    Ok(())
}

impl CudaStorage {
    pub fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
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
        self.ordinal
    }
    pub(crate) fn buf(&self) -> &CudaSlice<u8> {
        &self.buf
    }
    pub(crate) fn buf_mut(&mut self) -> &mut CudaSlice<u8> {
        &mut self.buf
    }
    /// The device address of the buffer, for a `kernel_abi` call that reads it.
    pub(crate) fn dptr(&self, g: &Gpu) -> u64 {
        use cudarc::driver::DevicePtr;
        // Event tracking is off (one stream per device), so the returned guard records nothing.
        self.buf.device_ptr(&g.stream).0
    }
    /// The device address of the buffer, for a `kernel_abi` call that writes it.
    pub(crate) fn dptr_mut(&mut self, g: &Gpu) -> u64 {
        use cudarc::driver::DevicePtrMut;
        self.buf.device_ptr_mut(&g.stream).0
    }
    pub(crate) fn num_bytes(&self) -> usize {
        self.len * self.dtype.size_in_bytes()
    }

    /// Copies to the host (waits for the device).
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        Ok(match self.dtype {
            DType::F16 => CpuStorage::F16(self.download()?),
            DType::F32 => CpuStorage::F32(self.download()?),
            DType::F64 => CpuStorage::F64(self.download()?),
        })
    }

    /// Reads the buffer back, waiting for the stream to drain (counted: `backend::take_device_reads`).
    fn download<T: bytemuck::Pod>(&self) -> Result<Vec<T>> {
        crate::backend::count_device_read();
        let mut v = vec![T::zeroed(); self.len];
        if self.len == 0 {
            return Ok(v);
        }
        let g = gpu(self.ordinal)?;
        let src = self.buf.slice(0..self.num_bytes());
        g.stream
            .memcpy_dtoh(&src, bytemuck::cast_slice_mut::<T, u8>(&mut v))
            .cu("to_cpu")?;
        g.stream.synchronize().cu("to_cpu")?;
        g.ctx.check_err().cu("to_cpu")?;
        Ok(v)
    }

    /// A device-side copy.
    pub fn try_clone(&self) -> Result<CudaStorage> {
        let g = gpu(self.ordinal)?;
        let mut out = g.alloc(self.dtype, self.len)?;
        if self.len > 0 {
            let src = self.buf.slice(0..self.num_bytes());
            g.stream.memcpy_dtod(&src, &mut out.buf).cu("try_clone")?;
        }
        Ok(out)
    }

    /// Uploads host storage to device `ordinal`.
    pub fn from_cpu(s: &CpuStorage, ordinal: usize) -> Result<CudaStorage> {
        Self::upload(s, ordinal, false)
    }

    /// Uploads a step's input (a batch, its targets) to device `ordinal`: staged from 64 KiB and
    /// transferred on the copy stream, so the transfer overlaps the kernels already queued
    /// (staging.rs).
    pub fn from_cpu_input(s: &CpuStorage, ordinal: usize) -> Result<CudaStorage> {
        Self::upload(s, ordinal, true)
    }

    fn upload(s: &CpuStorage, ordinal: usize, input: bool) -> Result<CudaStorage> {
        let g = gpu(ordinal)?;
        let mut out = g.alloc(s.dtype(), s.len())?;
        let bytes = s.as_bytes();
        if staging::stages(bytes.len(), input) {
            // Through a pinned slot: the host does not wait for the GPU (staging.rs).
            let mut st = g.staging.lock().unwrap_or_else(|p| p.into_inner());
            st.upload(&g.ctx, &g.stream, bytes, &mut out.buf, input)
                .cu("from_cpu")?;
        } else if !bytes.is_empty() {
            g.stream.memcpy_htod(bytes, &mut out.buf).cu("from_cpu")?;
        }
        Ok(out)
    }

    /// `len` zeros of `dtype` on device `ordinal`, set on the device (no upload).
    pub fn zeros_on(dtype: DType, len: usize, ordinal: usize) -> Result<CudaStorage> {
        gpu(ordinal)?.zeros(dtype, len)
    }
}

/// One initialised device.
pub(crate) struct Gpu {
    pub(crate) ordinal: usize,
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    modules: HashMap<&'static str, Arc<CudaModule>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    sm_count: u32,
    blas: OnceLock<std::result::Result<cudarc::cublas::CudaBlas, String>>,
    /// cuDNN handle, plan cache and workspace (conv.rs), created on first use.
    cudnn: OnceLock<std::result::Result<Mutex<conv::CudnnState>, String>>,
    /// Pinned slots for large host → device uploads (staging.rs).
    staging: Mutex<staging::Staging>,
}

/// The device `ordinal`, initialised on first use.
pub(crate) fn gpu(ordinal: usize) -> Result<&'static Gpu> {
    static DEVICES: [OnceLock<std::result::Result<Gpu, String>>; MAX_DEVICES] =
        [const { OnceLock::new() }; MAX_DEVICES];
    let slot = DEVICES.get(ordinal).ok_or_else(|| {
        Error::CudaUnavailable(format!(
            "device ordinal {ordinal} is above the supported {MAX_DEVICES}"
        ))
    })?;
    slot.get_or_init(|| Gpu::init(ordinal))
        .as_ref()
        .map_err(|e| Error::CudaUnavailable(e.clone()))
}

impl Gpu {
    fn init(ordinal: usize) -> std::result::Result<Gpu, String> {
        // SAFETY: only tries to dlopen the library; nothing is called through it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(format!(
                "the CUDA driver library (libcuda.so.1) cannot be loaded: this machine has no NVIDIA \
                 driver, or it is not on the loader path. {LIB_ADVICE}"
            ));
        }
        // SAFETY: as above.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(format!(
                "cuBLAS (libcublas.so.13) cannot be loaded. {LIB_ADVICE}"
            ));
        }
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| format!("initialising CUDA device {ordinal} panicked. {LIB_ADVICE}"))?
            .map_err(|e| format!("cannot open CUDA device {ordinal}: {e}"))?;
        // SAFETY: no slice exists yet, and every buffer but the staging cache's lives on the one
        // compute stream (see the module docs), so stream order alone keeps its uses ordered; the
        // cache orders its copy stream with explicit events (staging.rs).
        unsafe { ctx.disable_event_tracking() };
        if ctx.has_async_alloc() {
            // Keep freed memory in the pool instead of returning it to the driver at each sync.
            // SAFETY: `cu_device` comes from this context; the attribute takes a u64.
            unsafe {
                let pool = cudarc::driver::result::device::get_default_mem_pool(ctx.cu_device())
                    .map_err(|e| format!("device {ordinal}: default memory pool: {e}"))?;
                let mut threshold: u64 = u64::MAX;
                cudarc::driver::result::mem_pool::set_attribute(
                    pool,
                    cudarc::driver::sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                    &mut threshold as *mut u64 as *mut std::ffi::c_void,
                )
                .map_err(|e| format!("device {ordinal}: memory pool threshold: {e}"))?;
            }
        }
        let stream = ctx
            .new_stream()
            .map_err(|e| format!("device {ordinal}: cannot create a stream: {e}"))?;
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(|e| format!("device {ordinal}: {e}"))?
            .max(1) as u32;
        let mut modules = HashMap::new();
        for &(name, image) in KERNELS {
            let module = ctx
                .load_module(cudarc::nvrtc::Ptx::from_binary(image.to_vec()))
                .map_err(|e| {
                    let cc = ctx
                        .compute_capability()
                        .map(|(a, b)| format!("sm_{a}{b}"))
                        .unwrap_or_else(|_| "unknown".into());
                    format!(
                        "device {ordinal} ({cc}): cannot load kernel module `{name}` (built for sm_80, \
                         sm_90 and compute_90 PTX; the driver must support CUDA 13.0): {e}"
                    )
                })?;
            modules.insert(name, module);
        }
        Ok(Gpu {
            ordinal,
            ctx,
            stream,
            modules,
            functions: Mutex::new(HashMap::new()),
            sm_count,
            blas: OnceLock::new(),
            cudnn: OnceLock::new(),
            staging: Mutex::new(staging::Staging::default()),
        })
    }

    /// The kernel `name` from module `module` (a `cuda/<module>.cu` stem).
    pub(crate) fn func(&self, module: &str, name: &str) -> Result<CudaFunction> {
        let mut cache = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = cache.get(name) {
            return Ok(f.clone());
        }
        let m = self
            .modules
            .get(module)
            .ok_or_else(|| Error::Msg(format!("cuda: no kernel module `{module}` was built")))?;
        let f = m
            .load_function(name)
            .map_err(|e| Error::Msg(format!("cuda: kernel `{name}` in `{module}`: {e}")))?;
        cache.insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// Device memory for `len` elements of `dtype` (at least one byte is allocated): uninitialised, or
    /// NaN-poisoned in debug builds and when `ENGINE_POISON=1` (the GPU check sets it).
    pub(crate) fn alloc(&self, dtype: DType, len: usize) -> Result<CudaStorage> {
        let bytes = len
            .checked_mul(dtype.size_in_bytes())
            .ok_or_else(|| Error::Msg(format!("cuda: {len} × {dtype} overflows")))?;
        // SAFETY: the memory is uninitialised; every launcher writes all `len` elements before the
        // storage is read, and `to_cpu`/`try_clone` only read the first `len` elements.
        let mut buf = unsafe { self.alloc_bytes(bytes.max(1), "alloc")? };
        if poison_outputs() {
            // Fill with 0xFF bytes (NaN in every float type) so a launcher that misses an element
            // shows up as NaN in the tests instead of as stale memory that happens to be right.
            use cudarc::driver::DevicePtrMut;
            let n = buf.num_bytes();
            let (ptr, _record) = buf.device_ptr_mut(&self.stream);
            // SAFETY: `ptr` addresses the `n` bytes just allocated on this stream.
            unsafe {
                cudarc::driver::result::memset_d8_async(ptr, 0xFF, n, self.stream.cu_stream())
            }
            .cu("poison")?;
        }
        Ok(CudaStorage {
            buf,
            dtype,
            len,
            ordinal: self.ordinal,
        })
    }

    /// `bytes` uninitialised bytes from the stream-ordered pool. When the driver reports out of
    /// memory, waits for the stream, hands the pool's unused reserve back to the driver (a request
    /// too big for the pool's free fragments then gets fresh memory) and tries once more, as
    /// PyTorch's allocator retries after emptying its cache; a second failure is
    /// `Error::OutOfMemory` with the pool's and the device's figures.
    ///
    /// # Safety
    /// The bytes are uninitialised: the caller writes them before anything reads them.
    pub(crate) unsafe fn alloc_bytes(&self, bytes: usize, what: &str) -> Result<CudaSlice<u8>> {
        use cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY;
        // SAFETY (both calls): the caller's contract.
        match unsafe { self.stream.alloc::<u8>(bytes) } {
            Err(DriverError(CUDA_ERROR_OUT_OF_MEMORY)) => {}
            other => return other.cu(what),
        }
        self.stream.synchronize().cu(what)?;
        if self.ctx.has_async_alloc() {
            // SAFETY: the default pool of this context's device; trimming only releases memory no
            // allocation holds (the stream is idle, so every queued free has landed).
            unsafe {
                let pool =
                    cudarc::driver::result::device::get_default_mem_pool(self.ctx.cu_device())
                        .cu(what)?;
                cudarc::driver::result::mem_pool::trim_to(pool, 0).cu(what)?;
            }
        }
        match unsafe { self.stream.alloc::<u8>(bytes) } {
            Err(DriverError(CUDA_ERROR_OUT_OF_MEMORY)) => {
                let r = device_report(self.ordinal).unwrap_or_default();
                Err(Error::OutOfMemory {
                    device: format!("cuda:{} ({})", self.ordinal, r.name),
                    requested: bytes as u64,
                    in_use: r.pool_used_bytes,
                    free: r.free_bytes,
                    total: r.total_bytes,
                })
            }
            other => other.cu(what),
        }
    }

    /// A copy of the first `bytes` bytes of `src` into `dst` (same device), ordered on the stream.
    pub(crate) fn copy_prefix(
        &self,
        src: &CudaStorage,
        dst: &mut CudaStorage,
        bytes: usize,
    ) -> Result<()> {
        if bytes > src.num_bytes() || bytes > dst.num_bytes() {
            return Err(Error::Msg(format!(
                "cuda copy of {bytes} bytes between buffers of {} and {} bytes",
                src.num_bytes(),
                dst.num_bytes()
            )));
        }
        if bytes == 0 {
            return Ok(());
        }
        let from = src.buf.slice(0..bytes);
        self.stream
            .memcpy_dtod(&from, &mut dst.buf)
            .cu("device copy")
    }

    /// A device table of 8-byte words (descriptor arrays, prefix sums) uploaded from the host. Its
    /// dtype is nominally F64 (the storage's word type); kernels read it through their own pointer
    /// type. Pageable host → device copies return once the source is staged, so `words` may go.
    pub(crate) fn upload_words(&self, words: &[u64]) -> Result<CudaStorage> {
        let mut s = self.alloc(DType::F64, words.len())?;
        if !words.is_empty() {
            self.stream
                .memcpy_htod(bytemuck::cast_slice::<u64, u8>(words), &mut s.buf)
                .cu("upload")?;
        }
        Ok(s)
    }

    /// Zero-filled device memory.
    pub(crate) fn zeros(&self, dtype: DType, len: usize) -> Result<CudaStorage> {
        let mut s = self.alloc(dtype, len)?;
        self.stream.memset_zeros(&mut s.buf).cu("zeros")?;
        Ok(s)
    }

    /// A 1-d grid-stride launch over `n` items: 256 threads, at most 32 blocks per SM.
    pub(crate) fn grid(&self, n: usize) -> LaunchConfig {
        self.launch_cfg(Launch1d::per_item(n, self.sms()))
    }

    /// The cudarc form of a launch plan from `kernel_abi`.
    pub(crate) fn launch_cfg(&self, l: Launch1d) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (l.blocks, 1, 1),
            block_dim: (l.threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Launches `call` (built by a `kernel_abi` function, which fixes the kernel's name and argument
    /// order) on this device's stream.
    ///
    /// # Safety
    /// Every pointer in `call` must address a live buffer of this device big enough for everything the
    /// kernel reads or writes under `cfg` (each launcher checks its buffers' lengths against the plan).
    /// The argument list itself matches the kernel's signature by construction: the same builder feeds
    /// the emulator, whose registry checks count and sizes and whose tests check the results.
    pub(crate) unsafe fn launch(&self, call: &KernelCall<u64>, cfg: LaunchConfig) -> Result<()> {
        let f = self.func(call.module, &call.name)?;
        // Structs by value travel as bytes in fixed-size aligned slots; the driver reads only the
        // parameter's own size from each slot.
        let pods: Vec<PodSlot> = call
            .args
            .iter()
            .filter_map(|a| match a {
                KArg::Pod(bytes) => Some(PodSlot::new(bytes)),
                _ => None,
            })
            .collect();
        let mut pod = pods.iter();
        let mut b = self.stream.launch_builder(&f);
        for a in &call.args {
            match a {
                KArg::I32(v) => b.arg(v),
                KArg::U32(v) => b.arg(v),
                KArg::I64(v) => b.arg(v),
                KArg::U64(v) => b.arg(v),
                KArg::F32(v) => b.arg(v),
                KArg::F64(v) => b.arg(v),
                KArg::Ptr(p) => b.arg(p),
                KArg::Pod(_) => b.arg(pod.next().expect("one slot per struct")),
            };
        }
        // SAFETY: see the function's contract.
        unsafe { b.launch(cfg) }.cu(&call.name)?;
        Ok(())
    }

    /// The SM count, as the launch plans of `kernel_abi` take it.
    pub(crate) fn sms(&self) -> usize {
        self.sm_count as usize
    }

    /// The cuBLAS handle (bound to this device's stream), created on first use.
    pub(crate) fn blas(&self) -> Result<&cudarc::cublas::CudaBlas> {
        self.blas
            .get_or_init(|| {
                cudarc::cublas::CudaBlas::new(self.stream.clone())
                    .map_err(|e| format!("cuBLAS on device {}: {e:?}. {LIB_ADVICE}", self.ordinal))
            })
            .as_ref()
            .map_err(|e| Error::CudaUnavailable(e.clone()))
    }

    /// The cuDNN state (handle bound to this device's stream, plan cache, workspace), created on
    /// first use; `Error::CudaUnavailable` when libcudnn cannot be loaded.
    pub(crate) fn cudnn(&self) -> Result<&Mutex<conv::CudnnState>> {
        self.cudnn
            .get_or_init(|| conv::CudnnState::new(self).map(Mutex::new))
            .as_ref()
            .map_err(|e| Error::CudaUnavailable(e.clone()))
    }
}

/// Converts driver errors into engine errors naming the operation.
pub(crate) trait CuResultExt<T> {
    fn cu(self, what: &str) -> Result<T>;
}
impl<T> CuResultExt<T> for std::result::Result<T, DriverError> {
    fn cu(self, what: &str) -> Result<T> {
        self.map_err(|e| Error::Msg(format!("cuda {what}: {e}")))
    }
}

/// A by-value struct argument's bytes in a 16-byte-aligned slot of `MAX_POD_BYTES` (zero-padded).
#[repr(C, align(16))]
struct PodSlot([u8; MAX_POD_BYTES]);

impl PodSlot {
    fn new(bytes: &[u8]) -> PodSlot {
        let mut s = PodSlot([0; MAX_POD_BYTES]);
        s.0[..bytes.len()].copy_from_slice(bytes);
        s
    }
}

// SAFETY: plain bytes; the kernel's parameter is at most MAX_POD_BYTES (`KArg::pod` asserts), so
// the driver's copy of it stays inside the slot.
unsafe impl DeviceRepr for PodSlot {}

/// True in debug builds and when `ENGINE_POISON=1`: fresh device buffers are filled with NaN.
pub(crate) fn poison_outputs() -> bool {
    static POISON: OnceLock<bool> = OnceLock::new();
    *POISON.get_or_init(|| {
        cfg!(debug_assertions) || std::env::var("ENGINE_POISON").as_deref() == Ok("1")
    })
}
