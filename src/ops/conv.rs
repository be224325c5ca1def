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
//! column matrix) followed by one `gemm_into` per group. When the batch has at least as many images
//! as rayon threads, images are spread over threads (single-threaded gemm, one column buffer per
//! task); otherwise images run one after another with a multi-threaded gemm and a parallel
//! im2col/col2im. Backward-weight accumulates per-thread partial sums (`+=` in gemm) and reduces them.
//! Invariant: every kernel checks its input lengths against its geometry and returns an error rather
//! than panicking; all Tensor-level shape validation happens before a kernel is built.

use super::matmul::gemm_into;
use super::{apply1, same_dtype_device};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{Error, Result, Shape, Tensor};
use rayon::prelude::*;

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
    fn validate(&self, op: &'static str) -> Result<()> {
        if self.groups == 0
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

/// Writes column row `r` (length ho·wo) from image `x` [cin, h, w].
fn im2col_row<T: Float>(g: &Conv2dGeometry, x: &[T], r: usize, dst: &mut [T]) {
    let (c, off_h, off_w) = row_geom(g, r);
    let plane = g.h * g.w;
    let xc = &x[c * plane..(c + 1) * plane];
    let (sh, sw) = g.stride;
    let (lo, hi) = valid_range(off_w, sw, g.w, g.wo);
    for (oh, d) in dst.chunks_exact_mut(g.wo).enumerate() {
        let ih = (oh * sh) as isize + off_h;
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

/// `col [groups·krows, ho·wo]` from one image; in parallel over rows when `parallel`.
fn im2col<T: Float>(g: &Conv2dGeometry, x: &[T], col: &mut [T], parallel: bool) {
    let p = g.out_plane();
    if parallel {
        col.par_chunks_mut(p)
            .enumerate()
            .for_each(|(r, d)| im2col_row(g, x, r, d));
    } else {
        for (r, d) in col.chunks_mut(p).enumerate() {
            im2col_row(g, x, r, d);
        }
    }
}

/// Adds the column rows of channel `c` (`kh·kw` rows of `ho·wo`) into its input plane `xc` [h, w].
fn col2im_channel<T: Float>(g: &Conv2dGeometry, col: &[T], c: usize, xc: &mut [T]) {
    let p = g.out_plane();
    let kk = g.kh * g.kw;
    let (sh, sw) = g.stride;
    for k in 0..kk {
        let r = c * kk + k;
        let (_, off_h, off_w) = row_geom(g, r);
        let (lo, hi) = valid_range(off_w, sw, g.w, g.wo);
        let row = &col[r * p..(r + 1) * p];
        for (oh, s) in row.chunks_exact(g.wo).enumerate() {
            let ih = (oh * sh) as isize + off_h;
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

/// `dx [cin, h, w] += col2im(col)`.
fn col2im<T: Float>(g: &Conv2dGeometry, col: &[T], dx: &mut [T], parallel: bool) {
    let plane = g.h * g.w;
    if parallel {
        dx.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(c, xc)| col2im_channel(g, col, c, xc));
    } else {
        for (c, xc) in dx.chunks_mut(plane).enumerate() {
            col2im_channel(g, col, c, xc);
        }
    }
}

/// Whether to spread images over rayon threads (else: one image at a time, threaded gemm).
fn batch_parallel(n: usize) -> bool {
    let t = rayon::current_num_threads();
    t > 1 && n >= t
}

/// `y = conv(x, w) (+ bias)`; inputs `[x, w]` or `[x, w, bias]`, output `[n, cout, ho, wo]`.
pub struct Conv2dForward {
    pub geom: Conv2dGeometry,
    pub has_bias: bool,
}

impl CpuKernel for Conv2dForward {
    const NAME: &'static str = "conv2d";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        let want = 2 + self.has_bias as usize;
        if inputs.len() != want {
            return Err(Error::bad(
                Self::NAME,
                format!("expected {want} inputs, got {}", inputs.len()),
            ));
        }
        let (x, wt) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "input", x, g.n * g.in_image())?;
        g.check_len(Self::NAME, "weight", wt, g.weight_len())?;
        let bias = if self.has_bias {
            g.check_len(Self::NAME, "bias", inputs[2], g.cout)?;
            Some(inputs[2])
        } else {
            None
        };
        let (p, kp, cg) = (g.out_plane(), g.krows(), g.cout_g());
        let mut y = vec![T::zero(); g.n * g.out_image()];
        if y.is_empty() {
            return Ok(vec![y]);
        }
        let one = |yi: &mut [T], xi: &[T], col: &mut Vec<T>, threads: usize| {
            let cols: &[T] = if g.pointwise() {
                xi
            } else {
                col.resize(g.groups * kp * p, T::zero());
                im2col(&g, xi, col, threads > 1);
                col
            };
            if let Some(b) = bias {
                for (row, &bv) in yi.chunks_exact_mut(p).zip(b) {
                    row.fill(bv);
                }
            }
            for grp in 0..g.groups {
                gemm_into(
                    &mut yi[grp * cg * p..(grp + 1) * cg * p],
                    &wt[grp * cg * kp..(grp + 1) * cg * kp],
                    &cols[grp * kp * p..(grp + 1) * kp * p],
                    cg,
                    kp,
                    p,
                    false,
                    false,
                    bias.is_some(),
                    threads,
                );
            }
        };
        let in_img = g.in_image().max(1);
        if batch_parallel(g.n) {
            y.par_chunks_mut(g.out_image())
                .zip(x.par_chunks(in_img))
                .for_each_init(Vec::new, |col, (yi, xi)| one(yi, xi, col, 1));
        } else {
            let threads = rayon::current_num_threads();
            let mut col = Vec::new();
            for (yi, xi) in y.chunks_mut(g.out_image()).zip(x.chunks(in_img)) {
                one(yi, xi, &mut col, threads);
            }
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

impl CpuKernel for Conv2dBackwardInput {
    const NAME: &'static str = "conv2d_backward_input";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        let want = 2 + self.has_bias as usize;
        if inputs.len() != want {
            return Err(Error::bad(
                Self::NAME,
                format!("expected {want} inputs, got {}", inputs.len()),
            ));
        }
        let (dy, wt) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "output gradient", dy, g.n * g.out_image())?;
        g.check_len(Self::NAME, "weight", wt, g.weight_len())?;
        let bias = if self.has_bias {
            g.check_len(Self::NAME, "bias", inputs[2], g.cin)?;
            Some(inputs[2])
        } else {
            None
        };
        let (p, kp, cg) = (g.out_plane(), g.krows(), g.cout_g());
        let plane = g.h * g.w;
        let mut dx = vec![T::zero(); g.n * g.in_image()];
        if dx.is_empty() {
            return Ok(vec![dx]);
        }
        let one = |dxi: &mut [T], dyi: &[T], col: &mut Vec<T>, threads: usize| {
            if g.pointwise() {
                for grp in 0..g.groups {
                    gemm_into(
                        &mut dxi[grp * kp * p..(grp + 1) * kp * p],
                        &wt[grp * cg * kp..(grp + 1) * cg * kp],
                        &dyi[grp * cg * p..(grp + 1) * cg * p],
                        kp,
                        cg,
                        p,
                        true,
                        false,
                        false,
                        threads,
                    );
                }
            } else {
                col.resize(g.groups * kp * p, T::zero());
                for grp in 0..g.groups {
                    gemm_into(
                        &mut col[grp * kp * p..(grp + 1) * kp * p],
                        &wt[grp * cg * kp..(grp + 1) * cg * kp],
                        &dyi[grp * cg * p..(grp + 1) * cg * p],
                        kp,
                        cg,
                        p,
                        true,
                        false,
                        false,
                        threads,
                    );
                }
                col2im(&g, col, dxi, threads > 1);
            }
            if let Some(b) = bias {
                for (xc, &bv) in dxi.chunks_exact_mut(plane).zip(b) {
                    xc.iter_mut().for_each(|v| *v += bv);
                }
            }
        };
        let out_img = g.out_image().max(1);
        if batch_parallel(g.n) {
            dx.par_chunks_mut(g.in_image())
                .zip(dy.par_chunks(out_img))
                .for_each_init(Vec::new, |col, (dxi, dyi)| one(dxi, dyi, col, 1));
        } else {
            let threads = rayon::current_num_threads();
            let mut col = Vec::new();
            for (dxi, dyi) in dx.chunks_mut(g.in_image()).zip(dy.chunks(out_img)) {
                one(dxi, dyi, &mut col, threads);
            }
        }
        Ok(vec![dx])
    }
}

/// `dw = conv_backward_weight(x, dy)`; inputs `[x, dy]`, output `[cout, cin/groups, kh, kw]`.
pub struct Conv2dBackwardWeight {
    pub geom: Conv2dGeometry,
}

impl CpuKernel for Conv2dBackwardWeight {
    const NAME: &'static str = "conv2d_backward_weight";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        if inputs.len() != 2 {
            return Err(Error::bad(
                Self::NAME,
                format!("expected 2 inputs, got {}", inputs.len()),
            ));
        }
        let (x, dy) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "input", x, g.n * g.in_image())?;
        g.check_len(Self::NAME, "output gradient", dy, g.n * g.out_image())?;
        let (p, kp, cg) = (g.out_plane(), g.krows(), g.cout_g());
        let wlen = g.weight_len();
        // dW_g [cg × kp] += dY_g [cg × p] · col_gᵀ [p × kp], image after image.
        let accumulate = |dw: &mut [T], images: std::ops::Range<usize>, threads: usize| {
            let mut col = Vec::new();
            for i in images {
                let xi = &x[i * g.in_image()..(i + 1) * g.in_image()];
                let dyi = &dy[i * g.out_image()..(i + 1) * g.out_image()];
                let cols: &[T] = if g.pointwise() {
                    xi
                } else {
                    col.resize(g.groups * kp * p, T::zero());
                    im2col(&g, xi, &mut col, threads > 1);
                    &col
                };
                for grp in 0..g.groups {
                    gemm_into(
                        &mut dw[grp * cg * kp..(grp + 1) * cg * kp],
                        &dyi[grp * cg * p..(grp + 1) * cg * p],
                        &cols[grp * kp * p..(grp + 1) * kp * p],
                        cg,
                        p,
                        kp,
                        false,
                        true,
                        true,
                        threads,
                    );
                }
            }
        };
        let mut dw = vec![T::zero(); wlen];
        if wlen == 0 || g.n == 0 || p == 0 {
            return Ok(vec![dw]);
        }
        if batch_parallel(g.n) {
            let threads = rayon::current_num_threads();
            let per = g.n.div_ceil(threads);
            let partials: Vec<Vec<T>> = (0..g.n.div_ceil(per))
                .into_par_iter()
                .map(|ci| {
                    let mut part = vec![T::zero(); wlen];
                    accumulate(&mut part, ci * per..((ci + 1) * per).min(g.n), 1);
                    part
                })
                .collect();
            let chunk = wlen.div_ceil(threads * 4).max(1 << 12);
            dw.par_chunks_mut(chunk).enumerate().for_each(|(ci, d)| {
                let (o, len) = (ci * chunk, d.len());
                for part in &partials {
                    for (a, &b) in d.iter_mut().zip(&part[o..o + len]) {
                        *a += b;
                    }
                }
            });
        } else {
            accumulate(&mut dw, 0..g.n, rayon::current_num_threads());
        }
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
