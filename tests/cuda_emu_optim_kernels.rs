#![cfg(feature = "cuda-emu")]
//! The element-wise optimiser kernels of cuda/sgd.cu and cuda/adam.cu (`sgd_step_*`, `adam_step_*`,
//! and `all_finite_*` + `all_finite_finish`), run in the CUDA emulator (`--features cuda-emu`) on a
//! pretend GPU of 4 SMs, each against the CPU backend running the same kernel struct (`SgdStep`,
//! `AdamStep`, `AllFinite`) on the same rounded inputs, in f64, f32 and f16. The optimisers built on
//! them are tested in tests/cuda_emu_optimizers_per_tensor.rs, the fused `multi_tensor_*` kernels in
//! tests/cuda_emu_optimizers_fused.rs.
//!
//! Launches are src/backend/cuda/{sgd,adam}.rs's: the calls (kernel names and argument lists) of
//! `engine::backend::kernel_abi::{sgd, adam}` as the launchers build them, on `g.grid(n)` and the
//! one-block `all_finite_finish` plan of `kernel_abi::sgd`, and also on a 1-block grid (and a 3-block
//! one for the step kernels) so the grid-stride loops wrap.
//!
//! Invariants checked:
//! - `sgd_step_*` (first step or not, Nesterov on and off, with and without weight decay) and
//!   `adam_step_*` (steps t = 1, 3 and 50, two beta1s, with and without weight decay) match the CPU
//!   within a few ulps (`optim_tol`), on sizes from 1 to 2049 elements. The first SGD step gets a NaN
//!   momentum buffer: the kernel must not read it.
//! - `all_finite_*` + `all_finite_finish` give the CPU's answer (1 or 0, as f32) and set the flag
//!   exactly when the CPU's `all_finite` finds a NaN or ±inf (NaN first, +inf in the middle, -inf
//!   last; the type's largest finite values among finite ones; n = 0 included).
//! - Inputs are seeded random values (never all zeros); every output starts as NaN; every buffer's
//!   guard zones are checked after each launch.
//! - Every kernel of the `sgd_step_`, `adam_step_` and `all_finite` families is launched here.

use engine::backend::cpu::CpuStorage;
use engine::backend::cuda_emu::test_support::{
    assert_close, assert_family_covered, cpu_run, emu_all_finite, emu_optim_step, grid_1d,
    optim_tol, seeded_randn, to_elems, to_f64s, KernelFloat,
};
use engine::backend::kernel_abi::{adam, sgd};
use engine::optim::adam::AdamStep;
use engine::optim::sgd::{all_finite, AllFinite, SgdStep};
use engine::{DType, Device, Tensor};
use half::f16;

/// Seeded N(0, std) values (`Tensor::randn`'s, which are std·z for the same z).
fn randn(n: usize, std: f64, seed: u64) -> Vec<f64> {
    seeded_randn(n, seed).into_iter().map(|z| z * std).collect()
}

#[track_caller]
fn check(what: &str, got: &[f64], want: &[f64], dtype: DType) {
    assert_close(what, got, want, optim_tol(dtype));
}

/// The launch grids a case runs on: the launcher's, one block, three blocks.
fn grids(n: usize) -> [[u32; 3]; 3] {
    [grid_1d(n), [1, 1, 1], [3, 1, 1]]
}

/// Emulated `sgd_step_<T>` (launched as `SgdStep::launch` does) against the CPU's `SgdStep`.
fn sgd_step_case<T: KernelFloat>(n: usize, first: bool, nesterov: bool, wd: f64, seed: u64) {
    let scale = 128.0;
    let k = SgdStep {
        lr: 0.05,
        momentum: 0.9,
        nesterov,
        weight_decay: wd,
        inv_scale: 1.0 / scale,
        first_step: first,
    };
    let p: Vec<T> = to_elems(&randn(n, 1.0, seed));
    let g: Vec<T> = to_elems(&randn(n, scale, seed + 1));
    // The first step must not read the buffer: give it NaN (the CPU ignores it too).
    let buf: Vec<T> = if first {
        vec![T::from_f64(f64::NAN); n]
    } else {
        to_elems(&randn(n, 0.5, seed + 2))
    };
    let want = cpu_run(
        &k,
        vec![
            CpuStorage::from_vec(p.clone()),
            CpuStorage::from_vec(g.clone()),
            CpuStorage::from_vec(buf.clone()),
        ],
        &[T::DTYPE, T::DTYPE],
    );
    let ins = [to_f64s(&p), to_f64s(&g), to_f64s(&buf)];
    let ins: Vec<&[f64]> = ins.iter().map(Vec::as_slice).collect();
    for grid in grids(n) {
        let what = format!(
            "sgd_step_{} n={n} first={first} nesterov={nesterov} wd={wd} grid={}",
            T::SUF,
            grid[0]
        );
        let out = emu_optim_step::<T>(grid, &ins, 2, |n, i, o| {
            sgd::sgd_step(T::DTYPE, n, &k, i[0], i[1], i[2], o[0], o[1])
        });
        check(&format!("{what}: p'"), &out[0], &want[0], T::DTYPE);
        check(&format!("{what}: buf'"), &out[1], &want[1], T::DTYPE);
    }
}

#[test]
fn sgd_step_matches_the_cpu() {
    fn all<T: KernelFloat>(seed: u64) {
        for (i, &n) in [1usize, 37, 1000, 2049].iter().enumerate() {
            for first in [true, false] {
                for nesterov in [false, true] {
                    let wd = if i % 2 == 0 { 1e-2 } else { 0.0 };
                    sgd_step_case::<T>(n, first, nesterov, wd, seed + 10 * i as u64);
                }
            }
        }
    }
    all::<f64>(100);
    all::<f32>(200);
    all::<f16>(300);
}

/// Emulated `adam_step_<T>` against the CPU's `AdamStep`, at step `t`.
fn adam_step_case<T: KernelFloat>(n: usize, t: i32, beta1: f64, wd: f64, seed: u64) {
    let (beta2, scale) = (0.999, 64.0);
    let k = AdamStep {
        lr: 2e-3,
        beta1,
        beta2,
        eps: 1e-8,
        weight_decay: wd,
        inv_scale: 1.0 / scale,
        bias1: 1.0 - beta1.powi(t),
        bias2: 1.0 - beta2.powi(t),
    };
    let p: Vec<T> = to_elems(&randn(n, 1.0, seed));
    let g: Vec<T> = to_elems(&randn(n, scale, seed + 1));
    let m: Vec<T> = to_elems(&randn(n, 0.3, seed + 2));
    // The second moment is non-negative (a running mean of squares).
    let v: Vec<T> = to_elems(
        &randn(n, 0.5, seed + 3)
            .iter()
            .map(|x| x * x + 1e-3)
            .collect::<Vec<_>>(),
    );
    let want = cpu_run(
        &k,
        vec![
            CpuStorage::from_vec(p.clone()),
            CpuStorage::from_vec(g.clone()),
            CpuStorage::from_vec(m.clone()),
            CpuStorage::from_vec(v.clone()),
        ],
        &[T::DTYPE; 3],
    );
    let ins = [to_f64s(&p), to_f64s(&g), to_f64s(&m), to_f64s(&v)];
    let ins: Vec<&[f64]> = ins.iter().map(Vec::as_slice).collect();
    for grid in grids(n) {
        let what = format!(
            "adam_step_{} n={n} t={t} beta1={beta1} wd={wd} grid={}",
            T::SUF,
            grid[0]
        );
        let out = emu_optim_step::<T>(grid, &ins, 3, |n, i, o| {
            adam::adam_step(T::DTYPE, n, &k, i[0], i[1], i[2], i[3], o[0], o[1], o[2])
        });
        check(&format!("{what}: p'"), &out[0], &want[0], T::DTYPE);
        check(&format!("{what}: m'"), &out[1], &want[1], T::DTYPE);
        check(&format!("{what}: v'"), &out[2], &want[2], T::DTYPE);
    }
}

#[test]
fn adam_step_matches_the_cpu() {
    fn all<T: KernelFloat>(seed: u64) {
        let cases = [
            (1usize, 1, 0.9, 0.0),
            (37, 1, 0.5, 1e-2),
            (1000, 3, 0.9, 1e-2),
            (2049, 50, 0.5, 0.0),
        ];
        for (i, &(n, t, beta1, wd)) in cases.iter().enumerate() {
            adam_step_case::<T>(n, t, beta1, wd, seed + 10 * i as u64);
        }
    }
    all::<f64>(400);
    all::<f32>(500);
    all::<f16>(600);
}

#[test]
fn all_finite_matches_the_cpu() {
    fn all<T: KernelFloat>(seed: u64, big: f64) {
        for (i, &n) in [0usize, 1, 255, 257, 3000].iter().enumerate() {
            let mut base = randn(n, 10.0, seed + i as u64);
            if n > 2 {
                // The largest finite values of the type are finite.
                base[1] = big;
                base[2] = -big;
            }
            let mut cases = vec![("all finite", base.clone())];
            if n > 0 {
                for (pos, bad, what) in [
                    (0, f64::NAN, "NaN first"),
                    (n / 2, f64::INFINITY, "+inf in the middle"),
                    (n - 1, f64::NEG_INFINITY, "-inf last"),
                ] {
                    let mut v = base.clone();
                    v[pos] = bad;
                    cases.push((what, v));
                }
            }
            for (what, v) in cases {
                let x: Vec<T> = to_elems(&v);
                let cpu =
                    all_finite(&Tensor::from_vec(x.clone(), [n], Device::Cpu).unwrap()).unwrap();
                // The CPU kernel struct through the backend's dispatch, too (the f32 answer).
                let cpu_val = cpu_run(
                    &AllFinite,
                    vec![CpuStorage::from_vec(x.clone())],
                    &[DType::F32],
                )[0][0];
                assert_eq!(cpu_val, if cpu { 1.0 } else { 0.0 });
                // The launcher's grid and one block (many launches here: no 3-block grid).
                for grid in &grids(n)[..2] {
                    let (got, flag) = emu_all_finite(&x, *grid);
                    assert_eq!(
                        (got, flag),
                        (cpu_val as f32, (!cpu) as u32),
                        "all_finite_{} n={n} {what} grid={}: kernel (answer, flag), CPU says finite={cpu}",
                        T::SUF,
                        grid[0]
                    );
                }
            }
        }
    }
    all::<f64>(700, f64::MAX);
    all::<f32>(710, f32::MAX as f64);
    all::<f16>(720, 65504.0);
}

/// Every kernel of the `sgd_step_`, `all_finite` and `adam_step_` families is exercised above (the
/// `multi_tensor_` family is tests/cuda_emu_optimizers_fused.rs's).
#[test]
fn every_optimiser_kernel_is_covered() {
    let covered = [
        "sgd_step_f16",
        "sgd_step_f32",
        "sgd_step_f64",
        "all_finite_f16",
        "all_finite_f32",
        "all_finite_f64",
        "all_finite_finish",
        "adam_step_f16",
        "adam_step_f32",
        "adam_step_f64",
    ];
    assert_family_covered(&covered, &["sgd_step_", "all_finite", "adam_step_"]);
}
