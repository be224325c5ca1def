//! The CPU building blocks of the convolution kernels: im2col/col2im (whole images, blocks of
//! images, row tiles), the batch walk plan, and input checks. Every function trusts lengths already
//! validated by its kernel (see `kernels.rs`).

use super::Conv2dGeometry;
use crate::dtype::Float;
use crate::{Error, Result};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Output indices `o` in `0..out` with `0 <= o·s + off < len`, as a half-open range.
#[inline]
pub(super) fn valid_range(off: isize, s: usize, len: usize, out: usize) -> (usize, usize) {
    let s = s as isize;
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let rem = len as isize - off;
    let hi = if rem <= 0 { 0 } else { (rem + s - 1) / s };
    let hi = (hi as usize).min(out);
    let lo = (lo as usize).min(hi);
    (lo, hi)
}

/// Per-row offsets of column row `r` (= c·kh·kw + ki·kw + kj): `(c, off_h, off_w)`.
#[inline]
pub(super) fn row_geom(g: &Conv2dGeometry, r: usize) -> (usize, isize, isize) {
    let kk = g.kh * g.kw;
    let (c, k) = (r / kk, r % kk);
    let (ki, kj) = (k / g.kw, k % g.kw);
    let off_h = (ki * g.dilation.0) as isize - g.padding.0 as isize;
    let off_w = (kj * g.dilation.1) as isize - g.padding.1 as isize;
    (c, off_h, off_w)
}

/// Writes column row `r` for output rows `oh0..` (`dst.len() / wo` of them) from image `x` [cin, h, w].
pub(super) fn im2col_row<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    r: usize,
    oh0: usize,
    dst: &mut [T],
) {
    let (c, off_h, off_w) = row_geom(g, r);
    let plane = g.h * g.w;
    let xc = &x[c * plane..(c + 1) * plane];
    let (sh, sw) = g.stride;
    let (lo, hi) = valid_range(off_w, sw, g.w, g.wo);
    if sh == 1 && sw == 1 && g.wo == g.w {
        im2col_row_flat(g, xc, oh0, off_h, off_w, (lo, hi), dst);
        return;
    }
    for (i, d) in dst.chunks_exact_mut(g.wo).enumerate() {
        let ih = ((oh0 + i) * sh) as isize + off_h;
        if ih < 0 || ih >= g.h as isize {
            d.fill(T::zero());
            continue;
        }
        let src = &xc[ih as usize * g.w..(ih as usize + 1) * g.w];
        d[..lo].fill(T::zero());
        d[hi..].fill(T::zero());
        if sw == 1 {
            let s0 = (lo as isize + off_w) as usize;
            d[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
        } else {
            for (ow, v) in d[lo..hi].iter_mut().enumerate() {
                *v = src[(((ow + lo) * sw) as isize + off_w) as usize];
            }
        }
    }
}

/// `im2col_row` for stride 1 with output width = input width (3×3 pad 1, 1×1 pad 0, …): every
/// in-bounds element of the column row is the input plane shifted by one constant flat offset, so the
/// valid output rows are ONE contiguous copy; the positions that wrapped around a row edge (the border
/// columns outside `lo..hi`) and the rows above/below the image are then zeroed. Same result as the
/// row-by-row walk, with one memcpy per (row, image) instead of one per output row (28-wide rows made
/// the per-call overhead ~6% of a Fashion-MNIST training step).
fn im2col_row_flat<T: Float>(
    g: &Conv2dGeometry,
    xc: &[T],
    oh0: usize,
    off_h: isize,
    off_w: isize,
    (lo, hi): (usize, usize),
    dst: &mut [T],
) {
    let w = g.w;
    let nrows = dst.len() / w;
    // Output rows i (of this tile) whose input row oh0 + i + off_h lies inside the image.
    let top = oh0 as isize + off_h;
    let i_lo = (-top).clamp(0, nrows as isize) as usize;
    let i_hi = (g.h as isize - top).clamp(i_lo as isize, nrows as isize) as usize;
    dst[..i_lo * w].fill(T::zero());
    dst[i_hi * w..].fill(T::zero());
    if i_hi == i_lo {
        return;
    }
    // dst[j] = xc[j + shift] for j in the valid rows, clipped to the plane; what the clip leaves out
    // are border positions, zeroed below.
    let shift = top * w as isize + off_w;
    let (a, b) = ((i_lo * w) as isize, (i_hi * w) as isize);
    let a2 = a.max(-shift).min(b);
    let b2 = b.min(xc.len() as isize - shift).max(a2);
    let (a, b, a2, b2) = (a as usize, b as usize, a2 as usize, b2 as usize);
    dst[a..a2].fill(T::zero());
    dst[b2..b].fill(T::zero());
    let s0 = (a2 as isize + shift) as usize;
    dst[a2..b2].copy_from_slice(&xc[s0..s0 + (b2 - a2)]);
    if lo > 0 || hi < w {
        for d in dst[a..b].chunks_exact_mut(w) {
            d[..lo].fill(T::zero());
            d[hi..].fill(T::zero());
        }
    }
}

/// Small feature maps are packed side by side into one column matrix `[rows, block·ho·wo]` of at most
/// this many columns (at least one image), so that the gemm is wide enough to amortise packing the
/// weight and backward-weight's inner dimension is long. Measured on a 2-core AVX-512 machine: one
/// image per gemm is best from 14×14 up (the gather/scatter copies cost more than they save), while
/// 7×7 maps gain ~25% from packing ~10 images.
pub(super) const TARGET_COLS: usize = 512;
/// Upper bound on one column buffer (elements), whatever `TARGET_COLS` asks for (≥ one image).
pub(super) const MAX_COL_ELEMS: usize = 1 << 22;

/// How a kernel walks the batch: contiguous image ranges (one rayon task each), processed in blocks of
/// at most `block` images, with `gemm_threads` threads per gemm.
pub(super) struct Plan {
    pub(super) tasks: Vec<std::ops::Range<usize>>,
    pub(super) block: usize,
    pub(super) gemm_threads: usize,
}

impl Plan {
    pub(super) fn new(n: usize, plane: usize, col_rows: usize) -> Plan {
        let threads = rayon::current_num_threads().max(1);
        let (tasks, gemm_threads) = if threads > 1 && n >= threads {
            let (q, r) = (n / threads, n % threads);
            let mut start = 0;
            let tasks = (0..threads)
                .map(|t| {
                    let len = q + (t < r) as usize;
                    start += len;
                    start - len..start
                })
                .collect();
            (tasks, 1)
        } else {
            (std::iter::once(0..n).collect(), threads)
        };
        let plane = plane.max(1);
        let by_cols = TARGET_COLS / plane;
        let by_mem = (MAX_COL_ELEMS / (col_rows.max(1) * plane)).max(1);
        Plan {
            tasks,
            block: by_cols.min(by_mem).max(1),
            gemm_threads,
        }
    }
    /// Blocks of `range`, evened out (e.g. 16 images with block 6 → 6, 5, 5).
    pub(super) fn blocks(&self, range: std::ops::Range<usize>) -> Vec<std::ops::Range<usize>> {
        let count = range.len();
        if count == 0 {
            return vec![];
        }
        let nb = count.div_ceil(self.block);
        let (q, r) = (count / nb, count % nb);
        let mut start = range.start;
        (0..nb)
            .map(|b| {
                let len = q + (b < r) as usize;
                start += len;
                start - len..start
            })
            .collect()
    }

    /// Runs `block(images, out, scratch)` over the whole batch as planned: one task per range of
    /// `tasks` (in parallel when there are several), each walking its images in `blocks`, with one
    /// `Scratch` per task; `out` is the block's slice of `all`, which holds `unit` elements per image.
    pub(super) fn for_each_block<T: Float>(
        &self,
        all: &mut [T],
        unit: usize,
        block: impl Fn(std::ops::Range<usize>, &mut [T], &mut Scratch<T>) + Sync,
    ) {
        let parts = split_by(all, &self.tasks, unit);
        let work = |(range, out): (std::ops::Range<usize>, &mut [T])| {
            let mut s = Scratch::default();
            let first = range.start;
            for imgs in self.blocks(range) {
                let o = &mut out[(imgs.start - first) * unit..(imgs.end - first) * unit];
                block(imgs, o, &mut s);
            }
        };
        if self.tasks.len() > 1 {
            self.tasks.clone().into_par_iter().zip(parts).for_each(work);
        } else {
            self.tasks.clone().into_iter().zip(parts).for_each(work);
        }
    }

    /// `Σ over tasks` of what `work(images, acc)` adds (`+=`) into a zeroed `acc` of `len` elements:
    /// one partial sum per task (in parallel when there are several), then a parallel reduction.
    pub(super) fn sum_over_tasks<T: Float>(
        &self,
        len: usize,
        work: impl Fn(std::ops::Range<usize>, &mut [T]) + Sync,
    ) -> Vec<T> {
        let mut sum = vec![T::zero(); len];
        if self.tasks.len() == 1 {
            work(self.tasks[0].clone(), &mut sum);
            return sum;
        }
        let partials: Vec<Vec<T>> = self
            .tasks
            .clone()
            .into_par_iter()
            .map(|range| {
                let mut part = vec![T::zero(); len];
                work(range, &mut part);
                part
            })
            .collect();
        let chunk = len.div_ceil(rayon::current_num_threads() * 4).max(1 << 12);
        sum.par_chunks_mut(chunk).enumerate().for_each(|(ci, d)| {
            let (o, n) = (ci * chunk, d.len());
            for part in &partials {
                for (a, &b) in d.iter_mut().zip(&part[o..o + n]) {
                    *a += b;
                }
            }
        });
        sum
    }
}

/// `f(i, chunk i, scratch)` for the consecutive `chunk`-element pieces of `v`, in parallel when
/// `parallel`. `scratch` is a buffer reused across the calls of one thread (rayon's
/// `for_each_init`), so per-call work buffers are allocated, and zeroed, once per thread rather
/// than once per chunk; its contents on entry are whatever the previous call left.
pub(super) fn for_each_chunk<T: Float>(
    v: &mut [T],
    chunk: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T], &mut Vec<T>) + Sync,
) {
    if parallel {
        v.par_chunks_mut(chunk)
            .enumerate()
            .for_each_init(Vec::new, |buf, (i, c)| f(i, c, buf));
    } else {
        let mut buf = Vec::new();
        v.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c, &mut buf));
    }
}

/// Splits `v` into consecutive pieces of `tasks[i].len() · unit` elements.
fn split_by<'a, T>(
    mut v: &'a mut [T],
    tasks: &[std::ops::Range<usize>],
    unit: usize,
) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (a, b) = v.split_at_mut(t.len() * unit);
        out.push(a);
        v = b;
    }
    out
}

/// `col [rows, b·P]` (row stride `b·P`) from `b` consecutive images `x` [b, cin, h, w]; in parallel over
/// rows when `parallel`.
pub(super) fn im2col_block<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    b: usize,
    col: &mut [T],
    parallel: bool,
) {
    let p = g.out_plane();
    let ld = b * p;
    let img = g.in_image();
    let row = |r: usize, d: &mut [T]| {
        for (bi, dd) in d.chunks_exact_mut(p).enumerate() {
            im2col_row(g, &x[bi * img..(bi + 1) * img], r, 0, dd);
        }
    };
    if parallel {
        col.par_chunks_mut(ld)
            .enumerate()
            .for_each(|(r, d)| row(r, d));
    } else {
        col.chunks_mut(ld).enumerate().for_each(|(r, d)| row(r, d));
    }
}

/// Adds the column rows of channel `c` (`kh·kw` rows, row stride `ld`; `cols` columns starting at
/// `coff`, holding output rows `oh0..oh0 + cols/wo`) into the input plane `xc` [h, w].
#[allow(clippy::too_many_arguments)]
pub(super) fn col2im_channel<T: Float>(
    g: &Conv2dGeometry,
    col: &[T],
    ld: usize,
    coff: usize,
    c: usize,
    xc: &mut [T],
    oh0: usize,
    cols: usize,
) {
    let kk = g.kh * g.kw;
    let (sh, sw) = g.stride;
    for k in 0..kk {
        let r = c * kk + k;
        let (_, off_h, off_w) = row_geom(g, r);
        let (lo, hi) = valid_range(off_w, sw, g.w, g.wo);
        let row = &col[r * ld + coff..r * ld + coff + cols];
        for (i, s) in row.chunks_exact(g.wo).enumerate() {
            let ih = ((oh0 + i) * sh) as isize + off_h;
            if ih < 0 || ih >= g.h as isize {
                continue;
            }
            let d = &mut xc[ih as usize * g.w..(ih as usize + 1) * g.w];
            if sw == 1 {
                let s0 = (lo as isize + off_w) as usize;
                for (a, &b) in d[s0..s0 + (hi - lo)].iter_mut().zip(&s[lo..hi]) {
                    *a += b;
                }
            } else {
                for ow in lo..hi {
                    d[((ow * sw) as isize + off_w) as usize] += s[ow];
                }
            }
        }
    }
}

/// `dx [b, cin, h, w] += col2im(col [rows, b·P])`, in parallel over planes when `parallel`.
pub(super) fn col2im_block<T: Float>(
    g: &Conv2dGeometry,
    col: &[T],
    b: usize,
    dx: &mut [T],
    parallel: bool,
) {
    let plane = g.h * g.w;
    let ld = b * g.out_plane();
    let one = |j: usize, xc: &mut [T]| {
        let (bi, c) = (j / g.cin, j % g.cin);
        col2im_channel(g, col, ld, bi * g.out_plane(), c, xc, 0, g.out_plane());
    };
    if parallel {
        dx.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(j, xc)| one(j, xc));
    } else {
        dx.chunks_mut(plane)
            .enumerate()
            .for_each(|(j, xc)| one(j, xc));
    }
}

/// Column-matrix budget (elements) for one image: above it, the image's output rows are processed in
/// tiles of whole rows, so the column tile stays cache-sized instead of streaming tens of MB (a
/// 128-channel 4×4 transposed conv at 128×128 has a 67 MB column matrix). A hidden knob so that the
/// tests can force tiny tiles; not part of the API.
#[doc(hidden)]
pub static TILE_ELEMS: AtomicUsize = AtomicUsize::new(1 << 19);

/// Output rows per tile for one image (`ho` when the whole column matrix fits the budget).
pub(super) fn tile_rows(g: &Conv2dGeometry) -> usize {
    let per_row = (g.groups * g.krows() * g.wo).max(1);
    (TILE_ELEMS.load(Ordering::Relaxed) / per_row).clamp(1, g.ho.max(1))
}

/// `col [rows, nr·wo]` for output rows `oh0..oh0 + nr` of one image `x` [cin, h, w].
pub(super) fn im2col_tile<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    oh0: usize,
    nr: usize,
    col: &mut [T],
    parallel: bool,
) {
    let tc = nr * g.wo;
    if parallel {
        col.par_chunks_mut(tc)
            .enumerate()
            .for_each(|(r, d)| im2col_row(g, x, r, oh0, d));
    } else {
        col.chunks_mut(tc)
            .enumerate()
            .for_each(|(r, d)| im2col_row(g, x, r, oh0, d));
    }
}

/// `dx [cin, h, w] += col2im(col [rows, nr·wo])` for output rows `oh0..oh0 + nr` of one image.
pub(super) fn col2im_tile<T: Float>(
    g: &Conv2dGeometry,
    col: &[T],
    oh0: usize,
    nr: usize,
    dx: &mut [T],
    parallel: bool,
) {
    let (plane, tc) = (g.h * g.w, nr * g.wo);
    if parallel {
        dx.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(c, xc)| col2im_channel(g, col, tc, 0, c, xc, oh0, tc));
    } else {
        dx.chunks_mut(plane)
            .enumerate()
            .for_each(|(c, xc)| col2im_channel(g, col, tc, 0, c, xc, oh0, tc));
    }
}

/// `dst [rows, b·P] = src [b, rows, P]` (images side by side).
pub(super) fn gather<T: Float>(src: &[T], b: usize, rows: usize, p: usize, dst: &mut [T]) {
    let ld = b * p;
    for bi in 0..b {
        for r in 0..rows {
            let s = (bi * rows + r) * p;
            dst[r * ld + bi * p..r * ld + (bi + 1) * p].copy_from_slice(&src[s..s + p]);
        }
    }
}

/// `dst [b, rows, P] = src [rows, b·P]` (+ `bias[r]` on row r when given).
pub(super) fn scatter<T: Float>(
    src: &[T],
    b: usize,
    rows: usize,
    p: usize,
    bias: Option<&[T]>,
    dst: &mut [T],
) {
    let ld = b * p;
    for bi in 0..b {
        for r in 0..rows {
            let d = &mut dst[(bi * rows + r) * p..(bi * rows + r + 1) * p];
            let s = &src[r * ld + bi * p..r * ld + (bi + 1) * p];
            match bias {
                Some(bv) => {
                    let bv = bv[r];
                    d.iter_mut().zip(s).for_each(|(a, &v)| *a = v + bv);
                }
                None => d.copy_from_slice(s),
            }
        }
    }
}

/// Scratch buffers one task reuses across its blocks.
#[derive(Default)]
pub(super) struct Scratch<T> {
    pub(super) col: Vec<T>,
    pub(super) mat: Vec<T>,
}

pub(super) fn sized<T: Float>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    v.resize(len, T::zero());
    &mut v[..len]
}

pub(super) fn check_inputs(op: &'static str, inputs: usize, want: usize) -> Result<()> {
    if inputs != want {
        return Err(Error::bad(
            op,
            format!("expected {want} inputs, got {inputs}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column element straight from its definition: input (c, oh·s + ki·d − p, ow·s + kj·d − p),
    /// zero outside the image.
    fn naive(g: &Conv2dGeometry, x: &[f32], r: usize, oh: usize, ow: usize) -> f32 {
        let kk = g.kh * g.kw;
        let (c, ki, kj) = (r / kk, (r % kk) / g.kw, r % g.kw);
        let ih = (oh * g.stride.0 + ki * g.dilation.0) as isize - g.padding.0 as isize;
        let iw = (ow * g.stride.1 + kj * g.dilation.1) as isize - g.padding.1 as isize;
        if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
            return 0.0;
        }
        x[(c * g.h + ih as usize) * g.w + iw as usize]
    }

    /// Every column row, for whole images and for row tiles starting mid-image, on the flat
    /// stride-1 path (same width out as in) and on the general walk, equals the definition.
    #[test]
    fn im2col_rows_match_the_definition() {
        // (h, w, k, stride, pad, dilation)
        let cases = [
            (7, 7, 3, 1, 1, 1),
            (5, 9, 3, 1, 1, 1),
            (6, 6, 1, 1, 0, 1),
            (4, 4, 5, 1, 2, 1),
            (9, 9, 3, 1, 2, 2),
            (1, 1, 3, 1, 1, 1),
            (2, 3, 3, 1, 1, 1),
            (8, 8, 3, 2, 1, 1),
            (7, 7, 4, 1, 1, 1),
        ];
        for (h, w, k, s, p, d) in cases {
            let ho = (h + 2 * p - d * (k - 1) - 1) / s + 1;
            let wo = (w + 2 * p - d * (k - 1) - 1) / s + 1;
            let g = Conv2dGeometry {
                n: 1,
                cin: 2,
                h,
                w,
                cout: 1,
                kh: k,
                kw: k,
                ho,
                wo,
                stride: (s, s),
                padding: (p, p),
                dilation: (d, d),
                groups: 1,
            };
            let x: Vec<f32> = (0..2 * h * w).map(|i| 1.0 + i as f32 * 0.5).collect();
            for r in 0..2 * k * k {
                for oh0 in 0..ho {
                    for nr in 1..=ho - oh0 {
                        let mut dst = vec![f32::NAN; nr * wo];
                        im2col_row(&g, &x, r, oh0, &mut dst);
                        for i in 0..nr {
                            for ow in 0..wo {
                                let want = naive(&g, &x, r, oh0 + i, ow);
                                assert_eq!(
                                    dst[i * wo + ow],
                                    want,
                                    "h{h} w{w} k{k} s{s} p{p} d{d}: row {r}, oh {}, ow {ow}",
                                    oh0 + i
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
