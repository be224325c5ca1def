//! Winograd F(2×2, 3×3) for the CPU: 3×3 convolutions with stride 1, padding 1, no dilation, one
//! group (every 3×3 conv of a ResNet basic block but the downsampling ones). The forward pass, and
//! with it the input gradient (a stride-1 forward conv of dy with the rotated kernel, see
//! `Conv2dBackwardInput::as_forward`), and the weight gradient run as 16 gemms over 4×4 transformed
//! tiles instead of one im2col gemm: 2.25× fewer multiply-adds, no 9× column matrix.
//!
//! Math (Lavin & Gray 2016), per 2×2 output tile, input tile d (4×4, rows/cols 2i−1…2i+2), kernel g:
//!   U = G g Gᵀ, V = Bᵀ d B, Y = Aᵀ (U ⊙ V) A, summed over input channels inside the gemm
//!   (M[ξ] = U[ξ] · V[ξ], ξ = one of the 16 tile positions);
//!   weight gradient: dU[ξ] = Σ_tiles (A dY Aᵀ)[ξ] · V[ξ]ᵀ, dW = Gᵀ dU G.
//! With G, Bᵀ, Aᵀ below, every coefficient is 0, ±1 or ±½, so f32 rounding stays close to the direct
//! sum (the tests hold it to the im2col path and to an f64 definition).
//!
//! Layouts (one block of `b` images, `tb = b · tiles` tile columns):
//!   V [cin][16][tb], M and Ŷ [cout][16][tb] (so one channel's tiles are one contiguous chunk and the
//!   transforms run in parallel over channels), U and dU [16][cout][cin].
//! Invariant: every transform writes all of its output, so scratch buffers need no clearing.

use super::im2col::{for_each_chunk, sized, Plan, Scratch};
use super::Conv2dGeometry;
use crate::dtype::Float;
use crate::ops::matmul::gemm_ld;
use std::sync::atomic::{AtomicBool, Ordering};

/// Switch for A/B measurements and tests (`false` sends every conv to the im2col path). Not API.
#[doc(hidden)]
pub static WINOGRAD: AtomicBool = AtomicBool::new(true);

/// Below this many input or output channels the transforms cost more than the saved products.
const MIN_CHANNELS: usize = 16;
/// Upper bound on one image's transformed input or output (elements); larger images take im2col.
const MAX_IMAGE_ELEMS: usize = 1 << 22;

/// 2×2 output tiles covering an h×w map: `th` rows of `tw`.
#[derive(Clone, Copy, Debug)]
struct Tiles {
    th: usize,
    tw: usize,
}

impl Tiles {
    fn of(g: &Conv2dGeometry) -> Tiles {
        Tiles {
            th: g.h.div_ceil(2),
            tw: g.w.div_ceil(2),
        }
    }
    fn count(self) -> usize {
        self.th * self.tw
    }
}

/// Whether `g` runs on this path.
pub(super) fn applies(g: &Conv2dGeometry) -> bool {
    WINOGRAD.load(Ordering::Relaxed)
        && (g.kh, g.kw) == (3, 3)
        && g.stride == (1, 1)
        && g.padding == (1, 1)
        && g.dilation == (1, 1)
        && g.groups == 1
        && g.cin >= MIN_CHANNELS
        && g.cout >= MIN_CHANNELS
        && g.h > 0
        && g.w > 0
        && 16 * g.cin.max(g.cout) * Tiles::of(g).count() <= MAX_IMAGE_ELEMS
}

/// The batch plan: blocks of images whose tiles together make a gemm wide enough.
fn plan(g: &Conv2dGeometry) -> Plan {
    Plan::new(g.n, Tiles::of(g).count(), 16 * g.cin.max(g.cout))
}

/// `y = conv(x, w) (+ bias)` for `g` (which `applies`); lengths checked by the caller.
pub(super) fn forward<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    let mut y = vec![T::zero(); g.n * g.out_image()];
    if y.is_empty() {
        return y;
    }
    let u = transform_weight(w, g.cout, g.cin);
    let plan = plan(g);
    let (ii, threads) = (g.in_image(), plan.gemm_threads);
    let tl = Tiles::of(g);
    plan.for_each_block(&mut y, g.out_image(), |imgs, yb, s| {
        let b = imgs.len();
        let tb = b * tl.count();
        let xb = &x[imgs.start * ii..imgs.end * ii];
        let Scratch { col, mat } = s;
        let v = sized(col, g.cin * 16 * tb);
        transform_input(g, tl, xb, b, v, threads > 1);
        let m = sized(mat, g.cout * 16 * tb);
        for xi in 0..16 {
            gemm_ld(
                &mut m[xi * tb..],
                16 * tb,
                &u[xi * g.cout * g.cin..],
                g.cin,
                &v[xi * tb..],
                16 * tb,
                (g.cout, g.cin, tb),
                (false, false),
                false,
                threads,
            );
        }
        transform_output(g, tl, m, b, bias, yb, threads > 1);
    });
    y
}

/// `dw` of `y = conv(x, w)` for `g` (which `applies`); lengths checked by the caller.
pub(super) fn backward_weight<T: Float>(g: &Conv2dGeometry, x: &[T], dy: &[T]) -> Vec<T> {
    let ulen = 16 * g.cout * g.cin;
    let plan = plan(g);
    let (ii, oi, threads) = (g.in_image(), g.out_image(), plan.gemm_threads);
    let tl = Tiles::of(g);
    let du = plan.sum_over_tasks(ulen, |range, du: &mut [T]| {
        let mut s = Scratch::default();
        for imgs in plan.blocks(range) {
            let b = imgs.len();
            let tb = b * tl.count();
            let Scratch { col, mat } = &mut s;
            let v = sized(col, g.cin * 16 * tb);
            transform_input(g, tl, &x[imgs.start * ii..imgs.end * ii], b, v, threads > 1);
            let yh = sized(mat, g.cout * 16 * tb);
            transform_output_grad(
                g,
                tl,
                &dy[imgs.start * oi..imgs.end * oi],
                b,
                yh,
                threads > 1,
            );
            for xi in 0..16 {
                gemm_ld(
                    &mut du[xi * g.cout * g.cin..],
                    g.cin,
                    &yh[xi * tb..],
                    16 * tb,
                    &v[xi * tb..],
                    16 * tb,
                    (g.cout, tb, g.cin),
                    (false, true),
                    true,
                    threads,
                );
            }
        }
    });
    transform_weight_grad(&du, g.cout, g.cin)
}

/// U[ξ][co][ci] = (G g Gᵀ)[ξ] for every kernel g = w[co][ci] (3×3).
fn transform_weight<T: Float>(w: &[T], cout: usize, cin: usize) -> Vec<T> {
    let half = T::c(0.5);
    // G applied to a 3-vector: (g0, (g0+g1+g2)/2, (g0−g1+g2)/2, g2).
    let g3 = |a: T, b: T, c: T| [a, (a + b + c) * half, (a - b + c) * half, c];
    let plane = cout * cin;
    let mut u = vec![T::zero(); 16 * plane];
    for (k, g) in w.chunks_exact(9).enumerate() {
        let cols = [0, 1, 2].map(|c| g3(g[c], g[3 + c], g[6 + c])); // G g, by column
        for a in 0..4 {
            let row = g3(cols[0][a], cols[1][a], cols[2][a]); // (G g) Gᵀ, row a
            for (b, &v) in row.iter().enumerate() {
                u[(4 * a + b) * plane + k] = v;
            }
        }
    }
    u
}

/// dW[co][ci] = Gᵀ dU[·][co][ci] G (4×4 → 3×3).
fn transform_weight_grad<T: Float>(du: &[T], cout: usize, cin: usize) -> Vec<T> {
    let half = T::c(0.5);
    // Gᵀ applied to a 4-vector: (d0 + (d1+d2)/2, (d1−d2)/2, (d1+d2)/2 + d3).
    let gt = |d: [T; 4]| {
        let s = (d[1] + d[2]) * half;
        [d[0] + s, (d[1] - d[2]) * half, s + d[3]]
    };
    let plane = cout * cin;
    let mut dw = vec![T::zero(); 9 * plane];
    for (k, out) in dw.chunks_exact_mut(9).enumerate() {
        let at = |a: usize, b: usize| du[(4 * a + b) * plane + k];
        let cols = [0, 1, 2, 3].map(|b| gt([at(0, b), at(1, b), at(2, b), at(3, b)])); // Gᵀ dU
        for r in 0..3 {
            let row = gt([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]);
            out[3 * r..3 * r + 3].copy_from_slice(&row);
        }
    }
    dw
}

/// A plane transform: (plane [h, w], h, w, tiles, 16 output rows, their stride, first tile column,
/// scratch).
type PlaneFn<T> = unsafe fn(&[T], usize, usize, Tiles, &mut [T], usize, usize, &mut Vec<T>);

/// For every channel c of the `b` images `src` [b, channels, h, w]: `plane` of each image's plane c
/// into the 16 rows of chunk c of `out` [channels][16][b·tiles] (image bi at columns bi·tiles…),
/// channels in parallel when `parallel`; `plane_avx2` (the same code compiled for AVX2) when the
/// CPU has AVX2.
#[allow(clippy::too_many_arguments)]
fn transform_tiles<T: Float>(
    g: &Conv2dGeometry,
    tl: Tiles,
    src: &[T],
    b: usize,
    out: &mut [T],
    parallel: bool,
    plane: PlaneFn<T>,
    plane_avx2: PlaneFn<T>,
) {
    let (t, hw) = (tl.count(), g.h * g.w);
    let (tb, channels) = (b * t, out.len() / (16 * b * t));
    let run = if avx2() { plane_avx2 } else { plane };
    for_each_chunk(out, 16 * tb, parallel, |c, oc| {
        let mut buf = Vec::new();
        for bi in 0..b {
            let sc = &src[(bi * channels + c) * hw..][..hw];
            // SAFETY: `plane_avx2` is only chosen when the CPU has AVX2; the plain one is safe.
            unsafe { run(sc, g.h, g.w, tl, oc, tb, bi * t, &mut buf) };
        }
    });
}

/// V[ci][ξ][bi·tiles + t] = (Bᵀ d B)[ξ] for every 4×4 input tile d of the `b` images `x`.
fn transform_input<T: Float>(
    g: &Conv2dGeometry,
    tl: Tiles,
    x: &[T],
    b: usize,
    v: &mut [T],
    parallel: bool,
) {
    transform_tiles(g, tl, x, b, v, parallel, input_plane, input_plane_avx2);
}

/// One input plane `xc` [h, w] → its tiles' `Bᵀ d B` at columns `off..off + tiles` of the 16 rows of
/// `vc` (row stride `ld`). The zero-padded plane is kept as its even and odd rows (`pe`, `po`, row
/// stride `pw`), so that `Bᵀ` along h is four long flat loops; `Bᵀ` along w then runs per tile row.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn input_plane<T: Float>(
    xc: &[T],
    h: usize,
    w: usize,
    tl: Tiles,
    vc: &mut [T],
    ld: usize,
    off: usize,
    buf: &mut Vec<T>,
) {
    let Tiles { th, tw } = tl;
    let z = T::zero();
    let pw = 2 * tw + 2; // padded row: input columns −1 ..= 2·tw
    let half_plane = (th + 1) * pw; // padded rows 2i (pe) or 2i + 1 (po), i in 0..=th
    let n = th * pw;
    let need = 2 * half_plane + 4 * n;
    if buf.len() < need {
        buf.resize(need, z);
    }
    let (pe, rest) = buf[..need].split_at_mut(half_plane);
    let (po, q) = rest.split_at_mut(half_plane);
    // Padded row r holds input row r − 1 at columns 1..=w.
    for r in 0..2 * (th + 1) {
        let half = if r % 2 == 0 { &mut *pe } else { &mut *po };
        let dst = &mut half[(r / 2) * pw..][..pw];
        let src = r.wrapping_sub(1);
        if src >= h {
            dst.fill(z);
            continue;
        }
        dst[0] = z;
        dst[1..=w].copy_from_slice(&xc[src * w..(src + 1) * w]);
        dst[w + 1..].fill(z);
    }
    // Bᵀ along h: tile row i reads padded rows 2i … 2i + 3 = pe[i], po[i], pe[i + 1], po[i + 1].
    let (q0, rest) = q.split_at_mut(n);
    let (q1, rest) = rest.split_at_mut(n);
    let (q2, q3) = rest.split_at_mut(n);
    let (e0, e1, o0, o1) = (&pe[..n], &pe[pw..pw + n], &po[..n], &po[pw..pw + n]);
    for m in 0..n {
        q0[m] = e0[m] - e1[m];
        q1[m] = o0[m] + e1[m];
        q2[m] = e1[m] - o0[m];
        q3[m] = o0[m] - o1[m];
    }
    // Bᵀ along w: tile j of row i reads q_a[i][2j … 2j + 3]; results go to rows ξ = 4a + c.
    for (a, qa) in [&*q0, &*q1, &*q2, &*q3].into_iter().enumerate() {
        for i in 0..th {
            let pairs = qa[i * pw..(i + 1) * pw].chunks_exact(2);
            let [d0, d1, d2, d3] = four_rows(vc, 4 * a * ld + off + i * tw, ld, tw);
            let outs = d0
                .iter_mut()
                .zip(d1.iter_mut())
                .zip(d2.iter_mut().zip(d3.iter_mut()));
            for ((p, n), ((v0, v1), (v2, v3))) in pairs.clone().zip(pairs.skip(1)).zip(outs) {
                *v0 = p[0] - n[0];
                *v1 = p[1] + n[0];
                *v2 = n[0] - p[1];
                *v3 = p[1] - n[1];
            }
        }
    }
}

/// y[bi][co] = Σ tiles Aᵀ M A (+ bias[co]), clipped to h×w, from M[co][ξ][bi·tiles + t].
fn transform_output<T: Float>(
    g: &Conv2dGeometry,
    tl: Tiles,
    m: &[T],
    b: usize,
    bias: Option<&[T]>,
    y: &mut [T],
    parallel: bool,
) {
    let (t, plane) = (tl.count(), g.h * g.w);
    let tb = b * t;
    let one = |k: usize, yc: &mut [T]| {
        let (bi, co) = (k / g.cout, k % g.cout);
        let bv = bias.map_or(T::zero(), |bs| bs[co]);
        let mut buf = Vec::new();
        let mc = &m[co * 16 * tb..][..16 * tb];
        if avx2() {
            // SAFETY: the CPU has AVX2.
            unsafe { output_plane_avx2(mc, tb, bi * t, tl, g.h, g.w, bv, yc, &mut buf) };
        } else {
            output_plane(mc, tb, bi * t, tl, g.h, g.w, bv, yc, &mut buf);
        }
    };
    for_each_chunk(y, plane, parallel, one);
}

/// One output plane `yc` [h, w] from the 16 rows of `mc` (row stride `ld`), tile columns
/// `off..off + tiles`: `Aᵀ` along h as flat loops over all tiles (`s`: both output rows of every
/// tile), then `Aᵀ` along w per output row, plus `bias`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_plane<T: Float>(
    mc: &[T],
    ld: usize,
    off: usize,
    tl: Tiles,
    h: usize,
    w: usize,
    bias: T,
    yc: &mut [T],
    buf: &mut Vec<T>,
) {
    let Tiles { th, tw } = tl;
    let t = th * tw;
    if buf.len() < 8 * t {
        buf.resize(8 * t, T::zero());
    }
    let s = &mut buf[..8 * t];
    // s[half·4 + c][t] = (Aᵀ M)[half][c]: rows 0+1+2 (half 0) and 1−2−3 (half 1).
    for c in 0..4 {
        let at = |a: usize| &mc[(4 * a + c) * ld + off..][..t];
        let (m0, m1, m2, m3) = (at(0), at(1), at(2), at(3));
        let (top, bottom) = s.split_at_mut(4 * t);
        let (s0, s1) = (&mut top[c * t..][..t], &mut bottom[c * t..][..t]);
        for k in 0..t {
            let d = m1[k] - m2[k];
            s0[k] = m0[k] + m1[k] + m2[k];
            s1[k] = d - m3[k];
        }
    }
    let pairs = w / 2;
    for oh in 0..h {
        let (i, half) = (oh / 2, oh % 2);
        let sh = &s[half * 4 * t..][..4 * t];
        let row = |c: usize| &sh[c * t + i * tw..][..tw];
        let (a, b, c, d) = (row(0), row(1), row(2), row(3));
        let yrow = &mut yc[oh * w..(oh + 1) * w];
        let quad = a.iter().zip(b).zip(c).zip(d);
        for (p, (((&a, &b), &c), &d)) in yrow.chunks_exact_mut(2).zip(quad) {
            p[0] = a + b + c + bias;
            p[1] = b - c - d + bias;
        }
        if w % 2 == 1 {
            yrow[w - 1] = a[pairs] + b[pairs] + c[pairs] + bias;
        }
    }
}

/// Ŷ[co][ξ][bi·tiles + t] = (A dy Aᵀ)[ξ] for every 2×2 tile of the `b` output gradients `dy`
/// (zero beyond h×w).
fn transform_output_grad<T: Float>(
    g: &Conv2dGeometry,
    tl: Tiles,
    dy: &[T],
    b: usize,
    yh: &mut [T],
    parallel: bool,
) {
    transform_tiles(
        g,
        tl,
        dy,
        b,
        yh,
        parallel,
        output_grad_plane,
        output_grad_plane_avx2,
    );
}

/// One gradient plane `src` [h, w] → `A dy Aᵀ` of its tiles at columns `off..` of the 16 rows of
/// `yc` (row stride `ld`); A applied to (p0, p1) is (p0, p0 + p1, p0 − p1, −p1). As in
/// `input_plane`: even and odd rows apart (zero-padded to 2·th rows of 2·tw), A along h as flat
/// loops, then A along w per tile row.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_grad_plane<T: Float>(
    src: &[T],
    h: usize,
    w: usize,
    tl: Tiles,
    yc: &mut [T],
    ld: usize,
    off: usize,
    buf: &mut Vec<T>,
) {
    let Tiles { th, tw } = tl;
    let z = T::zero();
    let pw = 2 * tw;
    let n = th * pw;
    let need = 6 * n;
    if buf.len() < need {
        buf.resize(need, z);
    }
    let (de, rest) = buf[..need].split_at_mut(n);
    let (dodd, r) = rest.split_at_mut(n);
    for row in 0..2 * th {
        let half = if row % 2 == 0 { &mut *de } else { &mut *dodd };
        let dst = &mut half[(row / 2) * pw..][..pw];
        if row >= h {
            dst.fill(z);
            continue;
        }
        dst[..w].copy_from_slice(&src[row * w..(row + 1) * w]);
        dst[w..].fill(z);
    }
    let (r0, rest) = r.split_at_mut(n);
    let (r1, rest) = rest.split_at_mut(n);
    let (r2, r3) = rest.split_at_mut(n);
    for m in 0..n {
        let (p0, p1) = (de[m], dodd[m]);
        r0[m] = p0;
        r1[m] = p0 + p1;
        r2[m] = p0 - p1;
        r3[m] = -p1;
    }
    for (a, ra) in [&*r0, &*r1, &*r2, &*r3].into_iter().enumerate() {
        for i in 0..th {
            let pairs = ra[i * pw..(i + 1) * pw].chunks_exact(2);
            let [d0, d1, d2, d3] = four_rows(yc, 4 * a * ld + off + i * tw, ld, tw);
            let outs = d0
                .iter_mut()
                .zip(d1.iter_mut())
                .zip(d2.iter_mut().zip(d3.iter_mut()));
            for (p, ((v0, v1), (v2, v3))) in pairs.zip(outs) {
                *v0 = p[0];
                *v1 = p[0] + p[1];
                *v2 = p[0] - p[1];
                *v3 = -p[1];
            }
        }
    }
}

/// Whether the CPU has AVX2: the plane transforms then run as their `_avx2` twins, the same code
/// compiled for AVX2 (the crate is built for baseline x86-64, whose SSE2 has 4 lanes), so that their
/// loops vectorise 8 wide.
#[inline(always)]
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `input_plane` compiled for AVX2 (call only when `avx2()`).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
unsafe fn input_plane_avx2<T: Float>(
    xc: &[T],
    h: usize,
    w: usize,
    tl: Tiles,
    vc: &mut [T],
    ld: usize,
    off: usize,
    buf: &mut Vec<T>,
) {
    input_plane(xc, h, w, tl, vc, ld, off, buf)
}

/// `output_plane` compiled for AVX2 (call only when `avx2()`).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
unsafe fn output_plane_avx2<T: Float>(
    mc: &[T],
    ld: usize,
    off: usize,
    tl: Tiles,
    h: usize,
    w: usize,
    bias: T,
    yc: &mut [T],
    buf: &mut Vec<T>,
) {
    output_plane(mc, ld, off, tl, h, w, bias, yc, buf)
}

/// `output_grad_plane` compiled for AVX2 (call only when `avx2()`).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
unsafe fn output_grad_plane_avx2<T: Float>(
    src: &[T],
    h: usize,
    w: usize,
    tl: Tiles,
    yc: &mut [T],
    ld: usize,
    off: usize,
    buf: &mut Vec<T>,
) {
    output_grad_plane(src, h, w, tl, yc, ld, off, buf)
}

/// The four disjoint slices `v[start + a·stride ..][..len]`, a = 0..4 (`len ≤ stride`).
fn four_rows<T>(v: &mut [T], start: usize, stride: usize, len: usize) -> [&mut [T]; 4] {
    let (_, rest) = v.split_at_mut(start);
    let (r0, rest) = rest.split_at_mut(stride);
    let (r1, rest) = rest.split_at_mut(stride);
    let (r2, r3) = rest.split_at_mut(stride);
    [
        &mut r0[..len],
        &mut r1[..len],
        &mut r2[..len],
        &mut r3[..len],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuKernel;
    use crate::ops::conv::{Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dForward};
    use rand::{Rng, SeedableRng};

    fn geom(n: usize, cin: usize, cout: usize, h: usize, w: usize) -> Conv2dGeometry {
        Conv2dGeometry {
            n,
            cin,
            h,
            w,
            cout,
            kh: 3,
            kw: 3,
            ho: h,
            wo: w,
            stride: (1, 1),
            padding: (1, 1),
            dilation: (1, 1),
            groups: 1,
        }
    }

    /// x[n][ci][oh + ki − 1][ow + kj − 1], zero outside the image.
    fn tap(g: &Conv2dGeometry, x: &[f64], n: usize, ci: usize, ih: isize, iw: isize) -> f64 {
        if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
            return 0.0;
        }
        x[((n * g.cin + ci) * g.h + ih as usize) * g.w + iw as usize]
    }

    /// The definitions, in f64: y (with bias), dx and dw.
    #[allow(clippy::needless_range_loop)]
    fn definition(
        g: &Conv2dGeometry,
        x: &[f64],
        w: &[f64],
        bias: &[f64],
        dy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0; g.n * g.out_image()];
        let mut dx = vec![0.0; g.n * g.in_image()];
        let mut dw = vec![0.0; g.weight_len()];
        for n in 0..g.n {
            for co in 0..g.cout {
                for oh in 0..g.h {
                    for ow in 0..g.w {
                        let yi = ((n * g.cout + co) * g.h + oh) * g.w + ow;
                        let mut acc = bias[co];
                        for ci in 0..g.cin {
                            for k in 0..9 {
                                let (ih, iw) =
                                    ((oh + k / 3) as isize - 1, (ow + k % 3) as isize - 1);
                                let wi = (co * g.cin + ci) * 9 + k;
                                let xv = tap(g, x, n, ci, ih, iw);
                                acc += xv * w[wi];
                                dw[wi] += dy[yi] * xv;
                                if ih >= 0 && iw >= 0 && ih < g.h as isize && iw < g.w as isize {
                                    let xi =
                                        ((n * g.cin + ci) * g.h + ih as usize) * g.w + iw as usize;
                                    dx[xi] += dy[yi] * w[wi];
                                }
                            }
                        }
                        y[yi] = acc;
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn close<T: Float>(what: &str, got: &[T], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let g = <T as crate::dtype::Element>::to_f64(*g);
            assert!(
                (g - w).abs() <= tol * scale,
                "{what}[{i}]: got {g}, want {w} (scale {scale})"
            );
        }
    }

    /// Forward (with and without bias), input gradient (through `as_forward`) and weight gradient
    /// of the Winograd path equal the f64 definition: odd and even sizes (partial edge tiles), 1×1
    /// and 1×n maps, batch 1 (one task, threaded gemm) and batches split into blocks of images.
    #[test]
    fn winograd_matches_the_definition_in_f64_and_f32() {
        // (n, cin, cout, h, w)
        let cases = [
            (2, 16, 16, 5, 7),
            (3, 16, 20, 4, 4),
            (1, 17, 16, 1, 1),
            (1, 16, 18, 2, 9),
            (9, 16, 16, 6, 3),
            (1, 24, 16, 11, 10),
            (2, 64, 64, 14, 14),
            (4, 32, 48, 7, 7),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for (n, cin, cout, h, w) in cases {
            let g = geom(n, cin, cout, h, w);
            assert!(applies(&g), "{g:?} should take the Winograd path");
            let mut draw = |len: usize| -> Vec<f64> {
                (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
            };
            let (x, wt, bias, dy) = (
                draw(n * g.in_image()),
                draw(g.weight_len()),
                draw(cout),
                draw(n * g.out_image()),
            );
            let (y, dx, dw) = definition(&g, &x, &wt, &bias, &dy);
            let no_bias = vec![0.0; cout];
            let (y0, _, _) = definition(&g, &x, &wt, &no_bias, &dy);
            let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let fwd = |has_bias| Conv2dForward { geom: g, has_bias };
            let bwd_in = Conv2dBackwardInput {
                geom: g,
                has_bias: false,
            };
            let bwd_w = Conv2dBackwardWeight { geom: g };
            // f64: equal to rounding.
            let got = fwd(true).run::<f64>(&[&x, &wt, &bias]).unwrap();
            close("y f64", &got[0], &y, 1e-12);
            let got = fwd(false).run::<f64>(&[&x, &wt]).unwrap();
            close("y f64 no bias", &got[0], &y0, 1e-12);
            let got = bwd_in.run::<f64>(&[&dy, &wt]).unwrap();
            close("dx f64", &got[0], &dx, 1e-12);
            let got = bwd_w.run::<f64>(&[&x, &dy]).unwrap();
            close("dw f64", &got[0], &dw, 1e-12);
            // f32: within a few units of f32 rounding of the largest value.
            let (xs, ws, bs, dys) = (f32s(&x), f32s(&wt), f32s(&bias), f32s(&dy));
            let got = fwd(true).run::<f32>(&[&xs, &ws, &bs]).unwrap();
            close("y f32", &got[0], &y, 2e-6);
            let got = bwd_in.run::<f32>(&[&dys, &ws]).unwrap();
            close("dx f32", &got[0], &dx, 2e-6);
            let got = bwd_w.run::<f32>(&[&xs, &dys]).unwrap();
            close("dw f32", &got[0], &dw, 2e-6);
        }
    }

    #[test]
    fn applies_only_to_3x3_stride1_pad1_ungrouped_convs_with_enough_channels() {
        let g = geom(1, 16, 16, 8, 8);
        assert!(applies(&g));
        assert!(!applies(&Conv2dGeometry { cin: 8, ..g }));
        assert!(!applies(&Conv2dGeometry {
            stride: (2, 2),
            ho: 4,
            wo: 4,
            ..g
        }));
        assert!(!applies(&Conv2dGeometry {
            padding: (0, 0),
            ho: 6,
            wo: 6,
            ..g
        }));
        assert!(!applies(&Conv2dGeometry { groups: 2, ..g }));
        assert!(!applies(&Conv2dGeometry {
            kh: 1,
            kw: 1,
            padding: (0, 0),
            ..g
        }));
    }
}
