//! What the batch-norm emulator tests share (tests/cuda_emu_batch_norm.rs and
//! tests/cuda_emu_batch_norm_apply.rs): the op kinds, seeded inputs, the emulated launch sequence of
//! src/backend/cuda/batch_norm.rs (stats → finalize → apply; reduce → finalize → apply) with
//! `kernel_abi::batch_norm`'s calls and plans (`ReducePlan`, `ApplyPlan`, the vector pick) on the
//! pretend GPU, and the per-dtype tolerances.
//!
//! Invariants: the launches are the launcher's, kernel for kernel (same plans, same calls, same
//! grids, on [`SM_COUNT`] SMs); every output and scratch buffer starts as NaN and every buffer's
//! guard zones are checked after the sequence; inputs are rounded to their storage type, so the
//! CPU backend and the kernels read the same values.
#![allow(dead_code)] // each test file uses its own part

use engine::backend::cuda_emu::test_support::{
    grid_1d, run_call, run_call_plan, seeded_randn, KernelFloat, SM_COUNT,
};
use engine::backend::cuda_emu::Buf;
use engine::backend::kernel_abi::batch_norm::{
    self as bn, pick_vec, ApplyPlan, BwdApplyBufs, BwdFinalizeBufs, BwdReduceBufs, FwdFinalizeBufs,
    Reduce, ReducePlan,
};
use engine::{DType, Device, Tensor};

/// The op: plain batch norm, fused ReLU, fused residual add + ReLU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Plain,
    Relu,
    AddRelu,
}

/// One case's inputs, f64 values already rounded to the storage type(s) they are used in.
pub struct Inputs {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub x: Vec<f64>,
    pub res: Vec<f64>,
    pub gamma: Vec<f64>,
    pub beta: Vec<f64>,
    pub rm: Vec<f64>,
    pub rv: Vec<f64>,
    /// The upstream gradient dy (= w of Σ y·w).
    pub w: Vec<f64>,
}

/// Seeded inputs of shape `dims` = (n, c, hw): x, residual and dy rounded to `x_dt`, the
/// parameters and running statistics to `p_dt`.
pub fn inputs(dims: (usize, usize, usize), x_dt: DType, p_dt: DType, seed: u64) -> Inputs {
    let (n, c, hw) = dims;
    let total = n * c * hw;
    let round = |v: Vec<f64>, dt: DType| -> Vec<f64> {
        Tensor::from_f64s(&v, vec![v.len()], dt, Device::Cpu)
            .unwrap()
            .to_vec_f64()
            .unwrap()
    };
    // An offset mean and a non-unit spread, so the statistics matter.
    let x = seeded_randn(total, seed)
        .iter()
        .map(|v| 2.5 * v + 1.5)
        .collect();
    Inputs {
        n,
        c,
        hw,
        x: round(x, x_dt),
        res: round(seeded_randn(total, seed + 1), x_dt),
        gamma: round(
            seeded_randn(c, seed + 2).iter().map(|v| v + 1.0).collect(),
            p_dt,
        ),
        beta: round(seeded_randn(c, seed + 3), p_dt),
        rm: round(
            seeded_randn(c, seed + 4).iter().map(|v| 0.3 * v).collect(),
            p_dt,
        ),
        rv: round(
            seeded_randn(c, seed + 5)
                .iter()
                .map(|v| v.abs() + 0.5)
                .collect(),
            p_dt,
        ),
        w: round(seeded_randn(total, seed + 6), x_dt),
    }
}

/// The emulated kernels' outputs, and the elementwise passes' plan.
pub struct EmuOut {
    pub y: Vec<f64>,
    pub save_mean: Vec<f64>,
    pub save_invstd: Vec<f64>,
    pub rm: Vec<f64>,
    pub rv: Vec<f64>,
    pub dx: Vec<f64>,
    pub dgamma: Vec<f64>,
    pub dbeta: Vec<f64>,
    pub dres: Vec<f64>,
    /// The pick of `ApplyPlan::new` both apply passes ran.
    pub apply: ApplyPlan,
}

/// The launch sequence of `BatchNormForward` then `BatchNormBackward` with big-tensor storage T,
/// accumulator A (every per-channel buffer: parameters, running and saved statistics), big outputs
/// TO. `split` forces
/// the reductions' split count (the launcher's is `ReducePlan::new`'s). `vector` stands for "every
/// buffer is 16-byte aligned" (Bufs always are): false forces the scalar apply kernels.
pub fn emu<T: KernelFloat, A: KernelFloat, TO: KernelFloat>(
    inp: &Inputs,
    kind: Kind,
    training: bool,
    vector: bool,
    split: Option<usize>,
) -> EmuOut {
    let (n, c, hw) = (inp.n, inp.c, inp.hw);
    let total = n * c * hw;
    let (v, vs) = pick_vec(hw, T::DTYPE, vector);
    let apply = ApplyPlan::new(n, c, hw, T::DTYPE, vector);
    let (relu, add) = (kind != Kind::Plain, kind == Kind::AddRelu);
    let (dt, odt, m) = (T::DTYPE, TO::DTYPE, n * hw);
    let mut x = Buf::<T>::from_f64s(&inp.x);
    let mut res = Buf::<T>::from_f64s(&inp.res);
    // Per-channel inputs in A, as the launcher hands them over (cast from their dtype: exact, since
    // A is at least as wide as any parameter dtype a case uses with T).
    let mut gamma = Buf::<A>::from_f64s(&inp.gamma);
    let mut beta = Buf::<A>::from_f64s(&inp.beta);
    let mut rm = Buf::<A>::from_f64s(&inp.rm);
    let mut rv = Buf::<A>::from_f64s(&inp.rv);
    let mut y = Buf::<TO>::nan(total);
    let mut save_mean = Buf::<A>::nan(c);
    let mut save_invstd = Buf::<A>::nan(c);
    let mut new_rm = Buf::<A>::nan(c);
    let mut new_rv = Buf::<A>::nan(c);
    let mut coef = Buf::<A>::nan(2 * c);

    // Forward.
    let mut reduce = ReducePlan::new(SM_COUNT, n, c, hw, (v, vs));
    if let Some(k) = split {
        reduce.splits = k;
    }
    assert_eq!(
        matches!(reduce.kind, Reduce::Rows { .. }),
        hw == 1,
        "the row kernels run exactly when hw = 1"
    );
    let s = if training { reduce.splits } else { 1 };
    let mut part = Buf::<A>::nan(3 * c * s);
    if training {
        let call = reduce.stats(dt, x.ptr(), part.ptr());
        run_call_plan(&call, reduce.launch());
        let p = part.checked_f64s("part");
        assert!(p.iter().all(|v| v.is_finite()), "a stats partial unwritten");
    }
    let call = bn::fwd_finalize(
        dt,
        c,
        s,
        training,
        m,
        1e-5,
        0.1,
        FwdFinalizeBufs {
            gamma: gamma.ptr(),
            beta: beta.ptr(),
            rm: rm.ptr(),
            rv: rv.ptr(),
            part: part.ptr(),
            save_mean: save_mean.ptr(),
            save_invstd: save_invstd.ptr(),
            new_rm: new_rm.ptr(),
            new_rv: new_rv.ptr(),
            coef: coef.ptr(),
        },
    );
    run_call(&call, grid_1d(c));
    let call = apply.fwd_apply(
        dt,
        odt,
        relu,
        x.ptr(),
        add.then(|| res.ptr()),
        coef.ptr(),
        y.ptr(),
    );
    run_call(&call, grid_1d(apply.items));
    let y_out = y.checked_f64s("y");
    let (save_mean_v, save_invstd_v) = (
        save_mean.checked_f64s("save_mean"),
        save_invstd.checked_f64s("save_invstd"),
    );
    let (rm_v, rv_v) = (new_rm.checked_f64s("new_rm"), new_rv.checked_f64s("new_rv"));
    coef.check_guards("coef").unwrap();

    // Backward: the forward's saved statistics (batch statistics in training, running ones in
    // eval), in A as the forward wrote them (the op keeps them so).
    let mut mean = Buf::<A>::from_f64s(&save_mean_v);
    let mut invstd = Buf::<A>::from_f64s(&save_invstd_v);
    // The backward reads y in T (the launcher's inputs share one dtype).
    let mut y_in = Buf::<T>::from_f64s(&y_out);
    let mut dy = Buf::<T>::from_f64s(&inp.w);
    let s = reduce.splits;
    let mut part = Buf::<A>::nan(2 * c * s);
    let call = reduce.bwd_reduce(
        dt,
        relu,
        BwdReduceBufs {
            x: x.ptr(),
            mean: mean.ptr(),
            invstd: invstd.ptr(),
            y: y_in.ptr(),
            dy: dy.ptr(),
            part: part.ptr(),
        },
    );
    run_call_plan(&call, reduce.launch());
    let p = part.checked_f64s("bwd part");
    assert!(
        p.iter().all(|v| v.is_finite()),
        "a backward partial unwritten"
    );
    let mut dgamma = Buf::<A>::nan(c);
    let mut dbeta = Buf::<A>::nan(c);
    let mut coef = Buf::<A>::nan(5 * c);
    let call = bn::bwd_finalize(
        dt,
        c,
        s,
        m,
        BwdFinalizeBufs {
            gamma: gamma.ptr(),
            mean: mean.ptr(),
            invstd: invstd.ptr(),
            part: part.ptr(),
            dgamma: dgamma.ptr(),
            dbeta: dbeta.ptr(),
            coef: coef.ptr(),
        },
    );
    run_call(&call, grid_1d(c));
    coef.check_guards("bwd coef").unwrap();
    let mut dx = Buf::<TO>::nan(total);
    // Without a residual the kernel must not write dres: a zero-length buffer's guards catch it.
    let mut dres = Buf::<TO>::nan(if add { total } else { 0 });
    let call = apply.bwd_apply(
        dt,
        odt,
        training,
        relu,
        add,
        BwdApplyBufs {
            x: x.ptr(),
            y: y_in.ptr(),
            dy: dy.ptr(),
            coef: coef.ptr(),
            dx: dx.ptr(),
            dres: dres.ptr(),
        },
    );
    run_call(&call, grid_1d(apply.items));
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
        dx: dx.checked_f64s("dx"),
        dgamma: dgamma.checked_f64s("dgamma"),
        dbeta: dbeta.checked_f64s("dbeta"),
        dres: dres.checked_f64s("dres"),
        apply,
    }
}

/// A test's storage types on the CPU (x, params) and its tolerances (atol, rtol): for the big tensors
/// and for the per-channel sums (dγ, dβ sum M terms, so their error grows with M).
#[derive(Clone, Copy)]
pub struct Precision {
    pub x_dt: DType,
    pub p_dt: DType,
    pub tol: (f64, f64),
    pub sum_tol: (f64, f64),
}

/// f64 against f64: only summation order differs (Welford + tree vs the CPU's loops).
pub const F64: Precision = Precision {
    x_dt: DType::F64,
    p_dt: DType::F64,
    tol: (1e-11, 1e-10),
    sum_tol: (1e-9, 1e-10),
};
/// f32: a few ulps from the order of the sums and the f64 statistics; dγ/dβ are sums of up to
/// ~12,000 products, so their absolute error is larger.
pub const F32: Precision = Precision {
    x_dt: DType::F32,
    p_dt: DType::F32,
    tol: (2e-5, 2e-5),
    sum_tol: (2e-3, 1e-4),
};
/// f16 storage, f32 compute (f32 per-channel values): one f16 rounding of each output; a few f16
/// ulps.
pub const F16: Precision = Precision {
    x_dt: DType::F16,
    p_dt: DType::F16,
    tol: (1e-2, 1e-2),
    sum_tol: (0.5, 2e-2),
};
