//! What the emulator tests (`tests/cuda_emu_*.rs`) share: the pretend GPU their launches are sized
//! for, `kernel_abi`'s launch plans evaluated on it, the kernels' storage types, seeded inputs,
//! [`Buf`] conveniences, CPU-backend references, tolerance and bit-exact asserts, and the launches
//! of the optimiser kernels that both optimiser test files make.
//!
//! Invariants: grids come from `crate::backend::kernel_abi`, the launchers' own plans, for a GPU of
//! [`SM_COUNT`] SMs (the tests launch what the engine would launch, only on a smaller GPU);
//! conversions between f64 and the storage types are the engine's own ([`Element`]: f64 → f16 rounds
//! once, as the CPU backend and `__double2half` do), so a value rounded here is the value the CPU
//! backend holds; [`seeded_randn`] is the engine's `Tensor::randn`, so a seed always means the same
//! inputs.

use super::{launch_call, Buf, KernelCall};
use crate::backend::cpu::{self, CpuKernel, CpuStorage};
use crate::backend::kernel_abi::sgd::{self, all_finite_finish_launch};
use crate::dtype::{DType, Element};
use crate::{Device, Shape, Tensor};
use half::f16;

pub use crate::backend::kernel_abi::rows::{RowGroup, WARP_ROW_MAX};
pub use crate::backend::kernel_abi::{collapse, Launch1d, StridedArgs, MAX_DIMS, THREADS};

/// The block shape of the 1-d launches.
pub const BLOCK: [u32; 3] = [THREADS, 1, 1];
/// A grid of one block: a kernel's grid-stride loop must then cover everything on its own.
pub const ONE_BLOCK: [u32; 3] = [1, 1, 1];
/// SMs of the pretend GPU: few, so emulated grids stay small (every block costs its threads) and
/// the launchers' grid caps are reached, making grid-stride loops wrap.
pub const SM_COUNT: usize = 4;

/// `Gpu::grid(n)` (`Launch1d::per_item`) on the pretend GPU.
pub fn grid_1d(n: usize) -> [u32; 3] {
    Launch1d::per_item(n, SM_COUNT).grid()
}

/// Which grid a case launches on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Grid {
    /// The launchers' `g.grid(n)` ([`grid_1d`]).
    Launcher,
    /// One block ([`ONE_BLOCK`]): the grid-stride loop covers everything.
    One,
}

impl Grid {
    /// The grid of this choice for `n` elements.
    pub fn dims(self, n: usize) -> [u32; 3] {
        match self {
            Grid::Launcher => grid_1d(n),
            Grid::One => ONE_BLOCK,
        }
    }
}

/// Launches a `kernel_abi` call on `grid` blocks of [`BLOCK`]; panics with the kernel's name and
/// grid when the emulator refuses the launch.
#[track_caller]
pub fn run_call(call: &KernelCall<usize>, grid: [u32; 3]) {
    launch_call(call, grid, BLOCK).unwrap_or_else(|e| panic!("{} grid {grid:?}: {e}", call.name));
}

/// Launches a `kernel_abi` call with a launch plan of `kernel_abi` (its grid and block shape).
#[track_caller]
pub fn run_call_plan(call: &KernelCall<usize>, plan: Launch1d) {
    launch_call(call, plan.grid(), plan.block())
        .unwrap_or_else(|e| panic!("{} plan {plan:?}: {e}", call.name));
}

/// The row kernels' grids on the pretend GPU.
impl RowGroup {
    /// `RowGroup::launch`'s grid for `rows` rows on [`SM_COUNT`] SMs.
    pub fn grid(self, rows: usize) -> [u32; 3] {
        self.launch(rows, SM_COUNT).grid()
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

/// A tensor's storage in memory order, as `T` (which must be its dtype).
pub fn raw<T: Element>(t: &Tensor) -> Vec<T> {
    assert_eq!(t.dtype(), T::DTYPE, "raw read in the wrong dtype");
    t.storage().to_cpu().unwrap().to_vec::<T>()
}

/// The strides an `input`-shaped operand is read with when broadcast to `out`: a mirror of
/// `Broadcast::new(input, out).strides()` of src/ops/elementwise.rs (the op, not a launcher):
/// contiguous strides, 0 on broadcast (extent-1 or missing leading) dims.
pub fn bcast_strides(input: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let st = Shape::new(input.to_vec()).contiguous_strides();
    let mut s = vec![0; r];
    for i in 0..input.len() {
        let o = r - input.len() + i;
        if input[i] == out[o] && input[i] != 1 {
            s[o] = st[i];
        }
    }
    s
}

/// The CPU backend running kernel struct `k` on `inputs` (its reference for the kernel of the
/// same op), outputs of dtypes `outs` widened to f64.
pub fn cpu_run<K: CpuKernel>(k: &K, inputs: Vec<CpuStorage>, outs: &[DType]) -> Vec<Vec<f64>> {
    let refs: Vec<&CpuStorage> = inputs.iter().collect();
    cpu::run(k, &refs, outs)
        .unwrap()
        .iter()
        .map(|s| s.to_vec::<f64>())
        .collect()
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

/// Panics unless `got` and `want` are bit-identical, except that with `any_nan` a NaN may meet
/// any NaN (casts and arithmetic may canonicalise NaNs); the message counts the differing
/// elements and shows the first few with their bit patterns.
#[track_caller]
pub fn same_bits<T: KernelFloat>(what: &str, got: &[T], want: &[T], any_nan: bool) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let gb: &[T::Bits] = bytemuck::cast_slice(got);
    let wb: &[T::Bits] = bytemuck::cast_slice(want);
    let mut bad = Vec::new();
    for i in 0..got.len() {
        let ok = gb[i] == wb[i] || (any_nan && got[i].is_nan() && want[i].is_nan());
        if !ok {
            bad.push(format!(
                "[{i}] got {:?} ({:#x}), cpu {:?} ({:#x})",
                got[i], gb[i], want[i], wb[i]
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} elements differ: {}",
        bad.len(),
        got.len(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join("; ")
    );
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

// -----------------------------------------------------------------------------------------------
// The optimiser kernels (cuda/sgd.cu, cuda/adam.cu), launched as their per-tensor launchers do:
// the kernel-level tests (tests/cuda_emu_optim_kernels.rs) and the per-tensor optimiser path
// (tests/cuda_emu_optimizers_per_tensor.rs) make the same launches.

/// Tolerances `(atol, rtol)` of the optimiser kernels against the CPU. The emulator computes in
/// the same precision, in the same order and without FMA contraction as the CPU backend, so
/// results agree to the last bit in practice; the margins only allow the few-ulp differences the
/// kernels' comments permit (nvcc FMAs): f64 1e-12, f32 ~1e-6 (a few ulps, accumulated over a few
/// steps), f16 one storage ulp (2^-10 relative ≈ 1e-3), since an f32 difference in the last bit
/// can flip the f16 rounding.
pub fn optim_tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-12, 1e-12),
        DType::F32 => (1e-6, 2e-6),
        DType::F16 => (1e-4, 1.5e-3),
    }
}

/// Runs an element-wise optimiser kernel (`sgd_step_*`, `adam_step_*`) on `grid` as
/// `SgdStep::launch` / `AdamStep::launch` do: `call` builds its `kernel_abi` call from n and the
/// addresses of the `inputs` and of `outputs` n-element NaN buffers (nothing is launched for
/// n = 0; the call must be a `T` kernel); checks every buffer's guards and returns the outputs as
/// f64. Values are converted to T (exact: they were produced in T).
pub fn emu_optim_step<T: KernelFloat>(
    grid: [u32; 3],
    inputs: &[&[f64]],
    outputs: usize,
    call: impl FnOnce(usize, &[usize], &[usize]) -> KernelCall<usize>,
) -> Vec<Vec<f64>> {
    let n = inputs[0].len();
    let mut ins: Vec<Buf<T>> = inputs.iter().map(|v| Buf::from_f64s(v)).collect();
    let mut outs: Vec<Buf<T>> = (0..outputs).map(|_| Buf::<T>::nan(n)).collect();
    let in_ptrs: Vec<usize> = ins.iter_mut().map(|b| b.ptr()).collect();
    let out_ptrs: Vec<usize> = outs.iter_mut().map(|b| b.ptr()).collect();
    let call = call(n, &in_ptrs, &out_ptrs);
    assert!(
        call.name.ends_with(T::SUF),
        "{} launched on {} buffers",
        call.name,
        T::SUF
    );
    if n > 0 {
        run_call(&call, grid);
    }
    for b in ins.iter().chain(&outs) {
        b.check_guards(&call.name).unwrap();
    }
    outs.iter().map(|b| to_f64s(&b.to_vec())).collect()
}

/// Emulated `all_finite_<T>` + `all_finite_finish` (as `AllFinite::launch`: the first kernel is
/// skipped for n = 0; the finish on `kernel_abi`'s one-block plan) with the first on `grid`; checks
/// every buffer's guards and returns the f32 answer and the raw flag.
pub fn emu_all_finite<T: KernelFloat>(x: &[T], grid: [u32; 3]) -> (f32, u32) {
    let n = x.len();
    let mut xb = Buf::from_slice(x);
    let mut flag = Buf::from_slice(&[0u32]);
    if n > 0 {
        run_call(&sgd::all_finite(T::DTYPE, n, xb.ptr(), flag.ptr()), grid);
    }
    let mut out = Buf::filled(1, f32::NAN);
    run_call_plan(
        &sgd::all_finite_finish(flag.ptr(), out.ptr()),
        all_finite_finish_launch(),
    );
    xb.check_guards("x").unwrap();
    flag.check_guards("flag").unwrap();
    out.check_guards("out").unwrap();
    (out.to_vec()[0], flag.to_vec()[0])
}

/// Panics unless every name in `covered` is a kernel of the emulator's table, and every kernel whose
/// name starts with one of `prefixes` is in `covered`: a test file's claim to launch a whole family.
#[track_caller]
pub fn assert_family_covered(covered: &[&str], prefixes: &[&str]) {
    let names = super::kernel_names();
    for k in covered {
        assert!(
            names.iter().any(|n| n == k),
            "the emulator has no kernel {k}"
        );
    }
    for n in &names {
        let ours = prefixes.iter().any(|p| n.starts_with(p));
        assert!(
            !ours || covered.contains(&n.as_str()),
            "kernel {n} is not covered by this file"
        );
    }
}
