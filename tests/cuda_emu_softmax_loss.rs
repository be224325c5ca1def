#![cfg(feature = "cuda-emu")]
//! The softmax and loss kernels (cuda/softmax.cu, cuda/loss.cu), run in the CUDA emulator
//! (`--features cuda-emu`) against the CPU backend, with the argument lists, grid shapes and kernel
//! picks of their launchers (src/backend/cuda/softmax.rs, src/backend/cuda/loss.rs) on a pretend GPU
//! of 4 SMs.
//!
//! Compared:
//! - `softmax_{warp,block,lane}_*` / `softmax_bwd_{warp,block,lane}_*`: `Tensor::softmax` /
//!   `log_softmax` over the middle dim of `[outer, len, inner]` and the autograd gradient of Σ y·w;
//!   the backward reads the emulated forward's output (in T) as the saved y, as the launcher's caller
//!   does.
//! - `ce_soft_rows_*`, `ce_soft_bwd_*`, `mean_finish_*`: `cross_entropy_soft` (probability and
//!   unnormalised targets) and `cross_entropy` with label smoothing (its smoothed one-hot target is
//!   what the kernels get), value and gradient.
//! - `distill_rows_*`, `distill_bwd_*`: `distillation_loss` at several temperatures, value and
//!   gradient, plus a teacher whose probability underflows to 0 (the `p == 0` branch).
//! - `pair_partial_*`, `pair_bwd_*`: `mse_loss`, `l1_loss` (gradients to both sides), `bce_with_logits`
//!   (gradient to the logits; the kernel's target gradient −a·dy/n against f64), with L1 ties and
//!   saturated BCE logits.
//! - The scratch buffers the CPU API does not expose (per-row losses, per-block pair partials) and
//!   `mean_finish` on its own (counts around the block size, an empty batch's 0/0 = NaN) against f64
//!   computations from the same rounded inputs.
//!
//! Invariants the test holds to: inputs are seeded random values, already rounded to the storage type
//! so both sides read identical inputs; outputs and scratch start as NaN, so an element a kernel
//! forgets fails the compare; every buffer's guard zones are checked after the launches; the upstream
//! gradient is DY = 0.75 (exact in every dtype), so the dy scaling is exercised. Every row case runs
//! the launcher's pick with the launcher's grid, the same pick with a 1-block grid (grid-stride loops
//! must wrap), and every other group variant (all are correct for any shape; the launcher's choice is
//! only about speed; skipped on the one ≥ 2048-row softmax case, where they would be slow grids), in
//! f64, f32 and f16.

use std::collections::BTreeSet;

use engine::backend::cuda_emu::{kernel_names, launch, Arg, Buf};
use engine::testing::compare;
use engine::{DType, Device, Tensor};
use half::f16;

/// Threads per block of every launch in this family (`THREADS`).
const THREADS: u32 = 256;
const BLOCK: [u32; 3] = [THREADS, 1, 1];
const ONE_BLOCK: [u32; 3] = [1, 1, 1];
/// A pretend GPU: few SMs keep the emulated grids small and make the grid-stride loops wrap.
const SM_COUNT: usize = 4;
/// `WARP_ROW_MAX`, `LANE_MIN_ROWS`, `LANE_MAX_LEN` of src/backend/cuda/softmax.rs.
const WARP_ROW_MAX: usize = 1024;
const LANE_MIN_ROWS: usize = 2048;
const LANE_MAX_LEN: usize = 32;
/// `PAIR_CHUNK`, `PAIR_MAX_PARTS` of src/backend/cuda/loss.rs.
const PAIR_CHUNK: usize = 8192;
const PAIR_MAX_PARTS: usize = 1024;
/// The upstream gradient of every loss (exact in f16).
const DY: f64 = 0.75;

/// A storage type of the kernels: suffix, dtype, accumulator type, tolerances.
trait Elem: bytemuck::Pod {
    const SUF: &'static str;
    const DTYPE: DType;
    /// `Acc<T>`: the type of the per-row / per-block scratch buffers.
    type Acc: Elem;
    /// (atol, rtol) for the outputs in T against the CPU.
    const TOL: (f64, f64);
    /// Sums computed in this type against f64: |emu − ref| ≤ L1_TOL·Σ|terms| + rtol(TOL)·|ref|.
    const L1_TOL: f64;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Elem for f64 {
    const SUF: &'static str = "f64";
    const DTYPE: DType = DType::F64;
    type Acc = f64;
    // f64 against f64: only the summation order differs (warp/block trees vs the CPU's serial
    // loops), and the same glibc exp/log on both sides: a few ulps of O(10) values.
    const TOL: (f64, f64) = (1e-11, 1e-10);
    // A sum of n terms in another order differs by ≲ √n·u·Σ|terms| (u = 1.1e-16); 1e-13 leaves room
    // for n up to ~10^6.
    const L1_TOL: f64 = 1e-13;
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
    type Acc = f32;
    // f32: a few ulps from the order of the row sums (u = 6e-8); values are O(1)..O(10) (log-softmax
    // of 1100 classes ≈ −7 − 3·|x|), hence 2e-5 absolute and relative.
    const TOL: (f64, f64) = (2e-5, 2e-5);
    // 2e-5 ≈ 300 u per unit of Σ|terms| (the √n·u estimate is ≤ 60 u for our n ≤ 1100, plus the
    // exp/log rounding inside each term).
    const L1_TOL: f64 = 2e-5;
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
    type Acc = f32;
    // f16 storage, f32 compute on both sides (the CPU widens f16 to f32): each output is rounded once
    // to f16 (half an ulp, rel. 2^-11), and the two f32 results may straddle a rounding boundary (one
    // ulp, rel. ≤ 2^-10 ≈ 1e-3); the softmax backward reads y rounded to f16 (the emulated forward's,
    // which may differ from the CPU's by an ulp); allow a few ulps.
    const TOL: (f64, f64) = (1e-2, 1e-2);
    // Unused (the scratch of f16 kernels is f32: `Acc = f32` has its own).
    const L1_TOL: f64 = 2e-5;
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
}

// ------------------------------------------------------------------------------------------ helpers

fn run(name: &str, grid: [u32; 3], args: &[Arg]) {
    launch(name, grid, BLOCK, args).unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// `g.grid(n)`: min(ceil(n/256), sm_count·32) blocks (at least 1).
fn grid(n: usize) -> [u32; 3] {
    [
        n.div_ceil(THREADS as usize).clamp(1, SM_COUNT * 32) as u32,
        1,
        1,
    ]
}

fn conv<T: Elem>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// Values rounded to T (what both sides then read exactly).
fn round<T: Elem>(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(|x| T::from_f64(x).to_f64()).collect()
}

fn checked<T: Elem>(b: &Buf<T>, what: &str) -> Vec<f64> {
    b.check_guards(what).unwrap();
    b.to_vec().into_iter().map(|x| x.to_f64()).collect()
}

fn nan_buf<T: Elem>(len: usize) -> Buf<T> {
    Buf::filled(len, T::from_f64(f64::NAN))
}

fn buf<T: Elem>(v: &[f64]) -> Buf<T> {
    Buf::from_slice(&conv::<T>(v))
}

fn randn(len: usize, seed: u64) -> Vec<f64> {
    Tensor::randn(vec![len], 0.0, 1.0, seed, DType::F64, Device::Cpu)
        .unwrap()
        .to_vec_f64()
        .unwrap()
}

fn scaled(v: Vec<f64>, s: f64) -> Vec<f64> {
    v.into_iter().map(|x| x * s).collect()
}

fn tensor<T: Elem>(v: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_f64s(v, dims.to_vec(), T::DTYPE, Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: (f64, f64)) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (max, ok) = compare(got, want, tol.0, tol.1);
    assert!(ok, "{what}: max |emulated − reference| = {max:.3e}");
}

/// Sums: element o within `l1_tol·l1[o] + rtol·|want[o]|` (the error of a sum in another order
/// scales with the sum of its terms' magnitudes, not with its value).
fn assert_sums(what: &str, got: &[f64], want: &[f64], l1: &[f64], l1_tol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (o, ((&g, &w), &a)) in got.iter().zip(want).zip(l1).enumerate() {
        let d = (g - w).abs();
        assert!(
            d <= l1_tol * a + rtol * w.abs(),
            "{what}: element {o}: emulated {g} vs reference {w} (|diff| {d:.3e}, Σ|terms| {a:.3e})"
        );
    }
}

/// A loss value in T against the CPU's: the f32/f64 sum error (relative to the magnitude `mag` of
/// the summed terms) plus T's own rounding of the result.
fn assert_loss<T: Elem>(what: &str, got: f64, want: f64, mag: f64) {
    assert_sums(
        what,
        &[got],
        &[want],
        &[mag],
        T::Acc::L1_TOL,
        T::TOL.1.max(T::Acc::TOL.1),
    );
}

/// Row groups of the row kernels (`RowGroup`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Group {
    Warp,
    Block,
    Lane,
}

impl Group {
    /// `RowGroup::for_contiguous`.
    fn for_contiguous(len: usize) -> Group {
        if len <= WARP_ROW_MAX {
            Group::Warp
        } else {
            Group::Block
        }
    }
    /// The softmax launcher's `pick`.
    fn softmax_pick(rows: usize, len: usize, inner: usize) -> Group {
        if inner == 1 {
            Group::for_contiguous(len)
        } else if rows >= LANE_MIN_ROWS || len <= LANE_MAX_LEN {
            Group::Lane
        } else {
            Group::Block
        }
    }
    fn name(self) -> &'static str {
        match self {
            Group::Warp => "warp",
            Group::Block => "block",
            Group::Lane => "lane",
        }
    }
    /// `RowGroup::config`: 8 rows per block (warp), a block per row, or a thread per row, capped at
    /// sm_count·32 blocks; `one_block` forces a single block.
    fn grid(self, rows: usize, one_block: bool) -> [u32; 3] {
        if one_block {
            return ONE_BLOCK;
        }
        let blocks = match self {
            Group::Warp => rows.div_ceil(THREADS as usize / 32),
            Group::Block => rows,
            Group::Lane => rows.div_ceil(THREADS as usize),
        };
        [blocks.clamp(1, SM_COUNT * 32) as u32, 1, 1]
    }
}

/// (group, one_block): the launcher's pick with its grid and with one block, then every other group
/// of `all` with the launcher-style grid.
fn variants(pick: Group, all: &[Group]) -> Vec<(Group, bool)> {
    let mut v = vec![(pick, false), (pick, true)];
    v.extend(all.iter().filter(|&&g| g != pick).map(|&g| (g, false)));
    v
}

/// The launcher's `mean_finish`: one block reduces `count` partials to `(Σ / div)·mul` in T.
fn emu_mean_finish<T: Elem>(parts: &mut Buf<T::Acc>, count: usize, div: f64, mul: f64) -> f64 {
    let mut out = nan_buf::<T>(1);
    run(
        &format!("mean_finish_{}", T::SUF),
        ONE_BLOCK,
        &[
            Arg::I64(count as i64),
            parts.arg(),
            Arg::F64(div),
            Arg::F64(mul),
            out.arg(),
        ],
    );
    parts.check_guards("parts").unwrap();
    checked(&out, "loss")[0]
}

/// Row-wise stable log-softmax of `[n, k]` values in f64.
fn log_softmax_rows(x: &[f64], k: usize) -> Vec<f64> {
    x.chunks(k)
        .flat_map(|r| {
            let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ls = r.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            r.iter().map(move |v| v - m - ls).collect::<Vec<_>>()
        })
        .collect()
}

// ------------------------------------------------------------------------------------------ softmax

/// Softmax and log-softmax over the middle dim of `[outer, len, inner]`, forward and backward.
fn softmax_case<T: Elem>(outer: usize, len: usize, inner: usize, x: &[f64], seed: u64) {
    let dims = [outer, len, inner];
    let (n, rows) = (outer * len * inner, outer * inner);
    assert_eq!(x.len(), n);
    let x = round::<T>(x.to_vec());
    let w = round::<T>(randn(n, seed));
    let pick = Group::softmax_pick(rows, len, inner);
    for log in [false, true] {
        // CPU: y = (log_)softmax(x, dim 1), dx = ∂(Σ y·w)/∂x.
        let xt = tensor::<T>(&x, &dims).var();
        let y = if log {
            xt.log_softmax(1)
        } else {
            xt.softmax(1)
        }
        .unwrap();
        let grads = y
            .mul(&tensor::<T>(&w, &dims))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let want_y = values(&y);
        let want_dx = values(grads.get(&xt).expect("dx"));

        // The other groups on the ≥ 2048-row case would be 128-block grids striding over 16 rows each
        // (seconds in the emulator); every group already runs on the smaller shapes.
        let others: &[Group] = if rows >= LANE_MIN_ROWS {
            &[]
        } else {
            &[Group::Warp, Group::Block, Group::Lane]
        };
        for (grp, one_block) in variants(pick, others) {
            let what = format!(
                "{} {dims:?} {} {} (pick {}){}",
                if log { "log_softmax" } else { "softmax" },
                T::SUF,
                grp.name(),
                pick.name(),
                if one_block { " 1 block" } else { "" }
            );
            let cfg = grp.grid(rows, one_block);
            let geom = [
                Arg::I64(rows as i64),
                Arg::I64(len as i64),
                Arg::I64(inner as i64),
                Arg::I32(log as i32),
            ];
            let mut xb = buf::<T>(&x);
            let mut yb = nan_buf::<T>(n);
            let mut args = geom.to_vec();
            args.extend([xb.arg(), yb.arg()]);
            run(&format!("softmax_{}_{}", grp.name(), T::SUF), cfg, &args);
            xb.check_guards("x").unwrap();
            assert_close(&format!("{what}: y"), &checked(&yb, "y"), &want_y, T::TOL);

            // Backward from the emulated forward's y, with dy = w.
            let mut dyb = buf::<T>(&w);
            let mut dxb = nan_buf::<T>(n);
            let mut args = geom.to_vec();
            args.extend([yb.arg(), dyb.arg(), dxb.arg()]);
            run(
                &format!("softmax_bwd_{}_{}", grp.name(), T::SUF),
                cfg,
                &args,
            );
            yb.check_guards("y").unwrap();
            dyb.check_guards("dy").unwrap();
            assert_close(
                &format!("{what}: dx"),
                &checked(&dxb, "dx"),
                &want_dx,
                T::TOL,
            );
        }
    }
}

/// `[outer, len, inner]`: warp rows in one block (7 rows) and in 5 blocks (37 rows, odd len > 32 so
/// lanes stride); the warp/block boundary on both sides (1024, 1025); inner > 1 with one thread per
/// row (short rows; ≥ 2048 rows of 33, 8 blocks, and 9 blocks' worth of rows for the 1-block grid),
/// and with one block per row (few long rows, incl. dim 0 of [300, 4]); len 1; a single element.
const SOFTMAX_SHAPES: [[usize; 3]; 10] = [
    [7, 10, 1],
    [37, 33, 1],
    [2, 1024, 1],
    [3, 1025, 1],
    [4, 6, 5],
    [3, 40, 7],
    [1, 300, 4],
    [1, 33, 2048],
    [5, 1, 3],
    [1, 1, 1],
];

fn softmax_all<T: Elem>(seed: u64) {
    for (i, &[o, l, inn]) in SOFTMAX_SHAPES.iter().enumerate() {
        let s = seed + 10 * i as u64;
        let x = scaled(randn(o * l * inn, s), 3.0);
        softmax_case::<T>(o, l, inn, &x, s + 1);
    }
    // Extreme logits stay finite (the max is subtracted before exp).
    let x = [1000.0, 1001.0, 999.0, -1000.0, 0.0, 1000.0];
    softmax_case::<T>(2, 3, 1, &x, seed + 999);
}

#[test]
fn softmax_f64_matches_cpu() {
    softmax_all::<f64>(100);
}

#[test]
fn softmax_f32_matches_cpu() {
    softmax_all::<f32>(200);
}

#[test]
fn softmax_f16_matches_cpu() {
    softmax_all::<f16>(300);
}

// --------------------------------------------------------------------------- soft cross-entropy

/// `[n, k]` logits against probability targets, targets ×1.7 (the Σt factor of the backward), and
/// a label-smoothed one-hot (compared with `cross_entropy(labels, 0.1)`).
fn ce_case<T: Elem>(n: usize, k: usize, seed: u64) {
    let dims = [n, k];
    let x = round::<T>(scaled(randn(n * k, seed), 2.0));
    let probs: Vec<f64> = log_softmax_rows(&randn(n * k, seed + 1), k)
        .into_iter()
        .map(f64::exp)
        .collect();
    let unnorm = round::<T>(scaled(probs.clone(), 1.7));
    let probs = round::<T>(probs);
    let labels: Vec<usize> = (0..n).map(|r| (r * 7 + 3) % k).collect();
    let smooth = values(&Tensor::one_hot_smoothed(&labels, k, 0.1, T::DTYPE, Device::Cpu).unwrap());
    let pick = Group::for_contiguous(k);
    for (name, t) in [
        ("probs", &probs),
        ("probs·1.7", &unnorm),
        ("smoothed", &smooth),
    ] {
        // CPU: the loss and the gradient of DY·loss.
        let xt = tensor::<T>(&x, &dims).var();
        let loss = if name == "smoothed" {
            xt.cross_entropy(&labels, 0.1)
        } else {
            xt.cross_entropy_soft(&tensor::<T>(t, &dims))
        }
        .unwrap();
        let grads = loss.scale(DY).unwrap().backward().unwrap();
        let want_loss = values(&loss)[0];
        let want_dx = values(grads.get(&xt).expect("dx"));
        // f64 per-row losses −Σ lsm·t and their magnitudes Σ|lsm·t|.
        let lsm = log_softmax_rows(&x, k);
        let terms: Vec<f64> = lsm.iter().zip(t.iter()).map(|(l, t)| l * t).collect();
        let want_rows: Vec<f64> = terms.chunks(k).map(|r| -r.iter().sum::<f64>()).collect();
        let rows_l1: Vec<f64> = terms
            .chunks(k)
            .map(|r| r.iter().map(|v| v.abs()).sum())
            .collect();
        let mag = rows_l1.iter().sum::<f64>() / n as f64;

        for (grp, one_block) in variants(pick, &[Group::Warp, Group::Block]) {
            let what = format!(
                "ce_soft {name} [{n}, {k}] {} {}{}",
                T::SUF,
                grp.name(),
                if one_block { " 1 block" } else { "" }
            );
            let cfg = grp.grid(n, one_block);
            let (mut xb, mut tb) = (buf::<T>(&x), buf::<T>(t));
            let mut rows = nan_buf::<T::Acc>(n);
            run(
                &format!("ce_soft_rows_{}_{}", grp.name(), T::SUF),
                cfg,
                &[
                    Arg::I64(n as i64),
                    Arg::I64(k as i64),
                    xb.arg(),
                    tb.arg(),
                    rows.arg(),
                ],
            );
            assert_sums(
                &format!("{what}: row losses"),
                &checked(&rows, "rows"),
                &want_rows,
                &rows_l1,
                T::Acc::L1_TOL,
                T::Acc::TOL.1,
            );
            let got = emu_mean_finish::<T>(&mut rows, n, n as f64, 1.0);
            assert_loss::<T>(&format!("{what}: loss"), got, want_loss, mag);

            let mut dyb = buf::<T>(&[DY]);
            let mut dxb = nan_buf::<T>(n * k);
            run(
                &format!("ce_soft_bwd_{}_{}", grp.name(), T::SUF),
                cfg,
                &[
                    Arg::I64(n as i64),
                    Arg::I64(k as i64),
                    Arg::F64(n as f64),
                    xb.arg(),
                    tb.arg(),
                    dyb.arg(),
                    dxb.arg(),
                ],
            );
            assert_close(
                &format!("{what}: dx"),
                &checked(&dxb, "dx"),
                &want_dx,
                T::TOL,
            );
            for (b, label) in [(&xb, "x"), (&tb, "t"), (&dyb, "dy")] {
                b.check_guards(label).unwrap();
            }
        }
    }
}

/// (N, K): warp rows in 5 blocks, 1000 classes (warp, ~31 per lane), the warp/block boundary on
/// both sides, rows longer than a block (1500 > 256·5), batch 1, and 300 rows (38 warp blocks;
/// `mean_finish` threads sum more than one partial each).
const CE_SHAPES: [(usize, usize); 7] = [
    (37, 10),
    (16, 1000),
    (3, 1024),
    (3, 1025),
    (2, 1500),
    (1, 7),
    (300, 5),
];

fn ce_all<T: Elem>(seed: u64) {
    for (i, &(n, k)) in CE_SHAPES.iter().enumerate() {
        ce_case::<T>(n, k, seed + 10 * i as u64);
    }
}

#[test]
fn cross_entropy_f64_matches_cpu() {
    ce_all::<f64>(1000);
}

#[test]
fn cross_entropy_f32_matches_cpu() {
    ce_all::<f32>(2000);
}

#[test]
fn cross_entropy_f16_matches_cpu() {
    ce_all::<f16>(3000);
}

// ---------------------------------------------------------------------------------- distillation

/// `distillation_loss(student, teacher, temp)` of `[n, k]` logits: value and gradient.
fn distill_case<T: Elem>(n: usize, k: usize, s: &[f64], t: &[f64], temp: f64) {
    let dims = [n, k];
    let (s, t) = (round::<T>(s.to_vec()), round::<T>(t.to_vec()));
    let st = tensor::<T>(&s, &dims).var();
    let loss = st.distillation_loss(&tensor::<T>(&t, &dims), temp).unwrap();
    let grads = loss.scale(DY).unwrap().backward().unwrap();
    let want_loss = values(&loss)[0];
    let want_dx = values(grads.get(&st).expect("dx"));
    // f64 rows Σ p·(lp − lq) (p = 0 terms are 0) and magnitudes Σ p·(1 + |lp| + |lq|) (the error of
    // a term scales with those of lp and lq, not with their difference).
    let inv = 1.0 / temp;
    let lq = log_softmax_rows(&s.iter().map(|v| v * inv).collect::<Vec<_>>(), k);
    let lp = log_softmax_rows(&t.iter().map(|v| v * inv).collect::<Vec<_>>(), k);
    let term = |j: usize| {
        let p = lp[j].exp();
        if p == 0.0 {
            (0.0, 0.0)
        } else {
            (p * (lp[j] - lq[j]), p * (1.0 + lp[j].abs() + lq[j].abs()))
        }
    };
    let want_rows: Vec<f64> = (0..n)
        .map(|r| (r * k..(r + 1) * k).map(|j| term(j).0).sum())
        .collect();
    let rows_l1: Vec<f64> = (0..n)
        .map(|r| (r * k..(r + 1) * k).map(|j| term(j).1).sum())
        .collect();
    let mul = temp * temp / n as f64;
    let mag = rows_l1.iter().sum::<f64>() * mul;

    for (grp, one_block) in variants(Group::for_contiguous(k), &[Group::Warp, Group::Block]) {
        let what = format!(
            "distillation T={temp} [{n}, {k}] {} {}{}",
            T::SUF,
            grp.name(),
            if one_block { " 1 block" } else { "" }
        );
        let cfg = grp.grid(n, one_block);
        let (mut sb, mut tb) = (buf::<T>(&s), buf::<T>(&t));
        let mut rows = nan_buf::<T::Acc>(n);
        run(
            &format!("distill_rows_{}_{}", grp.name(), T::SUF),
            cfg,
            &[
                Arg::I64(n as i64),
                Arg::I64(k as i64),
                Arg::F64(inv),
                sb.arg(),
                tb.arg(),
                rows.arg(),
            ],
        );
        assert_sums(
            &format!("{what}: row KLs"),
            &checked(&rows, "rows"),
            &want_rows,
            &rows_l1,
            T::Acc::L1_TOL,
            T::Acc::TOL.1,
        );
        let got = emu_mean_finish::<T>(&mut rows, n, 1.0, mul);
        assert_loss::<T>(&format!("{what}: loss"), got, want_loss, mag);

        let mut dyb = buf::<T>(&[DY]);
        let mut dxb = nan_buf::<T>(n * k);
        run(
            &format!("distill_bwd_{}_{}", grp.name(), T::SUF),
            cfg,
            &[
                Arg::I64(n as i64),
                Arg::I64(k as i64),
                Arg::F64(inv),
                Arg::F64(temp / n as f64),
                sb.arg(),
                tb.arg(),
                dyb.arg(),
                dxb.arg(),
            ],
        );
        assert_close(
            &format!("{what}: dx"),
            &checked(&dxb, "dx"),
            &want_dx,
            T::TOL,
        );
        for (b, name) in [(&sb, "student"), (&tb, "teacher"), (&dyb, "dy")] {
            b.check_guards(name).unwrap();
        }
    }
}

/// (N, K): warp rows in 2 blocks, 1000 classes, block rows (1100), batch 1, 45 rows (6 warp
/// blocks), each at T = 1, 4 and 0.5; then a teacher whose softmax underflows to 0 (p == 0).
const DISTILL_SHAPES: [(usize, usize); 5] = [(9, 10), (4, 1000), (3, 1100), (1, 5), (45, 3)];

fn distill_all<T: Elem>(seed: u64) {
    for (i, &(n, k)) in DISTILL_SHAPES.iter().enumerate() {
        let s = seed + 10 * i as u64;
        let (st, te) = (
            scaled(randn(n * k, s), 2.0),
            scaled(randn(n * k, s + 1), 2.0),
        );
        for temp in [1.0, 4.0, 0.5] {
            distill_case::<T>(n, k, &st, &te, temp);
        }
    }
    distill_case::<T>(1, 3, &[0.0, 1.0, 2.0], &[0.0, 500.0, -500.0], 1.0);
}

#[test]
fn distillation_f64_matches_cpu() {
    distill_all::<f64>(4000);
}

#[test]
fn distillation_f32_matches_cpu() {
    distill_all::<f32>(5000);
}

#[test]
fn distillation_f16_matches_cpu() {
    distill_all::<f16>(6000);
}

// ------------------------------------------------------------------------------------ pair losses

#[derive(Clone, Copy, Debug, PartialEq)]
enum Pair {
    Mse,
    L1,
    Bce,
}

impl Pair {
    /// `pair_code` of the launcher.
    fn code(self) -> i32 {
        match self {
            Pair::Mse => 0,
            Pair::L1 => 1,
            Pair::Bce => 2,
        }
    }
    /// The value in f64 (for the partial sums' reference).
    fn value(self, a: f64, b: f64) -> f64 {
        match self {
            Pair::Mse => (a - b) * (a - b),
            Pair::L1 => (a - b).abs(),
            Pair::Bce => a.max(0.0) - a * b + (-a.abs()).exp().ln_1p(),
        }
    }
}

/// The pair loss `kind` of `a`, `b` (shape `dims`): value, per-block partials and gradients, for the
/// launcher's partial count with its grids, and for 1 partial / a 1-block backward grid.
fn pair_case<T: Elem>(kind: Pair, dims: &[usize], a: &[f64], b: &[f64]) {
    let n = a.len();
    let (a, b) = (round::<T>(a.to_vec()), round::<T>(b.to_vec()));
    let (at, bt) = (tensor::<T>(&a, dims).var(), tensor::<T>(&b, dims).var());
    let loss = match kind {
        Pair::Mse => at.mse_loss(&bt),
        Pair::L1 => at.l1_loss(&bt),
        Pair::Bce => at.bce_with_logits(&bt),
    }
    .unwrap();
    let grads = loss.scale(DY).unwrap().backward().unwrap();
    let want_loss = values(&loss)[0];
    let want_da = values(grads.get(&at).expect("da"));
    let want_db = if kind == Pair::Bce {
        // The target is not differentiated on the CPU; the kernel's db = −a·dy/n regardless.
        assert!(grads.get(&bt).is_none());
        a.iter().map(|&v| -v * DY / n as f64).collect()
    } else {
        values(grads.get(&bt).expect("db"))
    };
    let vals: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| kind.value(x, y)).collect();
    let mag = vals.iter().map(|v| v.abs()).sum::<f64>() / n as f64;

    let launcher_parts = n.div_ceil(PAIR_CHUNK).clamp(1, PAIR_MAX_PARTS);
    let mut cases = vec![(launcher_parts, grid(n))];
    cases.push((1, ONE_BLOCK));
    for (parts, bwd_grid) in cases {
        let what = format!(
            "{kind:?} {dims:?} {} ({parts} partials, backward grid {})",
            T::SUF,
            bwd_grid[0]
        );
        // Block p sums elements p·256 + t stepping parts·256.
        let (mut want_parts, mut parts_l1) = (vec![0.0; parts], vec![0.0; parts]);
        for (i, v) in vals.iter().enumerate() {
            want_parts[(i / THREADS as usize) % parts] += v;
            parts_l1[(i / THREADS as usize) % parts] += v.abs();
        }
        let (mut ab, mut bb) = (buf::<T>(&a), buf::<T>(&b));
        let mut pb = nan_buf::<T::Acc>(parts);
        run(
            &format!("pair_partial_{}", T::SUF),
            [parts as u32, 1, 1],
            &[
                Arg::I64(n as i64),
                Arg::I32(kind.code()),
                ab.arg(),
                bb.arg(),
                pb.arg(),
            ],
        );
        assert_sums(
            &format!("{what}: partials"),
            &checked(&pb, "partials"),
            &want_parts,
            &parts_l1,
            T::Acc::L1_TOL,
            T::Acc::TOL.1,
        );
        let got = emu_mean_finish::<T>(&mut pb, parts, n as f64, 1.0);
        assert_loss::<T>(&format!("{what}: loss"), got, want_loss, mag);

        let mut dyb = buf::<T>(&[DY]);
        let (mut dab, mut dbb) = (nan_buf::<T>(n), nan_buf::<T>(n));
        run(
            &format!("pair_bwd_{}", T::SUF),
            bwd_grid,
            &[
                Arg::I64(n as i64),
                Arg::I32(kind.code()),
                Arg::F64(n.max(1) as f64),
                ab.arg(),
                bb.arg(),
                dyb.arg(),
                dab.arg(),
                dbb.arg(),
            ],
        );
        assert_close(
            &format!("{what}: da"),
            &checked(&dab, "da"),
            &want_da,
            T::TOL,
        );
        assert_close(
            &format!("{what}: db"),
            &checked(&dbb, "db"),
            &want_db,
            T::TOL,
        );
        for (b, name) in [(&ab, "a"), (&bb, "b"), (&dyb, "dy")] {
            b.check_guards(name).unwrap();
        }
    }
}

/// One element, one partial (4 backward blocks), 2 partials (8193 = one past a chunk), 3 partials
/// with a 79-block backward grid; then L1 ties (gradient 0) and saturated BCE logits (±30).
fn pair_all<T: Elem>(seed: u64) {
    let shapes: [&[usize]; 4] = [&[1], &[10, 100], &[3, 2731], &[20001]];
    for (i, dims) in shapes.iter().enumerate() {
        let n: usize = dims.iter().product();
        let s = seed + 10 * i as u64;
        let a = scaled(randn(n, s), 3.0);
        let b = randn(n, s + 1);
        let bits: Vec<f64> = b.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect();
        pair_case::<T>(Pair::Mse, dims, &a, &b);
        pair_case::<T>(Pair::L1, dims, &a, &b);
        pair_case::<T>(Pair::Bce, dims, &a, &bits);
    }
    // Soft BCE targets in [0, 1].
    let a = scaled(randn(777, seed + 100), 4.0);
    let t: Vec<f64> = randn(777, seed + 101)
        .iter()
        .map(|v| 1.0 / (1.0 + (-v).exp()))
        .collect();
    pair_case::<T>(Pair::Bce, &[777], &a, &t);
    let a = [1.0, -2.0, 30.0, -30.0];
    let b = [1.0, -2.0, 1.0, 0.0];
    pair_case::<T>(Pair::L1, &[4], &a, &b);
    pair_case::<T>(Pair::Bce, &[4], &a, &b);
}

#[test]
fn pair_losses_f64_match_cpu() {
    pair_all::<f64>(7000);
}

#[test]
fn pair_losses_f32_match_cpu() {
    pair_all::<f32>(8000);
}

#[test]
fn pair_losses_f16_match_cpu() {
    pair_all::<f16>(9000);
}

// ------------------------------------------------------------------------------------ mean_finish

/// `mean_finish` alone: counts below, at and above the block size (threads sum 0, 1 or several
/// partials), against f64; and the empty batch (count 0, div 0) giving NaN like the CPU.
fn mean_finish_all<T: Elem>(seed: u64) {
    for (i, count) in [1usize, 5, 255, 256, 257, 1000].into_iter().enumerate() {
        let v = round::<T::Acc>(randn(count, seed + i as u64));
        let (div, mul) = (count as f64 * 1.5, 0.3);
        let want = v.iter().sum::<f64>() / div * mul;
        let mag = v.iter().map(|x| x.abs()).sum::<f64>() / div * mul;
        let mut pb = buf::<T::Acc>(&v);
        let got = emu_mean_finish::<T>(&mut pb, count, div, mul);
        assert_loss::<T>(
            &format!("mean_finish count {count} {}", T::SUF),
            got,
            want,
            mag,
        );
    }
    let mut empty = nan_buf::<T::Acc>(0);
    let got = emu_mean_finish::<T>(&mut empty, 0, 0.0, 1.0);
    assert!(
        got.is_nan(),
        "mean_finish of an empty batch: {got}, want NaN"
    );
}

#[test]
fn mean_finish_matches_f64() {
    mean_finish_all::<f64>(10_000);
    mean_finish_all::<f32>(11_000);
    mean_finish_all::<f16>(12_000);
}

// ------------------------------------------------------------------------------------- coverage

/// Every kernel of cuda/softmax.cu and cuda/loss.cu is one this file launches: a kernel added to
/// either file fails here until it is covered.
#[test]
fn family_kernels_are_all_covered() {
    let mut covered = BTreeSet::new();
    for suf in ["f16", "f32", "f64"] {
        for g in ["warp", "block", "lane"] {
            covered.insert(format!("softmax_{g}_{suf}"));
            covered.insert(format!("softmax_bwd_{g}_{suf}"));
        }
        for g in ["warp", "block"] {
            for k in ["ce_soft_rows", "ce_soft_bwd", "distill_rows", "distill_bwd"] {
                covered.insert(format!("{k}_{g}_{suf}"));
            }
        }
        for k in ["pair_partial", "pair_bwd", "mean_finish"] {
            covered.insert(format!("{k}_{suf}"));
        }
    }
    let prefixes = ["softmax_", "ce_soft_", "distill_", "pair_", "mean_finish_"];
    let family: BTreeSet<String> = kernel_names()
        .into_iter()
        .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
        .collect();
    assert_eq!(family, covered);
}
