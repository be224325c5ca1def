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
//! picked at run time (`planes.rs`); `plan` decides how a batch is split into blocks and over
//! threads. Tests against an f64 definition: `tests.rs`.
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

mod planes;
#[cfg(test)]
mod tests;

use planes::{
    avx2, input_plane, input_plane_avx2, output_grad_plane, output_grad_plane_avx2, output_plane,
    output_plane_avx2,
};

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
            tasks: std::iter::once(0..g.n).collect(),
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
