//! The calls of the kernels of cuda/adain.cu (kernel names and argument lists; see call.rs): the
//! per-plane statistics `PlaneStat` / `PlaneStatBackward` and AdaIN's style statistics, forward and
//! backward. A plane is the `hw` contiguous elements of one (n, c). The group (warp or block per
//! plane) is the launcher's pick, `RowGroup::for_contiguous(plane size)` (rows.rs); the tests also
//! run the other.
//!
//! Invariants: the plane-size divisors the kernels take as `double` (`md`, `msd`) are the plane sizes
//! computed here, once for the launcher and the tests; the AdaIN calls take their sizes from one
//! [`AdainDims`] (content planes n·c of hw, style planes ns·c of hws, ns = 1 or n).

use super::call::KernelCall;
use super::rows::RowGroup;
use super::suffix;
use crate::ops::adain::AdainDims;
use crate::DType;

/// The name of plane kernel `<stem>_{warp,block}_<T>`.
fn plane_kernel(stem: &str, grp: RowGroup, dtype: DType) -> String {
    format!("{stem}_{}_{}", grp.name(), suffix(dtype))
}

/// `plane_stat_{warp,block}_<T>(i64 planes, i64 hw, double md, int want_std, double eps,
/// const T *x, T *out)`: each plane's mean (`std_eps` None) or sqrt(unbiased var + eps)
/// (`Some(eps)`), `md` = hw; x holds planes·hw elements, out planes.
pub fn plane_stat<P>(
    grp: RowGroup,
    dtype: DType,
    planes: usize,
    hw: usize,
    std_eps: Option<f64>,
    x: P,
    out: P,
) -> KernelCall<P> {
    KernelCall::new("adain", plane_kernel("plane_stat", grp, dtype))
        .i64(planes)
        .i64(hw)
        .f64(hw as f64)
        .i32(std_eps.is_some() as i32)
        .f64(std_eps.unwrap_or(0.0))
        .ptr(x)
        .ptr(out)
}

/// `plane_stat_bwd_std_{warp,block}_<T>(i64 planes, i64 hw, double md, const T *x, const T *sd,
/// const T *dy, T *dx)`: the gradient of each plane's std `sd` (the forward's output), `md` = hw;
/// x and dx hold planes·hw elements, sd and dy planes.
#[allow(clippy::too_many_arguments)]
pub fn plane_stat_bwd_std<P>(
    grp: RowGroup,
    dtype: DType,
    planes: usize,
    hw: usize,
    x: P,
    sd: P,
    dy: P,
    dx: P,
) -> KernelCall<P> {
    KernelCall::new("adain", plane_kernel("plane_stat_bwd_std", grp, dtype))
        .i64(planes)
        .i64(hw)
        .f64(hw as f64)
        .ptr(x)
        .ptr(sd)
        .ptr(dy)
        .ptr(dx)
}

/// `plane_stat_bwd_mean_<T>(i64 total, i64 hw, double md, const T *dy, T *dx)`: the gradient of each
/// plane's mean, `dx[i] = dy[i / hw] / md` with `md` = hw, a 1-d grid-stride over `total` elements;
/// dx holds total elements, dy total / hw.
pub fn plane_stat_bwd_mean<P>(
    dtype: DType,
    total: usize,
    hw: usize,
    dy: P,
    dx: P,
) -> KernelCall<P> {
    KernelCall::new("adain", format!("plane_stat_bwd_mean_{}", suffix(dtype)))
        .i64(total)
        .i64(hw)
        .f64(hw as f64)
        .ptr(dy)
        .ptr(dx)
}

/// `style_stats_{warp,block}_<T>(i64 planes, i64 hw, double md, double eps, const T *s, A *stats)`
/// over the style planes (planes = ns·c, hw = hws, md = hws, eps = `d.eps`): `stats[2·p] = μ`,
/// `stats[2·p + 1] = σ` (A = `Acc<T>`); s holds ns·c·hws elements, stats 2·ns·c.
pub fn style_stats<P>(grp: RowGroup, dtype: DType, d: &AdainDims, s: P, stats: P) -> KernelCall<P> {
    KernelCall::new("adain", plane_kernel("style_stats", grp, dtype))
        .i64(d.ns * d.c)
        .i64(d.hws)
        .f64(d.hws as f64)
        .f64(d.eps)
        .ptr(s)
        .ptr(stats)
}

/// `adain_fwd_{warp,block}_<T>(i64 planes, i64 hw, i64 c, i64 ns, double md, double eps, const T *x,
/// const A *stats, T *out)` over the content planes (planes = n·c, md = hw, eps = `d.eps`): x and out
/// hold n·c·hw elements, stats the 2·ns·c of [`style_stats`].
pub fn adain_fwd<P>(
    grp: RowGroup,
    dtype: DType,
    d: &AdainDims,
    x: P,
    stats: P,
    out: P,
) -> KernelCall<P> {
    KernelCall::new("adain", plane_kernel("adain_fwd", grp, dtype))
        .i64(d.n * d.c)
        .i64(d.hw)
        .i64(d.c)
        .i64(d.ns)
        .f64(d.hw as f64)
        .f64(d.eps)
        .ptr(x)
        .ptr(stats)
        .ptr(out)
}

/// `adain_bwd_content_{warp,block}_<T>(i64 planes, i64 hw, i64 c, i64 ns, double md, double eps,
/// const T *x, const A *stats, const T *dy, T *dc, A *sums)` over the content planes (as
/// [`adain_fwd`]): the content gradient dc and each plane's `sums[2·p..] = (Σdy, Σdy·x̂)`; x, dy and
/// dc hold n·c·hw elements, stats 2·ns·c, sums 2·n·c.
#[allow(clippy::too_many_arguments)]
pub fn adain_bwd_content<P>(
    grp: RowGroup,
    dtype: DType,
    d: &AdainDims,
    x: P,
    stats: P,
    dy: P,
    dc: P,
    sums: P,
) -> KernelCall<P> {
    KernelCall::new("adain", plane_kernel("adain_bwd_content", grp, dtype))
        .i64(d.n * d.c)
        .i64(d.hw)
        .i64(d.c)
        .i64(d.ns)
        .f64(d.hw as f64)
        .f64(d.eps)
        .ptr(x)
        .ptr(stats)
        .ptr(dy)
        .ptr(dc)
        .ptr(sums)
}

/// `adain_bwd_style_{warp,block}_<T>(i64 splanes, i64 hws, i64 c, i64 n, i64 ns, double msd,
/// const T *s, const A *stats, const A *sums, T *ds)` over the style planes (splanes = ns·c,
/// msd = hws): the style gradient from the content planes' [`adain_bwd_content`] sums, added in
/// increasing content-plane order; s and ds hold ns·c·hws elements, stats 2·ns·c, sums 2·n·c.
pub fn adain_bwd_style<P>(
    grp: RowGroup,
    dtype: DType,
    d: &AdainDims,
    s: P,
    stats: P,
    sums: P,
    ds: P,
) -> KernelCall<P> {
    KernelCall::new("adain", plane_kernel("adain_bwd_style", grp, dtype))
        .i64(d.ns * d.c)
        .i64(d.hws)
        .i64(d.c)
        .i64(d.n)
        .i64(d.ns)
        .f64(d.hws as f64)
        .ptr(s)
        .ptr(stats)
        .ptr(sums)
        .ptr(ds)
}
