#![cfg(feature = "cuda-emu")]
//! The softmax and loss kernels (cuda/softmax.cu, cuda/loss.cu), run in the CUDA emulator
//! (`--features cuda-emu`) against the CPU backend. From `engine::backend::kernel_abi`, as the
//! launchers (src/backend/cuda/softmax.rs, src/backend/cuda/loss.rs) take them: the softmax and loss
//! calls (kernel names and argument lists: `kernel_abi::softmax`, `kernel_abi::loss`), grid shapes,
//! kernel picks, loss codes and partial counts, on a pretend GPU of 4 SMs.
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

use engine::backend::cuda_emu::test_support::{
    assert_close, assert_sums, cpu_tensor, grid_1d, reduction_tol, rounded, run_call,
    run_call_plan, seeded_randn, sum_l1_tol, KernelFloat, RowGroup, ONE_BLOCK, THREADS,
};
use engine::backend::cuda_emu::{kernel_names, Buf, KernelCall};
use engine::backend::kernel_abi::loss::{
    self, mean_finish_launch, pair_partial_launch, pair_parts,
};
use engine::backend::kernel_abi::rows::LANE_MIN_ROWS;
use engine::backend::kernel_abi::softmax;
use engine::ops::loss::PairLossKind;
use engine::{DType, Device, Element, Tensor};
use half::f16;

// Tolerances: outputs in T against the CPU within `reduction_tol(T)` (values up to O(10):
// log-softmax of 1100 classes ≈ −7 − 3·|x|; f16: the backward reads the emulated forward's y, which
// may be an ulp from the CPU's), scratch and sums in `Acc<T>` within `sum_l1_tol(Acc<T>)` of their
// terms' magnitudes.

/// The upstream gradient of every loss (exact in f16).
const DY: f64 = 0.75;

fn scaled(v: Vec<f64>, s: f64) -> Vec<f64> {
    v.into_iter().map(|x| x * s).collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

/// A loss value in T against the CPU's: the f32/f64 sum error (relative to the magnitude `mag` of
/// the summed terms) plus T's own rounding of the result.
fn assert_loss<T: KernelFloat>(what: &str, got: f64, want: f64, mag: f64) {
    assert_sums(
        what,
        &[got],
        &[want],
        &[mag],
        sum_l1_tol(T::Acc::DTYPE),
        reduction_tol(T::DTYPE)
            .1
            .max(reduction_tol(T::Acc::DTYPE).1),
    );
}

/// (group, one_block): the launcher's pick with its grid and with one block, then every other group
/// of `all` with the launcher-style grid.
fn variants(pick: RowGroup, all: &[RowGroup]) -> Vec<(RowGroup, bool)> {
    let mut v = vec![(pick, false), (pick, true)];
    v.extend(all.iter().filter(|&&g| g != pick).map(|&g| (g, false)));
    v
}

/// The launcher's `mean_finish`: one block reduces `count` partials to `(Σ / div)·mul` in T.
fn emu_mean_finish<T: KernelFloat>(
    parts: &mut Buf<T::Acc>,
    count: usize,
    div: f64,
    mul: f64,
) -> f64 {
    let mut out = Buf::<T>::nan(1);
    let call = loss::mean_finish(T::DTYPE, count, parts.ptr(), div, mul, out.ptr());
    run_call_plan(&call, mean_finish_launch());
    parts.check_guards("parts").unwrap();
    out.checked_f64s("loss")[0]
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
fn softmax_case<T: KernelFloat>(outer: usize, len: usize, inner: usize, x: &[f64], seed: u64) {
    let dims = [outer, len, inner];
    let (n, rows) = (outer * len * inner, outer * inner);
    assert_eq!(x.len(), n);
    let x = rounded::<T>(x.to_vec());
    let w = rounded::<T>(seeded_randn(n, seed));
    let pick = RowGroup::for_softmax(rows, len, inner);
    for log in [false, true] {
        // CPU: y = (log_)softmax(x, dim 1), dx = ∂(Σ y·w)/∂x.
        let xt = cpu_tensor::<T>(&x, &dims).var();
        let y = if log {
            xt.log_softmax(1)
        } else {
            xt.softmax(1)
        }
        .unwrap();
        let grads = y
            .mul(&cpu_tensor::<T>(&w, &dims))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let want_y = values(&y);
        let want_dx = values(grads.get(&xt).expect("dx"));

        // The other groups on the ≥ 2048-row case would be 128-block grids striding over 16 rows each
        // (seconds in the emulator); every group already runs on the smaller shapes.
        let others: &[RowGroup] = if rows >= LANE_MIN_ROWS {
            &[]
        } else {
            &[RowGroup::Warp, RowGroup::Block, RowGroup::Lane]
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
            let cfg = grp.grid_or_one_block(rows, one_block);
            let mut xb = Buf::<T>::from_f64s(&x);
            let mut yb = Buf::<T>::nan(n);
            let call = softmax::forward(grp, T::DTYPE, rows, len, inner, log, xb.ptr(), yb.ptr());
            run_call(&call, cfg);
            xb.check_guards("x").unwrap();
            assert_close(
                &format!("{what}: y"),
                &yb.checked_f64s("y"),
                &want_y,
                reduction_tol(T::DTYPE),
            );

            // Backward from the emulated forward's y, with dy = w.
            let mut dyb = Buf::<T>::from_f64s(&w);
            let mut dxb = Buf::<T>::nan(n);
            let call = softmax::backward(
                grp,
                T::DTYPE,
                rows,
                len,
                inner,
                log,
                yb.ptr(),
                dyb.ptr(),
                dxb.ptr(),
            );
            run_call(&call, cfg);
            yb.check_guards("y").unwrap();
            dyb.check_guards("dy").unwrap();
            assert_close(
                &format!("{what}: dx"),
                &dxb.checked_f64s("dx"),
                &want_dx,
                reduction_tol(T::DTYPE),
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

fn softmax_all<T: KernelFloat>(seed: u64) {
    for (i, &[o, l, inn]) in SOFTMAX_SHAPES.iter().enumerate() {
        let s = seed + 10 * i as u64;
        let x = scaled(seeded_randn(o * l * inn, s), 3.0);
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

/// What a row loss (soft cross-entropy, distillation) must produce: the per-row losses with the
/// magnitudes Σ|terms| of their sums, the loss with its magnitude, and the gradient of DY·loss.
struct RowLoss {
    rows: Vec<f64>,
    rows_l1: Vec<f64>,
    loss: f64,
    mag: f64,
    dx: Vec<f64>,
}

/// Which row loss, for its calls: `ce_soft_{rows,bwd}_*` or `distill_{rows,bwd}_*` at a temperature.
#[derive(Clone, Copy, Debug)]
enum RowLossKind {
    CeSoft,
    Distill { temperature: f64 },
}

impl RowLossKind {
    /// The launcher's per-row loss call: `a`, `b` of `[n, k]` into `rows`.
    fn rows_call(
        self,
        grp: RowGroup,
        dtype: DType,
        (n, k): (usize, usize),
        (a, b, rows): (usize, usize, usize),
    ) -> KernelCall<usize> {
        match self {
            RowLossKind::CeSoft => loss::ce_soft_rows(grp, dtype, n, k, a, b, rows),
            RowLossKind::Distill { temperature } => {
                loss::distill_rows(grp, dtype, n, k, temperature, a, b, rows)
            }
        }
    }

    /// The launcher's backward call: dx of `dy[0]`·loss w.r.t. `a`.
    fn bwd_call(
        self,
        grp: RowGroup,
        dtype: DType,
        (n, k): (usize, usize),
        (a, b, dy, dx): (usize, usize, usize, usize),
    ) -> KernelCall<usize> {
        match self {
            RowLossKind::CeSoft => loss::ce_soft_bwd(grp, dtype, n, k, a, b, dy, dx),
            RowLossKind::Distill { temperature } => {
                loss::distill_bwd(grp, dtype, n, k, temperature, a, b, dy, dx)
            }
        }
    }
}

/// The kernels of a row loss: its rows and backward calls (`kind`), and `mean_finish_<T>` with
/// `finish = (div, mul)`.
struct RowLossKernels {
    kind: RowLossKind,
    finish: (f64, f64),
}

/// A row loss of `[n, k]` inputs `a` (the differentiated one) and `b` as its launcher runs it, for
/// the launcher's group with its grid and one block, then the other group: the per-row losses into
/// `Acc<T>` scratch, `mean_finish`, then dx with dy = DY.
fn row_loss_launches<T: KernelFloat>(
    what: &str,
    kern: &RowLossKernels,
    (n, k): (usize, usize),
    (a, b): (&[f64], &[f64]),
    want: &RowLoss,
) {
    let pick = RowGroup::for_contiguous(k);
    for (grp, one_block) in variants(pick, &[RowGroup::Warp, RowGroup::Block]) {
        let what = format!(
            "{what} [{n}, {k}] {} {}{}",
            T::SUF,
            grp.name(),
            if one_block { " 1 block" } else { "" }
        );
        let cfg = grp.grid_or_one_block(n, one_block);
        let (mut ab, mut bb) = (Buf::<T>::from_f64s(a), Buf::<T>::from_f64s(b));
        let mut rows = Buf::<T::Acc>::nan(n);
        let call = kern
            .kind
            .rows_call(grp, T::DTYPE, (n, k), (ab.ptr(), bb.ptr(), rows.ptr()));
        run_call(&call, cfg);
        assert_sums(
            &format!("{what}: row losses"),
            &rows.checked_f64s("rows"),
            &want.rows,
            &want.rows_l1,
            sum_l1_tol(T::Acc::DTYPE),
            reduction_tol(T::Acc::DTYPE).1,
        );
        let (div, mul) = kern.finish;
        let got = emu_mean_finish::<T>(&mut rows, n, div, mul);
        assert_loss::<T>(&format!("{what}: loss"), got, want.loss, want.mag);

        let mut dyb = Buf::<T>::from_f64s(&[DY]);
        let mut dxb = Buf::<T>::nan(n * k);
        let call = kern.kind.bwd_call(
            grp,
            T::DTYPE,
            (n, k),
            (ab.ptr(), bb.ptr(), dyb.ptr(), dxb.ptr()),
        );
        run_call(&call, cfg);
        assert_close(
            &format!("{what}: dx"),
            &dxb.checked_f64s("dx"),
            &want.dx,
            reduction_tol(T::DTYPE),
        );
        for (buf, label) in [(&ab, "a"), (&bb, "b"), (&dyb, "dy")] {
            buf.check_guards(label).unwrap();
        }
    }
}

// --------------------------------------------------------------------------- soft cross-entropy

/// `[n, k]` logits against probability targets, targets ×1.7 (the Σt factor of the backward), and
/// a label-smoothed one-hot (compared with `cross_entropy(labels, 0.1)`).
fn ce_case<T: KernelFloat>(n: usize, k: usize, seed: u64) {
    let dims = [n, k];
    let x = rounded::<T>(scaled(seeded_randn(n * k, seed), 2.0));
    let probs: Vec<f64> = log_softmax_rows(&seeded_randn(n * k, seed + 1), k)
        .into_iter()
        .map(f64::exp)
        .collect();
    let unnorm = rounded::<T>(scaled(probs.clone(), 1.7));
    let probs = rounded::<T>(probs);
    let labels: Vec<usize> = (0..n).map(|r| (r * 7 + 3) % k).collect();
    let smooth = values(&Tensor::one_hot_smoothed(&labels, k, 0.1, T::DTYPE, Device::Cpu).unwrap());
    for (name, t) in [
        ("probs", &probs),
        ("probs·1.7", &unnorm),
        ("smoothed", &smooth),
    ] {
        // CPU: the loss and the gradient of DY·loss.
        let xt = cpu_tensor::<T>(&x, &dims).var();
        let loss = if name == "smoothed" {
            xt.cross_entropy(&labels, 0.1)
        } else {
            xt.cross_entropy_soft(&cpu_tensor::<T>(t, &dims))
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

        row_loss_launches::<T>(
            &format!("ce_soft {name}"),
            &RowLossKernels {
                kind: RowLossKind::CeSoft,
                finish: (n as f64, 1.0),
            },
            (n, k),
            (&x, t),
            &RowLoss {
                rows: want_rows,
                rows_l1,
                loss: want_loss,
                mag,
                dx: want_dx,
            },
        );
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

fn ce_all<T: KernelFloat>(seed: u64) {
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
fn distill_case<T: KernelFloat>(n: usize, k: usize, s: &[f64], t: &[f64], temp: f64) {
    let dims = [n, k];
    let (s, t) = (rounded::<T>(s.to_vec()), rounded::<T>(t.to_vec()));
    let st = cpu_tensor::<T>(&s, &dims).var();
    let loss = st
        .distillation_loss(&cpu_tensor::<T>(&t, &dims), temp)
        .unwrap();
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

    row_loss_launches::<T>(
        &format!("distillation T={temp}"),
        &RowLossKernels {
            kind: RowLossKind::Distill { temperature: temp },
            finish: (1.0, mul),
        },
        (n, k),
        (&s, &t),
        &RowLoss {
            rows: want_rows,
            rows_l1,
            loss: want_loss,
            mag,
            dx: want_dx,
        },
    );
}

/// (N, K): warp rows in 2 blocks, 1000 classes, block rows (1100), batch 1, 45 rows (6 warp
/// blocks), each at T = 1, 4 and 0.5; then a teacher whose softmax underflows to 0 (p == 0).
const DISTILL_SHAPES: [(usize, usize); 5] = [(9, 10), (4, 1000), (3, 1100), (1, 5), (45, 3)];

fn distill_all<T: KernelFloat>(seed: u64) {
    for (i, &(n, k)) in DISTILL_SHAPES.iter().enumerate() {
        let s = seed + 10 * i as u64;
        let (st, te) = (
            scaled(seeded_randn(n * k, s), 2.0),
            scaled(seeded_randn(n * k, s + 1), 2.0),
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
    /// The op's kind, as the launcher gets it (its calls turn it into `pair_code`).
    fn kind(self) -> PairLossKind {
        match self {
            Pair::Mse => PairLossKind::Mse,
            Pair::L1 => PairLossKind::L1,
            Pair::Bce => PairLossKind::BceWithLogits,
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
fn pair_case<T: KernelFloat>(kind: Pair, dims: &[usize], a: &[f64], b: &[f64]) {
    let n = a.len();
    let (a, b) = (rounded::<T>(a.to_vec()), rounded::<T>(b.to_vec()));
    let (at, bt) = (
        cpu_tensor::<T>(&a, dims).var(),
        cpu_tensor::<T>(&b, dims).var(),
    );
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

    let launcher_parts = pair_parts(n);
    let mut cases = vec![(launcher_parts, grid_1d(n))];
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
        let (mut ab, mut bb) = (Buf::<T>::from_f64s(&a), Buf::<T>::from_f64s(&b));
        let mut pb = Buf::<T::Acc>::nan(parts);
        let call = loss::pair_partial(kind.kind(), T::DTYPE, n, ab.ptr(), bb.ptr(), pb.ptr());
        run_call_plan(&call, pair_partial_launch(parts));
        assert_sums(
            &format!("{what}: partials"),
            &pb.checked_f64s("partials"),
            &want_parts,
            &parts_l1,
            sum_l1_tol(T::Acc::DTYPE),
            reduction_tol(T::Acc::DTYPE).1,
        );
        let got = emu_mean_finish::<T>(&mut pb, parts, n as f64, 1.0);
        assert_loss::<T>(&format!("{what}: loss"), got, want_loss, mag);

        let mut dyb = Buf::<T>::from_f64s(&[DY]);
        let (mut dab, mut dbb) = (Buf::<T>::nan(n), Buf::<T>::nan(n));
        let call = loss::pair_bwd(
            kind.kind(),
            T::DTYPE,
            n,
            ab.ptr(),
            bb.ptr(),
            dyb.ptr(),
            dab.ptr(),
            dbb.ptr(),
        );
        run_call(&call, bwd_grid);
        assert_close(
            &format!("{what}: da"),
            &dab.checked_f64s("da"),
            &want_da,
            reduction_tol(T::DTYPE),
        );
        assert_close(
            &format!("{what}: db"),
            &dbb.checked_f64s("db"),
            &want_db,
            reduction_tol(T::DTYPE),
        );
        for (b, name) in [(&ab, "a"), (&bb, "b"), (&dyb, "dy")] {
            b.check_guards(name).unwrap();
        }
    }
}

/// One element, one partial (4 backward blocks), 2 partials (8193 = one past a chunk), 3 partials
/// with a 79-block backward grid; then L1 ties (gradient 0) and saturated BCE logits (±30).
fn pair_all<T: KernelFloat>(seed: u64) {
    let shapes: [&[usize]; 4] = [&[1], &[10, 100], &[3, 2731], &[20001]];
    for (i, dims) in shapes.iter().enumerate() {
        let n: usize = dims.iter().product();
        let s = seed + 10 * i as u64;
        let a = scaled(seeded_randn(n, s), 3.0);
        let b = seeded_randn(n, s + 1);
        let bits: Vec<f64> = b.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect();
        pair_case::<T>(Pair::Mse, dims, &a, &b);
        pair_case::<T>(Pair::L1, dims, &a, &b);
        pair_case::<T>(Pair::Bce, dims, &a, &bits);
    }
    // Soft BCE targets in [0, 1].
    let a = scaled(seeded_randn(777, seed + 100), 4.0);
    let t: Vec<f64> = seeded_randn(777, seed + 101)
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
fn mean_finish_all<T: KernelFloat>(seed: u64) {
    for (i, count) in [1usize, 5, 255, 256, 257, 1000].into_iter().enumerate() {
        let v = rounded::<T::Acc>(seeded_randn(count, seed + i as u64));
        let (div, mul) = (count as f64 * 1.5, 0.3);
        let want = v.iter().sum::<f64>() / div * mul;
        let mag = v.iter().map(|x| x.abs()).sum::<f64>() / div * mul;
        let mut pb = Buf::<T::Acc>::from_f64s(&v);
        let got = emu_mean_finish::<T>(&mut pb, count, div, mul);
        assert_loss::<T>(
            &format!("mean_finish count {count} {}", T::SUF),
            got,
            want,
            mag,
        );
    }
    let mut empty = Buf::<T::Acc>::nan(0);
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
