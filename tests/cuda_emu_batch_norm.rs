#![cfg(feature = "cuda-emu")]
//! The batch-norm kernels of cuda/batch_norm.cu, run in the CUDA emulator (`--features cuda-emu`), against
//! the CPU backend: the launch sequence of src/backend/cuda/batch_norm.rs (stats → finalize → apply;
//! reduce → finalize → apply; shared with tests/cuda_emu_batch_norm_apply.rs in
//! tests/cuda_emu_batch_norm_common/) with, from `engine::backend::kernel_abi::batch_norm` (the
//! functions the launcher calls), its calls (kernel names and argument lists), grid shapes,
//! vector-width pick, reduction family (`ReducePlan`: the row-major `bn_stats_rows_*` /
//! `bn_bwd_reduce_rows_*` when hw = 1), apply family (`ApplyPlan`: the row-major
//! `bn_fwd_apply_rows_*` / `bn_bwd_apply_rows_*` when hw = 1 and the vector width divides C; their
//! own cases are in tests/cuda_emu_batch_norm_apply.rs) and channel splits, on a pretend GPU of 4 SMs.
//!
//! Compared: y, the running statistics, dx, dγ, dβ and dresidual with the CPU's batch norm (values and
//! autograd gradients of Σ y·w); the saved mean and 1/std with an f64 computation from the same
//! (rounded) input. Every case runs plain, fused ReLU and fused residual + ReLU; training and eval; f64,
//! f32, f16 and f16-out-of-f32 (the mixed-precision apply). `[N, C]` shapes (hw = 1) cover the row
//! kernels: partial channel tiles, whole tiles, several splits per tile, and forced split counts
//! (more splits than rows, splits that are not a multiple of the row step, one split); those whose C
//! is a multiple of the vector width also run the row apply kernels, every (T, TO) pair. Outputs and
//! partials start as NaN (every partial must be written) and every buffer's guard zones are checked
//! after each launch.

mod cuda_emu_batch_norm_common;

use cuda_emu_batch_norm_common::{emu, inputs, Inputs, Kind, Precision, F16, F32, F64};
use engine::backend::cuda_emu::test_support::{
    assert_close, run_call_plan, same_bits, seeded_randn, KernelFloat, BLOCK, SM_COUNT,
};
use engine::backend::cuda_emu::{launch, launch_call, Buf, KArg};
use engine::backend::kernel_abi::batch_norm::{
    self as bn, rows_launch, rows_splits, BwdReduceBufs, Reduce, ReducePlan, MIN_ROWS_PER_BLOCK,
    ROWS_STEP,
};
use engine::{BatchNormArgs, DType, Device, Result, Tensor};
use half::f16;
use num_traits::Float;

/// The CPU backend's outputs: [y, rm', rv', dx, dγ, dβ, dres].
struct CpuOut {
    y: Vec<f64>,
    rm: Vec<f64>,
    rv: Vec<f64>,
    dx: Vec<f64>,
    dgamma: Vec<f64>,
    dbeta: Vec<f64>,
    dres: Vec<f64>,
}

fn cpu(inp: &Inputs, x_dt: DType, p_dt: DType, kind: Kind, training: bool) -> Result<CpuOut> {
    let dims = vec![inp.n, inp.c, inp.hw, 1];
    let t = |v: &[f64], d: Vec<usize>, dt| Tensor::from_f64s(v, d, dt, Device::Cpu);
    let x = t(&inp.x, dims.clone(), x_dt)?.var();
    let res = t(&inp.res, dims.clone(), x_dt)?.var();
    let g = t(&inp.gamma, vec![inp.c], p_dt)?.var();
    let b = t(&inp.beta, vec![inp.c], p_dt)?.var();
    let rm = t(&inp.rm, vec![inp.c], p_dt)?;
    let rv = t(&inp.rv, vec![inp.c], p_dt)?;
    let args = BatchNormArgs {
        weight: Some(&g),
        bias: Some(&b),
        running_mean: Some(&rm),
        running_var: Some(&rv),
        training,
        momentum: 0.1,
        eps: 1e-5,
    };
    let y = match kind {
        Kind::Plain => x.batch_norm(&args)?,
        Kind::Relu => x.batch_norm_relu(&args)?,
        Kind::AddRelu => x.batch_norm_add_relu(&res, &args)?,
    };
    let w = t(&inp.w, dims, x_dt)?;
    let grads = y.mul(&w)?.sum_all()?.backward()?;
    let grad = |v: &Tensor| grads.get(v).map(|g| g.to_vec_f64().unwrap());
    Ok(CpuOut {
        y: y.to_vec_f64()?,
        rm: rm.to_vec_f64()?,
        rv: rv.to_vec_f64()?,
        dx: grad(&x).expect("dx"),
        dgamma: grad(&g).expect("dgamma"),
        dbeta: grad(&b).expect("dbeta"),
        dres: grad(&res).unwrap_or_default(),
    })
}

/// Per-channel mean and 1/sqrt(biased var + eps) of `x`, in f64.
fn stats_f64(inp: &Inputs) -> (Vec<f64>, Vec<f64>) {
    let (n, c, hw) = (inp.n, inp.c, inp.hw);
    let m = (n * hw) as f64;
    let mut mean = vec![0.0; c];
    let mut invstd = vec![0.0; c];
    for ch in 0..c {
        let vals = (0..n).flat_map(|i| {
            let base = (i * c + ch) * hw;
            inp.x[base..base + hw].iter().copied()
        });
        let mu = vals.clone().sum::<f64>() / m;
        let var = vals.map(|v| (v - mu) * (v - mu)).sum::<f64>() / m;
        mean[ch] = mu;
        invstd[ch] = 1.0 / (var + 1e-5).sqrt();
    }
    (mean, invstd)
}

/// [`case`] on the first `shapes` of [`SHAPES`], each with every vector pick in `vectors`; shape i
/// gets seed `seed + i`.
fn cases<T: KernelFloat, A: KernelFloat, TO: KernelFloat>(
    prec: &Precision,
    shapes: usize,
    vectors: &[bool],
    seed: u64,
) {
    for (i, &dims) in SHAPES.iter().enumerate().take(shapes) {
        for &vector in vectors {
            case::<T, A, TO>(dims, prec, vector, None, seed + i as u64);
        }
    }
}

/// Runs one case: shape `(n, c, hw)`, T/A/TO, training and eval, plain, ReLU and residual + ReLU;
/// `split` forces the reductions' split count.
fn case<T: KernelFloat, A: KernelFloat, TO: KernelFloat>(
    dims: (usize, usize, usize),
    prec: &Precision,
    vector: bool,
    split: Option<usize>,
    seed: u64,
) {
    let Precision {
        x_dt,
        p_dt,
        tol,
        sum_tol,
    } = *prec;
    let inp = inputs(dims, x_dt, p_dt, seed);
    let (mean64, invstd64) = stats_f64(&inp);
    for training in [true, false] {
        for kind in [Kind::Plain, Kind::Relu, Kind::AddRelu] {
            let what = format!(
                "{dims:?} {}→{} {} {kind:?} training={training} splits={split:?}",
                T::SUF,
                TO::SUF,
                if vector { "vector" } else { "scalar" }
            );
            let want = cpu(&inp, x_dt, p_dt, kind, training).unwrap();
            let got = emu::<T, A, TO>(&inp, kind, training, vector, split);
            assert_close(&format!("{what}: y"), &got.y, &want.y, tol);
            assert_close(&format!("{what}: dx"), &got.dx, &want.dx, tol);
            if kind == Kind::AddRelu {
                assert_close(&format!("{what}: dres"), &got.dres, &want.dres, tol);
            } else {
                assert!(got.dres.is_empty());
            }
            assert_close(&format!("{what}: dγ"), &got.dgamma, &want.dgamma, sum_tol);
            assert_close(&format!("{what}: dβ"), &got.dbeta, &want.dbeta, sum_tol);
            assert_close(&format!("{what}: running mean"), &got.rm, &want.rm, tol);
            assert_close(&format!("{what}: running var"), &got.rv, &want.rv, tol);
            let (mean_ref, invstd_ref) = if training {
                (mean64.clone(), invstd64.clone())
            } else {
                let invstd = inp.rv.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
                (inp.rm.clone(), invstd)
            };
            assert_close(
                &format!("{what}: save_mean"),
                &got.save_mean,
                &mean_ref,
                tol,
            );
            assert_close(
                &format!("{what}: save_invstd"),
                &got.save_invstd,
                &invstd_ref,
                tol,
            );
        }
    }
}

/// Shapes: vector planes (hw a multiple of every vector width), odd planes (scalar only), `[N, C]`
/// (hw = 1), a channel split over several blocks (items > MIN_ITEMS_PER_BLOCK), many channels (more
/// channels than the finalize's grid has threads, so its grid-stride loop wraps).
const SHAPES: [(usize, usize, usize); 5] = [
    (4, 6, 64),
    (3, 5, 143),
    (37, 19, 1),
    (3, 2, 4087),
    (2, 300, 16),
];

#[test]
fn batch_norm_f64_matches_cpu() {
    // f64 against f64: only summation order differs (Welford + tree vs the CPU's loops).
    let prec = Precision {
        x_dt: DType::F64,
        p_dt: DType::F64,
        tol: (1e-11, 1e-10),
        sum_tol: (1e-9, 1e-10),
    };
    cases::<f64, f64, f64>(&prec, SHAPES.len(), &[true, false], 10);
}

#[test]
fn batch_norm_f32_matches_cpu() {
    // f32: a few ulps from the order of the sums and the f64 statistics; dγ/dβ are sums of up to
    // ~12,000 products, so their absolute error is larger.
    let prec = Precision {
        x_dt: DType::F32,
        p_dt: DType::F32,
        tol: (2e-5, 2e-5),
        sum_tol: (2e-3, 1e-4),
    };
    cases::<f32, f32, f32>(&prec, SHAPES.len(), &[true, false], 20);
}

#[test]
fn batch_norm_f16_matches_cpu() {
    // f16 storage, f32 compute: one f16 rounding of each output (rel. 2^-11 ≈ 4.9e-4) plus the f16
    // saved statistics the backward reads; allow a few f16 ulps.
    let prec = Precision {
        x_dt: DType::F16,
        p_dt: DType::F16,
        tol: (1e-2, 1e-2),
        sum_tol: (0.5, 2e-2),
    };
    cases::<f16, f32, f16>(&prec, SHAPES.len(), &[true], 30);
}

#[test]
fn batch_norm_f16_with_f32_params_matches_cpu_mixed_precision() {
    // f16 activations with f32 parameters (mixed-precision training): the f16 kernels read them as
    // they are, every per-channel value in f32.
    let prec = Precision {
        x_dt: DType::F16,
        p_dt: DType::F32,
        tol: (1e-2, 1e-2),
        sum_tol: (0.5, 2e-2),
    };
    cases::<f16, f32, f16>(&prec, SHAPES.len(), &[true, false], 50);
}

#[test]
fn batch_norm_f32_in_f16_out_matches_cpu_mixed_precision() {
    // Big tensors of mixed dtypes (an f16 x with an f32 residual): the launcher widens the f16 ones
    // to f32 and the apply kernels round y, dx, dres once to f16, as the CPU's final narrowing does.
    let prec = Precision {
        x_dt: DType::F16,
        p_dt: DType::F32,
        tol: (1e-2, 1e-2),
        sum_tol: (0.5, 2e-2),
    };
    cases::<f32, f32, f16>(&prec, 3, &[true], 40);
}

/// `[N, C]` shapes (hw = 1), reduced by the row-major kernels: channel counts that leave the last
/// 32-channel tile partial (3, 37, 70) or fill every tile (64, 256); rows enough for several splits
/// per tile on the pretend GPU (2000 × 3: 16 splits of 125 rows; 2053 × 37: 16 of 129), a row count
/// that is no multiple of the row step, and fewer rows than one block's minimum (5: one split).
const ROW_SHAPES: [(usize, usize, usize); 6] = [
    (2000, 3, 1),
    (2053, 37, 1),
    (301, 70, 1),
    (1030, 64, 1),
    (260, 256, 1),
    (5, 37, 1),
];

#[test]
fn batch_norm_rows_f64_matches_cpu() {
    for (i, &dims) in ROW_SHAPES.iter().enumerate() {
        case::<f64, f64, f64>(dims, &F64, true, None, 110 + i as u64);
    }
}

#[test]
fn batch_norm_rows_f32_matches_cpu() {
    for (i, &dims) in ROW_SHAPES.iter().enumerate() {
        case::<f32, f32, f32>(dims, &F32, true, None, 120 + i as u64);
    }
}

#[test]
fn batch_norm_rows_f16_matches_cpu() {
    for (i, &dims) in ROW_SHAPES.iter().enumerate() {
        case::<f16, f32, f16>(dims, &F16, true, None, 130 + i as u64);
    }
    // f16 activations, f32 parameters, widened to f32 (the f16-out apply after the f32 row kernels):
    // the scalar apply kernels (C = 37) and the row apply kernels (C = 64, a multiple of V = 4).
    let mixed = Precision {
        p_dt: DType::F32,
        ..F16
    };
    case::<f32, f32, f16>(ROW_SHAPES[1], &mixed, true, None, 139);
    case::<f32, f32, f16>(ROW_SHAPES[3], &mixed, true, None, 138);
    // The same with the f16 kernels reading the f16 activations as they are.
    case::<f16, f32, f16>(ROW_SHAPES[1], &mixed, true, None, 137);
    case::<f16, f32, f16>(ROW_SHAPES[3], &mixed, true, None, 136);
}

/// Split counts the launcher would not pick: more splits than rows (the empty splits must still
/// write their empty partials, which start as NaN), chunks that are no multiple of the row step,
/// one split walking every row of its tile.
#[test]
fn batch_norm_rows_forced_splits_match_cpu() {
    let cases = [
        ((5, 37, 1), 8),
        ((3, 70, 1), 7),
        ((301, 70, 1), 1),
        ((301, 70, 1), 5),
        ((2000, 3, 1), 64),
    ];
    for (i, &(dims, split)) in cases.iter().enumerate() {
        case::<f32, f32, f32>(dims, &F32, true, Some(split), 140 + i as u64);
        case::<f64, f64, f64>(dims, &F64, true, Some(split), 150 + i as u64);
    }
}

/// The row kernels' partials against the per-channel kernels' (`bn_stats_<T>_s` /
/// `bn_bwd_reduce_<T>_s` with hw = 1 split the rows at the same boundaries): the same count and,
/// up to summation order, the same mean, M2, Σg and Σg·x̂ at the same index of `part`, so the
/// finalize kernels read both alike.
fn partials_match<T: KernelFloat>(dims: (usize, usize), split: usize, relu: bool, tol: (f64, f64)) {
    let (rows, c) = dims;
    let dt = T::DTYPE;
    let mut x = Buf::<T>::from_f64s(
        &seeded_randn(rows * c, 7)
            .iter()
            .map(|v| 2.0 * v + 1.0)
            .collect::<Vec<_>>(),
    );
    let mut y = Buf::<T>::from_f64s(&seeded_randn(rows * c, 8));
    let mut dy = Buf::<T>::from_f64s(&seeded_randn(rows * c, 9));
    // The saved statistics are in the compute type, like every per-channel buffer.
    let mut mean = Buf::<T::Acc>::from_f64s(&seeded_randn(c, 10));
    let mut invstd = Buf::<T::Acc>::from_f64s(&vec![0.75; c]);
    let what = format!("{} {dims:?} splits={split} relu={relu}", T::SUF);

    let mut rows_part = Buf::<T::Acc>::nan(3 * c * split);
    let mut chan_part = Buf::<T::Acc>::nan(3 * c * split);
    let call = bn::stats_rows(dt, c, rows, split, x.ptr(), rows_part.ptr());
    run_call_plan(&call, rows_launch(c, split));
    let call = bn::stats(dt, "s", c, 1, rows, split, x.ptr(), chan_part.ptr());
    run_call_plan(&call, bn::reduce_launch(c * split));
    let (got, want) = (
        rows_part.checked_f64s("rows part"),
        chan_part.checked_f64s("part"),
    );
    for i in 0..c * split {
        assert_eq!(got[3 * i], want[3 * i], "{what}: count of partial {i}");
    }
    assert_close(&format!("{what}: stats partials"), &got, &want, tol);

    let mut rows_part = Buf::<T::Acc>::nan(2 * c * split);
    let mut chan_part = Buf::<T::Acc>::nan(2 * c * split);
    let mut bufs = |part: usize| BwdReduceBufs {
        x: x.ptr(),
        mean: mean.ptr(),
        invstd: invstd.ptr(),
        y: y.ptr(),
        dy: dy.ptr(),
        part,
    };
    let call = bn::bwd_reduce_rows(dt, c, rows, split, relu, bufs(rows_part.ptr()));
    run_call_plan(&call, rows_launch(c, split));
    let call = bn::bwd_reduce(dt, "s", c, 1, rows, split, relu, bufs(chan_part.ptr()));
    run_call_plan(&call, bn::reduce_launch(c * split));
    let (got, want) = (
        rows_part.checked_f64s("rows part"),
        chan_part.checked_f64s("part"),
    );
    assert_close(&format!("{what}: backward partials"), &got, &want, tol);
}

#[test]
fn rows_partials_match_the_per_channel_kernels() {
    for (dims, split) in [((301, 70), 3), ((5, 37), 8), ((1000, 33), 4)] {
        for relu in [false, true] {
            partials_match::<f64>(dims, split, relu, (1e-12, 1e-12));
            partials_match::<f32>(dims, split, relu, (1e-4, 1e-5));
            partials_match::<f16>(dims, split, relu, (1e-4, 1e-5));
        }
    }
}

/// Chan's merge of Welford states as `welford_merge` in cuda/batch_norm.cu writes it, operation by
/// operation (Rust never contracts; the emulator is compiled with -ffp-contract=off).
fn welford<A: Float>(s: &mut [A; 3], nb: A, mb: A, m2b: A) {
    let [n, mean, m2] = *s;
    if nb == A::zero() {
        return;
    }
    if n == A::zero() {
        *s = [nb, mb, m2b];
        return;
    }
    let (nn, d) = (n + nb, mb - mean);
    let r = nb / nn;
    *s = [nn, mean + d * r, m2 + (m2b + d * d * n * r)];
}

/// The rows of split `s` (of `splits`, over `rows` rows) that row-thread `ty` of a row kernel's block
/// walks: start + ty, step [`ROWS_STEP`], below the split's end.
fn thread_rows(rows: usize, splits: usize, s: usize, ty: usize) -> impl Iterator<Item = usize> {
    let chunk = rows.div_ceil(splits);
    let end = rows.min(s * chunk + chunk);
    (s * chunk + ty..end).step_by(ROWS_STEP)
}

/// The row kernels' partials bit for bit against a host mirror of their documented order: row-thread
/// ty of a split walks rows start + ty, step 8, updating Welford's (count, mean, M2) or (Σg, Σg·x̂);
/// row-thread 0 then folds in row-threads 1, 2, …, 7. A changed row assignment or merge order shows
/// here even where the result stays within every tolerance. Inputs span several decades, so the
/// order of the sums matters in their last bits.
fn exact_order<T: KernelFloat<Acc = A>, A: KernelFloat + Float>(
    (rows, c): (usize, usize),
    split: usize,
    relu: bool,
    seed: u64,
) {
    let dt = T::DTYPE;
    let spread = |len, seed| {
        let (v, e) = (seeded_randn(len, seed), seeded_randn(len, seed + 1));
        v.iter()
            .zip(e)
            .map(|(v, e)| v * 10f64.powf(e.clamp(-2.0, 2.0)))
            .collect::<Vec<f64>>()
    };
    let (xv, yv, dyv) = (
        spread(rows * c, seed),
        spread(rows * c, seed + 2),
        spread(rows * c, seed + 4),
    );
    let (meanv, invstdv) = (spread(c, seed + 6), vec![0.3; c]);
    let (mut x, mut y, mut dy) = (
        Buf::<T>::from_f64s(&xv),
        Buf::<T>::from_f64s(&yv),
        Buf::<T>::from_f64s(&dyv),
    );
    // The saved statistics are in A, like every per-channel buffer.
    let (mut mean, mut invstd) = (Buf::<A>::from_f64s(&meanv), Buf::<A>::from_f64s(&invstdv));
    // The values the kernels read: T widened to A (exact), and the statistics as stored.
    let acc = |b: &Buf<T>| -> Vec<A> {
        b.to_vec()
            .iter()
            .map(|v| A::from(v.to_f64()).unwrap())
            .collect()
    };
    let (xa, ya, dya) = (acc(&x), acc(&y), acc(&dy));
    let (ma, ia) = (mean.to_vec(), invstd.to_vec());
    let what = format!("{} {rows}×{c} splits={split} relu={relu}", T::SUF);

    let mut want = vec![A::zero(); 3 * c * split];
    let mut want_b = vec![A::zero(); 2 * c * split];
    for ch in 0..c {
        for s in 0..split {
            let mut st = [[A::zero(); 3]; ROWS_STEP];
            let mut sums = [[A::zero(); 2]; ROWS_STEP];
            for ty in 0..ROWS_STEP {
                for r in thread_rows(rows, split, s, ty) {
                    let i = r * c + ch;
                    welford(&mut st[ty], A::one(), xa[i], A::zero());
                    let g = if relu && ya[i] <= A::zero() {
                        A::zero()
                    } else {
                        dya[i]
                    };
                    sums[ty][0] = sums[ty][0] + g;
                    sums[ty][1] = sums[ty][1] + g * ((xa[i] - ma[ch]) * ia[ch]);
                }
            }
            let (mut w, mut b) = (st[0], sums[0]);
            for ty in 1..ROWS_STEP {
                welford(&mut w, st[ty][0], st[ty][1], st[ty][2]);
                b = [b[0] + sums[ty][0], b[1] + sums[ty][1]];
            }
            let p = ch * split + s;
            want[3 * p..3 * p + 3].copy_from_slice(&w);
            want_b[2 * p..2 * p + 2].copy_from_slice(&b);
        }
    }

    let mut part = Buf::<A>::nan(3 * c * split);
    let call = bn::stats_rows(dt, c, rows, split, x.ptr(), part.ptr());
    run_call_plan(&call, rows_launch(c, split));
    same_bits(
        &format!("{what}: stats partials"),
        &part.checked("part"),
        &want,
        false,
    );
    let mut part = Buf::<A>::nan(2 * c * split);
    let bufs = BwdReduceBufs {
        x: x.ptr(),
        mean: mean.ptr(),
        invstd: invstd.ptr(),
        y: y.ptr(),
        dy: dy.ptr(),
        part: part.ptr(),
    };
    let call = bn::bwd_reduce_rows(dt, c, rows, split, relu, bufs);
    run_call_plan(&call, rows_launch(c, split));
    same_bits(
        &format!("{what}: backward partials"),
        &part.checked("part"),
        &want_b,
        false,
    );
}

#[test]
fn rows_partials_follow_the_documented_order_bit_for_bit() {
    for (i, (dims, split)) in [
        ((301, 70), 3),
        ((5, 37), 8),
        ((1000, 33), 4),
        ((129, 64), 1),
    ]
    .into_iter()
    .enumerate()
    {
        for relu in [false, true] {
            let seed = 200 + 10 * i as u64;
            exact_order::<f64, f64>(dims, split, relu, seed);
            exact_order::<f32, f32>(dims, split, relu, seed);
            exact_order::<f16, f32>(dims, split, relu, seed);
        }
    }
}

#[test]
fn reduce_plan_picks_the_row_kernels_exactly_for_hw_1() {
    let p = ReducePlan::new(SM_COUNT, 2053, 37, 1, (1, "s"));
    assert_eq!(p.kind, Reduce::Rows { rows: 2053 });
    // 2 tiles: 16 splits fill the pretend GPU's 32 blocks; 129 rows each ≥ MIN_ROWS_PER_BLOCK.
    assert_eq!(p.splits, 16);
    assert_eq!(p.launch(), rows_launch(37, 16));
    assert_eq!(p.launch().blocks, 32);
    assert_eq!(p.stats(DType::F32, 0usize, 0).name, "bn_stats_rows_f32");
    assert_eq!(
        p.bwd_reduce(
            DType::F16,
            true,
            BwdReduceBufs {
                x: 0usize,
                mean: 0,
                invstd: 0,
                y: 0,
                dy: 0,
                part: 0
            }
        )
        .name,
        "bn_bwd_reduce_rows_f16"
    );
    let p = ReducePlan::new(SM_COUNT, 4, 6, 64, (4, "v"));
    assert_eq!(p.kind, Reduce::Planes { vs: "v", items: 64 });
    assert_eq!(p.stats(DType::F32, 0usize, 0).name, "bn_stats_f32_v");
    assert_eq!(rows_splits(SM_COUNT, 37, MIN_ROWS_PER_BLOCK), 1);
    assert_eq!(rows_splits(SM_COUNT, 37, MIN_ROWS_PER_BLOCK + 1), 2);
    assert_eq!(rows_splits(SM_COUNT, 256, 1 << 20), 4);
    assert_eq!(rows_splits(SM_COUNT, 3, 0), 1);
}

#[test]
fn wrong_argument_lists_are_refused() {
    let mut x = Buf::<f32>::from_slice(&[1.0; 8]);
    let mut part = Buf::<f32>::filled(3, f32::NAN);
    let good = bn::stats(DType::F32, "s", 1, 8, 8, 1, x.ptr(), part.ptr());
    assert_eq!(good.name, "bn_stats_f32_s");
    // One argument short (no `splits`).
    let mut call = good.clone();
    call.args.remove(3);
    let e = launch_call(&call, [1, 1, 1], BLOCK).unwrap_err();
    assert!(e.contains("takes 6 arguments"), "{e}");
    // An int where the kernel takes i64.
    let mut call = good.clone();
    call.args[1] = KArg::I32(8);
    let e = launch_call(&call, [1, 1, 1], BLOCK).unwrap_err();
    assert!(e.contains("argument 1 is 8 bytes"), "{e}");
    let e = launch("bn_stats_f33_s", [1, 1, 1], BLOCK, &[]).unwrap_err();
    assert!(e.contains("no kernel named"), "{e}");
}
