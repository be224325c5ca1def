//! The inner loops of the batch-norm kernels: per-channel reductions (batch statistics, the
//! backward's Σg and Σg·x̂) and per-plane elementwise passes (normalise, input gradient).
//!
//! Each is written once as a flat, bounds-check-free loop (`#[inline(always)]`) and compiled twice:
//! as built (baseline x86-64) and inside an AVX2 function (`*_avx2`), chosen at run time by
//! `ops::simd::avx2()`. Both compile the same arithmetic in the same order (no fused multiply-add, no
//! reassociation), so they give bit-identical results and the kernel tests cover both.
//! Reductions accumulate in f64, in `LANES` independent partial sums per plane.
//! Channel `ch`'s data is `n` planes of `hw` values at offsets `(i·c + ch)·hw`.

use crate::dtype::{Element, Float};
use crate::ops::simd::avx2;

/// Declares `$name`, which runs `$body` compiled for AVX2 (through `$twin`) when `avx2()` and as
/// built otherwise. `$body` holds the loop, `#[inline(always)]`, so each caller compiles its own copy.
macro_rules! with_avx2_twin {
    ($(#[$doc:meta])* $name:ident, $twin:ident, $body:ident, ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$doc])*
        pub(super) fn $name<T: Float>($($arg: $ty),*) $(-> $ret)? {
            if avx2() {
                // SAFETY: chosen only when the CPU has AVX2.
                unsafe { $twin($($arg),*) }
            } else {
                $body($($arg),*)
            }
        }

        #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
        unsafe fn $twin<T: Float>($($arg: $ty),*) $(-> $ret)? {
            $body($($arg),*)
        }
    };
}

/// `v` widened to f64 (the accumulation type of every reduction here).
#[inline(always)]
pub(super) fn f<T: Float>(v: T) -> f64 {
    Element::to_f64(v)
}

/// Independent partial sums per reduction: one f64 accumulator is a serial chain of dependent adds
/// (one per ~4 cycles); eight let the adds overlap and vectorise.
const LANES: usize = 8;

/// `Σ term(v)` over `xs` in f64, in `LANES` partial sums.
#[inline(always)]
fn sum_lanes<T: Float>(xs: &[T], term: impl Fn(T) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&v| term(v)).sum();
    for ch in chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += term(v);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The gradient reaching the normalisation: `dy`, masked by ReLU's `y > 0` when fused. Written as a
/// select, not a branch, so that it vectorises.
#[inline(always)]
fn masked<T: Float>(relu: bool, yi: T, di: T) -> T {
    if relu && yi <= T::zero() {
        T::zero()
    } else {
        di
    }
}

/// The planes of channel `ch`.
#[inline(always)]
fn planes<T>(
    x: &[T],
    n: usize,
    c: usize,
    hw: usize,
    ch: usize,
) -> impl Iterator<Item = &[T]> + Clone {
    (0..n).map(move |i| &x[(i * c + ch) * hw..(i * c + ch + 1) * hw])
}

with_avx2_twin!(
    /// Channel `ch`'s batch mean and biased variance (two passes, f64).
    channel_stats, channel_stats_avx2, channel_stats_body,
    (x: &[T], n: usize, c: usize, hw: usize, ch: usize) -> (f64, f64)
);

#[inline(always)]
fn channel_stats_body<T: Float>(x: &[T], n: usize, c: usize, hw: usize, ch: usize) -> (f64, f64) {
    let m = (n * hw) as f64;
    let s: f64 = planes(x, n, c, hw, ch)
        .map(|xp| sum_lanes(xp, |v| f(v)))
        .sum();
    let mean = s / m;
    let ss: f64 = planes(x, n, c, hw, ch)
        .map(|xp| {
            sum_lanes(xp, |v| {
                let d = f(v) - mean;
                d * d
            })
        })
        .sum();
    (mean, ss / m)
}

with_avx2_twin!(
    /// One plane of `y = act(x·scale + shift [+ residual])`, act = ReLU when `relu`.
    normalise_plane, normalise_plane_avx2, normalise_plane_body,
    (yp: &mut [T], xp: &[T], rp: Option<&[T]>, scale: T, shift: T, relu: bool)
);

#[inline(always)]
fn normalise_plane_body<T: Float>(
    yp: &mut [T],
    xp: &[T],
    rp: Option<&[T]>,
    scale: T,
    shift: T,
    relu: bool,
) {
    let act = |v: T| if relu { v.max(T::zero()) } else { v };
    match rp {
        Some(rp) => {
            for ((yi, &xi), &ri) in yp.iter_mut().zip(xp).zip(rp) {
                *yi = act(xi * scale + shift + ri);
            }
        }
        None => {
            for (yi, &xi) in yp.iter_mut().zip(xp) {
                *yi = act(xi * scale + shift);
            }
        }
    }
}

with_avx2_twin!(
    /// Channel `ch`'s `(Σg, Σg·(x − mean))` in f64, with `g` the (ReLU-masked) output gradient;
    /// `dims` is `(n, c, hw, ch)`.
    grad_sums, grad_sums_avx2, grad_sums_body,
    (x: &[T], y: &[T], dy: &[T], dims: (usize, usize, usize, usize), mean: f64, relu: bool) -> (f64, f64)
);

#[inline(always)]
fn grad_sums_body<T: Float>(
    x: &[T],
    y: &[T],
    dy: &[T],
    (n, c, hw, ch): (usize, usize, usize, usize),
    mean: f64,
    relu: bool,
) -> (f64, f64) {
    let (mut sg, mut sgx) = ([0.0f64; LANES], [0.0f64; LANES]);
    let mut add = |k: usize, xi: T, yi: T, di: T| {
        let g = f(masked(relu, yi, di));
        sg[k] += g;
        sgx[k] += g * (f(xi) - mean);
    };
    for ((xp, yp), dp) in planes(x, n, c, hw, ch)
        .zip(planes(y, n, c, hw, ch))
        .zip(planes(dy, n, c, hw, ch))
    {
        let (xc, yc, dc) = (
            xp.chunks_exact(LANES),
            yp.chunks_exact(LANES),
            dp.chunks_exact(LANES),
        );
        let (xr, yr, dr) = (xc.remainder(), yc.remainder(), dc.remainder());
        for ((xs, ys), ds) in xc.zip(yc).zip(dc) {
            for k in 0..LANES {
                add(k, xs[k], ys[k], ds[k]);
            }
        }
        for k in 0..xr.len() {
            add(k, xr[k], yr[k], dr[k]);
        }
    }
    (sg.iter().sum(), sgx.iter().sum())
}

/// Per-channel constants of the input-gradient pass: `k = γ·invstd`; in training mode also the
/// batch mean, invstd, `Σg/M` and `Σg·x̂/M` (`None` in eval mode, where `dx = k·g`).
#[derive(Clone, Copy)]
pub(super) struct InputGradCoef<T> {
    pub k: T,
    pub training: Option<(T, T, T, T)>,
}

with_avx2_twin!(
    /// One plane of `dx = k·(g − Σg/M − x̂·Σg·x̂/M)` (training) or `k·g` (eval), and of
    /// `dresidual = g` when `drp` is given; `planes` is `(x, y, dy)` of the plane.
    input_grad_plane, input_grad_plane_avx2, input_grad_plane_body,
    (dxp: &mut [T], drp: Option<&mut [T]>, planes: (&[T], &[T], &[T]), coef: InputGradCoef<T>, relu: bool)
);

#[inline(always)]
fn input_grad_plane_body<T: Float>(
    dxp: &mut [T],
    drp: Option<&mut [T]>,
    (xp, yp, dp): (&[T], &[T], &[T]),
    coef: InputGradCoef<T>,
    relu: bool,
) {
    let k = coef.k;
    // Slices zipped, not indexed: no bounds checks, so the loops vectorise.
    match coef.training {
        Some((mu, is, mg, mgx)) => {
            for (((d, &xi), &yi), &di) in dxp.iter_mut().zip(xp).zip(yp).zip(dp) {
                let xh = (xi - mu) * is;
                *d = k * (masked(relu, yi, di) - mg - xh * mgx);
            }
        }
        None => {
            for ((d, &yi), &di) in dxp.iter_mut().zip(yp).zip(dp) {
                *d = k * masked(relu, yi, di);
            }
        }
    }
    if let Some(drp) = drp {
        for ((d, &yi), &di) in drp.iter_mut().zip(yp).zip(dp) {
            *d = masked(relu, yi, di);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The AVX2 twins against the baseline code, bit for bit, on seeded data with odd plane sizes
    //! (remainders of `LANES` and of the vector width) and values on both sides of the ReLU.
    use super::*;
    use rand::{Rng, SeedableRng};

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-2.0f32..3.0)).collect()
    }

    #[test]
    fn avx2_twins_match_the_baseline_bit_for_bit() {
        if !avx2() {
            eprintln!("skipped: this CPU has no AVX2 (or ENGINE_NO_AVX2=1)");
            return;
        }
        for &(n, c, hw) in &[(3, 5, 7 * 7), (2, 3, 13), (4, 2, 1), (1, 1, 28 * 28)] {
            let len = n * c * hw;
            let (x, y, dy, r) = (data(len, 1), data(len, 2), data(len, 3), data(len, 4));
            for ch in 0..c {
                let plain = channel_stats_body(&x, n, c, hw, ch);
                // SAFETY: avx2() checked above.
                let twin = unsafe { channel_stats_avx2(&x, n, c, hw, ch) };
                assert_eq!(plain.0.to_bits(), twin.0.to_bits());
                assert_eq!(plain.1.to_bits(), twin.1.to_bits());
                for relu in [false, true] {
                    let plain = grad_sums_body(&x, &y, &dy, (n, c, hw, ch), 0.25, relu);
                    let twin = unsafe { grad_sums_avx2(&x, &y, &dy, (n, c, hw, ch), 0.25, relu) };
                    assert_eq!(
                        (plain.0.to_bits(), plain.1.to_bits()),
                        (twin.0.to_bits(), twin.1.to_bits())
                    );
                }
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for relu in [false, true] {
                for rp in [None, Some(&r[..])] {
                    let (mut a, mut b) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                    normalise_plane_body(&mut a, &x, rp, 0.7, -0.3, relu);
                    unsafe { normalise_plane_avx2(&mut b, &x, rp, 0.7, -0.3, relu) };
                    assert_eq!(bits(&a), bits(&b));
                }
                for training in [None, Some((0.1, 1.3, 0.02, -0.05))] {
                    let coef = InputGradCoef { k: 0.9, training };
                    let (mut a, mut b) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                    let (mut ra, mut rb) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                    input_grad_plane_body(&mut a, Some(&mut ra), (&x, &y, &dy), coef, relu);
                    unsafe {
                        input_grad_plane_avx2(&mut b, Some(&mut rb), (&x, &y, &dy), coef, relu)
                    };
                    assert_eq!(bits(&a), bits(&b));
                    assert_eq!(bits(&ra), bits(&rb));
                    assert!(
                        a.iter().chain(&ra).all(|v| v.is_finite()),
                        "a value was left unwritten"
                    );
                }
            }
        }
    }
}
