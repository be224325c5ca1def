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
//! - [`test_support`] mirrors the launchers' launch configurations (`Gpu::grid`, `RowGroup`, the
//!   `StridedArgs` descriptor and dim collapsing of src/backend/cuda/) on a pretend GPU of
//!   [`test_support::SM_COUNT`] SMs, without depending on the `cuda` feature: a launcher change that
//!   alters one of them must change its mirror here too.

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

/// One kernel argument, by value, as `cuLaunchKernel` takes it.
#[derive(Clone, Debug)]
pub enum Arg {
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    /// A device pointer (here: a host address).
    Ptr(usize),
    /// A `#[repr(C)]` struct passed by value, as its bytes.
    Pod(Vec<u8>),
}

impl Arg {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Arg::I32(v) => v.to_ne_bytes().to_vec(),
            Arg::U32(v) => v.to_ne_bytes().to_vec(),
            Arg::I64(v) => v.to_ne_bytes().to_vec(),
            Arg::U64(v) => v.to_ne_bytes().to_vec(),
            Arg::F32(v) => v.to_ne_bytes().to_vec(),
            Arg::F64(v) => v.to_ne_bytes().to_vec(),
            Arg::Ptr(v) => v.to_ne_bytes().to_vec(),
            Arg::Pod(b) => b.clone(),
        }
    }
}

/// Runs kernel `name` over `grid` blocks of `block` threads. Errors: unknown kernel, argument count or
/// sizes that do not match its signature, a block shape a GPU would reject.
pub fn launch(name: &str, grid: [u32; 3], block: [u32; 3], args: &[Arg]) -> Result<(), String> {
    // Each value lives in its own 16-byte-aligned slot, as the kernel's unpacking expects.
    let mut slots: Vec<Vec<u128>> = args
        .iter()
        .map(|a| {
            let b = a.bytes();
            let mut slot = vec![0u128; b.len().div_ceil(16).max(1)];
            bytemuck::cast_slice_mut::<u128, u8>(&mut slot)[..b.len()].copy_from_slice(&b);
            slot
        })
        .collect();
    let sizes: Vec<usize> = args.iter().map(|a| a.bytes().len()).collect();
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

    /// The device pointer argument.
    pub fn arg(&mut self) -> Arg {
        Arg::Ptr(self.data[GUARD..].as_mut_ptr() as usize)
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

pub mod test_support {
    //! What the emulator tests (`tests/cuda_emu_*.rs`) share: the pretend GPU their launches are sized
    //! for, mirrors of the launchers' launch configurations and descriptors, the kernels' storage types,
    //! seeded inputs, [`Buf`] conveniences and tolerance asserts.
    //!
    //! Invariants: every mirror computes exactly what its launcher does for a GPU of [`SM_COUNT`] SMs
    //! (the tests launch what the engine would launch, only on a smaller GPU); conversions between f64
    //! and the storage types are the engine's own ([`Element`]: f64 → f16 rounds once, as the CPU
    //! backend and `__double2half` do), so a value rounded here is the value the CPU backend holds;
    //! [`seeded_randn`] is the engine's `Tensor::randn`, so a seed always means the same inputs.

    use super::{launch, Arg, Buf};
    use crate::dtype::{DType, Element};
    use crate::{Device, Tensor};
    use half::f16;

    /// Threads per block of the launchers' 1-d launches (`THREADS` of src/backend/cuda/mod.rs).
    pub const THREADS: u32 = 256;
    /// The block shape of those launches.
    pub const BLOCK: [u32; 3] = [THREADS, 1, 1];
    /// A grid of one block: a kernel's grid-stride loop must then cover everything on its own.
    pub const ONE_BLOCK: [u32; 3] = [1, 1, 1];
    /// SMs of the pretend GPU: few, so emulated grids stay small (every block costs its threads) and
    /// the launchers' grid caps are reached, making grid-stride loops wrap.
    pub const SM_COUNT: usize = 4;
    /// The launchers' grid cap: `sm_count · 32` blocks.
    pub const MAX_BLOCKS: usize = SM_COUNT * 32;

    /// A 1-d grid of `blocks` blocks clamped to 1..=[`MAX_BLOCKS`], as every launcher clamps.
    pub fn capped_grid(blocks: usize) -> [u32; 3] {
        [blocks.clamp(1, MAX_BLOCKS) as u32, 1, 1]
    }

    /// `Gpu::grid(n)`: a thread per element, min(ceil(n / [`THREADS`]), [`MAX_BLOCKS`]) blocks, at
    /// least 1.
    pub fn grid_1d(n: usize) -> [u32; 3] {
        capped_grid(n.div_ceil(THREADS as usize))
    }

    /// Launches kernel `name` on `grid` blocks of [`BLOCK`]; panics with the kernel's name and grid
    /// when the emulator refuses the launch.
    #[track_caller]
    pub fn run_kernel(name: &str, grid: [u32; 3], args: &[Arg]) {
        launch(name, grid, BLOCK, args).unwrap_or_else(|e| panic!("{name} grid {grid:?}: {e}"));
    }

    /// `WARP_ROW_MAX` of src/backend/cuda/softmax.rs: [`RowGroup::for_contiguous`] gives rows (or
    /// planes) of up to this many elements a warp each.
    pub const WARP_ROW_MAX: usize = 1024;

    /// `RowGroup` of src/backend/cuda/softmax.rs: how the row kernels (softmax, losses, AdaIN and
    /// plane statistics) map rows onto threads; its name is the kernels' name infix.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum RowGroup {
        /// One warp per row, 8 rows per block.
        Warp,
        /// One block per row.
        Block,
        /// One thread per row.
        Lane,
    }

    impl RowGroup {
        /// `RowGroup::for_contiguous`: Warp for rows of up to [`WARP_ROW_MAX`] elements, else Block.
        pub fn for_contiguous(len: usize) -> RowGroup {
            if len <= WARP_ROW_MAX {
                RowGroup::Warp
            } else {
                RowGroup::Block
            }
        }
        /// The kernel-name infix (`warp`, `block`, `lane`).
        pub fn name(self) -> &'static str {
            match self {
                RowGroup::Warp => "warp",
                RowGroup::Block => "block",
                RowGroup::Lane => "lane",
            }
        }
        /// `RowGroup::config`'s grid for `rows` rows.
        pub fn grid(self, rows: usize) -> [u32; 3] {
            capped_grid(match self {
                RowGroup::Warp => rows.div_ceil(THREADS as usize / 32),
                RowGroup::Block => rows,
                RowGroup::Lane => rows.div_ceil(THREADS as usize),
            })
        }
        /// [`RowGroup::grid`], or [`ONE_BLOCK`] with `one_block` (the tests' second grid, on which
        /// the kernels' grid-stride loops cover every row alone).
        pub fn grid_or_one_block(self, rows: usize, one_block: bool) -> [u32; 3] {
            if one_block {
                ONE_BLOCK
            } else {
                self.grid(rows)
            }
        }
    }

    /// `MAX_DIMS` of common.cuh and src/backend/cuda/mod.rs: the dims a [`StridedArgs`] holds.
    pub const MAX_DIMS: usize = 8;

    /// `StridedArgs` of src/backend/cuda/mod.rs / common.cuh: extents and one operand's strides of a
    /// dense row-major output (8 + 8 i64, rank, pad: 136 bytes).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct StridedArgs {
        pub dims: [i64; MAX_DIMS],
        pub strides: [i64; MAX_DIMS],
        pub rank: i32,
        pub pad: i32,
    }

    impl StridedArgs {
        /// Packs collapsed `dims` and one operand's `strides`; panics where the launcher would
        /// refuse (more than [`MAX_DIMS`] dims).
        pub fn new(dims: &[usize], strides: &[usize]) -> StridedArgs {
            assert!(
                dims.len() <= MAX_DIMS,
                "the launcher rejects {dims:?}: more than {MAX_DIMS} collapsed dims"
            );
            let mut a = StridedArgs {
                dims: [0; MAX_DIMS],
                strides: [0; MAX_DIMS],
                rank: dims.len() as i32,
                pad: 0,
            };
            for (d, (&n, &s)) in dims.iter().zip(strides).enumerate() {
                a.dims[d] = n as i64;
                a.strides[d] = s as i64;
            }
            a
        }
        /// The by-value kernel argument.
        pub fn arg(&self) -> Arg {
            Arg::Pod(bytemuck::bytes_of(self).to_vec())
        }
    }

    /// `collapse` of src/backend/cuda/mod.rs: drops extent-1 dims and merges neighbouring dims that
    /// are contiguous for every operand (`strides[k][d]`: operand k's stride of dim d).
    pub fn collapse(dims: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
        let mut out_dims: Vec<usize> = Vec::with_capacity(dims.len());
        let mut out_strides: Vec<Vec<usize>> = vec![Vec::with_capacity(dims.len()); strides.len()];
        for (d, &n) in dims.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let mergeable = !out_dims.is_empty()
                && strides
                    .iter()
                    .zip(&out_strides)
                    .all(|(s, o)| *o.last().expect("non-empty") == s[d] * n);
            if mergeable {
                *out_dims.last_mut().expect("non-empty") *= n;
                for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                    *o.last_mut().expect("non-empty") = s[d];
                }
            } else {
                out_dims.push(n);
                for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                    o.push(s[d]);
                }
            }
        }
        (out_dims, out_strides)
    }

    /// A floating storage type of the kernels (f16, f32, f64): the suffixes of its kernels' names,
    /// `Acc<T>` and its bit pattern type. Conversions to and from f64 are [`Element`]'s.
    pub trait KernelFloat: Element {
        /// Suffix of the typed kernels (`unary_f32`): `f16`, `f32`, `f64`.
        const SUF: &'static str;
        /// Suffix of the kernels that only move bits (`copy2d_u32`): `u16`, `u32`, `u64`.
        const BITS: &'static str;
        /// The same-size unsigned integer, for bit comparisons.
        type Bits: bytemuck::Pod + Eq + std::fmt::Debug + std::fmt::LowerHex;
        /// `Acc<T>` of common.cuh: the type of accumulators, scratch buffers and the max-pool argmax
        /// (f32 for f16, else T).
        type Acc: KernelFloat;
        /// A quiet NaN.
        fn nan() -> Self {
            Self::from_f64(f64::NAN)
        }
        fn is_nan(self) -> bool {
            self.to_f64().is_nan()
        }
    }

    impl KernelFloat for f16 {
        const SUF: &'static str = "f16";
        const BITS: &'static str = "u16";
        type Bits = u16;
        type Acc = f32;
    }

    impl KernelFloat for f32 {
        const SUF: &'static str = "f32";
        const BITS: &'static str = "u32";
        type Bits = u32;
        type Acc = f32;
    }

    impl KernelFloat for f64 {
        const SUF: &'static str = "f64";
        const BITS: &'static str = "u64";
        type Bits = u64;
        type Acc = f64;
    }

    /// `values` converted to T (f16: rounded once).
    pub fn to_elems<T: Element>(values: &[f64]) -> Vec<T> {
        values.iter().map(|&v| T::from_f64(v)).collect()
    }

    /// `values` widened to f64 (exact).
    pub fn to_f64s<T: Element>(values: &[T]) -> Vec<f64> {
        values.iter().map(|&v| v.to_f64()).collect()
    }

    /// `values` rounded to T, as f64: what a kernel reading them in T and the CPU backend holding
    /// them in T both see.
    pub fn rounded<T: Element>(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
        values
            .into_iter()
            .map(|v| T::from_f64(v).to_f64())
            .collect()
    }

    /// `len` standard-normal values of `Tensor::randn` with `seed` (f64, on the CPU).
    pub fn seeded_randn(len: usize, seed: u64) -> Vec<f64> {
        Tensor::randn(vec![len], 0.0, 1.0, seed, DType::F64, Device::Cpu)
            .and_then(|t| t.to_vec_f64())
            .expect("randn")
    }

    /// A CPU tensor of dtype `T` holding `values` (rounded to T) in shape `dims`.
    pub fn cpu_tensor<T: Element>(values: &[f64], dims: &[usize]) -> Tensor {
        Tensor::from_f64s(values, dims.to_vec(), T::DTYPE, Device::Cpu).expect("tensor")
    }

    impl<T: Element> Buf<T> {
        /// A buffer holding `values` converted to T.
        pub fn from_f64s(values: &[f64]) -> Self {
            Self::from_slice(&to_elems::<T>(values))
        }

        /// A buffer of `len` NaNs: the start of every output, so an element a kernel skips shows.
        pub fn nan(len: usize) -> Self {
            Self::filled(len, T::from_f64(f64::NAN))
        }

        /// The elements, after checking the guard zones (panics naming `what` if a kernel wrote
        /// outside the buffer).
        #[track_caller]
        pub fn checked(&self, what: &str) -> Vec<T> {
            self.check_guards(what).unwrap_or_else(|e| panic!("{e}"));
            self.to_vec()
        }

        /// [`Buf::checked`], widened to f64.
        #[track_caller]
        pub fn checked_f64s(&self, what: &str) -> Vec<f64> {
            to_f64s(&self.checked(what))
        }
    }

    /// (atol, rtol) for values in `dt` from kernels that sum (over rows, planes, channels) in another
    /// order than the CPU backend, on O(1)..O(10) values:
    /// - f64: only the summation order differs (trees vs serial loops; the same libm): a few ulps.
    /// - f32: a few ulps of each sum (u = 6e-8), chained through a few sums (gradients): 2e-5.
    /// - f16 storage, f32 compute on both sides (the CPU widens f16 to f32): each output is rounded
    ///   once to f16 (half an ulp, rel. 2^-11), two f32 results may straddle a rounding boundary (one
    ///   ulp, rel. ≤ 2^-10 ≈ 1e-3), and a backward may read an f16 intermediate the emulated forward
    ///   rounded an ulp away from the CPU's: a few ulps, 1e-2.
    pub fn reduction_tol(dt: DType) -> (f64, f64) {
        match dt {
            DType::F64 => (1e-11, 1e-10),
            DType::F32 => (2e-5, 2e-5),
            DType::F16 => (1e-2, 1e-2),
        }
    }

    /// The `l1_tol` of [`assert_sums`] for sums computed in `acc` (`Acc<T>`: f64, or f32 for f32 and
    /// f16 kernels). A sum of n terms in another order differs by ≲ √n·u·Σ|terms|: f64 (u = 1.1e-16):
    /// 1e-13 leaves room for n up to ~10^6; f32 (u = 6e-8): 2e-5 ≈ 300 u, for n up to a few thousand
    /// plus the rounding of exp/log inside each term.
    pub fn sum_l1_tol(acc: DType) -> f64 {
        match acc {
            DType::F64 => 1e-13,
            _ => 2e-5,
        }
    }

    /// Panics unless `got` and `want` have the same length and every element satisfies
    /// `|got − want| ≤ atol + rtol·|want|` (`tol = (atol, rtol)`; NaN never does); the message names
    /// the largest difference and the first element outside the tolerance.
    #[track_caller]
    pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: (f64, f64)) {
        let (atol, rtol) = tol;
        assert_eq!(got.len(), want.len(), "{what}: length");
        let (max, ok) = crate::testing::compare(got, want, atol, rtol);
        if !ok {
            let (i, (g, w)) = got
                .iter()
                .zip(want)
                .enumerate()
                .find(|(_, (g, w))| {
                    let d = (*g - *w).abs();
                    d.is_nan() || d > atol + rtol * w.abs()
                })
                .expect("an element outside the tolerance");
            panic!(
                "{what}: max |emulated − reference| = {max:.3e} (atol {atol:.1e}, rtol {rtol:.1e}); \
                 first at [{i}]: emulated {g:e}, reference {w:e}"
            );
        }
    }

    /// Sums: element o within `l1_tol·l1[o] + rtol·|want[o]|`, where `l1[o]` is the sum of the
    /// magnitudes of output o's terms (the error of a sum taken in another order scales with it, not
    /// with the sum's value).
    #[track_caller]
    pub fn assert_sums(what: &str, got: &[f64], want: &[f64], l1: &[f64], l1_tol: f64, rtol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (o, ((&g, &w), &a)) in got.iter().zip(want).zip(l1).enumerate() {
            let d = (g - w).abs();
            assert!(
                d <= l1_tol * a + rtol * w.abs(),
                "{what}: element {o}: emulated {g} vs reference {w} (|diff| {d:.3e}, Σ|terms| {a:.3e})"
            );
        }
    }
}
