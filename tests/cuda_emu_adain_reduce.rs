#![cfg(feature = "cuda-emu")]
//! The per-plane statistics, AdaIN and sum-reduction kernels (cuda/adain.cu, cuda/reduce.cu), run in the
//! CUDA emulator (`--features cuda-emu`) against the CPU backend, with the argument lists, grid shapes and
//! kernel picks of their launchers (src/backend/cuda/adain.rs, src/backend/cuda/reduce.rs) on a pretend
//! GPU of 4 SMs.
//!
//! Compared:
//! - `plane_stat_*` / `plane_stat_bwd_*`: `channel_mean` / `channel_std` and their autograd gradient
//!   (of Σ y·w) on the CPU; the std backward reads the emulated forward's (T) output as the saved σ, as
//!   the launcher's caller does.
//! - `style_stats_*`, `adain_fwd_*`, `adain_bwd_content_*`, `adain_bwd_style_*`: `Tensor::adain` and its
//!   gradients w.r.t. content and style on the CPU; the scratch buffers the CPU API does not expose (the
//!   style statistics `[μ, σ]` and the per-content-plane sums `(Σdy, Σdy·x̂)`) against an f64
//!   computation from the same rounded inputs.
//! - `sum_thread_*` / `sum_block_*`: `sum_dims(.., keepdim = true)` and `sum_all` on the CPU.
//!
//! Invariants the test holds to: inputs are seeded random values, already rounded to the storage type
//! so both sides see identical inputs; outputs and scratch start as NaN, so an element a kernel forgets
//! fails the compare; every buffer's guard zones are checked after the launches. Every case runs the
//! launcher's pick (warp for planes ≤ 1024 elements, else block; thread vs block sums) with the
//! launcher's grid, the same pick with a 1-block grid (grid-stride loops must wrap), and the other
//! variant (both are correct for any size; the launcher's choice is only about speed), in f64, f32
//! and f16.

use std::collections::BTreeSet;

use engine::backend::cuda_emu::{kernel_names, launch, Arg, Buf};
use engine::testing::compare;
use engine::{DType, Device, Tensor};
use half::f16;

/// Threads per block of every launch in this family (`THREADS`).
const THREADS: u32 = 256;
const BLOCK: [u32; 3] = [THREADS, 1, 1];
/// A pretend GPU: few SMs keep the emulated grids small and make the grid-stride loops wrap.
const SM_COUNT: usize = 4;
/// `WARP_ROW_MAX` of src/backend/cuda/softmax.rs: `RowGroup::for_contiguous` picks a warp per plane
/// up to this many elements.
const WARP_ROW_MAX: usize = 1024;
/// `SERIAL_MAX` and `MANY_OUTPUTS` of src/backend/cuda/reduce.rs.
const SERIAL_MAX: usize = 64;
const MANY_OUTPUTS: usize = 4096;
/// `MAX_DIMS` of common.cuh (`StridedArgs`).
const MAX_DIMS: usize = 8;
/// The AdaIN / channel_std eps of the reference (`calc_mean_std`).
const EPS: f64 = 1e-5;

/// A storage type of the kernels: suffix, dtype, accumulator type, tolerances.
trait Elem: bytemuck::Pod {
    const SUF: &'static str;
    const DTYPE: DType;
    /// `Acc<T>`: the type of the statistics / sums scratch buffers.
    type Acc: Elem;
    /// (atol, rtol) for the outputs in T against the CPU.
    const TOL: (f64, f64);
    /// (atol, rtol) for values computed in `Acc<T>` against f64.
    const ACC_TOL: (f64, f64);
    /// Sums: |emu − cpu| ≤ L1_TOL·Σ|terms| + rtol(TOL)·|cpu|.
    const L1_TOL: f64;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Elem for f64 {
    const SUF: &'static str = "f64";
    const DTYPE: DType = DType::F64;
    type Acc = f64;
    // f64 against f64: only the summation order differs (tree vs the CPU's serial loops).
    const TOL: (f64, f64) = (1e-11, 1e-10);
    const ACC_TOL: (f64, f64) = (1e-11, 1e-10);
    // A sum of n terms in another order differs by ≲ √n·u·Σ|terms| in practice (u = 1.1e-16); 1e-13
    // leaves room for n up to ~10^6.
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
    // f32: a few ulps from the order of the plane sums (warp/block trees vs the CPU's serial sums);
    // the AdaIN gradients chain several such sums, and O(1) values, hence 2e-5.
    const TOL: (f64, f64) = (2e-5, 2e-5);
    const ACC_TOL: (f64, f64) = (2e-5, 2e-5);
    // u = 6e-8; 2e-5 = ~300 u per unit of Σ|terms| (the √n·u estimate is ≤ 70 u for our n ≤ 1500).
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
    // ulp, rel. ≤ 2^-10 ≈ 1e-3); the std backward reads σ rounded to f16; allow a few ulps.
    const TOL: (f64, f64) = (1e-2, 1e-2);
    // The scratch is f32, from f16-rounded inputs that the f64 reference uses too.
    const ACC_TOL: (f64, f64) = (2e-5, 2e-5);
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

const ONE_BLOCK: [u32; 3] = [1, 1, 1];

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

fn randn(len: usize, seed: u64) -> Vec<f64> {
    Tensor::randn(vec![len], 0.0, 1.0, seed, DType::F64, Device::Cpu)
        .unwrap()
        .to_vec_f64()
        .unwrap()
}

fn tensor<T: Elem>(v: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_f64s(v, dims.to_vec(), T::DTYPE, Device::Cpu).unwrap()
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

/// The per-plane group of the AdaIN / plane-statistics kernels (`RowGroup::{Warp, Block}`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Group {
    Warp,
    Block,
}

impl Group {
    /// `RowGroup::for_contiguous`.
    fn pick(hw: usize) -> Group {
        if hw <= WARP_ROW_MAX {
            Group::Warp
        } else {
            Group::Block
        }
    }
    fn other(self) -> Group {
        match self {
            Group::Warp => Group::Block,
            Group::Block => Group::Warp,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Group::Warp => "warp",
            Group::Block => "block",
        }
    }
    /// `RowGroup::config`: 8 planes per block (warp) or one block per plane, capped at sm_count·32;
    /// `one_block` forces a single block.
    fn grid(self, planes: usize, one_block: bool) -> [u32; 3] {
        if one_block {
            return ONE_BLOCK;
        }
        let blocks = match self {
            Group::Warp => planes.div_ceil(THREADS as usize / 32),
            Group::Block => planes,
        };
        [blocks.clamp(1, SM_COUNT * 32) as u32, 1, 1]
    }
}

/// How a case is launched: the launcher's pick (or the other variant), normal or 1-block grid.
#[derive(Clone, Copy, Debug)]
struct Variant {
    /// Use the variant the launcher would not pick.
    flip: bool,
    one_block: bool,
}

/// The flipped variant runs a block per plane where the launcher would run a warp: only for up to
/// this many planes, as every emulated block costs 256 OS threads and their barriers.
const FLIP_BLOCK_MAX: usize = 8;

/// The launcher's pick with its grid and with a 1-block grid, and the other variant where it is
/// cheap to emulate; `shapes` lists each launch's (plane size, planes).
fn variants(shapes: &[(usize, usize)]) -> Vec<Variant> {
    let mut v = vec![
        Variant {
            flip: false,
            one_block: false,
        },
        Variant {
            flip: false,
            one_block: true,
        },
    ];
    if shapes
        .iter()
        .all(|&(hw, planes)| Group::pick(hw) == Group::Block || planes <= FLIP_BLOCK_MAX)
    {
        v.push(Variant {
            flip: true,
            one_block: false,
        });
    }
    v
}

impl Variant {
    fn group(self, hw: usize) -> Group {
        let g = Group::pick(hw);
        if self.flip {
            g.other()
        } else {
            g
        }
    }
}

/// Mean and sqrt(unbiased var + eps) of a plane, in f64.
fn mean_std_f64(p: &[f64], eps: f64) -> (f64, f64) {
    let m = p.len() as f64;
    let mu = p.iter().sum::<f64>() / m;
    let ss: f64 = p.iter().map(|x| (x - mu) * (x - mu)).sum();
    (mu, (ss / (m - 1.0) + eps).sqrt())
}

// --------------------------------------------------------------------------- plane statistics

/// `channel_mean` (and `channel_std` when hw ≥ 2) of `[n, c, h, w]` and their gradients.
fn plane_stat_case<T: Elem>(dims: [usize; 4], seed: u64) {
    let [n, c, h, w] = dims;
    let (hw, planes) = (h * w, n * c);
    let total = planes * hw;
    let x = round::<T>(randn(total, seed).iter().map(|v| 2.0 * v + 0.5).collect());
    let wgt = round::<T>(randn(planes, seed + 1));
    let stds: &[bool] = if hw >= 2 { &[false, true] } else { &[false] };
    for &want_std in stds {
        // CPU: y = channel_mean / channel_std, dx = ∂(Σ y·w)/∂x.
        let xt = tensor::<T>(&x, &dims).var();
        let y = if want_std {
            xt.channel_std(EPS).unwrap()
        } else {
            xt.channel_mean().unwrap()
        };
        let wt = tensor::<T>(&wgt, &[n, c, 1, 1]);
        let grads = y.mul(&wt).unwrap().sum_all().unwrap().backward().unwrap();
        let want_y = y.to_vec_f64().unwrap();
        let want_dx = grads.get(&xt).expect("dx").to_vec_f64().unwrap();

        for v in variants(&[(hw, planes)]) {
            let grp = v.group(hw);
            let what = format!(
                "{} {dims:?} {} {v:?} ({})",
                if want_std {
                    "channel_std"
                } else {
                    "channel_mean"
                },
                T::SUF,
                grp.name()
            );
            let cfg = grp.grid(planes, v.one_block);
            let md = hw as f64;
            let mut xb = Buf::<T>::from_slice(&conv(&x));
            let mut out = nan_buf::<T>(planes);
            run(
                &format!("plane_stat_{}_{}", grp.name(), T::SUF),
                cfg,
                &[
                    Arg::I64(planes as i64),
                    Arg::I64(hw as i64),
                    Arg::F64(md),
                    Arg::I32(want_std as i32),
                    Arg::F64(if want_std { EPS } else { 0.0 }),
                    xb.arg(),
                    out.arg(),
                ],
            );
            let got_y = checked(&out, "out");
            assert_close(&format!("{what}: y"), &got_y, &want_y, T::TOL);

            // Backward: dy = w; the std backward reads x and the forward's output (saved σ, T).
            let mut dy = Buf::<T>::from_slice(&conv(&wgt));
            let mut dx = nan_buf::<T>(total);
            if want_std {
                let mut sd = Buf::<T>::from_slice(&out.to_vec());
                run(
                    &format!("plane_stat_bwd_std_{}_{}", grp.name(), T::SUF),
                    cfg,
                    &[
                        Arg::I64(planes as i64),
                        Arg::I64(hw as i64),
                        Arg::F64(md),
                        xb.arg(),
                        sd.arg(),
                        dy.arg(),
                        dx.arg(),
                    ],
                );
                sd.check_guards("sd").unwrap();
            } else {
                // A 1-d grid-stride over all elements (`g.grid(total)`); no group.
                run(
                    &format!("plane_stat_bwd_mean_{}", T::SUF),
                    if v.one_block { ONE_BLOCK } else { grid(total) },
                    &[
                        Arg::I64(total as i64),
                        Arg::I64(hw as i64),
                        Arg::F64(md),
                        dy.arg(),
                        dx.arg(),
                    ],
                );
            }
            xb.check_guards("x").unwrap();
            dy.check_guards("dy").unwrap();
            let got_dx = checked(&dx, "dx");
            assert_close(&format!("{what}: dx"), &got_dx, &want_dx, T::TOL);
        }
    }
}

/// Warp planes (odd hw = 35), block planes (1147 > 1024), the boundary on both sides (1024 warp, 1025
/// block), the minimal std plane (hw = 2), hw = 1 (mean only: the std needs hw ≥ 2), 36 warp planes
/// (5 blocks of 8 warps; one block must stride over all of them), and a batch of 1.
const PLANE_SHAPES: [[usize; 4]; 7] = [
    [2, 3, 5, 7],
    [1, 2, 37, 31],
    [2, 2, 32, 32],
    [1, 2, 1, 1025],
    [1, 1, 1, 2],
    [3, 5, 1, 1],
    [4, 9, 3, 3],
];

#[test]
fn plane_stat_f64_matches_cpu() {
    for (i, &d) in PLANE_SHAPES.iter().enumerate() {
        plane_stat_case::<f64>(d, 100 + 10 * i as u64);
    }
}

#[test]
fn plane_stat_f32_matches_cpu() {
    for (i, &d) in PLANE_SHAPES.iter().enumerate() {
        plane_stat_case::<f32>(d, 200 + 10 * i as u64);
    }
}

#[test]
fn plane_stat_f16_matches_cpu() {
    for (i, &d) in PLANE_SHAPES.iter().enumerate() {
        plane_stat_case::<f16>(d, 300 + 10 * i as u64);
    }
}

// --------------------------------------------------------------------------------------- AdaIN

/// The launcher's `style_stats`: `[μ, σ]` per style plane in `Acc<T>`.
fn emu_style_stats<T: Elem>(
    g: Group,
    one_block: bool,
    splanes: usize,
    hws: usize,
    s: &mut Buf<T>,
) -> Buf<T::Acc> {
    let mut stats = nan_buf::<T::Acc>(2 * splanes);
    run(
        &format!("style_stats_{}_{}", g.name(), T::SUF),
        g.grid(splanes, one_block),
        &[
            Arg::I64(splanes as i64),
            Arg::I64(hws as i64),
            Arg::F64(hws as f64),
            Arg::F64(EPS),
            s.arg(),
            stats.arg(),
        ],
    );
    stats.check_guards("stats").unwrap();
    s.check_guards("style").unwrap();
    stats
}

/// AdaIN of content `[n, c, h, w]` with style `[ns, c, hs, ws]` (ns = 1 or n): the forward, then the
/// backward with dy = w, as `AdainForward` / `AdainBackward` launch them.
fn adain_case<T: Elem>(cdims: [usize; 4], sdims: [usize; 4], seed: u64) {
    let [n, c, h, w] = cdims;
    let [ns, cs, hs, ws] = sdims;
    assert!(cs == c && (ns == 1 || ns == n) && h * w >= 2 && hs * ws >= 2);
    let (hw, hws) = (h * w, hs * ws);
    let (planes, splanes) = (n * c, ns * c);
    let x = round::<T>(
        randn(planes * hw, seed)
            .iter()
            .map(|v| 1.5 * v + 0.3)
            .collect(),
    );
    let s = round::<T>(
        randn(splanes * hws, seed + 1)
            .iter()
            .map(|v| 0.7 * v - 0.2)
            .collect(),
    );
    let wgt = round::<T>(randn(planes * hw, seed + 2));

    // CPU: y = adain(content, style), gradients of Σ y·w w.r.t. content and style.
    let (ct, st) = (tensor::<T>(&x, &cdims).var(), tensor::<T>(&s, &sdims).var());
    let y = ct.adain(&st, EPS).unwrap();
    let grads = y
        .mul(&tensor::<T>(&wgt, &cdims))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let want_y = y.to_vec_f64().unwrap();
    let want_dc = grads.get(&ct).expect("dc").to_vec_f64().unwrap();
    let want_ds = grads.get(&st).expect("ds").to_vec_f64().unwrap();

    // f64 references of the scratch buffers: style [μ, σ]; per content plane (Σdy, Σdy·x̂) with the
    // magnitudes Σ|dy|, Σ|dy·x̂| the sums' error scales with.
    let want_stats: Vec<f64> = s
        .chunks(hws)
        .flat_map(|p| {
            let (mu, sd) = mean_std_f64(p, EPS);
            [mu, sd]
        })
        .collect();
    let (mut want_sums, mut sums_l1) = (Vec::new(), Vec::new());
    for (xp, gp) in x.chunks(hw).zip(wgt.chunks(hw)) {
        let (mu, sd) = mean_std_f64(xp, EPS);
        let xh = |xi: f64| (xi - mu) / sd;
        want_sums.push(gp.iter().sum::<f64>());
        want_sums.push(xp.iter().zip(gp).map(|(&xi, g)| g * xh(xi)).sum::<f64>());
        sums_l1.push(gp.iter().map(|g| g.abs()).sum::<f64>());
        sums_l1.push(
            xp.iter()
                .zip(gp)
                .map(|(&xi, g)| (g * xh(xi)).abs())
                .sum::<f64>(),
        );
    }

    let (planes64, hw64, c64, ns64, n64) =
        (planes as i64, hw as i64, c as i64, ns as i64, n as i64);
    for v in variants(&[(hw, planes), (hws, splanes)]) {
        let (cg, sg) = (v.group(hw), v.group(hws));
        let what = format!(
            "adain {cdims:?} style {sdims:?} {} {v:?} (content {}, style {})",
            T::SUF,
            cg.name(),
            sg.name()
        );
        let mut xb = Buf::<T>::from_slice(&conv(&x));
        let mut sb = Buf::<T>::from_slice(&conv(&s));

        // Forward: style statistics, then the content kernel.
        let mut stats = emu_style_stats(sg, v.one_block, splanes, hws, &mut sb);
        let got_stats = checked(&stats, "stats");
        assert_close(
            &format!("{what}: style stats"),
            &got_stats,
            &want_stats,
            T::Acc::ACC_TOL,
        );
        let mut out = nan_buf::<T>(planes * hw);
        run(
            &format!("adain_fwd_{}_{}", cg.name(), T::SUF),
            cg.grid(planes, v.one_block),
            &[
                Arg::I64(planes64),
                Arg::I64(hw64),
                Arg::I64(c64),
                Arg::I64(ns64),
                Arg::F64(hw as f64),
                Arg::F64(EPS),
                xb.arg(),
                stats.arg(),
                out.arg(),
            ],
        );
        stats.check_guards("stats").unwrap();
        assert_close(
            &format!("{what}: y"),
            &checked(&out, "out"),
            &want_y,
            T::TOL,
        );

        // Backward: the launcher recomputes the style statistics with the same kernel on the same
        // input, which is deterministic (fixed reduction tree), so the forward's buffer is reused;
        // then the content gradient and per-plane sums, then the style gradient.
        let mut dy = Buf::<T>::from_slice(&conv(&wgt));
        let mut dc = nan_buf::<T>(planes * hw);
        let mut sums = nan_buf::<T::Acc>(2 * planes);
        run(
            &format!("adain_bwd_content_{}_{}", cg.name(), T::SUF),
            cg.grid(planes, v.one_block),
            &[
                Arg::I64(planes64),
                Arg::I64(hw64),
                Arg::I64(c64),
                Arg::I64(ns64),
                Arg::F64(hw as f64),
                Arg::F64(EPS),
                xb.arg(),
                stats.arg(),
                dy.arg(),
                dc.arg(),
                sums.arg(),
            ],
        );
        let got_sums = checked(&sums, "sums");
        assert_sums(
            &format!("{what}: sums (Σdy, Σdy·x̂)"),
            &got_sums,
            &want_sums,
            &sums_l1,
            T::Acc::L1_TOL,
            T::Acc::ACC_TOL.1,
        );
        assert_close(
            &format!("{what}: d content"),
            &checked(&dc, "dc"),
            &want_dc,
            T::TOL,
        );
        let mut ds = nan_buf::<T>(splanes * hws);
        run(
            &format!("adain_bwd_style_{}_{}", sg.name(), T::SUF),
            sg.grid(splanes, v.one_block),
            &[
                Arg::I64(splanes as i64),
                Arg::I64(hws as i64),
                Arg::I64(c64),
                Arg::I64(n64),
                Arg::I64(ns64),
                Arg::F64(hws as f64),
                sb.arg(),
                stats.arg(),
                sums.arg(),
                ds.arg(),
            ],
        );
        assert_close(
            &format!("{what}: d style"),
            &checked(&ds, "ds"),
            &want_ds,
            T::TOL,
        );
        for (b, name) in [(&xb, "content"), (&sb, "style"), (&dy, "dy")] {
            b.check_guards(name).unwrap();
        }
        stats.check_guards("stats").unwrap();
        sums.check_guards("sums").unwrap();
    }
}

/// (content, style): per-plane style with odd hw (35, 16); broadcast style (batch 1, summed over a
/// content batch of 4); block planes on both sides (1147, 1155); warp content with block style; the
/// minimal planes (hw = 2); block content with a broadcast warp style; 35 warp planes (5 blocks).
const ADAIN_SHAPES: [([usize; 4], [usize; 4]); 7] = [
    ([2, 3, 5, 7], [2, 3, 4, 4]),
    ([4, 3, 6, 6], [1, 3, 5, 3]),
    ([1, 2, 37, 31], [1, 2, 33, 35]),
    ([3, 2, 3, 3], [3, 2, 41, 29]),
    ([2, 2, 1, 2], [1, 2, 2, 1]),
    ([2, 3, 33, 33], [1, 3, 2, 3]),
    ([5, 7, 3, 5], [5, 7, 4, 3]),
];

#[test]
fn adain_f64_matches_cpu() {
    for (i, &(cd, sd)) in ADAIN_SHAPES.iter().enumerate() {
        adain_case::<f64>(cd, sd, 1000 + 10 * i as u64);
    }
}

#[test]
fn adain_f32_matches_cpu() {
    for (i, &(cd, sd)) in ADAIN_SHAPES.iter().enumerate() {
        adain_case::<f32>(cd, sd, 2000 + 10 * i as u64);
    }
}

#[test]
fn adain_f16_matches_cpu() {
    for (i, &(cd, sd)) in ADAIN_SHAPES.iter().enumerate() {
        adain_case::<f16>(cd, sd, 3000 + 10 * i as u64);
    }
}

// ------------------------------------------------------------------------------------------ sums

/// `collapse` of src/backend/cuda/mod.rs for one operand: drops extent-1 dims, merges contiguous
/// neighbours.
fn collapse(dims: &[usize], strides: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let (mut od, mut os): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    for (&n, &s) in dims.iter().zip(strides) {
        if n == 1 {
            continue;
        }
        if od.last().is_some() && *os.last().unwrap() == s * n {
            *od.last_mut().unwrap() *= n;
            *os.last_mut().unwrap() = s;
        } else {
            od.push(n);
            os.push(s);
        }
    }
    (od, os)
}

/// The bytes of common.cuh's `StridedArgs { i64 dims[8]; i64 strides[8]; int rank; int pad_; }`.
fn strided_args(dims: &[usize], strides: &[usize]) -> Arg {
    assert!(dims.len() <= MAX_DIMS, "{dims:?}: more than MAX_DIMS dims");
    let mut b = Vec::with_capacity(2 * MAX_DIMS * 8 + 8);
    for d in 0..MAX_DIMS {
        b.extend_from_slice(&(*dims.get(d).unwrap_or(&0) as i64).to_ne_bytes());
    }
    for d in 0..MAX_DIMS {
        b.extend_from_slice(&(*strides.get(d).unwrap_or(&0) as i64).to_ne_bytes());
    }
    b.extend_from_slice(&(dims.len() as i32).to_ne_bytes());
    b.extend_from_slice(&0i32.to_ne_bytes());
    Arg::Pod(b)
}

/// The kernel `SumKeep`'s launcher picks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SumKernel {
    Thread,
    Block,
}

/// Sums `[dims]` over `red` (keepdim) with the CPU and with the launcher's sequence; `all` uses
/// `sum_all` on the CPU (red must then be every dim). `expect` is the kernel the launcher must pick.
fn sum_case<T: Elem>(dims: &[usize], red: &[usize], all: bool, expect: SumKernel, seed: u64) {
    let numel: usize = dims.iter().product();
    let x = round::<T>(randn(numel, seed).iter().map(|v| v + 0.25).collect());
    let xt = tensor::<T>(&x, dims);
    let want = if all {
        assert_eq!(red.len(), dims.len());
        xt.sum_all().unwrap()
    } else {
        let r: Vec<isize> = red.iter().map(|&d| d as isize).collect();
        xt.sum_dims(&r, true).unwrap()
    }
    .to_vec_f64()
    .unwrap();

    // The launcher: kept / reduced dims with their input strides, each collapsed.
    let rank = dims.len();
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * dims[d + 1];
    }
    let outd: Vec<usize> = (0..rank)
        .map(|d| if red.contains(&d) { 1 } else { dims[d] })
        .collect();
    let kept: Vec<usize> = (0..rank).filter(|&d| outd[d] == dims[d]).collect();
    let reduced: Vec<usize> = (0..rank).filter(|&d| outd[d] != dims[d]).collect();
    let pick = |ds: &[usize]| {
        collapse(
            &ds.iter().map(|&d| dims[d]).collect::<Vec<_>>(),
            &ds.iter().map(|&d| strides[d]).collect::<Vec<_>>(),
        )
    };
    let (kd, ks) = pick(&kept);
    let (rd, rs) = pick(&reduced);
    let n_out: usize = outd.iter().product();
    let n_red: usize = rd.iter().product();
    assert_eq!(want.len(), n_out);
    let inner_kept = kept.last().is_some_and(|&d| d + 1 == rank);
    let per_thread = n_red <= SERIAL_MAX || (n_out >= MANY_OUTPUTS && inner_kept);
    let picked = if per_thread {
        SumKernel::Thread
    } else {
        SumKernel::Block
    };
    assert_eq!(picked, expect, "{dims:?} over {red:?}: launcher pick");

    // Σ|x| of each output's reduced set, for the tolerance (output o's elements, in any order).
    let mut l1 = vec![0.0f64; n_out];
    for (i, &xi) in x.iter().enumerate() {
        let mut rem = i;
        let mut o = 0;
        let mut mul = 1;
        for d in (0..rank).rev() {
            let k = rem % dims[d];
            rem /= dims[d];
            if !red.contains(&d) {
                o += k * mul;
                mul *= dims[d];
            }
        }
        l1[o] += xi.abs();
    }

    // The launcher's pick with its grid and with one block, and the other kernel; a block per output
    // is emulated only for few outputs (each block is 256 OS threads and two barriers per output).
    let other = match picked {
        SumKernel::Thread => SumKernel::Block,
        SumKernel::Block => SumKernel::Thread,
    };
    let mut kernels = vec![(picked, false), (picked, true)];
    if other == SumKernel::Thread || n_out <= 32 {
        kernels.push((other, false));
    }
    for (k, one_block) in kernels {
        let (name, cfg) = match k {
            SumKernel::Thread => ("sum_thread", grid(n_out)),
            SumKernel::Block => ("sum_block", [n_out.clamp(1, SM_COUNT * 32) as u32, 1, 1]),
        };
        let cfg = if one_block { ONE_BLOCK } else { cfg };
        let what = format!(
            "sum {dims:?} over {red:?} {} {name} grid {cfg:?} (launcher: {picked:?})",
            T::SUF
        );
        let mut xb = Buf::<T>::from_slice(&conv(&x));
        let mut y = nan_buf::<T>(n_out);
        run(
            &format!("{name}_{}", T::SUF),
            cfg,
            &[
                Arg::I64(n_out as i64),
                Arg::I64(n_red as i64),
                strided_args(&kd, &ks),
                strided_args(&rd, &rs),
                xb.arg(),
                y.arg(),
            ],
        );
        xb.check_guards("x").unwrap();
        let got = checked(&y, "y");
        assert_sums(&what, &got, &want, &l1, T::Acc::L1_TOL, T::TOL.1.min(2e-3));
    }
}

/// (dims, reduced dims, sum_all, the launcher's pick). Thread: few terms (5; exactly SERIAL_MAX = 64;
/// 20 with non-contiguous kept dims; an empty reduced set → every output 0; only extent-1 dims
/// reduced → a copy; no dims reduced), or ≥ 4096 outputs with the innermost dim kept (65 terms each,
/// 4099 outputs). Block: long rows (300 contiguous; 300 strided by 3 with the inner dim kept but few
/// outputs; 65 = SERIAL_MAX + 1), `sum_all` of 1001 elements (one output), two reduced dims one of
/// extent 1 (129 terms), a middle dim (70 terms, kept dims merged to [2, 6]).
fn sum_cases() -> Vec<(Vec<usize>, Vec<usize>, bool, SumKernel)> {
    use SumKernel::{Block, Thread};
    vec![
        (vec![3, 5, 7], vec![1], false, Thread),
        (vec![5, 64], vec![1], false, Thread),
        (vec![4, 6, 5, 3], vec![0, 2], false, Thread),
        (vec![3, 0, 4], vec![1], false, Thread),
        (vec![6, 1, 1], vec![1, 2], false, Thread),
        (vec![2, 3, 4], vec![], false, Thread),
        (vec![65, 4099], vec![0], false, Thread),
        (vec![2, 300], vec![1], false, Block),
        (vec![300, 3], vec![0], false, Block),
        (vec![5, 65], vec![1], false, Block),
        (vec![7, 11, 13], vec![0, 1, 2], true, Block),
        (vec![3, 1, 5, 129], vec![1, 3], false, Block),
        (vec![2, 70, 3, 2], vec![1], false, Block),
    ]
}

#[test]
fn sum_f64_matches_cpu() {
    for (i, (d, r, all, k)) in sum_cases().into_iter().enumerate() {
        sum_case::<f64>(&d, &r, all, k, 5000 + i as u64);
    }
}

#[test]
fn sum_f32_matches_cpu() {
    for (i, (d, r, all, k)) in sum_cases().into_iter().enumerate() {
        sum_case::<f32>(&d, &r, all, k, 6000 + i as u64);
    }
}

#[test]
fn sum_f16_matches_cpu() {
    for (i, (d, r, all, k)) in sum_cases().into_iter().enumerate() {
        sum_case::<f16>(&d, &r, all, k, 7000 + i as u64);
    }
}

// ---------------------------------------------------------------------------------- inventory

/// Every kernel of cuda/adain.cu and cuda/reduce.cu is one the tests above launch: a new kernel in
/// either file fails here until it is covered.
#[test]
fn family_kernels_are_all_covered() {
    let mut covered = BTreeSet::new();
    for suf in ["f16", "f32", "f64"] {
        for g in ["warp", "block"] {
            for k in [
                "plane_stat",
                "plane_stat_bwd_std",
                "style_stats",
                "adain_fwd",
                "adain_bwd_content",
                "adain_bwd_style",
            ] {
                covered.insert(format!("{k}_{g}_{suf}"));
            }
        }
        covered.insert(format!("plane_stat_bwd_mean_{suf}"));
        covered.insert(format!("sum_thread_{suf}"));
        covered.insert(format!("sum_block_{suf}"));
    }
    let prefixes = [
        "plane_stat",
        "style_stats",
        "adain_",
        "sum_thread",
        "sum_block",
    ];
    let family: BTreeSet<String> = kernel_names()
        .into_iter()
        .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
        .collect();
    assert_eq!(family, covered);
}
