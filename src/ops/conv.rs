//! 2-d convolution and transposed convolution (PyTorch semantics and weight layouts), with stride,
//! padding, dilation and groups, differentiable w.r.t. input, weight and bias.
//!
//! Everything is expressed through three kernels over one `Conv2dGeometry` (the geometry of a plain
//! convolution `x [N, Cin, H, W] * w [Cout, Cin/groups, kh, kw] -> y [N, Cout, Ho, Wo]`):
//! - `Conv2dForward`        y  = conv(x, w) (+ bias)
//! - `Conv2dBackwardInput`  dx = conv_backward_input(dy, w) (+ bias, which makes it a transposed conv)
//! - `Conv2dBackwardWeight` dw = conv_backward_weight(x, dy)
//!
//! plus `Conv2dBiasGrad` (per-channel sums). A transposed convolution *is* the backward-input of the
//! convolution whose input is the transposed conv's output; its backward uses `Conv2dForward` (for
//! its input) and `Conv2dBackwardWeight` (for its weight). `Ho`/`Wo` are stored explicitly in the
//! geometry rather than recomputed, so that a transposed conv with `output_padding` maps onto it.
//!
//! CPU strategy: im2col (skipped for 1×1 stride-1 pad-0 kernels, where the image already is the
//! column matrix) followed by one gemm per group. When the batch has at least as many images as rayon
//! threads, contiguous image ranges are spread over threads (single-threaded gemm, one column buffer
//! per task); otherwise images run one after another with a multi-threaded gemm and a parallel
//! im2col/col2im. Small feature maps (< `TARGET_COLS` output pixels) pack several images into one
//! gemm; big ones are tiled by output rows so the column buffer stays under `TILE_ELEMS`.
//! Backward-input is gemm then col2im; backward-weight accumulates per-task partial sums (`+=` in
//! gemm) and reduces them. About 190 GFLOP/s on 2 AVX-512 cores for 3×3 256→256 at 14×14, batch 32
//! (PyTorch: ~200); `cargo test --release --test conv_speed -- --ignored --nocapture` measures it.
//! Invariant: every kernel checks its input lengths against its geometry and returns an error rather
//! than panicking; all Tensor-level shape validation happens before a kernel is built.

use super::matmul::{gemm_into, gemm_ld};
use super::{apply1, same_dtype_device};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{Error, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Parameters of `Tensor::conv2d` (PyTorch's `F.conv2d` arguments), as `(height, width)` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dParams {
    /// Square stride and padding, dilation 1, one group.
    pub fn new(stride: usize, padding: usize) -> Self {
        Conv2dParams {
            stride: (stride, stride),
            padding: (padding, padding),
            ..Default::default()
        }
    }
    pub fn with_groups(self, g: usize) -> Self {
        Conv2dParams { groups: g, ..self }
    }
    pub fn with_dilation(self, d: usize) -> Self {
        Conv2dParams {
            dilation: (d, d),
            ..self
        }
    }
}

/// Parameters of `Tensor::conv_transpose2d` (PyTorch's `F.conv_transpose2d` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub output_padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        ConvTranspose2dParams {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl ConvTranspose2dParams {
    /// Square stride and padding, no output padding, dilation 1, one group.
    pub fn new(stride: usize, padding: usize) -> Self {
        ConvTranspose2dParams {
            stride: (stride, stride),
            padding: (padding, padding),
            ..Default::default()
        }
    }
    pub fn with_output_padding(self, op: usize) -> Self {
        ConvTranspose2dParams {
            output_padding: (op, op),
            ..self
        }
    }
    pub fn with_groups(self, g: usize) -> Self {
        ConvTranspose2dParams { groups: g, ..self }
    }
    pub fn with_dilation(self, d: usize) -> Self {
        ConvTranspose2dParams {
            dilation: (d, d),
            ..self
        }
    }
}

/// The geometry of one plain convolution `x [n, cin, h, w] * w [cout, cin/groups, kh, kw] ->
/// y [n, cout, ho, wo]`. Output positions are `oh·stride − padding + ki·dilation`; positions outside
/// the input read zeros. `ho`/`wo` are given (not recomputed) and never exceed what fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Conv2dGeometry {
    /// Rows of one group's column matrix: `cin/groups · kh · kw`.
    fn krows(&self) -> usize {
        self.cin / self.groups * self.kh * self.kw
    }
    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    fn out_plane(&self) -> usize {
        self.ho * self.wo
    }
    fn in_image(&self) -> usize {
        self.cin * self.h * self.w
    }
    fn out_image(&self) -> usize {
        self.cout * self.out_plane()
    }
    fn weight_len(&self) -> usize {
        self.cout * self.krows()
    }
    /// 1×1, stride 1, no padding, same spatial size: the image is its own column matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == (1, 1)
            && self.padding == (0, 0)
            && self.ho == self.h
            && self.wo == self.w
    }
    /// Kernels are pub: guard against geometry that would make them index out of bounds.
    /// Every extent but the batch must be >= 1 (the batch may be empty).
    fn validate(&self, op: &'static str) -> Result<()> {
        let extents = [
            self.cin, self.h, self.w, self.cout, self.kh, self.kw, self.ho, self.wo,
        ];
        if extents.contains(&0)
            || self.groups == 0
            || self.cin % self.groups != 0
            || self.cout % self.groups != 0
            || self.stride.0 == 0
            || self.stride.1 == 0
            || self.dilation.0 == 0
            || self.dilation.1 == 0
        {
            return Err(Error::bad(op, format!("invalid geometry {self:?}")));
        }
        Ok(())
    }
    fn check_len<T>(&self, op: &'static str, what: &str, v: &[T], want: usize) -> Result<()> {
        if v.len() != want {
            return Err(Error::bad(
                op,
                format!(
                    "{what} has {} elements, geometry {self:?} needs {want}",
                    v.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Output indices `o` in `0..out` with `0 <= o·s + off < len`, as a half-open range.
#[inline]
fn valid_range(off: isize, s: usize, len: usize, out: usize) -> (usize, usize) {
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
fn row_geom(g: &Conv2dGeometry, r: usize) -> (usize, isize, isize) {
    let kk = g.kh * g.kw;
    let (c, k) = (r / kk, r % kk);
    let (ki, kj) = (k / g.kw, k % g.kw);
    let off_h = (ki * g.dilation.0) as isize - g.padding.0 as isize;
    let off_w = (kj * g.dilation.1) as isize - g.padding.1 as isize;
    (c, off_h, off_w)
}

/// Writes column row `r` for output rows `oh0..` (`dst.len() / wo` of them) from image `x` [cin, h, w].
fn im2col_row<T: Float>(g: &Conv2dGeometry, x: &[T], r: usize, oh0: usize, dst: &mut [T]) {
    let (c, off_h, off_w) = row_geom(g, r);
    let plane = g.h * g.w;
    let xc = &x[c * plane..(c + 1) * plane];
    let (sh, sw) = g.stride;
    let (lo, hi) = valid_range(off_w, sw, g.w, g.wo);
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

/// Small feature maps are packed side by side into one column matrix `[rows, block·ho·wo]` of at most
/// this many columns (at least one image), so that the gemm is wide enough to amortise packing the
/// weight and backward-weight's inner dimension is long. Measured on a 2-core AVX-512 machine: one
/// image per gemm is best from 14×14 up (the gather/scatter copies cost more than they save), while
/// 7×7 maps gain ~25% from packing ~10 images.
const TARGET_COLS: usize = 512;
/// Upper bound on one column buffer (elements), whatever `TARGET_COLS` asks for (≥ one image).
const MAX_COL_ELEMS: usize = 1 << 22;

/// How a kernel walks the batch: contiguous image ranges (one rayon task each), processed in blocks of
/// at most `block` images, with `gemm_threads` threads per gemm.
struct Plan {
    tasks: Vec<std::ops::Range<usize>>,
    block: usize,
    gemm_threads: usize,
}

impl Plan {
    fn new(n: usize, plane: usize, col_rows: usize) -> Plan {
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
    fn blocks(&self, range: std::ops::Range<usize>) -> Vec<std::ops::Range<usize>> {
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
fn im2col_block<T: Float>(g: &Conv2dGeometry, x: &[T], b: usize, col: &mut [T], parallel: bool) {
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
fn col2im_channel<T: Float>(
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
fn col2im_block<T: Float>(g: &Conv2dGeometry, col: &[T], b: usize, dx: &mut [T], parallel: bool) {
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
fn tile_rows(g: &Conv2dGeometry) -> usize {
    let per_row = (g.groups * g.krows() * g.wo).max(1);
    (TILE_ELEMS.load(Ordering::Relaxed) / per_row).clamp(1, g.ho.max(1))
}

/// `col [rows, nr·wo]` for output rows `oh0..oh0 + nr` of one image `x` [cin, h, w].
fn im2col_tile<T: Float>(
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
fn col2im_tile<T: Float>(
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
fn gather<T: Float>(src: &[T], b: usize, rows: usize, p: usize, dst: &mut [T]) {
    let ld = b * p;
    for bi in 0..b {
        for r in 0..rows {
            let s = (bi * rows + r) * p;
            dst[r * ld + bi * p..r * ld + (bi + 1) * p].copy_from_slice(&src[s..s + p]);
        }
    }
}

/// `dst [b, rows, P] = src [rows, b·P]` (+ `bias[r]` on row r when given).
fn scatter<T: Float>(
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
struct Scratch<T> {
    col: Vec<T>,
    mat: Vec<T>,
}

fn sized<T: Float>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    v.resize(len, T::zero());
    &mut v[..len]
}

fn check_inputs(op: &'static str, inputs: usize, want: usize) -> Result<()> {
    if inputs != want {
        return Err(Error::bad(
            op,
            format!("expected {want} inputs, got {inputs}"),
        ));
    }
    Ok(())
}

/// `y = conv(x, w) (+ bias)`; inputs `[x, w]` or `[x, w, bias]`, output `[n, cout, ho, wo]`.
pub struct Conv2dForward {
    pub geom: Conv2dGeometry,
    pub has_bias: bool,
}

impl Conv2dForward {
    /// One block of `b` images: x [b, cin, h, w] → y [b, cout, ho, wo].
    #[allow(clippy::too_many_arguments)]
    fn block<T: Float>(
        &self,
        wt: &[T],
        bias: Option<&[T]>,
        x: &[T],
        b: usize,
        y: &mut [T],
        s: &mut Scratch<T>,
        threads: usize,
    ) {
        let g = &self.geom;
        let (p, kp, cg) = (g.out_plane(), g.krows(), g.cout_g());
        if b == 1 && !g.pointwise() {
            // One image, in tiles of output rows: y[:, tile] (+)= W · col(tile).
            if let Some(bv) = bias {
                for (row, &v) in y.chunks_exact_mut(p).zip(bv) {
                    row.fill(v);
                }
            }
            let tr = tile_rows(g);
            for oh0 in (0..g.ho).step_by(tr) {
                let nr = tr.min(g.ho - oh0);
                let tc = nr * g.wo;
                let col = sized(&mut s.col, g.groups * kp * tc);
                im2col_tile(g, x, oh0, nr, col, threads > 1);
                for grp in 0..g.groups {
                    gemm_ld(
                        &mut y[grp * cg * p + oh0 * g.wo..],
                        p,
                        &wt[grp * cg * kp..(grp + 1) * cg * kp],
                        kp,
                        &col[grp * kp * tc..(grp + 1) * kp * tc],
                        tc,
                        (cg, kp, tc),
                        (false, false),
                        bias.is_some(),
                        threads,
                    );
                }
            }
            return;
        }
        let bp = b * p;
        let cols: &[T] = if g.pointwise() && b == 1 {
            x
        } else if g.pointwise() {
            let col = sized(&mut s.col, g.cin * bp);
            gather(x, b, g.cin, p, col);
            col
        } else {
            let col = sized(&mut s.col, g.groups * kp * bp);
            im2col_block(g, x, b, col, threads > 1);
            col
        };
        // With one image the gemm writes y directly (bias pre-filled); else into `mat`, then scattered.
        let direct = b == 1;
        let out: &mut [T] = if direct {
            if let Some(bv) = bias {
                for (row, &v) in y.chunks_exact_mut(p).zip(bv) {
                    row.fill(v);
                }
            }
            y
        } else {
            sized(&mut s.mat, g.cout * bp)
        };
        for grp in 0..g.groups {
            gemm_into(
                &mut out[grp * cg * bp..(grp + 1) * cg * bp],
                &wt[grp * cg * kp..(grp + 1) * cg * kp],
                &cols[grp * kp * bp..(grp + 1) * kp * bp],
                cg,
                kp,
                bp,
                false,
                false,
                direct && bias.is_some(),
                threads,
            );
        }
        if !direct {
            scatter(&s.mat, b, g.cout, p, bias, y);
        }
    }
}

impl CpuKernel for Conv2dForward {
    const NAME: &'static str = "conv2d";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        check_inputs(Self::NAME, inputs.len(), 2 + self.has_bias as usize)?;
        let (x, wt) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "input", x, g.n * g.in_image())?;
        g.check_len(Self::NAME, "weight", wt, g.weight_len())?;
        let bias = if self.has_bias {
            g.check_len(Self::NAME, "bias", inputs[2], g.cout)?;
            Some(inputs[2])
        } else {
            None
        };
        let mut y = vec![T::zero(); g.n * g.out_image()];
        if y.is_empty() {
            return Ok(vec![y]);
        }
        let plan = Plan::new(g.n, g.out_plane(), g.groups * g.krows());
        let (ii, oi) = (g.in_image(), g.out_image());
        let parts = split_by(&mut y, &plan.tasks, oi);
        let work = |(range, ys): (std::ops::Range<usize>, &mut [T])| {
            let mut s = Scratch::default();
            let first = range.start;
            for blk in plan.blocks(range) {
                let (b, i0) = (blk.len(), blk.start);
                let yb = &mut ys[(i0 - first) * oi..(i0 - first + b) * oi];
                self.block(
                    wt,
                    bias,
                    &x[i0 * ii..(i0 + b) * ii],
                    b,
                    yb,
                    &mut s,
                    plan.gemm_threads,
                );
            }
        };
        if plan.tasks.len() > 1 {
            plan.tasks.clone().into_par_iter().zip(parts).for_each(work);
        } else {
            plan.tasks.clone().into_iter().zip(parts).for_each(work);
        }
        Ok(vec![y])
    }
}

/// `dx = conv_backward_input(dy, w) (+ bias)`; inputs `[dy, w]` or `[dy, w, bias]`, output
/// `[n, cin, h, w]`. With a bias (length `cin`) this is the transposed convolution's forward.
pub struct Conv2dBackwardInput {
    pub geom: Conv2dGeometry,
    pub has_bias: bool,
}

impl Conv2dBackwardInput {
    /// One block of `b` images: dy [b, cout, ho, wo] → dx [b, cin, h, w] (dx zeroed on entry).
    #[allow(clippy::too_many_arguments)]
    fn block<T: Float>(
        &self,
        wt: &[T],
        bias: Option<&[T]>,
        dy: &[T],
        b: usize,
        dx: &mut [T],
        s: &mut Scratch<T>,
        threads: usize,
    ) {
        let g = &self.geom;
        let (p, kp, cg) = (g.out_plane(), g.krows(), g.cout_g());
        if b == 1 && !g.pointwise() {
            // One image, in tiles of output rows: dcol(tile) = Wᵀ · dy[:, tile], then col2im.
            let tr = tile_rows(g);
            for oh0 in (0..g.ho).step_by(tr) {
                let nr = tr.min(g.ho - oh0);
                let tc = nr * g.wo;
                let dcol = sized(&mut s.col, g.groups * kp * tc);
                for grp in 0..g.groups {
                    gemm_ld(
                        &mut dcol[grp * kp * tc..(grp + 1) * kp * tc],
                        tc,
                        &wt[grp * cg * kp..(grp + 1) * cg * kp],
                        kp,
                        &dy[grp * cg * p + oh0 * g.wo..],
                        p,
                        (kp, cg, tc),
                        (true, false),
                        false,
                        threads,
                    );
                }
                col2im_tile(g, dcol, oh0, nr, dx, threads > 1);
            }
            add_channel_bias(g, bias, dx);
            return;
        }
        let bp = b * p;
        let dys: &[T] = if b == 1 {
            dy
        } else {
            let m = sized(&mut s.mat, g.cout * bp);
            gather(dy, b, g.cout, p, m);
            m
        };
        let direct = g.pointwise() && b == 1;
        let dcol: &mut [T] = if direct {
            &mut *dx
        } else {
            sized(&mut s.col, g.groups * kp * bp)
        };
        for grp in 0..g.groups {
            gemm_into(
                &mut dcol[grp * kp * bp..(grp + 1) * kp * bp],
                &wt[grp * cg * kp..(grp + 1) * cg * kp],
                &dys[grp * cg * bp..(grp + 1) * cg * bp],
                kp,
                cg,
                bp,
                true,
                false,
                false,
                threads,
            );
        }
        if g.pointwise() && !direct {
            scatter(&s.col, b, g.cin, p, None, dx);
        } else if !direct {
            col2im_block(g, &s.col, b, dx, threads > 1);
        }
        add_channel_bias(g, bias, dx);
    }
}

/// `dx[b, c] += bias[c]` over images `[b, cin, h, w]`.
fn add_channel_bias<T: Float>(g: &Conv2dGeometry, bias: Option<&[T]>, dx: &mut [T]) {
    if let Some(bv) = bias {
        for (j, xc) in dx.chunks_exact_mut(g.h * g.w).enumerate() {
            let v = bv[j % g.cin];
            xc.iter_mut().for_each(|a| *a += v);
        }
    }
}

impl CpuKernel for Conv2dBackwardInput {
    const NAME: &'static str = "conv2d_backward_input";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        check_inputs(Self::NAME, inputs.len(), 2 + self.has_bias as usize)?;
        let (dy, wt) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "output gradient", dy, g.n * g.out_image())?;
        g.check_len(Self::NAME, "weight", wt, g.weight_len())?;
        let bias = if self.has_bias {
            g.check_len(Self::NAME, "bias", inputs[2], g.cin)?;
            Some(inputs[2])
        } else {
            None
        };
        let mut dx = vec![T::zero(); g.n * g.in_image()];
        if dx.is_empty() {
            return Ok(vec![dx]);
        }
        let plan = Plan::new(g.n, g.out_plane(), g.groups * g.krows());
        let (ii, oi) = (g.in_image(), g.out_image());
        let parts = split_by(&mut dx, &plan.tasks, ii);
        let work = |(range, xs): (std::ops::Range<usize>, &mut [T])| {
            let mut s = Scratch::default();
            let first = range.start;
            for blk in plan.blocks(range) {
                let (b, i0) = (blk.len(), blk.start);
                let xb = &mut xs[(i0 - first) * ii..(i0 - first + b) * ii];
                self.block(
                    wt,
                    bias,
                    &dy[i0 * oi..(i0 + b) * oi],
                    b,
                    xb,
                    &mut s,
                    plan.gemm_threads,
                );
            }
        };
        if plan.tasks.len() > 1 {
            plan.tasks.clone().into_par_iter().zip(parts).for_each(work);
        } else {
            plan.tasks.clone().into_iter().zip(parts).for_each(work);
        }
        Ok(vec![dx])
    }
}

/// `dw = conv_backward_weight(x, dy)`; inputs `[x, dy]`, output `[cout, cin/groups, kh, kw]`.
pub struct Conv2dBackwardWeight {
    pub geom: Conv2dGeometry,
}

impl Conv2dBackwardWeight {
    /// `dw += Σ over the block of b images` of dY_g · col_gᵀ.
    fn block<T: Float>(
        &self,
        x: &[T],
        dy: &[T],
        b: usize,
        dw: &mut [T],
        s: &mut Scratch<T>,
        threads: usize,
    ) {
        let g = &self.geom;
        let (p, kp, cg) = (g.out_plane(), g.krows(), g.cout_g());
        if b == 1 && !g.pointwise() {
            // One image, in tiles of output rows: dW += dy[:, tile] · col(tile)ᵀ.
            let tr = tile_rows(g);
            for oh0 in (0..g.ho).step_by(tr) {
                let nr = tr.min(g.ho - oh0);
                let tc = nr * g.wo;
                let col = sized(&mut s.col, g.groups * kp * tc);
                im2col_tile(g, x, oh0, nr, col, threads > 1);
                for grp in 0..g.groups {
                    gemm_ld(
                        &mut dw[grp * cg * kp..(grp + 1) * cg * kp],
                        kp,
                        &dy[grp * cg * p + oh0 * g.wo..],
                        p,
                        &col[grp * kp * tc..(grp + 1) * kp * tc],
                        tc,
                        (cg, tc, kp),
                        (false, true),
                        true,
                        threads,
                    );
                }
            }
            return;
        }
        let bp = b * p;
        let cols: &[T] = if g.pointwise() && b == 1 {
            x
        } else if g.pointwise() {
            let col = sized(&mut s.col, g.cin * bp);
            gather(x, b, g.cin, p, col);
            col
        } else {
            let col = sized(&mut s.col, g.groups * kp * bp);
            im2col_block(g, x, b, col, threads > 1);
            col
        };
        let dys: &[T] = if b == 1 {
            dy
        } else {
            let m = sized(&mut s.mat, g.cout * bp);
            gather(dy, b, g.cout, p, m);
            m
        };
        for grp in 0..g.groups {
            gemm_into(
                &mut dw[grp * cg * kp..(grp + 1) * cg * kp],
                &dys[grp * cg * bp..(grp + 1) * cg * bp],
                &cols[grp * kp * bp..(grp + 1) * kp * bp],
                cg,
                bp,
                kp,
                false,
                true,
                true,
                threads,
            );
        }
    }
}

impl CpuKernel for Conv2dBackwardWeight {
    const NAME: &'static str = "conv2d_backward_weight";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        check_inputs(Self::NAME, inputs.len(), 2)?;
        let (x, dy) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "input", x, g.n * g.in_image())?;
        g.check_len(Self::NAME, "output gradient", dy, g.n * g.out_image())?;
        let wlen = g.weight_len();
        let mut dw = vec![T::zero(); wlen];
        if wlen == 0 || g.n == 0 || g.out_plane() == 0 {
            return Ok(vec![dw]);
        }
        let plan = Plan::new(g.n, g.out_plane(), g.groups * g.krows());
        let (ii, oi) = (g.in_image(), g.out_image());
        let work = |range: std::ops::Range<usize>, acc: &mut [T]| {
            let mut s = Scratch::default();
            for blk in plan.blocks(range) {
                let (b, i0) = (blk.len(), blk.start);
                self.block(
                    &x[i0 * ii..(i0 + b) * ii],
                    &dy[i0 * oi..(i0 + b) * oi],
                    b,
                    acc,
                    &mut s,
                    plan.gemm_threads,
                );
            }
        };
        if plan.tasks.len() == 1 {
            work(0..g.n, &mut dw);
            return Ok(vec![dw]);
        }
        // Per-task partial sums (`+=` inside gemm), then one parallel reduction.
        let partials: Vec<Vec<T>> = plan
            .tasks
            .clone()
            .into_par_iter()
            .map(|range| {
                let mut part = vec![T::zero(); wlen];
                work(range, &mut part);
                part
            })
            .collect();
        let chunk = wlen.div_ceil(rayon::current_num_threads() * 4).max(1 << 12);
        dw.par_chunks_mut(chunk).enumerate().for_each(|(ci, d)| {
            let (o, len) = (ci * chunk, d.len());
            for part in &partials {
                for (a, &b) in d.iter_mut().zip(&part[o..o + len]) {
                    *a += b;
                }
            }
        });
        Ok(vec![dw])
    }
}

/// `db[c] = Σ_{n, h, w} dy[n, c, h, w]`; input `[dy]` of `n · c · plane` elements, output `[c]`.
pub struct Conv2dBiasGrad {
    pub n: usize,
    pub c: usize,
    pub plane: usize,
}

impl CpuKernel for Conv2dBiasGrad {
    const NAME: &'static str = "conv2d_bias_grad";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let dy = inputs.first().copied().unwrap_or(&[]);
        if inputs.len() != 1 || dy.len() != self.n * self.c * self.plane {
            return Err(Error::bad(
                Self::NAME,
                format!(
                    "expected one input of {}·{}·{} elements",
                    self.n, self.c, self.plane
                ),
            ));
        }
        let (c, plane) = (self.c, self.plane);
        let mut db = vec![T::zero(); c];
        db.par_iter_mut().enumerate().for_each(|(ch, d)| {
            let mut s = T::zero();
            for i in 0..self.n {
                let o = (i * c + ch) * plane;
                s += dy[o..o + plane].iter().copied().sum::<T>();
            }
            *d = s;
        });
        Ok(vec![db])
    }
}

/// Checks dtype/device of the bias and its shape `[len]`.
fn check_bias(op: &'static str, x: &Tensor, bias: Option<&Tensor>, len: usize) -> Result<()> {
    if let Some(b) = bias {
        same_dtype_device(op, x, b)?;
        if b.dims() != [len] {
            return Err(Error::shape(
                op,
                x.shape(),
                b.shape(),
                format!("bias must have shape [{len}] (one value per output channel)"),
            ));
        }
    }
    Ok(())
}

fn check_nonzero(op: &'static str, what: &str, v: (usize, usize)) -> Result<()> {
    if v.0 == 0 || v.1 == 0 {
        return Err(Error::bad(op, format!("{what} must be >= 1, got {v:?}")));
    }
    Ok(())
}

/// Output size of a convolution along one dim, or an error when the dilated kernel does not fit.
#[allow(clippy::too_many_arguments)]
fn conv_out_len(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    len: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
) -> Result<usize> {
    let span = d * (k - 1) + 1;
    if span > len + 2 * p {
        return Err(Error::shape(
            op,
            x.shape(),
            w.shape(),
            format!(
                "kernel (extent {span} with dilation {d}) is larger than the padded input ({len} + 2·{p})"
            ),
        ));
    }
    Ok((len + 2 * p - span) / s + 1)
}

impl Tensor {
    /// 2-d convolution. x `[N, Cin, H, W]`, weight `[Cout, Cin/groups, kh, kw]` (PyTorch layout),
    /// bias `[Cout]`; returns `[N, Cout, Ho, Wo]` with `Ho = (H + 2p − d(kh − 1) − 1)/s + 1`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d";
        same_dtype_device(OP, self, weight)?;
        if self.rank() != 4 || weight.rank() != 4 {
            return Err(Error::shape(
                OP,
                self.shape(),
                weight.shape(),
                "input must be [N, Cin, H, W] and weight [Cout, Cin/groups, kh, kw]",
            ));
        }
        check_nonzero(OP, "stride", p.stride)?;
        check_nonzero(OP, "dilation", p.dilation)?;
        let (n, cin, h, w) = self.shape().dims4(OP)?;
        let (cout, cin_g, kh, kw) = weight.shape().dims4(OP)?;
        let groups = p.groups;
        if groups == 0 || cin % groups != 0 || cout % groups != 0 {
            return Err(Error::shape(
                OP,
                self.shape(),
                weight.shape(),
                format!("groups = {groups} must be >= 1 and divide Cin = {cin} and Cout = {cout}"),
            ));
        }
        if cin_g * groups != cin {
            return Err(Error::shape(
                OP,
                self.shape(),
                weight.shape(),
                format!(
                    "weight dim 1 ({cin_g}) must be Cin/groups = {cin}/{groups} = {}",
                    cin / groups
                ),
            ));
        }
        if kh == 0 || kw == 0 || cout == 0 || cin == 0 || h == 0 || w == 0 {
            return Err(Error::shape(
                OP,
                self.shape(),
                weight.shape(),
                "input or weight has an empty dimension",
            ));
        }
        check_bias(OP, self, bias, cout)?;
        let ho = conv_out_len(
            OP,
            self,
            weight,
            h,
            kh,
            p.stride.0,
            p.padding.0,
            p.dilation.0,
        )?;
        let wo = conv_out_len(
            OP,
            self,
            weight,
            w,
            kw,
            p.stride.1,
            p.padding.1,
            p.dilation.1,
        )?;
        let geom = Conv2dGeometry {
            n,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            ho,
            wo,
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            groups,
        };
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        let has_bias = bias.is_some();
        let y = apply1(
            &Conv2dForward { geom, has_bias },
            &inputs,
            Shape::new(vec![n, cout, ho, wo]),
            self.dtype(),
        )?;
        let need_x = self.requires_grad();
        let need_w = weight.requires_grad();
        let need_b = bias.is_some_and(|b| b.requires_grad());
        // Save only what the backward needs: x for dW, w for dX.
        let x = need_w.then(|| self.detach());
        let wt = need_x.then(|| weight.detach());
        let (x_shape, w_shape, dtype) =
            (self.shape().clone(), weight.shape().clone(), self.dtype());
        Ok(y.track(OP, &inputs, move |dy| {
            let gx = match &wt {
                Some(wt) => Some(apply1(
                    &Conv2dBackwardInput {
                        geom,
                        has_bias: false,
                    },
                    &[dy, wt],
                    x_shape.clone(),
                    dtype,
                )?),
                None => None,
            };
            let gw = match &x {
                Some(x) => Some(apply1(
                    &Conv2dBackwardWeight { geom },
                    &[x, dy],
                    w_shape.clone(),
                    dtype,
                )?),
                None => None,
            };
            let mut grads = vec![gx, gw];
            if has_bias {
                grads.push(if need_b {
                    Some(bias_grad(dy, n, cout, ho * wo)?)
                } else {
                    None
                });
            }
            Ok(grads)
        }))
    }

    /// 2-d transposed convolution. x `[N, Cin, H, W]`, weight `[Cin, Cout/groups, kh, kw]` (PyTorch's
    /// ConvTranspose2d layout), bias `[Cout]`; returns `[N, Cout, Ho, Wo]` with
    /// `Ho = (H − 1)s − 2p + d(kh − 1) + output_padding + 1`.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: ConvTranspose2dParams,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose2d";
        same_dtype_device(OP, self, weight)?;
        if self.rank() != 4 || weight.rank() != 4 {
            return Err(Error::shape(
                OP,
                self.shape(),
                weight.shape(),
                "input must be [N, Cin, H, W] and weight [Cin, Cout/groups, kh, kw]",
            ));
        }
        check_nonzero(OP, "stride", p.stride)?;
        check_nonzero(OP, "dilation", p.dilation)?;
        let (n, cin, h, w) = self.shape().dims4(OP)?;
        let (wcin, cout_g, kh, kw) = weight.shape().dims4(OP)?;
        let groups = p.groups;
        if wcin != cin {
            return Err(Error::shape(
                OP,
                self.shape(),
                weight.shape(),
                format!("weight dim 0 ({wcin}) must equal the input channels Cin = {cin}"),
            ));
        }
        if groups == 0 || cin % groups != 0 {
            return Err(Error::shape(
                OP,
                self.shape(),
                weight.shape(),
                format!("groups = {groups} must be >= 1 and divide Cin = {cin}"),
            ));
        }
        if kh == 0 || kw == 0 || cout_g == 0 || cin == 0 || h == 0 || w == 0 {
            return Err(Error::shape(
                OP,
                self.shape(),
                weight.shape(),
                "input or weight has an empty dimension",
            ));
        }
        for (i, dim) in ["height", "width"].iter().enumerate() {
            let pick = |t: (usize, usize)| if i == 0 { t.0 } else { t.1 };
            let (op_, s, d) = (pick(p.output_padding), pick(p.stride), pick(p.dilation));
            if op_ >= s && op_ >= d {
                return Err(Error::bad(
                    OP,
                    format!(
                        "output_padding {op_} along the {dim} must be smaller than the stride ({s}) or the dilation ({d})"
                    ),
                ));
            }
        }
        let cout = cout_g * groups;
        check_bias(OP, self, bias, cout)?;
        let out_len = |len: usize, k: usize, s: usize, pad: usize, d: usize, op_: usize| {
            ((len - 1) * s + d * (k - 1) + op_ + 1) as isize - 2 * pad as isize
        };
        let ho = out_len(
            h,
            kh,
            p.stride.0,
            p.padding.0,
            p.dilation.0,
            p.output_padding.0,
        );
        let wo = out_len(
            w,
            kw,
            p.stride.1,
            p.padding.1,
            p.dilation.1,
            p.output_padding.1,
        );
        if ho <= 0 || wo <= 0 {
            return Err(Error::shape(
                OP,
                self.shape(),
                weight.shape(),
                format!("padding {:?} leaves an empty output ({ho}×{wo})", p.padding),
            ));
        }
        let (ho, wo) = (ho as usize, wo as usize);
        // The convolution whose backward-input this is: input [n, cout, ho, wo], output [n, cin, h, w],
        // weight [cin (its Cout), cout/groups (its Cin/groups), kh, kw] — exactly this weight's layout.
        let geom = Conv2dGeometry {
            n,
            cin: cout,
            h: ho,
            w: wo,
            cout: cin,
            kh,
            kw,
            ho: h,
            wo: w,
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            groups,
        };
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        let has_bias = bias.is_some();
        let y = apply1(
            &Conv2dBackwardInput { geom, has_bias },
            &inputs,
            Shape::new(vec![n, cout, ho, wo]),
            self.dtype(),
        )?;
        let need_x = self.requires_grad();
        let need_w = weight.requires_grad();
        let need_b = bias.is_some_and(|b| b.requires_grad());
        let x = need_w.then(|| self.detach());
        let wt = need_x.then(|| weight.detach());
        let (x_shape, w_shape, dtype) =
            (self.shape().clone(), weight.shape().clone(), self.dtype());
        Ok(y.track(OP, &inputs, move |dy| {
            // y = conv_backward_input(x, w)  ⇒  dx = conv(dy, w),  dw = conv_backward_weight(dy, x).
            let gx = match &wt {
                Some(wt) => Some(apply1(
                    &Conv2dForward {
                        geom,
                        has_bias: false,
                    },
                    &[dy, wt],
                    x_shape.clone(),
                    dtype,
                )?),
                None => None,
            };
            let gw = match &x {
                Some(x) => Some(apply1(
                    &Conv2dBackwardWeight { geom },
                    &[dy, x],
                    w_shape.clone(),
                    dtype,
                )?),
                None => None,
            };
            let mut grads = vec![gx, gw];
            if has_bias {
                grads.push(if need_b {
                    Some(bias_grad(dy, n, cout, ho * wo)?)
                } else {
                    None
                });
            }
            Ok(grads)
        }))
    }
}

fn bias_grad(dy: &Tensor, n: usize, c: usize, plane: usize) -> Result<Tensor> {
    apply1(
        &Conv2dBiasGrad { n, c, plane },
        &[dy],
        Shape::new(vec![c]),
        dy.dtype(),
    )
}
