//! The CUDA emulator's Rust side (`cuda-emu` feature): launches a kernel of `cuda/*.cu`, compiled for
//! the host by build.rs, on CPU fibers (`cuda/emu/runtime.cpp`), with host buffers as "device" memory,
//! and ([`test_support`]) the helpers its tests share.
//!
//! It exists so that the hand-written kernels run, and are checked against the CPU backend, on machines
//! with no GPU (`tests/cuda_emu_*.rs`). It is a test tool, not a backend: nothing in the engine calls it.
//!
//! Invariants:
//! - An argument list is checked against the kernel's C++ signature by count and byte size before the
//!   launch; a mismatch is an error naming the argument, never a read of garbage.
//! - [`Buf`] surrounds its elements with guard zones filled with a poison pattern, and its elements
//!   start as NaN (or the pattern, for integers); [`Buf::check_guards`] reports any write outside the
//!   buffer, so an out-of-bounds store is a test failure rather than silent corruption.
//! - Launches are serialised (the C++ side holds a lock), so tests may call `launch` from any thread.
//! - Launch configurations, descriptors and op codes are not mirrored here: the tests take them from
//!   `crate::backend::kernel_abi`, the module the CUDA launchers use, evaluated for a pretend GPU of
//!   [`test_support::SM_COUNT`] SMs, so a launcher change there is what the emulator runs.

use std::ffi::{c_char, c_void, CStr, CString};

extern "C" {
    fn engine_emu_launch(
        name: *const c_char,
        grid: *const u32,
        block: *const u32,
        params: *mut *mut c_void,
        n_params: usize,
        param_sizes: *const usize,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn engine_emu_kernel_count() -> usize;
    fn engine_emu_kernel_name(i: usize) -> *const c_char;
}

pub use crate::backend::kernel_abi::call::{KArg, KernelCall};

/// One kernel argument, by value, as `cuLaunchKernel` takes it; pointers are host addresses.
pub type Arg = KArg<usize>;

/// The argument's bytes, as the kernel's parameter holds them.
fn arg_bytes(a: &Arg) -> Vec<u8> {
    match a {
        KArg::I32(v) => v.to_ne_bytes().to_vec(),
        KArg::U32(v) => v.to_ne_bytes().to_vec(),
        KArg::I64(v) => v.to_ne_bytes().to_vec(),
        KArg::U64(v) => v.to_ne_bytes().to_vec(),
        KArg::F32(v) => v.to_ne_bytes().to_vec(),
        KArg::F64(v) => v.to_ne_bytes().to_vec(),
        KArg::Ptr(v) => v.to_ne_bytes().to_vec(),
        KArg::Pod(b) => b.clone(),
    }
}

/// Runs a `kernel_abi` call (the launchers' own kernel name and argument list, over [`Buf`]
/// addresses) over `grid` blocks of `block` threads.
pub fn launch_call(
    call: &KernelCall<usize>,
    grid: [u32; 3],
    block: [u32; 3],
) -> Result<(), String> {
    launch(&call.name, grid, block, &call.args)
}

/// Runs kernel `name` over `grid` blocks of `block` threads. Errors: unknown kernel, argument count or
/// sizes that do not match its signature, a block shape a GPU would reject.
pub fn launch(name: &str, grid: [u32; 3], block: [u32; 3], args: &[Arg]) -> Result<(), String> {
    // Each value lives in its own 16-byte-aligned slot, as the kernel's unpacking expects.
    let mut slots: Vec<Vec<u128>> = args
        .iter()
        .map(|a| {
            let b = arg_bytes(a);
            let mut slot = vec![0u128; b.len().div_ceil(16).max(1)];
            bytemuck::cast_slice_mut::<u128, u8>(&mut slot)[..b.len()].copy_from_slice(&b);
            slot
        })
        .collect();
    let sizes: Vec<usize> = args.iter().map(|a| arg_bytes(a).len()).collect();
    let mut params: Vec<*mut c_void> = slots
        .iter_mut()
        .map(|s| s.as_mut_ptr() as *mut c_void)
        .collect();
    let cname = CString::new(name).map_err(|_| format!("kernel name {name:?} has a NUL byte"))?;
    let mut err = vec![0 as c_char; 512];
    // SAFETY: every pointer is valid for the call; the C side checks count and sizes against the
    // kernel's signature before it reads a value, and writes at most err.len() bytes into err. The
    // kernel itself may write through the `Ptr` arguments: the caller's buffers must be big enough,
    // which is what the tests check (Buf's guards).
    let rc = unsafe {
        engine_emu_launch(
            cname.as_ptr(),
            grid.as_ptr(),
            block.as_ptr(),
            params.as_mut_ptr(),
            params.len(),
            sizes.as_ptr(),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        // SAFETY: the C side wrote a NUL-terminated message (snprintf).
        Err(unsafe { CStr::from_ptr(err.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }
}

/// Every kernel the emulator library holds, in file order.
pub fn kernel_names() -> Vec<String> {
    // SAFETY: indices below the count return static NUL-terminated names.
    (0..unsafe { engine_emu_kernel_count() })
        .map(|i| {
            unsafe { CStr::from_ptr(engine_emu_kernel_name(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Elements a [`Buf`] keeps on each side as a guard zone.
const GUARD: usize = 64;
/// The guard's byte pattern.
const POISON_BYTE: u8 = 0xA5;

/// A "device" buffer for emulated kernels: `len` elements of `T` between two poisoned guard zones.
pub struct Buf<T: bytemuck::Pod> {
    data: Vec<T>,
    len: usize,
}

impl<T: bytemuck::Pod> Buf<T> {
    /// A buffer holding `values`.
    pub fn from_slice(values: &[T]) -> Self {
        let mut b = Self::poisoned(values.len());
        b.data[GUARD..GUARD + values.len()].copy_from_slice(values);
        b
    }

    /// A buffer of `len` elements, every byte (guards included) the poison pattern: for floats this is
    /// a large finite value (0xA5A5A5A5 ≈ −2.9e−16 for f32 is not NaN), so tests that need NaN poison
    /// use [`Buf::filled`].
    pub fn poisoned(len: usize) -> Self {
        let mut data = vec![T::zeroed(); len + 2 * GUARD];
        bytemuck::cast_slice_mut::<T, u8>(&mut data).fill(POISON_BYTE);
        // Kernels use 16-byte vector loads where the launcher found buffers 16-byte aligned, as
        // device allocations are; glibc's malloc gives 16 bytes, and the guard keeps the offset.
        assert_eq!(
            data[GUARD..].as_ptr() as usize % 16,
            0,
            "emulated device buffers must be 16-byte aligned"
        );
        Buf { data, len }
    }

    /// A buffer of `len` copies of `value` (e.g. NaN, so an element the kernel forgets stays NaN).
    pub fn filled(len: usize, value: T) -> Self {
        let mut b = Self::poisoned(len);
        b.data[GUARD..GUARD + len].fill(value);
        b
    }

    /// The buffer's "device" address, for a `kernel_abi` call.
    pub fn ptr(&mut self) -> usize {
        self.data[GUARD..].as_mut_ptr() as usize
    }

    pub fn to_vec(&self) -> Vec<T> {
        self.data[GUARD..GUARD + self.len].to_vec()
    }

    /// Err naming the first guard element a kernel overwrote (before or after the buffer).
    pub fn check_guards(&self, what: &str) -> Result<(), String> {
        let bytes = bytemuck::cast_slice::<T, u8>(&self.data);
        let t = std::mem::size_of::<T>();
        let front = &bytes[..GUARD * t];
        let back = &bytes[(GUARD + self.len) * t..];
        if let Some(i) = front.iter().rposition(|&b| b != POISON_BYTE) {
            return Err(format!(
                "{what}: a kernel wrote {} element(s) before the buffer's start",
                GUARD - i / t
            ));
        }
        if let Some(i) = back.iter().position(|&b| b != POISON_BYTE) {
            return Err(format!(
                "{what}: a kernel wrote past the buffer's end (element {} of {})",
                self.len + i / t,
                self.len
            ));
        }
        Ok(())
    }
}

pub mod test_support;
