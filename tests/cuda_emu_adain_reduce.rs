#![cfg(feature = "cuda-emu")]
//! The per-plane statistics, AdaIN and sum-reduction kernels (cuda/adain.cu, cuda/reduce.cu), run in the
//! CUDA emulator (`--features cuda-emu`) against the CPU backend. From `engine::backend::kernel_abi`,
//! as the launchers (src/backend/cuda/adain.rs, src/backend/cuda/reduce.rs) take them: the calls
//! (kernel names and argument lists: `kernel_abi::adain`, `SumPlan::call`), grid shapes, kernel picks
//! and descriptors (`RowGroup`, `SumPlan`), on a pretend GPU of 4 SMs.
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

use engine::backend::cuda_emu::test_support::{
    assert_close, assert_sums, cpu_tensor, grid_1d, reduction_tol, rounded, run_call, seeded_randn,
    sum_l1_tol, KernelFloat, RowGroup, ONE_BLOCK, SM_COUNT,
};
use engine::backend::cuda_emu::{kernel_names, Buf};
use engine::backend::kernel_abi::adain;
use engine::backend::kernel_abi::reduce::SumPlan;
use engine::ops::adain::AdainDims;
use engine::Element;
use half::f16;

// Tolerances: outputs in T against the CPU within `reduction_tol(T)` (f16: the std backward also
// reads σ rounded to f16), scratch in `Acc<T>` against f64 within `reduction_tol(Acc<T>)` (an f16
// kernel's f32 scratch comes from f16-rounded inputs that the f64 reference uses too), sums within
// `sum_l1_tol(Acc<T>)` of their terms' magnitudes.

/// The AdaIN / channel_std eps of the reference (`calc_mean_std`).
const EPS: f64 = 1e-5;

/// The variant the launcher does not pick (both are correct for any plane size).
fn other(g: RowGroup) -> RowGroup {
    match g {
        RowGroup::Warp => RowGroup::Block,
        _ => RowGroup::Warp,
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
    if shapes.iter().all(|&(hw, planes)| {
        RowGroup::for_contiguous(hw) == RowGroup::Block || planes <= FLIP_BLOCK_MAX
    }) {
        v.push(Variant {
            flip: true,
            one_block: false,
        });
    }
    v
}

impl Variant {
    fn group(self, hw: usize) -> RowGroup {
        let g = RowGroup::for_contiguous(hw);
        if self.flip {
            other(g)
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
fn plane_stat_case<T: KernelFloat>(dims: [usize; 4], seed: u64) {
    let [n, c, h, w] = dims;
    let (hw, planes) = (h * w, n * c);
    let total = planes * hw;
    let x = rounded::<T>(seeded_randn(total, seed).iter().map(|v| 2.0 * v + 0.5));
    let wgt = rounded::<T>(seeded_randn(planes, seed + 1));
    let stds: &[bool] = if hw >= 2 { &[false, true] } else { &[false] };
    for &want_std in stds {
        // CPU: y = channel_mean / channel_std, dx = ∂(Σ y·w)/∂x.
        let xt = cpu_tensor::<T>(&x, &dims).var();
        let y = if want_std {
            xt.channel_std(EPS).unwrap()
        } else {
            xt.channel_mean().unwrap()
        };
        let wt = cpu_tensor::<T>(&wgt, &[n, c, 1, 1]);
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
            let cfg = grp.grid_or_one_block(planes, v.one_block);
            let mut xb = Buf::<T>::from_f64s(&x);
            let mut out = Buf::<T>::nan(planes);
            let std_eps = if want_std { Some(EPS) } else { None };
            let call = adain::plane_stat(grp, T::DTYPE, planes, hw, std_eps, xb.ptr(), out.ptr());
            run_call(&call, cfg);
            let got_y = out.checked_f64s("out");
            assert_close(
                &format!("{what}: y"),
                &got_y,
                &want_y,
                reduction_tol(T::DTYPE),
            );

            // Backward: dy = w; the std backward reads x and the forward's output (saved σ, T).
            let mut dy = Buf::<T>::from_f64s(&wgt);
            let mut dx = Buf::<T>::nan(total);
            if want_std {
                let mut sd = Buf::<T>::from_slice(&out.to_vec());
                let call = adain::plane_stat_bwd_std(
                    grp,
                    T::DTYPE,
                    planes,
                    hw,
                    xb.ptr(),
                    sd.ptr(),
                    dy.ptr(),
                    dx.ptr(),
                );
                run_call(&call, cfg);
                sd.check_guards("sd").unwrap();
            } else {
                // A 1-d grid-stride over all elements (`g.grid(total)`); no group.
                let call = adain::plane_stat_bwd_mean(T::DTYPE, total, hw, dy.ptr(), dx.ptr());
                run_call(
                    &call,
                    if v.one_block {
                        ONE_BLOCK
                    } else {
                        grid_1d(total)
                    },
                );
            }
            xb.check_guards("x").unwrap();
            dy.check_guards("dy").unwrap();
            let got_dx = dx.checked_f64s("dx");
            assert_close(
                &format!("{what}: dx"),
                &got_dx,
                &want_dx,
                reduction_tol(T::DTYPE),
            );
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

/// The launcher's `style_stats`: `[μ, σ]` per style plane (ns·c of them) in `Acc<T>`.
fn emu_style_stats<T: KernelFloat>(
    g: RowGroup,
    one_block: bool,
    d: &AdainDims,
    s: &mut Buf<T>,
) -> Buf<T::Acc> {
    let splanes = d.ns * d.c;
    let mut stats = Buf::<T::Acc>::nan(2 * splanes);
    let call = adain::style_stats(g, T::DTYPE, d, s.ptr(), stats.ptr());
    run_call(&call, g.grid_or_one_block(splanes, one_block));
    stats.check_guards("stats").unwrap();
    s.check_guards("style").unwrap();
    stats
}

/// AdaIN of content `[n, c, h, w]` with style `[ns, c, hs, ws]` (ns = 1 or n): the forward, then the
/// backward with dy = w, as `AdainForward` / `AdainBackward` launch them.
fn adain_case<T: KernelFloat>(cdims: [usize; 4], sdims: [usize; 4], seed: u64) {
    let [n, c, h, w] = cdims;
    let [ns, cs, hs, ws] = sdims;
    assert!(cs == c && (ns == 1 || ns == n) && h * w >= 2 && hs * ws >= 2);
    let (hw, hws) = (h * w, hs * ws);
    let (planes, splanes) = (n * c, ns * c);
    let x = rounded::<T>(
        seeded_randn(planes * hw, seed)
            .iter()
            .map(|v| 1.5 * v + 0.3),
    );
    let s = rounded::<T>(
        seeded_randn(splanes * hws, seed + 1)
            .iter()
            .map(|v| 0.7 * v - 0.2),
    );
    let wgt = rounded::<T>(seeded_randn(planes * hw, seed + 2));

    // CPU: y = adain(content, style), gradients of Σ y·w w.r.t. content and style.
    let (ct, st) = (
        cpu_tensor::<T>(&x, &cdims).var(),
        cpu_tensor::<T>(&s, &sdims).var(),
    );
    let y = ct.adain(&st, EPS).unwrap();
    let grads = y
        .mul(&cpu_tensor::<T>(&wgt, &cdims))
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

    // The launchers' geometry (`AdainForward.0` / `AdainBackward.0`).
    let dims = AdainDims {
        n,
        c,
        hw,
        ns,
        hws,
        eps: EPS,
    };
    for v in variants(&[(hw, planes), (hws, splanes)]) {
        let (cg, sg) = (v.group(hw), v.group(hws));
        let what = format!(
            "adain {cdims:?} style {sdims:?} {} {v:?} (content {}, style {})",
            T::SUF,
            cg.name(),
            sg.name()
        );
        let mut xb = Buf::<T>::from_f64s(&x);
        let mut sb = Buf::<T>::from_f64s(&s);

        // Forward: style statistics, then the content kernel.
        let mut stats = emu_style_stats(sg, v.one_block, &dims, &mut sb);
        let got_stats = stats.checked_f64s("stats");
        assert_close(
            &format!("{what}: style stats"),
            &got_stats,
            &want_stats,
            reduction_tol(T::Acc::DTYPE),
        );
        let mut out = Buf::<T>::nan(planes * hw);
        let call = adain::adain_fwd(cg, T::DTYPE, &dims, xb.ptr(), stats.ptr(), out.ptr());
        run_call(&call, cg.grid_or_one_block(planes, v.one_block));
        stats.check_guards("stats").unwrap();
        assert_close(
            &format!("{what}: y"),
            &out.checked_f64s("out"),
            &want_y,
            reduction_tol(T::DTYPE),
        );

        // Backward: the launcher recomputes the style statistics with the same kernel on the same
        // input, which is deterministic (fixed reduction tree), so the forward's buffer is reused;
        // then the content gradient and per-plane sums, then the style gradient.
        let mut dy = Buf::<T>::from_f64s(&wgt);
        let mut dc = Buf::<T>::nan(planes * hw);
        let mut sums = Buf::<T::Acc>::nan(2 * planes);
        let call = adain::adain_bwd_content(
            cg,
            T::DTYPE,
            &dims,
            xb.ptr(),
            stats.ptr(),
            dy.ptr(),
            dc.ptr(),
            sums.ptr(),
        );
        run_call(&call, cg.grid_or_one_block(planes, v.one_block));
        let got_sums = sums.checked_f64s("sums");
        assert_sums(
            &format!("{what}: sums (Σdy, Σdy·x̂)"),
            &got_sums,
            &want_sums,
            &sums_l1,
            sum_l1_tol(T::Acc::DTYPE),
            reduction_tol(T::Acc::DTYPE).1,
        );
        assert_close(
            &format!("{what}: d content"),
            &dc.checked_f64s("dc"),
            &want_dc,
            reduction_tol(T::DTYPE),
        );
        let mut ds = Buf::<T>::nan(splanes * hws);
        let call = adain::adain_bwd_style(
            sg,
            T::DTYPE,
            &dims,
            sb.ptr(),
            stats.ptr(),
            sums.ptr(),
            ds.ptr(),
        );
        run_call(&call, sg.grid_or_one_block(splanes, v.one_block));
        assert_close(
            &format!("{what}: d style"),
            &ds.checked_f64s("ds"),
            &want_ds,
            reduction_tol(T::DTYPE),
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

/// The kernel `SumKeep`'s launcher picks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SumKernel {
    Thread,
    Block,
}

/// Sums `[dims]` over `red` (keepdim) with the CPU and with the launcher's sequence; `all` uses
/// `sum_all` on the CPU (red must then be every dim). `expect` is the kernel the launcher must pick.
fn sum_case<T: KernelFloat>(
    dims: &[usize],
    red: &[usize],
    all: bool,
    expect: SumKernel,
    seed: u64,
) {
    let numel: usize = dims.iter().product();
    let x = rounded::<T>(seeded_randn(numel, seed).iter().map(|v| v + 0.25));
    let xt = cpu_tensor::<T>(&x, dims);
    let want = if all {
        assert_eq!(red.len(), dims.len());
        xt.sum_all().unwrap()
    } else {
        let r: Vec<isize> = red.iter().map(|&d| d as isize).collect();
        xt.sum_dims(&r, true).unwrap()
    }
    .to_vec_f64()
    .unwrap();

    // The launcher's plan.
    let rank = dims.len();
    let outd: Vec<usize> = (0..rank)
        .map(|d| if red.contains(&d) { 1 } else { dims[d] })
        .collect();
    let plan = SumPlan::new(dims, &outd).unwrap();
    let n_out = plan.n_out;
    assert_eq!(want.len(), n_out);
    let picked = if plan.per_thread {
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
        let variant = SumPlan {
            per_thread: k == SumKernel::Thread,
            ..plan
        };
        let cfg = if one_block {
            ONE_BLOCK
        } else {
            variant.launch(SM_COUNT).grid()
        };
        let mut xb = Buf::<T>::from_f64s(&x);
        let mut y = Buf::<T>::nan(n_out);
        let call = variant.call(T::DTYPE, xb.ptr(), y.ptr());
        let what = format!(
            "sum {dims:?} over {red:?} {} grid {cfg:?} (launcher: {picked:?})",
            call.name
        );
        run_call(&call, cfg);
        xb.check_guards("x").unwrap();
        let got = y.checked_f64s("y");
        assert_sums(
            &what,
            &got,
            &want,
            &l1,
            sum_l1_tol(T::Acc::DTYPE),
            reduction_tol(T::DTYPE).1.min(2e-3),
        );
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
