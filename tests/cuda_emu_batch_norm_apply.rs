#![cfg(feature = "cuda-emu")]
//! The row-major apply kernels of cuda/batch_norm.cu (`bn_fwd_apply_rows_<T>_<TO>`,
//! `bn_bwd_apply_rows_<T>_<TO>`: hw = 1, V = 16 bytes / sizeof(T) consecutive channels of one row
//! per item), run in the CUDA emulator (`--features cuda-emu`), and `kernel_abi`'s `ApplyPlan`,
//! which picks them. Three checks:
//! - against the CPU twin: the launcher's whole sequence (tests/cuda_emu_batch_norm_common/:
//!   `ReducePlan`'s row reductions, the finalize kernels, `ApplyPlan`'s apply kernels) against the
//!   CPU kernels `BatchNormForward` / `BatchNormBackward` with hw = 1 on the same inputs (the
//!   backward's CPU twin reads the emulated forward's y and saved statistics, as the emulated
//!   backward does), for f64, f32, f16 and f32-in/f16-out, plain / ReLU / residual + ReLU,
//!   training and eval;
//! - bit for bit against the scalar `_s` apply kernels on the same inputs and coefficients (the
//!   emulator is built with -ffp-contract=off, so the same per-element operations give the same
//!   bits), with NaN, ±inf and ±0 among the inputs, every relu / residual / training / dresidual
//!   flag, on the launcher's grid and on one block; outputs start as a NaN with a payload no
//!   arithmetic here produces, so an element the kernel skips shows;
//! - `ApplyPlan`'s pick: the row kernels exactly when hw = 1, V | C and every big buffer is 16-byte
//!   aligned, else the `_v` / `_s` pick (C = 37, misaligned buffers).
//!
//! Shapes: C ∈ {8, 16, 64, 256, 264} (one item per row up to 132), tiny row counts (1, 2, 3, 5) and
//! a row count per dtype whose item count exceeds the launcher's grid (4 SMs × 32 blocks × 256
//! threads), so the grid-stride loop wraps, with a channel step (step·V mod C) that is nonzero for
//! C = 264.

mod cuda_emu_batch_norm_common;

use cuda_emu_batch_norm_common::{emu, inputs, Kind, Precision, F16, F32, F64};
use engine::backend::cpu::CpuStorage;
use engine::backend::cuda_emu::test_support::{
    assert_close, assert_family_covered, cpu_run, grid_1d, run_call, same_bits, seeded_randn,
    to_elems, Grid, KernelFloat, Launch1d, SM_COUNT, THREADS,
};
use engine::backend::cuda_emu::Buf;
use engine::backend::kernel_abi::batch_norm::{vec_width, Apply, ApplyPlan, BwdApplyBufs};
use engine::ops::batch_norm::{BatchNormBackward, BatchNormForward};
use engine::DType;
use half::f16;

/// The most items one pass of the launcher's grid covers on the pretend GPU: the grid cap ×
/// [`THREADS`]; more items make the grid-stride loop wrap.
fn grid_items() -> usize {
    Launch1d::per_item(usize::MAX / 2, SM_COUNT).blocks as usize * THREADS as usize
}

/// Rows of `c` channels whose row-kernel items (rows·c/V, V = [`vec_width`] of `dt`) exceed
/// [`grid_items`]: the grid-stride loop wraps, some threads more often than others.
fn wrapping_rows(c: usize, dt: DType) -> usize {
    grid_items().div_ceil(c / vec_width(dt)) + 3
}

/// The `(rows, c)` shapes of a dtype: tiny ones, middling ones, and [`wrapping_rows`] of 264
/// channels (a channel step that is no multiple of C) and of 16.
fn shapes(dt: DType) -> Vec<(usize, usize)> {
    vec![
        (1, 8),
        (2, 8),
        (3, 16),
        (2, 264),
        (37, 64),
        (129, 256),
        (5, 264),
        (wrapping_rows(264, dt), 264),
        (wrapping_rows(16, dt), 16),
    ]
}

/// The CPU storage of `values` in T.
fn storage<T: KernelFloat>(values: &[f64]) -> CpuStorage {
    CpuStorage::from_vec(to_elems::<T>(values))
}

// -----------------------------------------------------------------------------------------------
// Against the CPU twin

/// Shape `(rows, c)` through the launcher's sequence and through the CPU kernels with hw = 1,
/// every kind, training and eval; `vector` = "every buffer 16-byte aligned"; `want` is the apply
/// family `ApplyPlan` must pick.
fn twin_case<T: KernelFloat, A: KernelFloat, TO: KernelFloat>(
    (rows, c): (usize, usize),
    prec: &Precision,
    vector: bool,
    want: Apply,
    seed: u64,
) {
    let Precision {
        x_dt,
        p_dt,
        tol,
        sum_tol,
    } = *prec;
    let inp = inputs((rows, c, 1), x_dt, p_dt, seed);
    for training in [true, false] {
        for kind in [Kind::Plain, Kind::Relu, Kind::AddRelu] {
            let (relu, add) = (kind != Kind::Plain, kind == Kind::AddRelu);
            let what = format!(
                "{rows}×{c} {}→{} {kind:?} training={training} vector={vector}",
                T::SUF,
                TO::SUF
            );
            let got = emu::<T, A, TO>(&inp, kind, training, vector, None);
            assert_eq!(got.apply.kind, want, "{what}: the apply family");

            let fwd = BatchNormForward {
                n: rows,
                c,
                hw: 1,
                training,
                eps: 1e-5,
                momentum: 0.1,
                relu,
                add_residual: add,
            };
            let mut ins = vec![
                storage::<T>(&inp.x),
                storage::<T>(&inp.gamma),
                storage::<T>(&inp.beta),
                storage::<T>(&inp.rm),
                storage::<T>(&inp.rv),
            ];
            if add {
                ins.push(storage::<T>(&inp.res));
            }
            let (a, to) = (A::DTYPE, TO::DTYPE);
            let want_f = cpu_run(&fwd, ins, &[to, a, a, a, a]);
            assert_close(&format!("{what}: y"), &got.y, &want_f[0], tol);
            assert_close(
                &format!("{what}: save_mean"),
                &got.save_mean,
                &want_f[1],
                tol,
            );
            assert_close(
                &format!("{what}: save_invstd"),
                &got.save_invstd,
                &want_f[2],
                tol,
            );
            assert_close(&format!("{what}: running mean"), &got.rm, &want_f[3], tol);
            assert_close(&format!("{what}: running var"), &got.rv, &want_f[4], tol);

            // The backward's inputs as the emulated backward read them: the forward's y in T, its
            // saved statistics in A (as the op keeps them).
            let bwd = BatchNormBackward {
                n: rows,
                c,
                hw: 1,
                training,
                relu,
                add_residual: add,
            };
            let ins = vec![
                storage::<T>(&inp.x),
                storage::<T>(&inp.gamma),
                storage::<A>(&got.save_mean),
                storage::<A>(&got.save_invstd),
                storage::<T>(&got.y),
                storage::<T>(&inp.w),
            ];
            let outs: &[DType] = if add { &[to, a, a, to] } else { &[to, a, a] };
            let want_b = cpu_run(&bwd, ins, outs);
            assert_close(&format!("{what}: dx"), &got.dx, &want_b[0], tol);
            assert_close(&format!("{what}: dγ"), &got.dgamma, &want_b[1], sum_tol);
            assert_close(&format!("{what}: dβ"), &got.dbeta, &want_b[2], sum_tol);
            if add {
                assert_close(&format!("{what}: dres"), &got.dres, &want_b[3], tol);
            } else {
                assert!(got.dres.is_empty());
            }
        }
    }
}

/// [`twin_case`] on every shape of [`shapes`] with at least two rows (one row leaves the running
/// variance's unbiasing undefined), all picking the row kernels.
fn twin_cases<T: KernelFloat, A: KernelFloat, TO: KernelFloat>(prec: &Precision, seed: u64) {
    let rows_kernels = Apply::Rows {
        v: vec_width(T::DTYPE),
    };
    for (i, dims) in shapes(T::DTYPE).into_iter().enumerate() {
        if dims.0 >= 2 {
            twin_case::<T, A, TO>(dims, prec, true, rows_kernels, seed + i as u64);
        }
    }
}

#[test]
fn rows_apply_f64_matches_the_cpu_twin() {
    twin_cases::<f64, f64, f64>(&F64, 300);
}

#[test]
fn rows_apply_f32_matches_the_cpu_twin() {
    twin_cases::<f32, f32, f32>(&F32, 320);
}

#[test]
fn rows_apply_f16_matches_the_cpu_twin() {
    twin_cases::<f16, f32, f16>(&F16, 340);
}

#[test]
fn rows_apply_f32_in_f16_out_matches_the_cpu_twin() {
    // f16 activations with f32 parameters: x, residual, y, dy widened to f32, y, dx and dres
    // rounded once to f16 by the apply kernels.
    let mixed = Precision {
        p_dt: DType::F32,
        ..F16
    };
    twin_cases::<f32, f32, f16>(&mixed, 360);
}

// -----------------------------------------------------------------------------------------------
// Bit for bit against the scalar kernels

/// A quiet NaN of `T` with a payload that neither the inputs nor any arithmetic here produce: the
/// outputs' starting value, so a skipped element differs in bits from every computed one.
fn poison<T: KernelFloat>() -> T {
    let bytes = match T::DTYPE {
        DType::F16 => 0x7e5au16.to_ne_bytes().to_vec(),
        DType::F32 => 0x7fc0_5a5au32.to_ne_bytes().to_vec(),
        DType::F64 => 0x7ff8_0000_5a5a_5a5au64.to_ne_bytes().to_vec(),
    };
    bytemuck::pod_read_unaligned(&bytes)
}

/// `len` seeded values, with `special(p)` replacing element p where it says so.
fn values(len: usize, seed: u64, special: impl Fn(usize) -> Option<f64>) -> Vec<f64> {
    seeded_randn(len, seed)
        .into_iter()
        .enumerate()
        .map(|(p, v)| special(p).unwrap_or(v))
        .collect()
}

/// An output buffer of `len` [`poison`] values.
fn poisoned<T: KernelFloat>(len: usize) -> Buf<T> {
    Buf::filled(len, poison::<T>())
}

/// Panics if any element of `b` (checked guards) still holds the [`poison`] bits.
#[track_caller]
fn all_written<T: KernelFloat>(what: &str, b: &Buf<T>) -> Vec<T> {
    let v = b.checked(what);
    let p: T::Bits = bytemuck::cast(poison::<T>());
    let bits: &[T::Bits] = bytemuck::cast_slice(&v);
    if let Some(i) = bits.iter().position(|&b| b == p) {
        panic!("{what}: element {i} of {} never written", v.len());
    }
    v
}

/// The row kernels (the pick of `ApplyPlan` with aligned buffers) against the `_s` kernels (its
/// pick with misaligned ones) on `rows` × `c` of T → TO, every flag combination; the row kernels on
/// `grid`, the scalar ones on the launcher's grid.
fn same_as_scalar<T: KernelFloat, TO: KernelFloat>(
    (rows, c): (usize, usize),
    grid: Grid,
    seed: u64,
) {
    let (dt, odt, total) = (T::DTYPE, TO::DTYPE, rows * c);
    let rows_plan = ApplyPlan::new(rows, c, 1, dt, true);
    let scalar_plan = ApplyPlan::new(rows, c, 1, dt, false);
    assert_eq!(rows_plan.kind, Apply::Rows { v: vec_width(dt) });
    assert_eq!(rows_plan.items * vec_width(dt), total);
    assert_eq!(scalar_plan.kind, Apply::Planes { v: 1, vs: "s" });
    assert_eq!(scalar_plan.items, total);
    let what = format!("{rows}×{c} {}→{} {grid:?}", T::SUF, TO::SUF);

    // NaN and ±inf in x, −inf in the residual, NaN in dy, ±0 and NaN in y (the ReLU mask reads
    // y <= 0: true for −0, false for NaN), the rest N(0, 1) (about half of y masked).
    let x = values(total, seed, |p| match p % 97 {
        5 => Some(f64::NAN),
        11 => Some(f64::INFINITY),
        13 => Some(f64::NEG_INFINITY),
        _ => None,
    });
    let res = values(total, seed + 1, |p| {
        (p % 83 == 2).then_some(f64::NEG_INFINITY)
    });
    let y = values(total, seed + 2, |p| match p % 7 {
        0 => Some(0.0),
        1 => Some(-0.0),
        _ if p % 101 == 9 => Some(f64::NAN),
        _ => None,
    });
    let dy = values(total, seed + 3, |p| (p % 89 == 3).then_some(f64::NAN));
    let (mut x, mut res) = (Buf::<T>::from_f64s(&x), Buf::<T>::from_f64s(&res));
    let (mut y, mut dy) = (Buf::<T>::from_f64s(&y), Buf::<T>::from_f64s(&dy));
    // Per channel: (scale, shift) forward; (mean, invstd > 0, k, Σg/M, Σg·x̂/M) backward.
    let mut fwd_coef = Buf::<T::Acc>::from_f64s(&seeded_randn(2 * c, seed + 4));
    let bwd_coef: Vec<f64> = seeded_randn(5 * c, seed + 5)
        .iter()
        .enumerate()
        .map(|(i, v)| match i % 5 {
            1 => v.abs() + 0.1,
            3 | 4 => 0.1 * v,
            _ => *v,
        })
        .collect();
    let mut bwd_coef = Buf::<T::Acc>::from_f64s(&bwd_coef);

    for relu in [false, true] {
        for has_res in [false, true] {
            let case = format!("{what} forward relu={relu} res={has_res}");
            let mut outs = [poisoned::<TO>(total), poisoned::<TO>(total)];
            for (plan, out, g) in [
                (&rows_plan, 0, grid.dims(rows_plan.items)),
                (&scalar_plan, 1, grid_1d(total)),
            ] {
                let call = plan.fwd_apply(
                    dt,
                    odt,
                    relu,
                    x.ptr(),
                    has_res.then(|| res.ptr()),
                    fwd_coef.ptr(),
                    outs[out].ptr(),
                );
                run_call(&call, g);
            }
            let got = all_written(&format!("{case}: rows y"), &outs[0]);
            let want = all_written(&format!("{case}: scalar y"), &outs[1]);
            same_bits(
                &format!("{case}: y (got: rows, cpu: _s)"),
                &got,
                &want,
                false,
            );
        }
    }

    for training in [false, true] {
        for relu in [false, true] {
            for want_dres in [false, true] {
                let case =
                    format!("{what} backward training={training} relu={relu} dres={want_dres}");
                let dres_len = if want_dres { total } else { 0 };
                let mut dx = [poisoned::<TO>(total), poisoned::<TO>(total)];
                // Without dresidual a zero-length buffer: its guards catch any write.
                let mut dres = [poisoned::<TO>(dres_len), poisoned::<TO>(dres_len)];
                for (plan, out, g) in [
                    (&rows_plan, 0, grid.dims(rows_plan.items)),
                    (&scalar_plan, 1, grid_1d(total)),
                ] {
                    let bufs = BwdApplyBufs {
                        x: x.ptr(),
                        y: y.ptr(),
                        dy: dy.ptr(),
                        coef: bwd_coef.ptr(),
                        dx: dx[out].ptr(),
                        dres: dres[out].ptr(),
                    };
                    run_call(&plan.bwd_apply(dt, odt, training, relu, want_dres, bufs), g);
                }
                let got = all_written(&format!("{case}: rows dx"), &dx[0]);
                let want = all_written(&format!("{case}: scalar dx"), &dx[1]);
                same_bits(
                    &format!("{case}: dx (got: rows, cpu: _s)"),
                    &got,
                    &want,
                    false,
                );
                let got = all_written(&format!("{case}: rows dres"), &dres[0]);
                let want = all_written(&format!("{case}: scalar dres"), &dres[1]);
                same_bits(
                    &format!("{case}: dres (got: rows, cpu: _s)"),
                    &got,
                    &want,
                    false,
                );
            }
        }
    }
    for (b, w) in [(&x, "x"), (&res, "res"), (&y, "y"), (&dy, "dy")] {
        b.check_guards(w).unwrap();
    }
    fwd_coef.check_guards("forward coef").unwrap();
    bwd_coef.check_guards("backward coef").unwrap();
}

/// [`same_as_scalar`] on every shape of [`shapes`], on the launcher's grid and on one block.
fn same_as_scalar_cases<T: KernelFloat, TO: KernelFloat>(seed: u64) {
    for (i, dims) in shapes(T::DTYPE).into_iter().enumerate() {
        for grid in [Grid::Launcher, Grid::One] {
            same_as_scalar::<T, TO>(dims, grid, seed + i as u64);
        }
    }
}

#[test]
fn rows_apply_f64_matches_the_scalar_kernels_bit_for_bit() {
    same_as_scalar_cases::<f64, f64>(400);
}

#[test]
fn rows_apply_f32_matches_the_scalar_kernels_bit_for_bit() {
    same_as_scalar_cases::<f32, f32>(420);
}

#[test]
fn rows_apply_f16_matches_the_scalar_kernels_bit_for_bit() {
    same_as_scalar_cases::<f16, f16>(440);
}

#[test]
fn rows_apply_f32_in_f16_out_matches_the_scalar_kernels_bit_for_bit() {
    same_as_scalar_cases::<f32, f16>(460);
}

#[test]
fn the_wrapping_shapes_wrap() {
    for dt in [DType::F16, DType::F32, DType::F64] {
        for c in [16, 264] {
            let plan = ApplyPlan::new(wrapping_rows(c, dt), c, 1, dt, true);
            assert!(plan.items > grid_items(), "{dt:?} C = {c}: {plan:?}");
            assert_eq!(
                grid_1d(plan.items)[0] as usize * THREADS as usize,
                grid_items()
            );
        }
    }
    // The channel step of the launcher's grid, (grid_items · V) mod C, for C = 264: nonzero.
    assert_ne!(grid_items() * vec_width(DType::F16) % 264, 0);
}

// -----------------------------------------------------------------------------------------------
// The pick

#[test]
fn apply_plan_picks_the_row_kernels_only_for_hw_1_with_v_dividing_c_and_aligned_buffers() {
    let none = || BwdApplyBufs {
        x: 0usize,
        y: 0,
        dy: 0,
        coef: 0,
        dx: 0,
        dres: 0,
    };
    // hw = 1, V | C, aligned: the row kernels, rows·C/V items.
    let p = ApplyPlan::new(5, 64, 1, DType::F16, true);
    assert_eq!(p.kind, Apply::Rows { v: 8 });
    assert_eq!(p.items, 5 * 64 / 8);
    let call = p.fwd_apply(DType::F16, DType::F16, true, 0usize, None, 0, 0);
    assert_eq!(call.name, "bn_fwd_apply_rows_f16_f16");
    assert_eq!(call.args.len(), 8);
    let call = p.bwd_apply(DType::F16, DType::F16, true, true, false, none());
    assert_eq!(call.name, "bn_bwd_apply_rows_f16_f16");
    assert_eq!(call.args.len(), 11);
    let p = ApplyPlan::new(3, 12, 1, DType::F32, true);
    assert_eq!(p.kind, Apply::Rows { v: 4 });
    let call = p.fwd_apply(DType::F32, DType::F16, false, 0usize, Some(0), 0, 0);
    assert_eq!(call.name, "bn_fwd_apply_rows_f32_f16");
    assert_eq!(
        ApplyPlan::new(3, 6, 1, DType::F64, true).kind,
        Apply::Rows { v: 2 }
    );

    // V ∤ C (37; 12 for f16, 6 for f32; 7 for f64): the scalar kernels, one item per element.
    for (c, dt) in [
        (37, DType::F16),
        (37, DType::F32),
        (37, DType::F64),
        (12, DType::F16),
        (6, DType::F32),
        (7, DType::F64),
    ] {
        let p = ApplyPlan::new(9, c, 1, dt, true);
        assert_eq!(p.kind, Apply::Planes { v: 1, vs: "s" }, "{dt:?} C = {c}");
        assert_eq!(p.items, 9 * c);
    }
    let p = ApplyPlan::new(9, 37, 1, DType::F16, true);
    let call = p.bwd_apply(DType::F16, DType::F16, false, false, false, none());
    assert_eq!(call.name, "bn_bwd_apply_f16_f16_s");
    // A misaligned buffer: the scalar kernels, even where V | C.
    let p = ApplyPlan::new(9, 64, 1, DType::F32, false);
    assert_eq!(p.kind, Apply::Planes { v: 1, vs: "s" });
    let call = p.fwd_apply(DType::F32, DType::F32, false, 0usize, None, 0, 0);
    assert_eq!(call.name, "bn_fwd_apply_f32_f32_s");
    // hw > 1: the per-plane pick as before (`_v` when V | hw and aligned, else `_s`).
    let p = ApplyPlan::new(4, 6, 64, DType::F32, true);
    assert_eq!(p.kind, Apply::Planes { v: 4, vs: "v" });
    assert_eq!(p.items, 4 * 6 * 64 / 4);
    assert_eq!(
        p.fwd_apply(DType::F32, DType::F32, false, 0usize, None, 0, 0)
            .name,
        "bn_fwd_apply_f32_f32_v"
    );
    let p = ApplyPlan::new(4, 64, 3, DType::F32, true);
    assert_eq!(p.kind, Apply::Planes { v: 1, vs: "s" });
    let p = ApplyPlan::new(4, 64, 8, DType::F16, false);
    assert_eq!(p.kind, Apply::Planes { v: 1, vs: "s" });
}

/// The fallbacks run and match the CPU twin too: C = 37 with aligned buffers, C = 64 with a
/// misaligned one (the emulated launch sequence with `vector` = false), both on the `_s` kernels.
#[test]
fn the_scalar_fallbacks_match_the_cpu_twin() {
    let scalar = Apply::Planes { v: 1, vs: "s" };
    twin_case::<f16, f32, f16>((41, 37), &F16, true, scalar, 500);
    twin_case::<f32, f32, f32>((41, 37), &F32, true, scalar, 501);
    twin_case::<f64, f64, f64>((41, 37), &F64, true, scalar, 502);
    twin_case::<f16, f32, f16>((41, 64), &F16, false, scalar, 503);
    twin_case::<f32, f32, f32>((41, 64), &F32, false, scalar, 504);
}

/// Every row apply kernel is launched by this file (one instantiation per (T, TO) pair of the
/// per-plane apply kernels).
#[test]
fn every_rows_apply_kernel_is_covered() {
    let covered = [
        "bn_fwd_apply_rows_f16_f16",
        "bn_fwd_apply_rows_f32_f32",
        "bn_fwd_apply_rows_f32_f16",
        "bn_fwd_apply_rows_f64_f64",
        "bn_bwd_apply_rows_f16_f16",
        "bn_bwd_apply_rows_f32_f32",
        "bn_bwd_apply_rows_f32_f16",
        "bn_bwd_apply_rows_f64_f64",
    ];
    assert_family_covered(&covered, &["bn_fwd_apply_rows_", "bn_bwd_apply_rows_"]);
}
