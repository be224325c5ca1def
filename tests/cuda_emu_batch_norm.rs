#![cfg(feature = "cuda-emu")]
//! The batch-norm kernels of cuda/batch_norm.cu, run in the CUDA emulator (`--features cuda-emu`), against
//! the CPU backend: the launch sequence of src/backend/cuda/batch_norm.rs (stats → finalize → apply;
//! reduce → finalize → apply) with its argument lists, grid shapes, vector-width pick and channel
//! splits, on a pretend GPU of 4 SMs.
//!
//! Compared: y, the running statistics, dx, dγ, dβ and dresidual with the CPU's batch norm (values and
//! autograd gradients of Σ y·w); the saved mean and 1/std with an f64 computation from the same
//! (rounded) input. Every case runs plain, fused ReLU and fused residual + ReLU; training and eval; f64,
//! f32, f16 and f16-out-of-f32 (the mixed-precision apply). Outputs start as NaN and every buffer's
//! guard zones are checked after each launch.

use engine::backend::cuda_emu::{launch, Arg, Buf};
use engine::testing::compare;
use engine::{BatchNormArgs, DType, Device, Result, Tensor};
use half::f16;

/// Threads per block of the reductions and of `g.grid` (BN_THREADS, THREADS).
const THREADS: u32 = 256;
/// The launchers' `MIN_ITEMS_PER_BLOCK`.
const MIN_ITEMS_PER_BLOCK: usize = 4096;
/// A pretend GPU: few SMs keep the emulated grids small and make the grid-stride loops wrap.
const SM_COUNT: usize = 4;

/// A storage type of the kernels: its suffix, its vector width, conversions through f64.
trait Elem: bytemuck::Pod {
    const SUF: &'static str;
    const DTYPE: DType;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Elem for f64 {
    const SUF: &'static str = "f64";
    const DTYPE: DType = DType::F64;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

impl Elem for f32 {
    const SUF: &'static str = "f32";
    const DTYPE: DType = DType::F32;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Elem for f16 {
    const SUF: &'static str = "f16";
    const DTYPE: DType = DType::F16;
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
}

fn grid(n: usize) -> [u32; 3] {
    [
        n.div_ceil(THREADS as usize).clamp(1, SM_COUNT * 32) as u32,
        1,
        1,
    ]
}

const BLOCK: [u32; 3] = [THREADS, 1, 1];

fn splits(c: usize, items: usize) -> usize {
    let want = (SM_COUNT * 8).div_ceil(c.max(1));
    want.min(items.div_ceil(MIN_ITEMS_PER_BLOCK)).max(1)
}

fn run(name: &str, grid: [u32; 3], args: &[Arg]) {
    launch(name, grid, BLOCK, args).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn conv<T: Elem>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

fn back<T: Elem>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn checked<T: Elem>(b: &Buf<T>, what: &str) -> Vec<f64> {
    b.check_guards(what).unwrap();
    back(&b.to_vec())
}

fn randn(len: usize, seed: u64) -> Vec<f64> {
    Tensor::randn(vec![len], 0.0, 1.0, seed, DType::F64, Device::Cpu)
        .unwrap()
        .to_vec_f64()
        .unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Plain,
    Relu,
    AddRelu,
}

/// One case's inputs, f64 values already rounded to the storage type(s) they are used in.
struct Inputs {
    n: usize,
    c: usize,
    hw: usize,
    x: Vec<f64>,
    res: Vec<f64>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    rm: Vec<f64>,
    rv: Vec<f64>,
    /// The upstream gradient dy (= w of Σ y·w).
    w: Vec<f64>,
}

fn inputs(dims: (usize, usize, usize), x_dt: DType, p_dt: DType, seed: u64) -> Inputs {
    let (n, c, hw) = dims;
    let total = n * c * hw;
    let round = |v: Vec<f64>, dt: DType| -> Vec<f64> {
        Tensor::from_f64s(&v, vec![v.len()], dt, Device::Cpu)
            .unwrap()
            .to_vec_f64()
            .unwrap()
    };
    // An offset mean and a non-unit spread, so the statistics matter.
    let x = randn(total, seed).iter().map(|v| 2.5 * v + 1.5).collect();
    Inputs {
        n,
        c,
        hw,
        x: round(x, x_dt),
        res: round(randn(total, seed + 1), x_dt),
        gamma: round(randn(c, seed + 2).iter().map(|v| v + 1.0).collect(), p_dt),
        beta: round(randn(c, seed + 3), p_dt),
        rm: round(randn(c, seed + 4).iter().map(|v| 0.3 * v).collect(), p_dt),
        rv: round(
            randn(c, seed + 5).iter().map(|v| v.abs() + 0.5).collect(),
            p_dt,
        ),
        w: round(randn(total, seed + 6), x_dt),
    }
}

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

/// The emulated kernels' outputs.
struct EmuOut {
    y: Vec<f64>,
    save_mean: Vec<f64>,
    save_invstd: Vec<f64>,
    rm: Vec<f64>,
    rv: Vec<f64>,
    dx: Vec<f64>,
    dgamma: Vec<f64>,
    dbeta: Vec<f64>,
    dres: Vec<f64>,
}

/// The launch sequence of `BatchNormForward` then `BatchNormBackward` with input storage T,
/// accumulator A, big outputs TO, per-channel statistics handed to the backward as T (what
/// `cuda::run` does: the forward writes them in A and casts them to the op's dtype).
fn emu<T: Elem, A: Elem, TO: Elem>(
    inp: &Inputs,
    kind: Kind,
    training: bool,
    vector: bool,
) -> EmuOut {
    let (n, c, hw) = (inp.n, inp.c, inp.hw);
    let total = n * c * hw;
    let vw = 16 / std::mem::size_of::<T>();
    let (v, vs) = if vector && hw % vw == 0 {
        (vw, "v")
    } else {
        (1, "s")
    };
    let (relu, add) = (kind != Kind::Plain, kind == Kind::AddRelu);
    let (sfx, osfx) = (T::SUF, TO::SUF);
    let (c64, hw64, m) = (c as i64, hw as i64, n * hw);
    let mut x = Buf::<T>::from_slice(&conv(&inp.x));
    let mut res = Buf::<T>::from_slice(&conv(&inp.res));
    let mut gamma = Buf::<T>::from_slice(&conv(&inp.gamma));
    let mut beta = Buf::<T>::from_slice(&conv(&inp.beta));
    let mut rm = Buf::<T>::from_slice(&conv(&inp.rm));
    let mut rv = Buf::<T>::from_slice(&conv(&inp.rv));
    let nan = || A::from_f64(f64::NAN);
    let mut y = Buf::<TO>::filled(total, TO::from_f64(f64::NAN));
    let mut save_mean = Buf::<A>::filled(c, nan());
    let mut save_invstd = Buf::<A>::filled(c, nan());
    let mut new_rm = Buf::<A>::filled(c, nan());
    let mut new_rv = Buf::<A>::filled(c, nan());
    let mut coef = Buf::<A>::filled(2 * c, nan());

    // Forward.
    let items = n * (hw / v);
    let s = if training { splits(c, items) } else { 1 };
    let mut part = Buf::<A>::filled(3 * c * s, nan());
    if training {
        run(
            &format!("bn_stats_{sfx}_{vs}"),
            [(c * s) as u32, 1, 1],
            &[
                Arg::I64(c64),
                Arg::I64(hw64),
                Arg::I64(items as i64),
                Arg::I64(s as i64),
                x.arg(),
                part.arg(),
            ],
        );
        part.check_guards("part").unwrap();
    }
    run(
        &format!("bn_fwd_finalize_{sfx}"),
        grid(c),
        &[
            Arg::I64(c64),
            Arg::I64(s as i64),
            Arg::I32(training as i32),
            Arg::F64(m as f64),
            Arg::F64(1e-5),
            Arg::F64(0.1),
            gamma.arg(),
            beta.arg(),
            rm.arg(),
            rv.arg(),
            part.arg(),
            save_mean.arg(),
            save_invstd.arg(),
            new_rm.arg(),
            new_rv.arg(),
            coef.arg(),
        ],
    );
    let items = total / v;
    run(
        &format!("bn_fwd_apply_{sfx}_{osfx}_{vs}"),
        grid(items),
        &[
            Arg::I64(items as i64),
            Arg::I64(c64),
            Arg::I64(hw64),
            Arg::I32(relu as i32),
            Arg::I32(add as i32),
            x.arg(),
            if add { res.arg() } else { x.arg() },
            coef.arg(),
            y.arg(),
        ],
    );
    let y_out = checked(&y, "y");
    let (save_mean_v, save_invstd_v) = (
        checked(&save_mean, "save_mean"),
        checked(&save_invstd, "save_invstd"),
    );
    let (rm_v, rv_v) = (checked(&new_rm, "new_rm"), checked(&new_rv, "new_rv"));
    coef.check_guards("coef").unwrap();

    // Backward: the forward's saved statistics (batch statistics in training, running ones in
    // eval), handed over in T as `cuda::run` casts them to the op's dtype.
    let (mean_t, invstd_t) = (save_mean_v.clone(), save_invstd_v.clone());
    let mut mean = Buf::<T>::from_slice(&conv(&mean_t));
    let mut invstd = Buf::<T>::from_slice(&conv(&invstd_t));
    // The backward reads y in T (the launcher's inputs share one dtype).
    let mut y_in = Buf::<T>::from_slice(&conv(&y_out));
    let mut dy = Buf::<T>::from_slice(&conv(&inp.w));
    let items = n * (hw / v);
    let s = splits(c, items);
    let mut part = Buf::<A>::filled(2 * c * s, nan());
    run(
        &format!("bn_bwd_reduce_{sfx}_{vs}"),
        [(c * s) as u32, 1, 1],
        &[
            Arg::I64(c64),
            Arg::I64(hw64),
            Arg::I64(items as i64),
            Arg::I64(s as i64),
            Arg::I32(relu as i32),
            x.arg(),
            mean.arg(),
            invstd.arg(),
            y_in.arg(),
            dy.arg(),
            part.arg(),
        ],
    );
    part.check_guards("bwd part").unwrap();
    let mut dgamma = Buf::<A>::filled(c, nan());
    let mut dbeta = Buf::<A>::filled(c, nan());
    let mut coef = Buf::<A>::filled(5 * c, nan());
    run(
        &format!("bn_bwd_finalize_{sfx}"),
        grid(c),
        &[
            Arg::I64(c64),
            Arg::I64(s as i64),
            Arg::F64(m as f64),
            gamma.arg(),
            mean.arg(),
            invstd.arg(),
            part.arg(),
            dgamma.arg(),
            dbeta.arg(),
            coef.arg(),
        ],
    );
    coef.check_guards("bwd coef").unwrap();
    let items = total / v;
    let mut dx = Buf::<TO>::filled(total, TO::from_f64(f64::NAN));
    // Without a residual the kernel must not write dres: a zero-length buffer's guards catch it.
    let mut dres = Buf::<TO>::filled(if add { total } else { 0 }, TO::from_f64(f64::NAN));
    run(
        &format!("bn_bwd_apply_{sfx}_{osfx}_{vs}"),
        grid(items),
        &[
            Arg::I64(items as i64),
            Arg::I64(c64),
            Arg::I64(hw64),
            Arg::I32(training as i32),
            Arg::I32(relu as i32),
            Arg::I32(add as i32),
            x.arg(),
            y_in.arg(),
            dy.arg(),
            coef.arg(),
            dx.arg(),
            dres.arg(),
        ],
    );
    for (b, what) in [(&x, "x"), (&res, "res"), (&y_in, "y"), (&dy, "dy")] {
        b.check_guards(what).unwrap();
    }
    for (b, what) in [(&gamma, "gamma"), (&beta, "beta"), (&rm, "rm"), (&rv, "rv")] {
        b.check_guards(what).unwrap();
    }
    EmuOut {
        y: y_out,
        save_mean: save_mean_v,
        save_invstd: save_invstd_v,
        rm: rm_v,
        rv: rv_v,
        dx: checked(&dx, "dx"),
        dgamma: checked(&dgamma, "dgamma"),
        dbeta: checked(&dbeta, "dbeta"),
        dres: checked(&dres, "dres"),
    }
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

fn assert_close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (max, ok) = compare(got, want, atol, rtol);
    assert!(ok, "{what}: max |emulated − cpu| = {max:.3e}");
}

/// Runs one case: shape `(n, c, hw)`, T/A/TO, CPU dtypes (x, params), tolerances (atol, rtol) for the
/// big tensors and for the per-channel sums (dγ, dβ sum M terms, so their error grows with M).
#[allow(clippy::too_many_arguments)]
fn case<T: Elem, A: Elem, TO: Elem>(
    dims: (usize, usize, usize),
    x_dt: DType,
    p_dt: DType,
    vector: bool,
    tol: (f64, f64),
    sum_tol: (f64, f64),
    seed: u64,
) {
    let inp = inputs(dims, x_dt, p_dt, seed);
    let (mean64, invstd64) = stats_f64(&inp);
    for training in [true, false] {
        for kind in [Kind::Plain, Kind::Relu, Kind::AddRelu] {
            let what = format!(
                "{dims:?} {}→{} {} {kind:?} training={training}",
                T::SUF,
                TO::SUF,
                if vector { "vector" } else { "scalar" }
            );
            let want = cpu(&inp, x_dt, p_dt, kind, training).unwrap();
            let got = emu::<T, A, TO>(&inp, kind, training, vector);
            let (atol, rtol) = tol;
            assert_close(&format!("{what}: y"), &got.y, &want.y, atol, rtol);
            assert_close(&format!("{what}: dx"), &got.dx, &want.dx, atol, rtol);
            if kind == Kind::AddRelu {
                assert_close(&format!("{what}: dres"), &got.dres, &want.dres, atol, rtol);
            } else {
                assert!(got.dres.is_empty());
            }
            let (satol, srtol) = sum_tol;
            assert_close(
                &format!("{what}: dγ"),
                &got.dgamma,
                &want.dgamma,
                satol,
                srtol,
            );
            assert_close(
                &format!("{what}: dβ"),
                &got.dbeta,
                &want.dbeta,
                satol,
                srtol,
            );
            assert_close(
                &format!("{what}: running mean"),
                &got.rm,
                &want.rm,
                atol,
                rtol,
            );
            assert_close(
                &format!("{what}: running var"),
                &got.rv,
                &want.rv,
                atol,
                rtol,
            );
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
                atol,
                rtol,
            );
            assert_close(
                &format!("{what}: save_invstd"),
                &got.save_invstd,
                &invstd_ref,
                atol,
                rtol,
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
    for (i, &dims) in SHAPES.iter().enumerate() {
        for vector in [true, false] {
            case::<f64, f64, f64>(
                dims,
                DType::F64,
                DType::F64,
                vector,
                (1e-11, 1e-10),
                (1e-9, 1e-10),
                10 + i as u64,
            );
        }
    }
}

#[test]
fn batch_norm_f32_matches_cpu() {
    // f32: a few ulps from the order of the sums and the f64 statistics; dγ/dβ are sums of up to
    // ~12,000 products, so their absolute error is larger.
    for (i, &dims) in SHAPES.iter().enumerate() {
        for vector in [true, false] {
            case::<f32, f32, f32>(
                dims,
                DType::F32,
                DType::F32,
                vector,
                (2e-5, 2e-5),
                (2e-3, 1e-4),
                20 + i as u64,
            );
        }
    }
}

#[test]
fn batch_norm_f16_matches_cpu() {
    // f16 storage, f32 compute: one f16 rounding of each output (rel. 2^-11 ≈ 4.9e-4) plus the f16
    // saved statistics the backward reads; allow a few f16 ulps.
    for (i, &dims) in SHAPES.iter().enumerate() {
        case::<f16, f32, f16>(
            dims,
            DType::F16,
            DType::F16,
            true,
            (1e-2, 1e-2),
            (0.5, 2e-2),
            30 + i as u64,
        );
    }
}

#[test]
fn batch_norm_f32_in_f16_out_matches_cpu_mixed_precision() {
    // f16 activations with f32 parameters: `cuda::run` widens x, residual, y, dy to f32 and the apply
    // kernels round y, dx, dres once to f16, as the CPU's final narrowing does.
    for (i, &dims) in SHAPES.iter().enumerate().take(3) {
        case::<f32, f32, f16>(
            dims,
            DType::F16,
            DType::F32,
            true,
            (1e-2, 1e-2),
            (0.5, 2e-2),
            40 + i as u64,
        );
    }
}

#[test]
fn wrong_argument_lists_are_refused() {
    let mut x = Buf::<f32>::from_slice(&[1.0; 8]);
    let mut part = Buf::<f32>::filled(3, f32::NAN);
    // One argument short.
    let e = launch(
        "bn_stats_f32_s",
        [1, 1, 1],
        BLOCK,
        &[Arg::I64(1), Arg::I64(8), Arg::I64(8), x.arg(), part.arg()],
    )
    .unwrap_err();
    assert!(e.contains("takes 6 arguments"), "{e}");
    // An int where the kernel takes i64.
    let e = launch(
        "bn_stats_f32_s",
        [1, 1, 1],
        BLOCK,
        &[
            Arg::I64(1),
            Arg::I32(8),
            Arg::I64(8),
            Arg::I64(1),
            x.arg(),
            part.arg(),
        ],
    )
    .unwrap_err();
    assert!(e.contains("argument 1 is 8 bytes"), "{e}");
    let e = launch("bn_stats_f33_s", [1, 1, 1], BLOCK, &[]).unwrap_err();
    assert!(e.contains("no kernel named"), "{e}");
}
