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
//! Every coefficient of G, Bᵀ and Aᵀ (spelled out where each is applied) is 0, ±1 or ±½, so f32
//! rounding stays close to the direct sum (the tests hold both dtypes to an f64 definition).
//! The plane transforms are flat loops over whole arrays, compiled a second time for AVX2 and
//! picked at run time; `plan` decides how a batch is split into blocks and over threads.
//!
//! Layouts (one block of `b` images, `tb = b · tiles` tile columns):
//!   V [cin][16][tb], M and Ŷ [cout][16][tb] (so one channel's tiles are one contiguous chunk and the
//!   transforms run in parallel over channels), U and dU [cout][16][cin] (the same per output
//!   channel; the gemm for ξ reads its rows with stride 16·cin).
//! Invariant: every transform writes all of its output, so scratch buffers need no clearing.

use super::im2col::{for_each_chunk, sized, Plan, Scratch, MAX_COL_ELEMS, TARGET_COLS};
use super::Conv2dGeometry;
use crate::dtype::Float;
use crate::ops::matmul::gemm_ld;
use std::sync::atomic::{AtomicBool, Ordering};

/// Switch for A/B measurements (`false` sends every conv to the im2col path). Not API: users set
/// `ENGINE_WINOGRAD=0` in the environment instead (read once, at the first conv).
#[doc(hidden)]
pub static WINOGRAD: AtomicBool = AtomicBool::new(true);

/// `WINOGRAD`, and `ENGINE_WINOGRAD` is not `0`.
fn enabled() -> bool {
    static FROM_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    WINOGRAD.load(Ordering::Relaxed)
        && *FROM_ENV.get_or_init(|| std::env::var("ENGINE_WINOGRAD").map_or(true, |v| v != "0"))
}

/// Below this many input or output channels the transforms cost more than the saved products.
const MIN_CHANNELS: usize = 16;
/// Below this many output positions in the batch (n·h·w) the weight transforms (16·cout·cin each
/// way) cost more than the saved products (measured: 8 images of 7×7 at 512 channels run 0.9× the
/// im2col path, 16 images 1.1×).
const MIN_POSITIONS: usize = 512;
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
    enabled()
        && (g.kh, g.kw) == (3, 3)
        && g.stride == (1, 1)
        && g.padding == (1, 1)
        && g.dilation == (1, 1)
        && g.groups == 1
        && g.cin >= MIN_CHANNELS
        && g.cout >= MIN_CHANNELS
        && g.n * g.h * g.w >= MIN_POSITIONS
        && 16 * g.cin.max(g.cout) * Tiles::of(g).count() <= MAX_IMAGE_ELEMS
}

/// The batch plan. When the whole batch has no more tiles than one block would hold: one block, with
/// multi-threaded gemms and transforms (splitting a small batch over threads would give each thread
/// a narrow gemm, and the weight gradient one partial 16·cout·cin sum per thread). Otherwise the
/// im2col plan: image ranges over threads, in blocks whose tiles make a wide enough gemm.
fn plan(g: &Conv2dGeometry) -> Plan {
    let (tiles, rows) = (Tiles::of(g).count(), 16 * g.cin.max(g.cout));
    if g.n * tiles <= TARGET_COLS && g.n * tiles * rows <= MAX_COL_ELEMS {
        return Plan {
            tasks: vec![0..g.n],
            block: g.n.max(1),
            gemm_threads: rayon::current_num_threads().max(1),
        };
    }
    Plan::new(g.n, tiles, rows)
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
                &u[xi * g.cin..],
                16 * g.cin,
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
                    &mut du[xi * g.cin..],
                    16 * g.cin,
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

/// U[co][ξ][ci] = (G g Gᵀ)[ξ] for every kernel g = w[co][ci] (3×3), in parallel over co.
fn transform_weight<T: Float>(w: &[T], cout: usize, cin: usize) -> Vec<T> {
    let half = T::c(0.5);
    // G applied to a 3-vector: (g0, (g0+g1+g2)/2, (g0−g1+g2)/2, g2).
    let g3 = |a: T, b: T, c: T| [a, (a + b + c) * half, (a - b + c) * half, c];
    let mut u = vec![T::zero(); 16 * cout * cin];
    for_each_chunk(&mut u, 16 * cin, cout > 1, |co, uc, _| {
        for (ci, g) in w[co * 9 * cin..(co + 1) * 9 * cin]
            .chunks_exact(9)
            .enumerate()
        {
            let cols = [0, 1, 2].map(|c| g3(g[c], g[3 + c], g[6 + c])); // G g, by column
            for a in 0..4 {
                let row = g3(cols[0][a], cols[1][a], cols[2][a]); // (G g) Gᵀ, row a
                for (b, &v) in row.iter().enumerate() {
                    uc[(4 * a + b) * cin + ci] = v;
                }
            }
        }
    });
    u
}

/// dW[co][ci] = Gᵀ dU[co][·][ci] G (4×4 → 3×3), in parallel over co.
fn transform_weight_grad<T: Float>(du: &[T], cout: usize, cin: usize) -> Vec<T> {
    let half = T::c(0.5);
    // Gᵀ applied to a 4-vector: (d0 + (d1+d2)/2, (d1−d2)/2, (d1+d2)/2 + d3).
    let gt = |d: [T; 4]| {
        let s = (d[1] + d[2]) * half;
        [d[0] + s, (d[1] - d[2]) * half, s + d[3]]
    };
    let mut dw = vec![T::zero(); 9 * cout * cin];
    for_each_chunk(&mut dw, 9 * cin, cout > 1, |co, dwc, _| {
        let duc = &du[co * 16 * cin..(co + 1) * 16 * cin];
        for (ci, out) in dwc.chunks_exact_mut(9).enumerate() {
            let at = |a: usize, b: usize| duc[(4 * a + b) * cin + ci];
            let cols = [0, 1, 2, 3].map(|b| gt([at(0, b), at(1, b), at(2, b), at(3, b)])); // Gᵀ dU
            for r in 0..3 {
                let row = gt([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]);
                out[3 * r..3 * r + 3].copy_from_slice(&row);
            }
        }
    });
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
    for_each_chunk(out, 16 * tb, parallel, |c, oc, buf| {
        for bi in 0..b {
            let sc = &src[(bi * channels + c) * hw..][..hw];
            // SAFETY: `plane_avx2` is only chosen when the CPU has AVX2; the plain one is safe.
            unsafe { run(sc, g.h, g.w, tl, oc, tb, bi * t, buf) };
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
/// `vc` (row stride `ld`). Every pass is a flat loop over whole arrays, so that it vectorises:
/// 1. per padded row r (input row r − 1, zero padded), the four column views a tile row needs:
///    `e[j] = p[2j]`, `o[j] = p[2j + 1]`, `e1[j] = p[2j + 2]`, `o1[j] = p[2j + 3]`, stored as
///    [view][r % 2][r / 2][j], even and odd rows apart;
/// 2. `Bᵀ` along w: `hc[c]` from the four views, flat over every row;
/// 3. `Bᵀ` along h: tile row i reads padded rows 2i … 2i + 3 = even[i], odd[i], even[i + 1],
///    odd[i + 1], which for all tile rows at once are the flat even/odd arrays and the same shifted
///    by one row.
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
    let half = (th + 1) * tw; // even (or odd) padded rows, tw columns each
    let need = 16 * half;
    if buf.len() < need {
        buf.resize(need, z);
    }
    let (views, hs) = buf[..need].split_at_mut(8 * half);
    let pairs = w / 2;
    for r in 0..2 * (th + 1) {
        let [e, e1, o, o1] = four_rows(views, (r % 2) * half + (r / 2) * tw, 2 * half, tw);
        let src = r.wrapping_sub(1);
        if src >= h {
            for v in [e, e1, o, o1] {
                v.fill(z);
            }
            continue;
        }
        let xr = &xc[src * w..(src + 1) * w];
        // o[j] = x[2j], e1[j] = x[2j + 1] (p[k] = x[k − 1]); zero past the row's end.
        deinterleave(&xr[..2 * pairs], &mut o[..pairs], &mut e1[..pairs]);
        if w % 2 == 1 {
            o[pairs] = xr[w - 1];
            e1[pairs] = z;
        }
        e[0] = z;
        e[1..].copy_from_slice(&e1[..tw - 1]);
        o1[..tw - 1].copy_from_slice(&o[1..]);
        o1[tw - 1] = z;
    }
    let n = 2 * half;
    let (e, e1, o, o1) = (
        &views[..n],
        &views[n..2 * n],
        &views[2 * n..3 * n],
        &views[3 * n..],
    );
    zip4(four_rows(hs, 0, n, n), [e, e1, o, o1], |e, e1, o, o1| {
        [e - e1, o + e1, e1 - o, o - o1]
    });
    let t = th * tw;
    for c in 0..4 {
        let hc = &hs[c * n..(c + 1) * n];
        let (even, odd) = hc.split_at(half);
        let (e0, e1, o0, o1) = (&even[..t], &even[tw..tw + t], &odd[..t], &odd[tw..tw + t]);
        zip4(
            four_rows(vc, c * ld + off, 4 * ld, t),
            [e0, e1, o0, o1],
            |e0, e1, o0, o1| [e0 - e1, o0 + e1, e1 - o0, o0 - o1],
        );
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
    let one = |k: usize, yc: &mut [T], buf: &mut Vec<T>| {
        let (bi, co) = (k / g.cout, k % g.cout);
        let bv = bias.map_or(T::zero(), |bs| bs[co]);
        let mc = &m[co * 16 * tb..][..16 * tb];
        if avx2() {
            // SAFETY: the CPU has AVX2.
            unsafe { output_plane_avx2(mc, tb, bi * t, tl, g.h, g.w, bv, yc, buf) };
        } else {
            output_plane(mc, tb, bi * t, tl, g.h, g.w, bv, yc, buf);
        }
    };
    for_each_chunk(y, plane, parallel, one);
}

/// One output plane `yc` [h, w] from the 16 rows of `mc` (row stride `ld`), tile columns
/// `off..off + tiles`, plus `bias`: `Aᵀ` along h and then along w as flat loops over all tiles
/// (`ye`/`yo`: the even and odd output columns of both output rows of every tile), then one
/// interleaving copy per output row.
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
    if buf.len() < 12 * t {
        buf.resize(12 * t, T::zero());
    }
    let (s, y2) = buf[..12 * t].split_at_mut(8 * t);
    // s[half·4 + c][t] = (Aᵀ M)[half][c]: rows 0+1+2 (half 0) and 1−2−3 (half 1).
    for c in 0..4 {
        let at = |a: usize| &mc[(4 * a + c) * ld + off..][..t];
        let (m0, m1, m2, m3) = (at(0), at(1), at(2), at(3));
        let (top, bottom) = s.split_at_mut(4 * t);
        let (s0, s1) = (&mut top[c * t..][..t], &mut bottom[c * t..][..t]);
        zip2(s0, s1, [m0, m1, m2, m3], |m0, m1, m2, m3| {
            [m0 + m1 + m2, m1 - m2 - m3]
        });
    }
    // y2[half·2 + parity][t]: output row 2i + half, column 2j + parity.
    for half in 0..2 {
        let sh = &s[half * 4 * t..][..4 * t];
        let (a, b, c, d) = (&sh[..t], &sh[t..2 * t], &sh[2 * t..3 * t], &sh[3 * t..]);
        let (ye, yo) = y2[half * 2 * t..][..2 * t].split_at_mut(t);
        zip2(ye, yo, [a, b, c, d], |a, b, c, d| {
            [a + b + c + bias, b - c - d + bias]
        });
    }
    let pairs = w / 2;
    for oh in 0..h {
        let (i, half) = (oh / 2, oh % 2);
        let ye = &y2[half * 2 * t + i * tw..][..tw];
        let yo = &y2[half * 2 * t + t + i * tw..][..tw];
        let yrow = &mut yc[oh * w..(oh + 1) * w];
        let (ye2, yo2) = (&ye[..pairs], &yo[..pairs]);
        let y2row = &mut yrow[..2 * pairs];
        for j in 0..pairs {
            y2row[2 * j] = ye2[j];
            y2row[2 * j + 1] = yo2[j];
        }
        if w % 2 == 1 {
            yrow[w - 1] = ye[pairs];
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
/// `yc` (row stride `ld`); A applied to (p0, p1) is (p0, p0 + p1, p0 − p1, −p1). The plane is first
/// split into its four 2×2 phases (`q[2·(r % 2) + (col % 2)][tile]`, zero beyond h×w), after which
/// both passes are flat loops over all tiles.
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
    let t = th * tw;
    if buf.len() < 4 * t {
        buf.resize(4 * t, z);
    }
    let q = &mut buf[..4 * t];
    let pairs = w / 2;
    for r in 0..2 * th {
        let (even, odd) = q[2 * (r % 2) * t + (r / 2) * tw..].split_at_mut(t);
        let (even, odd) = (&mut even[..tw], &mut odd[..tw]);
        if r >= h {
            even.fill(z);
            odd.fill(z);
            continue;
        }
        let row = &src[r * w..(r + 1) * w];
        deinterleave(&row[..2 * pairs], &mut even[..pairs], &mut odd[..pairs]);
        if w % 2 == 1 {
            even[pairs] = row[w - 1];
            odd[pairs] = z;
        }
    }
    let (p00, p01, p10, p11) = (&q[..t], &q[t..2 * t], &q[2 * t..3 * t], &q[3 * t..]);
    // A along h (row a) for the even and the odd column of each tile, then A along w.
    let rows: [fn(T, T) -> T; 4] = [|p0, _| p0, |p0, p1| p0 + p1, |p0, p1| p0 - p1, |_, p1| -p1];
    for (a, row) in rows.into_iter().enumerate() {
        zip4(
            four_rows(yc, 4 * a * ld + off, ld, t),
            [p00, p01, p10, p11],
            |p00, p01, p10, p11| {
                let (ue, uo) = (row(p00, p10), row(p01, p11));
                [ue, ue + uo, ue - uo, -uo]
            },
        );
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

/// `outs[c][m] = f(ins[0][m], …, ins[3][m])[c]` over the length of `outs[0]` (every slice is cut to
/// it first, so the loop has no bounds checks and vectorises).
#[inline(always)]
fn zip4<T: Float>(outs: [&mut [T]; 4], ins: [&[T]; 4], f: impl Fn(T, T, T, T) -> [T; 4]) {
    let [o0, o1, o2, o3] = outs;
    let n = o0.len();
    let (o1, o2, o3) = (&mut o1[..n], &mut o2[..n], &mut o3[..n]);
    let [a, b, c, d] = ins.map(|v| &v[..n]);
    for m in 0..n {
        let r = f(a[m], b[m], c[m], d[m]);
        o0[m] = r[0];
        o1[m] = r[1];
        o2[m] = r[2];
        o3[m] = r[3];
    }
}

/// `even[j] = v[2j]`, `odd[j] = v[2j + 1]` (`v.len() = 2·even.len() = 2·odd.len()`), written with
/// provably in-bounds indices so that it vectorises as a stride-2 load.
#[inline(always)]
fn deinterleave<T: Float>(v: &[T], even: &mut [T], odd: &mut [T]) {
    let n = even.len();
    let (v, odd) = (&v[..2 * n], &mut odd[..n]);
    for j in 0..n {
        even[j] = v[2 * j];
        odd[j] = v[2 * j + 1];
    }
}

/// `zip4` with two outputs.
#[inline(always)]
fn zip2<T: Float>(o0: &mut [T], o1: &mut [T], ins: [&[T]; 4], f: impl Fn(T, T, T, T) -> [T; 2]) {
    let n = o0.len();
    let o1 = &mut o1[..n];
    let [a, b, c, d] = ins.map(|v| &v[..n]);
    for m in 0..n {
        let r = f(a[m], b[m], c[m], d[m]);
        o0[m] = r[0];
        o1[m] = r[1];
    }
}

/// The four disjoint slices `v[start + a·stride ..][..len]`, a = 0..4 (`len ≤ stride`).
#[inline(always)]
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
    /// and 2×n maps, batch 1 and small batches (one block, threaded gemms and transforms), and
    /// batches split over threads into several blocks each.
    #[test]
    fn winograd_matches_the_definition_in_f64_and_f32() {
        // (n, cin, cout, h, w)
        let cases = [
            (16, 16, 16, 5, 7),
            (40, 16, 20, 4, 4),
            (520, 17, 16, 1, 1),
            (32, 16, 18, 2, 9),
            (96, 16, 16, 6, 3),
            (1, 24, 16, 23, 25),
            (4, 16, 16, 40, 40),
            (3, 64, 64, 14, 14),
            (12, 32, 48, 7, 7),
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
    fn applies_only_to_3x3_stride1_pad1_ungrouped_convs_with_enough_channels_and_positions() {
        let g = geom(8, 16, 16, 8, 8);
        assert!(applies(&g));
        assert!(!applies(&Conv2dGeometry { n: 1, ..g }), "too few positions");
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
