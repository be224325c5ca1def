#![cfg(feature = "cuda-emu")]
//! The elementwise kernels of cuda/elementwise.cu (`unary_*`, `unary_bwd_*`, `binary_contig_*`,
//! `binary_strided_*`), run in the CUDA emulator (`--features cuda-emu`) against the CPU backend.
//! The data-movement kernels of cuda/layout.cu are tested in tests/cuda_emu_layout.rs.
//!
//! Every launch is its launcher's (src/backend/cuda/elementwise.rs), built by the functions of
//! `engine::backend::kernel_abi::elementwise` the launcher calls: the calls (kernel name, op code,
//! scalar parameters, argument order: `unary`, `unary_backward`, `BinaryPlan::call`), the binary
//! `BinaryPlan` (the contiguous-vs-strided pick and its bounds, the `StridedArgs` descriptors, the dim
//! collapsing), and
//! `g.grid(n)` on a pretend GPU of 4 SMs (so grids are capped at 128 blocks and the grid-stride loops
//! wrap); some cases also run on a single block.
//!
//! Invariants checked:
//! - Unary forward and backward match the CPU's `Tensor::unary` and its autograd gradient (of Σ y·w,
//!   so the kernel's dy is w) for every op code, in f32, f64 and f16, also on NaN, ±inf and ±0.
//! - Binary ops (contiguous and broadcast/strided, up to the 8 collapsed dims a descriptor holds) are
//!   bit-identical to the CPU: one IEEE operation in the same precision, then the same rounding; the
//!   launcher picks the expected variant.
//! - Outputs start as NaN, so a skipped element shows, and every buffer's guard zones are checked
//!   after each launch.

use engine::backend::cuda_emu::test_support::{
    bcast_strides, cpu_tensor, raw, run_call, same_bits, seeded_randn, to_f64s, Grid, KernelFloat,
};
use engine::backend::cuda_emu::{kernel_names, Buf};
use engine::backend::kernel_abi::elementwise::{self, BinaryPlan};
use engine::{BinaryOp, Shape, UnaryOp};
use half::f16;

/// Elements for the "past the grid cap" cases: > 128 blocks × 256 threads.
const BIG: usize = 33_001;

/// `got` within `atol + rtol·|want|` of `want`; NaN must meet NaN and ±inf the same infinity.
#[track_caller]
fn close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut bad = Vec::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        if !ok {
            bad.push(format!("[{i}] got {g:e}, cpu {w:e}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} elements differ (atol {atol:e}, rtol {rtol:e}): {}",
        bad.len(),
        got.len(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join("; ")
    );
}

// ---------------------------------------------------------------------------------------------------
// Kernel table.

#[test]
fn the_family_is_in_the_kernel_table() {
    let names = kernel_names();
    let mut want = Vec::new();
    for s in ["f16", "f32", "f64"] {
        for k in ["unary", "unary_bwd", "binary_contig", "binary_strided"] {
            want.push(format!("{k}_{s}"));
        }
    }
    assert_eq!(want.len(), 12);
    for w in &want {
        assert!(names.contains(w), "kernel {w} missing from the emulator");
    }
}

// ---------------------------------------------------------------------------------------------------
// Unary forward and backward.

/// Every op code, with a parameter choice that exercises p0/p1.
fn all_unary_ops() -> Vec<UnaryOp> {
    vec![
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.2),
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Abs,
        UnaryOp::Square,
        UnaryOp::Recip,
        UnaryOp::Affine {
            mul: -1.5,
            add: 0.3,
        },
        UnaryOp::Powf(1.7),
        // Integer exponent on negative inputs; negative exponent (p − 1 = −1.5 in the derivative).
        UnaryOp::Powf(3.0),
        UnaryOp::Powf(-0.5),
    ]
}

/// Seeded inputs in the op's domain, with exact zeros where the op has a kink there.
fn unary_inputs(op: UnaryOp, n: usize, seed: u64) -> Vec<f64> {
    let r = seeded_randn(n, seed);
    let mut x: Vec<f64> = match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Powf(1.7) | UnaryOp::Powf(-0.5) => {
            r.iter().map(|v| 2.0 * v.abs() + 0.05).collect()
        }
        UnaryOp::Recip => r.iter().map(|v| v.signum() * (v.abs() + 0.2)).collect(),
        UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Square => r.iter().map(|v| 3.0 * v).collect(),
        _ => r.iter().map(|v| 2.0 * v).collect(),
    };
    if matches!(
        op,
        UnaryOp::Relu | UnaryOp::LeakyRelu(_) | UnaryOp::Abs | UnaryOp::Powf(3.0)
    ) {
        x[0] = 0.0;
        x[n / 2] = -0.0;
    }
    x
}

/// Runs `unary_<T>` and `unary_bwd_<T>` on `x` (f64 values, rounded to T) and compares y and dx with
/// the CPU's `x.unary(op)` and the autograd gradient of Σ y·w.
fn unary_case<T: KernelFloat>(op: UnaryOp, x: &[f64], seed: u64, g: Grid, tol: (f64, f64)) {
    let n = x.len();
    let what = format!("{op:?} [{}] n={n} {g:?}", T::SUF);
    // CPU.
    let xt = cpu_tensor::<T>(x, &[n]).var();
    let y = xt.unary(op).unwrap();
    let wt = cpu_tensor::<T>(&seeded_randn(n, seed ^ 0x5eed), &[n]);
    let grads = y.mul(&wt).unwrap().sum_all().unwrap().backward().unwrap();
    let dx_cpu: Vec<T> = raw(grads.get(&xt).expect("dx"));
    let (x_raw, y_cpu, w_raw): (Vec<T>, Vec<T>, Vec<T>) = (raw(&xt), raw(&y), raw(&wt));

    // Forward, as `Unary::launch`.
    let mut bx = Buf::from_slice(&x_raw);
    let mut by = Buf::<T>::nan(n);
    run_call(
        &elementwise::unary(op, T::DTYPE, n, bx.ptr(), by.ptr()),
        g.dims(n),
    );
    bx.check_guards("x").unwrap();
    let y_gpu = by.checked("y");
    close(
        &format!("{what} y"),
        &to_f64s(&y_gpu),
        &to_f64s(&y_cpu),
        tol.0,
        tol.1,
    );

    // Backward, as `UnaryBackward::launch`, on the CPU's saved y and dy = w.
    let mut by = Buf::from_slice(&y_cpu);
    let mut bdy = Buf::from_slice(&w_raw);
    let mut bdx = Buf::<T>::nan(n);
    let call =
        elementwise::unary_backward(op, T::DTYPE, n, bx.ptr(), by.ptr(), bdy.ptr(), bdx.ptr());
    run_call(&call, g.dims(n));
    bx.check_guards("x").unwrap();
    by.check_guards("y").unwrap();
    bdy.check_guards("dy").unwrap();
    let dx_gpu = bdx.checked("dx");
    close(
        &format!("{what} dx"),
        &to_f64s(&dx_gpu),
        &to_f64s(&dx_cpu),
        tol.0,
        tol.1,
    );
}

// Tolerances. Both sides evaluate the same formula in the same precision (f16 in f32); they differ
// only where the host libm and Rust's math functions (or a GPU's libdevice and FMA contraction)
// differ, by an ulp or two. f64: 1e-10 relative. f32: 1e-5 relative (~80 ulp). f16: outputs are
// rounded to f16, so one f32 ulp across a rounding boundary is one f16 ulp ≤ 2^-10 relative ≈ 1e-3;
// 4e-3 allows a few.
const TOL_F64: (f64, f64) = (1e-12, 1e-10);
const TOL_F32: (f64, f64) = (1e-6, 1e-5);
const TOL_F16: (f64, f64) = (1e-3, 4e-3);

/// [`unary_case`] of every op on `n` inputs on the launcher grid; op i gets seed `seed + i`.
fn every_unary_op<T: KernelFloat>(n: usize, seed: u64, tol: (f64, f64)) {
    for (i, op) in all_unary_ops().into_iter().enumerate() {
        let seed = seed + i as u64;
        unary_case::<T>(op, &unary_inputs(op, n, seed), seed, Grid::Launcher, tol);
    }
}

#[test]
fn unary_every_op_f32() {
    // 1537: odd, 7 blocks of the launcher grid.
    every_unary_op::<f32>(1537, 100, TOL_F32);
}

#[test]
fn unary_every_op_f64() {
    every_unary_op::<f64>(1029, 200, TOL_F64);
}

#[test]
fn unary_every_op_f16() {
    every_unary_op::<f16>(1100, 300, TOL_F16);
}

#[test]
fn unary_one_block_and_past_the_grid_cap() {
    // One block of 256 threads strides over 1000 elements (4 rounds, the last partial).
    for op in [UnaryOp::Tanh, UnaryOp::Powf(1.7)] {
        unary_case::<f32>(op, &unary_inputs(op, 1000, 7), 7, Grid::One, TOL_F32);
        unary_case::<f16>(op, &unary_inputs(op, 999, 8), 8, Grid::One, TOL_F16);
    }
    unary_case::<f64>(
        UnaryOp::Sigmoid,
        &unary_inputs(UnaryOp::Sigmoid, 700, 9),
        9,
        Grid::One,
        TOL_F64,
    );
    // More elements than 128 blocks × 256 threads: the capped launcher grid loops.
    let op = UnaryOp::LeakyRelu(0.1);
    unary_case::<f32>(op, &unary_inputs(op, BIG, 10), 10, Grid::Launcher, TOL_F32);
    // Tiny: fewer elements than one warp.
    unary_case::<f32>(
        UnaryOp::Exp,
        &unary_inputs(UnaryOp::Exp, 3, 11),
        11,
        Grid::Launcher,
        TOL_F32,
    );
}

#[test]
fn unary_special_values() {
    // NaN, ±inf, ±0, tiny, huge and negative inputs to every op: log/sqrt/pow of negatives, 1/0,
    // exp overflow, sigmoid saturation, f16 overflow of squares.
    let x = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        1.0,
        -1.0,
        0.5,
        -2.5,
        100.0,
        -100.0,
        300.0,
        1e300,
        -1e-300,
    ];
    for (i, op) in all_unary_ops().into_iter().enumerate() {
        let seed = 400 + i as u64;
        unary_case::<f32>(op, &x, seed, Grid::One, TOL_F32);
        unary_case::<f64>(op, &x, seed, Grid::One, TOL_F64);
        unary_case::<f16>(op, &x, seed, Grid::One, TOL_F16);
    }
}

// ---------------------------------------------------------------------------------------------------
// Binary ops with broadcasting.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    Contig,
    Strided,
}

const BINARY_OPS: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];

/// Seeded values with a few specials up front (∞, NaN, ±0) so 0/0, ∞−∞ and ∞·0 occur.
fn binary_values(len: usize, seed: u64, specials: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = seeded_randn(len, seed).iter().map(|x| 2.0 * x).collect();
    for (i, &s) in specials.iter().enumerate().take(len.saturating_sub(1)) {
        v[i] = s;
    }
    v
}

/// Runs `a ∘ b` as `Binary::launch` does and checks it bit for bit against the CPU's `a.binary(b)`.
/// Returns the variant the launcher picked.
fn binary_case<T: KernelFloat>(
    op: BinaryOp,
    a_dims: &[usize],
    b_dims: &[usize],
    seed: u64,
    g: Grid,
) -> Variant {
    let (na, nb) = (
        a_dims.iter().product::<usize>(),
        b_dims.iter().product::<usize>(),
    );
    let av = binary_values(na, seed, &[f64::INFINITY, f64::NAN, 0.0, -0.0, 1.0]);
    let bv = binary_values(
        nb,
        seed + 1,
        &[0.0, f64::NEG_INFINITY, -0.0, f64::INFINITY, 0.0],
    );
    let at = cpu_tensor::<T>(&av, a_dims);
    let bt = cpu_tensor::<T>(&bv, b_dims);
    let want_t = at.binary(&bt, op).unwrap();
    let want: Vec<T> = raw(&want_t);

    // The launcher.
    let a_shape = Shape::new(a_dims.to_vec());
    let b_shape = Shape::new(b_dims.to_vec());
    let out = Shape::broadcast("binary", &a_shape, &b_shape)
        .unwrap()
        .dims()
        .to_vec();
    assert_eq!(want_t.dims(), &out[..]);
    let n: usize = out.iter().product();
    let (sa, sb) = (bcast_strides(a_dims, &out), bcast_strides(b_dims, &out));
    let plan = BinaryPlan::new(&out, &sa, &sb).unwrap();
    assert_eq!(plan.n, n);
    assert!(plan.lhs_len <= na && plan.rhs_len <= nb);
    let (a_raw, b_raw): (Vec<T>, Vec<T>) = (raw(&at), raw(&bt));
    let mut ba = Buf::from_slice(&a_raw);
    let mut bb = Buf::from_slice(&b_raw);
    let mut bo = Buf::<T>::nan(n);
    run_call(
        &plan.call(op, T::DTYPE, ba.ptr(), bb.ptr(), bo.ptr()),
        g.dims(n),
    );
    let variant = if plan.contiguous {
        Variant::Contig
    } else {
        Variant::Strided
    };
    ba.check_guards("a").unwrap();
    bb.check_guards("b").unwrap();
    let got = bo.checked("out");
    // One IEEE operation in the compute type and the same final rounding on both sides: bit-exact
    // (NaN results may differ in payload/sign between host and kernel arithmetic).
    same_bits(
        &format!("{op:?} {a_dims:?} ∘ {b_dims:?} [{}] {g:?}", T::SUF),
        &got,
        &want,
        true,
    );
    variant
}

/// (a dims, b dims, the variant the launcher must pick).
fn binary_shapes() -> Vec<(Vec<usize>, Vec<usize>, Variant)> {
    use Variant::*;
    vec![
        // Same shape: one dense run.
        (vec![37, 41], vec![37, 41], Contig),
        (vec![1, 1], vec![1, 1], Contig),
        // Row vector, column vector, scalar on either side.
        (vec![37, 41], vec![41], Strided),
        (vec![37, 41], vec![37, 1], Strided),
        (vec![1], vec![5, 301], Strided),
        (vec![7, 1, 33], vec![1], Strided),
        // Both sides broadcast, rank 4; extent-1 dims dropped by collapse.
        (vec![3, 1, 5, 7], vec![4, 1, 7], Strided),
        (vec![2, 1, 9, 1, 10], vec![2, 3, 1, 1, 10], Strided),
        // Eight alternating broadcast dims: nothing merges, the descriptor is full.
        (
            vec![2, 1, 2, 1, 2, 1, 2, 1],
            vec![1, 2, 1, 2, 1, 2, 1, 2],
            Strided,
        ),
    ]
}

#[test]
fn binary_f32_every_op_and_shape() {
    for (k, (a, b, want)) in binary_shapes().into_iter().enumerate() {
        for (i, op) in BINARY_OPS.into_iter().enumerate() {
            let seed = 1000 + 10 * k as u64 + i as u64;
            assert_eq!(
                binary_case::<f32>(op, &a, &b, seed, Grid::Launcher),
                want,
                "{a:?} ∘ {b:?}"
            );
            // Operands swapped: the broadcast side moves to the left.
            binary_case::<f32>(op, &b, &a, seed + 5, Grid::Launcher);
        }
    }
}

#[test]
fn binary_f64_and_f16() {
    for (k, (a, b, want)) in binary_shapes().into_iter().enumerate() {
        for (i, op) in BINARY_OPS.into_iter().enumerate() {
            let seed = 2000 + 10 * k as u64 + i as u64;
            assert_eq!(binary_case::<f64>(op, &a, &b, seed, Grid::Launcher), want);
            assert_eq!(
                binary_case::<f16>(op, &b, &a, seed + 5, Grid::Launcher),
                want
            );
        }
    }
}

#[test]
fn binary_one_block_and_past_the_grid_cap() {
    for op in BINARY_OPS {
        binary_case::<f32>(op, &[23, 45], &[23, 45], 3000, Grid::One);
        binary_case::<f16>(op, &[23, 45], &[45], 3001, Grid::One);
        binary_case::<f64>(op, &[3, 1, 5, 7], &[4, 1, 7], 3002, Grid::One);
    }
    assert_eq!(
        binary_case::<f32>(BinaryOp::Mul, &[130, 260], &[260], 3003, Grid::Launcher),
        Variant::Strided
    );
    assert_eq!(
        binary_case::<f32>(BinaryOp::Sub, &[BIG], &[BIG], 3004, Grid::Launcher),
        Variant::Contig
    );
}
