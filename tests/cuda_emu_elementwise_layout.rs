#![cfg(feature = "cuda-emu")]
//! The elementwise kernels of cuda/elementwise.cu (`unary_*`, `unary_bwd_*`, `binary_contig_*`,
//! `binary_strided_*`) and the data-movement kernels of cuda/layout.cu (`cast_*_*`, `copy2d_*`,
//! `strided_copy_*`), run in the CUDA emulator (`--features cuda-emu`) against the CPU backend.
//!
//! Every launch mirrors its launcher (src/backend/cuda/elementwise.rs, src/backend/cuda/layout.rs):
//! the argument list and its types, the op codes and scalar parameters (`unary_code`,
//! `unary_backward_code`, `binary_code`), the `#[repr(C)] StridedArgs` descriptor, the dim collapsing,
//! the contiguous-vs-strided and kernel-vs-memcpy picks, the bounds checks and `g.grid(n)` on a pretend
//! GPU of 4 SMs (so grids are capped at 128 blocks and the grid-stride loops wrap); some cases also run
//! on a single block.
//!
//! Invariants checked:
//! - Unary forward and backward match the CPU's `Tensor::unary` and its autograd gradient (of Σ y·w,
//!   so the kernel's dy is w) for every op code, in f32, f64 and f16, also on NaN, ±inf and ±0.
//! - Binary ops (contiguous and broadcast/strided, up to the 8 collapsed dims a descriptor holds) are
//!   bit-identical to the CPU: one IEEE operation in the same precision, then the same rounding.
//! - Casts are bit-identical to the CPU's `to_dtype` for every ordered dtype pair, on NaN, ±inf, ±0,
//!   f16 overflow, f16/f32/f64 subnormals and ties; f64→f16 is one correctly rounded step (see
//!   `cast_f64_f16_rounds_once`).
//! - Copies (`copy2d` via narrow, concat and narrow's backward; `strided_copy` via permute, transpose,
//!   memory formats and broadcasts) are bit-identical to the CPU, NaN payloads and signed zeros
//!   included, and write nothing outside their destination block.
//! - Outputs start as NaN, so a skipped element shows, and every buffer's guard zones are checked
//!   after each launch.

use engine::backend::cuda_emu::test_support::{
    collapse, cpu_tensor, grid_1d, run_kernel, seeded_randn, to_f64s, KernelFloat, StridedArgs,
    ONE_BLOCK,
};
use engine::backend::cuda_emu::{kernel_names, Arg, Buf};
use engine::{BinaryOp, Device, MemoryFormat, Shape, Tensor, UnaryOp};
use half::f16;

/// Elements for the "past the grid cap" cases: > 128 blocks × 256 threads.
const BIG: usize = 33_001;

/// Which grid a case launches on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Grid {
    /// The launchers' `g.grid(n)`.
    Launcher,
    /// One block: the grid-stride loop covers everything.
    One,
}

fn grid(g: Grid, n: usize) -> [u32; 3] {
    match g {
        Grid::Launcher => grid_1d(n),
        Grid::One => ONE_BLOCK,
    }
}

/// A storage type of the kernels, with a NaN for the copy tests to plant.
trait Elem: KernelFloat {
    /// A negative quiet NaN with a non-zero payload: copies must keep it bit for bit.
    fn payload_nan() -> Self;
}

impl Elem for f64 {
    fn payload_nan() -> Self {
        f64::from_bits(0xFFF8_0000_0000_1235)
    }
}

impl Elem for f32 {
    fn payload_nan() -> Self {
        f32::from_bits(0xFFC0_1235)
    }
}

impl Elem for f16 {
    fn payload_nan() -> Self {
        f16::from_bits(0xFE05)
    }
}

/// A tensor's storage in memory order, as `T` (which must be its dtype).
fn raw<T: Elem>(t: &Tensor) -> Vec<T> {
    assert_eq!(t.dtype(), T::DTYPE, "raw read in the wrong dtype");
    t.storage().to_cpu().unwrap().to_vec::<T>()
}

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

/// Bit-identical, except that with `any_nan` a NaN may meet any NaN (casts may canonicalise NaNs).
#[track_caller]
fn same_bits<T: Elem>(what: &str, got: &[T], want: &[T], any_nan: bool) {
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

// ---------------------------------------------------------------------------------------------------
// Mirrors of the launchers' private helpers (src/backend/cuda/elementwise.rs, src/ops/elementwise.rs).

/// `Broadcast::new(input, out).strides()` of src/ops/elementwise.rs.
fn bcast_strides(input: &[usize], out: &[usize]) -> Vec<usize> {
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

/// Largest offset a collapsed map reads.
fn max_offset(cd: &[usize], st: &[usize]) -> usize {
    cd.iter().zip(st).map(|(&d, &s)| (d - 1) * s).sum()
}

/// `unary_code` of src/backend/cuda/elementwise.rs.
fn unary_code(op: UnaryOp) -> (i32, f64, f64) {
    match op {
        UnaryOp::Relu => (0, 0.0, 0.0),
        UnaryOp::LeakyRelu(s) => (1, s, 0.0),
        UnaryOp::Tanh => (2, 0.0, 0.0),
        UnaryOp::Sigmoid => (3, 0.0, 0.0),
        UnaryOp::Exp => (4, 0.0, 0.0),
        UnaryOp::Log => (5, 0.0, 0.0),
        UnaryOp::Sqrt => (6, 0.0, 0.0),
        UnaryOp::Abs => (7, 0.0, 0.0),
        UnaryOp::Square => (8, 0.0, 0.0),
        UnaryOp::Recip => (9, 0.0, 0.0),
        UnaryOp::Affine { mul, add } => (10, mul, add),
        UnaryOp::Powf(p) => (11, p, 0.0),
    }
}

/// `unary_backward_code`: Powf passes `p - 1` computed in f64.
fn unary_backward_code(op: UnaryOp) -> (i32, f64, f64) {
    match op {
        UnaryOp::Powf(p) => (11, p, p - 1.0),
        other => unary_code(other),
    }
}

/// `binary_code`.
fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
    }
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
        for d in ["f16", "f32", "f64"] {
            if d != s {
                want.push(format!("cast_{s}_{d}"));
            }
        }
    }
    for u in ["u16", "u32", "u64"] {
        want.push(format!("copy2d_{u}"));
        want.push(format!("strided_copy_{u}"));
    }
    assert_eq!(want.len(), 24);
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
fn unary_case<T: Elem>(op: UnaryOp, x: &[f64], seed: u64, g: Grid, tol: (f64, f64)) {
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
    let (code, p0, p1) = unary_code(op);
    let mut bx = Buf::from_slice(&x_raw);
    let mut by = Buf::<T>::nan(n);
    run_kernel(
        &format!("unary_{}", T::SUF),
        grid(g, n),
        &[
            Arg::I64(n as i64),
            Arg::I32(code),
            Arg::F64(p0),
            Arg::F64(p1),
            bx.arg(),
            by.arg(),
        ],
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
    let (code, p0, p1) = unary_backward_code(op);
    let mut by = Buf::from_slice(&y_cpu);
    let mut bdy = Buf::from_slice(&w_raw);
    let mut bdx = Buf::<T>::nan(n);
    run_kernel(
        &format!("unary_bwd_{}", T::SUF),
        grid(g, n),
        &[
            Arg::I64(n as i64),
            Arg::I32(code),
            Arg::F64(p0),
            Arg::F64(p1),
            bx.arg(),
            by.arg(),
            bdy.arg(),
            bdx.arg(),
        ],
    );
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
fn every_unary_op<T: Elem>(n: usize, seed: u64, tol: (f64, f64)) {
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
fn binary_case<T: Elem>(
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
    let (cd, cs) = collapse(&out, &[&sa, &sb]);
    assert!(max_offset(&cd, &cs[0]) < na && max_offset(&cd, &cs[1]) < nb);
    let code = binary_code(op);
    let contiguous = cd.len() <= 1 && cs.iter().all(|s| s.first().is_none_or(|&v| v == 1));
    let (a_raw, b_raw): (Vec<T>, Vec<T>) = (raw(&at), raw(&bt));
    let mut ba = Buf::from_slice(&a_raw);
    let mut bb = Buf::from_slice(&b_raw);
    let mut bo = Buf::<T>::nan(n);
    let variant = if contiguous {
        run_kernel(
            &format!("binary_contig_{}", T::SUF),
            grid(g, n),
            &[
                Arg::I64(n as i64),
                Arg::I32(code),
                ba.arg(),
                bb.arg(),
                bo.arg(),
            ],
        );
        Variant::Contig
    } else {
        let (da, db) = (StridedArgs::new(&cd, &cs[0]), StridedArgs::new(&cd, &cs[1]));
        run_kernel(
            &format!("binary_strided_{}", T::SUF),
            grid(g, n),
            &[
                Arg::I64(n as i64),
                Arg::I32(code),
                da.arg(),
                db.arg(),
                ba.arg(),
                bb.arg(),
                bo.arg(),
            ],
        );
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

// ---------------------------------------------------------------------------------------------------
// Casts.

/// Values that stress every conversion: NaN, ±inf, ±0, the f16 range edge and overflow, f16/f32/f64
/// subnormals, round-to-even ties, and an f64 value that rounds differently through f32 (below).
fn cast_specials() -> Vec<f64> {
    let p = |e: i32| 2f64.powi(e);
    vec![
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        1.0,
        -1.0,
        // f16: largest finite, just below the overflow tie, the tie (→ inf), beyond.
        65504.0,
        65519.0,
        65519.99,
        65520.0,
        -65520.0,
        1e5,
        -1e9,
        // f16 normals/subnormals: smallest normal, smallest subnormal, its half (tie → 0), 0.75 and 1.5
        // and 2.5 of it (→ 1, 2 and 2 ulps), below half (→ ±0), a mid subnormal.
        p(-14),
        p(-24),
        p(-25),
        -p(-25),
        0.75 * p(-24),
        1.5 * p(-24),
        2.5 * p(-24),
        1e-8,
        -1e-8,
        6e-5,
        -3.3e-6,
        // Ties at 1 in f16: 1 + half an ulp (→ 1), 1 + 1.5 ulp (→ 1 + 2 ulp), just above half.
        1.0 + p(-11),
        1.0 + 3.0 * p(-11),
        1.0 + p(-11) + p(-23),
        // Rounds up once, but through f32 lands exactly on the tie (then rounds to even, down).
        1.0 + p(-11) + p(-40),
        // f32: subnormals, largest finite, overflow, a tie at 1 (f64→f32).
        1e-40,
        -1e-42,
        p(-149),
        p(-150),
        f32::MAX as f64,
        -3.5e38,
        1.0 + p(-24),
        1.0 + 3.0 * p(-24),
        // f64 subnormals.
        1e-310,
        -5e-324,
        std::f64::consts::PI,
        -1.0 / 3.0,
    ]
}

/// A correctly rounded (once, nearest-even) f64 → f16, independent of `half`'s code path.
fn f16_round_once(x: f64) -> f16 {
    if x.is_nan() {
        return f16::NAN;
    }
    let m = x.abs();
    let mag = if m >= 65520.0 {
        f16::INFINITY.to_bits()
    } else {
        // `from_f64` is at most one ulp off (it may round through f32); pick the nearest neighbour.
        let h = f16::from_f64(m).to_bits().min(0x7BFF);
        let mut best = h;
        for c in [h.saturating_sub(1), h, (h + 1).min(0x7BFF)] {
            let (dc, db) = (
                (f16::from_bits(c).to_f64() - m).abs(),
                (f16::from_bits(best).to_f64() - m).abs(),
            );
            if dc < db || (dc == db && c % 2 == 0) {
                best = c;
            }
        }
        best
    };
    f16::from_bits(mag | if x.is_sign_negative() { 0x8000 } else { 0 })
}

/// Seeded values over a range of magnitudes (f16 subnormals up to f16 overflow), plus the specials.
fn cast_inputs(n: usize, seed: u64) -> Vec<f64> {
    let mut v = cast_specials();
    let r = seeded_randn(n, seed);
    for (i, x) in r.into_iter().enumerate() {
        v.push(x * 10f64.powi((i % 15) as i32 - 9));
    }
    v
}

/// `cast_<S>_<D>` as `cast()` launches it, against the CPU's `to_dtype`. Returns (input, kernel, cpu).
fn cast_case<S: Elem, D: Elem>(n: usize, seed: u64, g: Grid) -> (Vec<S>, Vec<D>, Vec<D>) {
    let v = cast_inputs(n, seed);
    let len = v.len();
    let xt = cpu_tensor::<S>(&v, &[len]);
    let want: Vec<D> = raw(&xt.to_dtype(D::DTYPE).unwrap());
    let x: Vec<S> = raw(&xt);
    let mut bx = Buf::from_slice(&x);
    let mut by = Buf::<D>::nan(len);
    run_kernel(
        &format!("cast_{}_{}", S::SUF, D::SUF),
        grid(g, len),
        &[Arg::I64(len as i64), bx.arg(), by.arg()],
    );
    bx.check_guards("x").unwrap();
    let got = by.checked("y");
    (x, got, want)
}

fn cast_exact<S: Elem, D: Elem>(n: usize, seed: u64, g: Grid) {
    let (_, got, want) = cast_case::<S, D>(n, seed, g);
    // Rounding is defined (nearest even) and widening is exact: bit-identical; a NaN stays a NaN
    // (its payload and sign are not part of the contract of a conversion).
    same_bits(
        &format!("cast {}→{} {g:?}", S::SUF, D::SUF),
        &got,
        &want,
        true,
    );
}

#[test]
fn casts_match_cpu() {
    for g in [Grid::Launcher, Grid::One] {
        cast_exact::<f16, f32>(1500, 50, g);
        cast_exact::<f16, f64>(1500, 51, g);
        cast_exact::<f32, f16>(1500, 52, g);
        cast_exact::<f32, f64>(1500, 53, g);
        cast_exact::<f64, f32>(1500, 54, g);
    }
    // Past the grid cap.
    cast_exact::<f32, f16>(BIG, 55, Grid::Launcher);
}

#[test]
fn cast_f64_f16_rounds_once() {
    // The kernel's contract (layout.cu): one rounding, __double2half. The CPU rounds once too
    // (src/dtype.rs: half's software path; its F16C path goes through f32 and rounds twice). The two
    // roundings differ only on f64 values that are not f16 ties but round to one in f32, like
    // 1 + 2^-11 + 2^-40, which the case includes: every element must be the correctly rounded value,
    // bit for bit on both sides.
    for g in [Grid::Launcher, Grid::One] {
        let (x, got, want) = cast_case::<f64, f16>(1500, 56, g);
        for i in 0..x.len() {
            let once = f16_round_once(x[i]);
            let ok_once = got[i].to_bits() == once.to_bits() || (got[i].is_nan() && x[i].is_nan());
            assert!(
                ok_once,
                "cast f64→f16 [{i}] of {:e}: kernel {:?} ({:#06x}), correctly rounded {:?} ({:#06x})",
                x[i],
                got[i],
                got[i].to_bits(),
                once,
                once.to_bits()
            );
            let same_as_cpu =
                got[i].to_bits() == want[i].to_bits() || (got[i].is_nan() && want[i].is_nan());
            assert!(
                same_as_cpu,
                "cast f64→f16 [{i}] of {:e}: kernel {:?}, cpu {:?}",
                x[i], got[i], want[i]
            );
        }
        // The probe 1 + 2^-11 + 2^-40 lies above the tie between 1 and 1 + 2^-10: it rounds up once,
        // but to exactly the tie (then down, to even) through f32.
        let probe = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        let got_probe = got[x.iter().position(|&v| v == probe).expect("probe present")];
        assert_eq!(
            got_probe.to_f64(),
            1.0 + 2f64.powi(-10),
            "probe rounds once"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// copy2d: narrow, concat, narrow backward.

/// Seeded values in dtype T with a payload NaN, -0 and -inf planted: copies must move bits.
fn copy_values<T: Elem>(dims: &[usize], seed: u64) -> Tensor {
    let n: usize = dims.iter().product();
    let t = cpu_tensor::<T>(&seeded_randn(n, seed), dims);
    let mut v: Vec<T> = raw(&t);
    for (k, s) in [
        T::payload_nan(),
        T::from_f64(-0.0),
        T::from_f64(f64::NEG_INFINITY),
    ]
    .into_iter()
    .enumerate()
    {
        let i = (k * 7919 + seed as usize) % n;
        v[i] = s;
    }
    Tensor::from_vec(v, dims.to_vec(), Device::Cpu).unwrap()
}

/// `copy2d` of src/backend/cuda/layout.rs, bounds check included.
#[allow(clippy::too_many_arguments)]
fn copy2d<T: Elem>(
    src: &mut Buf<T>,
    src_len: usize,
    dst: &mut Buf<T>,
    dst_len: usize,
    rows: usize,
    cols: usize,
    (src_rs, src_off): (usize, usize),
    (dst_rs, dst_off): (usize, usize),
    g: Grid,
) {
    let n = rows * cols;
    if n == 0 {
        return;
    }
    let src_end = (rows - 1) * src_rs + src_off + cols;
    let dst_end = (rows - 1) * dst_rs + dst_off + cols;
    assert!(
        !(src_end > src_len || dst_end > dst_len || (rows > 1 && cols > dst_rs)),
        "the launcher would reject this block copy"
    );
    run_kernel(
        &format!("copy2d_{}", T::BITS),
        grid(g, n),
        &[
            Arg::I64(n as i64),
            Arg::I64(cols as i64),
            Arg::I64(src_rs as i64),
            Arg::I64(src_off as i64),
            Arg::I64(dst_rs as i64),
            Arg::I64(dst_off as i64),
            src.arg(),
            dst.arg(),
        ],
    );
    src.check_guards("copy2d src").unwrap();
    dst.check_guards("copy2d dst").unwrap();
}

/// `(outer, inner, full)` of `Tensor::narrow` along `dim`.
fn narrow_geometry(dims: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        dims[..dim].iter().product(),
        dims[dim + 1..].iter().product(),
        dims[dim],
    )
}

/// Narrow forward (`Narrow::launch`) and backward (`NarrowBackward::launch`) against the CPU's
/// `narrow` and its autograd gradient.
fn narrow_case<T: Elem>(dims: &[usize], dim: usize, start: usize, len: usize, seed: u64, g: Grid) {
    let what = format!(
        "narrow {dims:?} dim {dim} [{start}, +{len}) [{}] {g:?}",
        T::SUF
    );
    let xt = copy_values::<T>(dims, seed).var();
    let y = xt.narrow(dim, start, len).unwrap();
    let wt = copy_values::<T>(y.dims(), seed + 1);
    let grads = y.mul(&wt).unwrap().sum_all().unwrap().backward().unwrap();
    let (x, y_cpu, w, dx_cpu): (Vec<T>, Vec<T>, Vec<T>, Vec<T>) = (
        raw(&xt),
        raw(&y),
        raw(&wt),
        raw(grads.get(&xt).expect("dx")),
    );
    let (outer, inner, full) = narrow_geometry(dims, dim);
    let (b, fb, s) = (len * inner, full * inner, start * inner);

    // Forward.
    let mut bx = Buf::from_slice(&x);
    let mut by = Buf::<T>::nan(outer * b);
    copy2d(
        &mut bx,
        x.len(),
        &mut by,
        outer * b,
        outer,
        b,
        (fb, s),
        (b, 0),
        g,
    );
    same_bits(&format!("{what} y"), &by.to_vec(), &y_cpu, false);

    // Backward: the launcher scatters into zeros; here the destination starts as NaN, so the test
    // also sees that nothing outside the block is written, then the CPU's zeros are expected there.
    let mut bw = Buf::from_slice(&w);
    let mut bdx = Buf::<T>::nan(outer * fb);
    copy2d(
        &mut bw,
        w.len(),
        &mut bdx,
        outer * fb,
        outer,
        b,
        (b, 0),
        (fb, s),
        g,
    );
    let mut dx = bdx.to_vec();
    for (i, v) in dx.iter_mut().enumerate() {
        let c = i % fb;
        if c < s || c >= s + b {
            assert!(
                v.is_nan(),
                "{what} dx: element {i} outside the block was written"
            );
            *v = T::from_f64(0.0);
        }
    }
    same_bits(&format!("{what} dx"), &dx, &dx_cpu, false);
}

#[test]
fn copy2d_narrow_and_backward() {
    for g in [Grid::Launcher, Grid::One] {
        // Middle dim (outer rows of len·inner), first dim (one row), last dim (inner = 1).
        narrow_case::<f32>(&[5, 7, 9], 1, 2, 3, 60, g);
        narrow_case::<f32>(&[6, 5, 11], 0, 1, 4, 61, g);
        narrow_case::<f32>(&[13, 17, 9], 2, 3, 5, 62, g);
        narrow_case::<f64>(&[5, 7, 9], 1, 0, 7, 63, g);
        narrow_case::<f64>(&[4, 3, 10, 6], 2, 9, 1, 64, g);
        narrow_case::<f16>(&[5, 7, 9], 2, 8, 1, 65, g);
        narrow_case::<f16>(&[3, 20, 31], 1, 5, 14, 66, g);
    }
    // Several blocks of the launcher grid: 6·25·33 = 4950 elements.
    narrow_case::<f32>(&[6, 40, 33], 1, 3, 25, 67, Grid::Launcher);
}

fn concat_case<T: Elem>(dims: &[Vec<usize>], dim: usize, seed: u64, g: Grid) {
    let what = format!("concat {dims:?} dim {dim} [{}] {g:?}", T::SUF);
    let ts: Vec<Tensor> = dims
        .iter()
        .enumerate()
        .map(|(i, d)| copy_values::<T>(d, seed + i as u64))
        .collect();
    let refs: Vec<&Tensor> = ts.iter().collect();
    let want: Vec<T> = raw(&Tensor::concat(&refs, dim).unwrap());
    // `Concat::launch`: one block copy per input into its column range.
    let outer: usize = dims[0][..dim].iter().product();
    let inner: usize = dims[0][dim + 1..].iter().product();
    let blocks: Vec<usize> = dims.iter().map(|d| d[dim] * inner).collect();
    let row: usize = blocks.iter().sum();
    let mut out = Buf::<T>::nan(outer * row);
    let mut at = 0;
    for (t, &b) in ts.iter().zip(&blocks) {
        let x: Vec<T> = raw(t);
        let mut bx = Buf::from_slice(&x);
        copy2d(
            &mut bx,
            x.len(),
            &mut out,
            outer * row,
            outer,
            b,
            (b, 0),
            (row, at),
            g,
        );
        at += b;
    }
    same_bits(&what, &out.to_vec(), &want, false);
}

#[test]
fn copy2d_concat() {
    for g in [Grid::Launcher, Grid::One] {
        let d = |v: &[usize]| v.to_vec();
        concat_case::<f32>(&[d(&[4, 3, 6]), d(&[4, 5, 6]), d(&[4, 1, 6])], 1, 70, g);
        concat_case::<f64>(&[d(&[3, 7]), d(&[2, 7])], 0, 71, g);
        concat_case::<f16>(&[d(&[9, 2, 5]), d(&[9, 2, 3])], 2, 72, g);
        concat_case::<f16>(&[d(&[2, 30, 11]), d(&[2, 17, 11])], 1, 73, g);
    }
}

// ---------------------------------------------------------------------------------------------------
// strided_copy: permute, transpose, memory formats, broadcast_to.

/// `StridedCopy::launch` for `map` (output dims, input strides) over `x`: None when the launcher
/// would take its memcpy path instead of the kernel.
fn strided_copy<T: Elem>(x: &[T], dims: &[usize], strides: &[usize], g: Grid) -> Option<Vec<T>> {
    let n: usize = dims.iter().product();
    let (cd, cs) = collapse(dims, &[strides]);
    assert!(
        max_offset(&cd, &cs[0]) < x.len(),
        "the launcher rejects this map"
    );
    if cd.len() <= 1 && cs[0].first().is_none_or(|&s| s == 1) {
        return None;
    }
    let a = StridedArgs::new(&cd, &cs[0]);
    let mut bx = Buf::from_slice(x);
    let mut by = Buf::<T>::nan(n);
    run_kernel(
        &format!("strided_copy_{}", T::BITS),
        grid(g, n),
        &[Arg::I64(n as i64), a.arg(), bx.arg(), by.arg()],
    );
    bx.check_guards("x").unwrap();
    Some(by.checked("y"))
}

fn permute_case<T: Elem>(dims: &[usize], perm: &[usize], seed: u64, g: Grid) {
    let xt = copy_values::<T>(dims, seed);
    let want: Vec<T> = raw(&xt.permute(perm).unwrap());
    // `Tensor::permute`'s map: output dim i reads input dim perm[i].
    let st = Shape::new(dims.to_vec()).contiguous_strides();
    let out: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let got = strided_copy::<T>(&raw(&xt), &out, &strides, g).expect("a kernel launch");
    same_bits(
        &format!("permute {dims:?} by {perm:?} [{}] {g:?}", T::SUF),
        &got,
        &want,
        false,
    );
}

fn format_case<T: Elem>(dims: [usize; 4], seed: u64, g: Grid) {
    let [n, c, h, w] = dims;
    let xt = copy_values::<T>(&dims, seed);
    // To NHWC: `to_format`'s map.
    let nhwc = xt.to_format(MemoryFormat::ChannelsLast).unwrap();
    let got = strided_copy::<T>(&raw(&xt), &[n, h, w, c], &[c * h * w, w, 1, h * w], g)
        .expect("a kernel launch");
    same_bits(
        &format!("to NHWC {dims:?} [{}] {g:?}", T::SUF),
        &got,
        &raw(&nhwc),
        false,
    );
    // And back to NCHW from the NHWC storage.
    let back = nhwc.to_format(MemoryFormat::Contiguous).unwrap();
    let got = strided_copy::<T>(&raw(&nhwc), &[n, c, h, w], &[h * w * c, 1, w * c, c], g)
        .expect("a kernel launch");
    same_bits(
        &format!("to NCHW {dims:?} [{}] {g:?}", T::SUF),
        &got,
        &raw(&back),
        false,
    );
}

fn broadcast_case<T: Elem>(from: &[usize], to: &[usize], seed: u64, g: Grid) {
    let xt = copy_values::<T>(from, seed);
    let want: Vec<T> = raw(&xt.broadcast_to(&Shape::new(to.to_vec())).unwrap());
    let got =
        strided_copy::<T>(&raw(&xt), to, &bcast_strides(from, to), g).expect("a kernel launch");
    same_bits(
        &format!("broadcast {from:?} → {to:?} [{}] {g:?}", T::SUF),
        &got,
        &want,
        false,
    );
}

#[test]
fn strided_copy_permute_transpose_format_broadcast() {
    for g in [Grid::Launcher, Grid::One] {
        permute_case::<f32>(&[7, 9, 11], &[2, 0, 1], 80, g);
        permute_case::<f64>(&[7, 9, 11], &[1, 2, 0], 81, g);
        permute_case::<f16>(&[5, 3, 4, 6], &[3, 1, 0, 2], 82, g);
        // Transpose of a matrix (2 dims), and one that keeps an inner contiguous run (merged dims).
        permute_case::<f32>(&[33, 65], &[1, 0], 83, g);
        permute_case::<f16>(&[6, 5, 4, 3], &[1, 0, 2, 3], 84, g);
        // Eight dims reversed: nothing merges, the descriptor is full.
        permute_case::<f32>(&[2, 3, 2, 2, 3, 2, 2, 2], &[7, 6, 5, 4, 3, 2, 1, 0], 85, g);
        format_case::<f32>([2, 5, 7, 9], 86, g);
        format_case::<f16>([3, 4, 5, 6], 87, g);
        format_case::<f64>([1, 3, 8, 7], 88, g);
        broadcast_case::<f32>(&[3, 1, 5], &[4, 3, 7, 5], 89, g);
        broadcast_case::<f64>(&[1], &[1000], 90, g);
        broadcast_case::<f16>(&[6, 1], &[6, 131], 91, g);
    }
    // Past the grid cap.
    permute_case::<f32>(&[130, 260], &[1, 0], 92, Grid::Launcher);

    // A permutation that only moves extent-1 dims is dense in order: the launcher copies with memcpy
    // and never launches the kernel (the CPU result is then the input itself).
    let xt = copy_values::<f32>(&[3, 1, 5], 93);
    let st = xt.shape().contiguous_strides();
    assert!(strided_copy::<f32>(
        &raw(&xt),
        &[1, 3, 5],
        &[st[1], st[0], st[2]],
        Grid::Launcher
    )
    .is_none());
    same_bits(
        "permute [1,0,2] of [3,1,5]",
        &raw::<f32>(&xt.permute(&[1, 0, 2]).unwrap()),
        &raw(&xt),
        false,
    );
}
