//! 2-d pooling over the last two dims of `[N, C, H, W]` (or `[C, H, W]`) inputs: `max_pool2d`,
//! `avg_pool2d` and `global_avg_pool2d`, with PyTorch's semantics.
//!
//! Invariants:
//! - Output size per spatial dim: `⌊(in + 2p − k) / s⌋ + 1`, or with `ceil_mode` `⌈(in + 2p − k) / s⌉ + 1`
//!   reduced by one when the last window would start at or past `in + p` (so every window starts
//!   inside the input or the left padding). Padding must be at most half the kernel, as in PyTorch.
//! - Max pooling pads with −∞ (padded cells never win); ties and NaNs follow PyTorch (the first
//!   maximum in row-major window order wins, a NaN wins). The forward kernel saves the argmax as the
//!   flat index `h·W + w` inside its plane, stored as f32 (f64 for f64 inputs; planes above 2²⁴
//!   elements are refused for f16/f32), and the backward kernel scatters the gradient to it.
//! - Average pooling sums the window clipped to the input; the divisor is the window clipped to the
//!   padded input (`count_include_pad`) or to the input (not counting padding), exactly like PyTorch
//!   (including ceil-mode windows that run past the padding).
//! - Kernels are parallel over `(n, c)` planes.
//! - Layout: the max/avg kernels and their backwards compute on NCHW storage, or on channels-last
//!   (N-H-W-C) storage when their [`PoolGeom`] says `channels_last` — then every tensor of the kernel
//!   (x, y, dy, dx, argmax) is stored so, and only where elements live changes: the argmax is still
//!   `h·W + w` inside the `(n, c)` plane and results are bit-identical to the NCHW kernel on
//!   transposed data. CUDA indexes NHWC directly (cuda/pool.cu); the CPU runs its NCHW code between
//!   transposes (`ops::layout::{to_nchw, to_nhwc}`), so `max_pool2d`/`avg_pool2d` ask for
//!   channels-last kernels off the CPU only and, on the CPU, convert once around NCHW kernels.
//!   Outputs keep the input's format either way. `global_avg_pool2d` reduces channels-last storage
//!   directly on every device (`GlobalAvgPool::channels_last`); its `[N, C, 1, 1]` output is the
//!   same bytes in both formats and is returned contiguous, its input gradient channels-last.

use super::layout::{to_nchw, to_nhwc};
use super::{apply1_in, apply_in};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::tensor::MemoryFormat;
use crate::{DType, Error, Result, Shape, Tensor};
use rayon::prelude::*;

/// Kernel size, stride and zero-based padding per spatial dim `(h, w)`, and PyTorch's `ceil_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub ceil_mode: bool,
}

impl Pool2dParams {
    /// Square kernel, stride and padding; floor mode.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Pool2dParams {
            kernel: (kernel, kernel),
            stride: (stride, stride),
            padding: (padding, padding),
            ceil_mode: false,
        }
    }
    /// The same parameters with `ceil_mode` on.
    pub fn ceil(self) -> Self {
        Pool2dParams {
            ceil_mode: true,
            ..self
        }
    }
}

/// One spatial dim's output size, or an error naming `op`.
fn out_size(
    op: &'static str,
    what: &str,
    input: usize,
    k: usize,
    s: usize,
    p: usize,
    ceil: bool,
) -> Result<usize> {
    if k == 0 || s == 0 {
        return Err(Error::bad(
            op,
            format!("kernel and stride must be positive, got kernel {k} and stride {s} ({what})"),
        ));
    }
    if p > k / 2 {
        return Err(Error::bad(
            op,
            format!("padding {p} must be at most half the kernel size {k} ({what})"),
        ));
    }
    let span = input + 2 * p;
    if span < k {
        return Err(Error::bad(
            op,
            format!("kernel {k} is larger than the padded input {span} ({what}: input {input}, padding {p})"),
        ));
    }
    let mut o = (span - k + if ceil { s - 1 } else { 0 }) / s + 1;
    if ceil && (o - 1) * s >= input + p {
        o -= 1;
    }
    Ok(o)
}

/// The geometry shared by the pooling kernels: `planes` planes of `h × w` pooled to `oh × ow`, and
/// the layout of all of the kernel's tensors: `(n, c)` planes one after another (NCHW), or, with
/// `channels_last`, N-H-W-C storage of `planes / channels` images of `channels` channels. The layout
/// lives here, beside the extents it qualifies, so each kernel struct carries it without a field of
/// its own and a launcher reads the whole descriptor from one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub planes: usize,
    /// C: the dim before the spatial ones (`[N, C, H, W]` or `[C, H, W]`); read only when
    /// `channels_last`.
    pub channels: usize,
    /// Tensors stored N-H-W-C (`MemoryFormat::ChannelsLast`) instead of N-C-H-W.
    pub channels_last: bool,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub p: Pool2dParams,
}

impl PoolGeom {
    /// The geometry of pooling `x` with `p`, in `x`'s own memory format, and the output shape.
    fn new(op: &'static str, x: &Tensor, p: Pool2dParams) -> Result<(PoolGeom, Shape)> {
        let d = x.dims();
        if d.len() != 4 && d.len() != 3 {
            return Err(Error::bad(
                op,
                format!(
                    "expected a 4-d [N, C, H, W] or 3-d [C, H, W] input, got shape {:?}",
                    x.shape()
                ),
            ));
        }
        let r = d.len();
        let (h, w) = (d[r - 2], d[r - 1]);
        if h == 0 || w == 0 {
            return Err(Error::bad(
                op,
                format!("empty spatial dims in input {:?}", x.shape()),
            ));
        }
        let oh = out_size(
            op,
            "height",
            h,
            p.kernel.0,
            p.stride.0,
            p.padding.0,
            p.ceil_mode,
        )?;
        let ow = out_size(
            op,
            "width",
            w,
            p.kernel.1,
            p.stride.1,
            p.padding.1,
            p.ceil_mode,
        )?;
        let planes = d[..r - 2].iter().product();
        let mut out = d.to_vec();
        out[r - 2] = oh;
        out[r - 1] = ow;
        Ok((
            PoolGeom {
                planes,
                channels: d[r - 3],
                channels_last: x.format() == MemoryFormat::ChannelsLast,
                h,
                w,
                oh,
                ow,
                p,
            },
            Shape::new(out),
        ))
    }

    /// The memory format of the kernel's tensors.
    pub fn format(&self) -> MemoryFormat {
        if self.channels_last {
            MemoryFormat::ChannelsLast
        } else {
            MemoryFormat::Contiguous
        }
    }

    /// The same geometry over NCHW storage.
    fn nchw(&self) -> PoolGeom {
        PoolGeom {
            channels_last: false,
            ..*self
        }
    }

    /// N = `planes / channels`, or an error (naming `op`) when the planes are not whole images of
    /// `channels` channels, which channels-last storage needs.
    pub fn images(&self, op: &'static str) -> Result<usize> {
        if self.channels == 0 || self.planes % self.channels != 0 {
            return Err(Error::bad(
                op,
                format!(
                    "channels-last pooling needs planes = N·C, got {} planes of {} channels",
                    self.planes, self.channels
                ),
            ));
        }
        Ok(self.planes / self.channels)
    }

    /// The logical `[n, c, rows, cols]` extents of a tensor of this geometry with `rows × cols` planes.
    fn dims(&self, op: &'static str, rows: usize, cols: usize) -> Result<[usize; 4]> {
        Ok([self.images(op)?, self.channels, rows, cols])
    }

    /// Runs `nchw_kernel` (the kernel on [`PoolGeom::nchw`]) for a channels-last geometry: its
    /// inputs, of `rows × cols` planes (`Side::Input`: h × w; `Side::Output`: oh × ow), transposed to
    /// NCHW, and its outputs, of the other side's planes, transposed back to N-H-W-C.
    fn via_nchw<T: Float>(
        &self,
        op: &'static str,
        inputs: &[&[T]],
        inputs_side: Side,
        nchw_kernel: impl FnOnce(&[&[T]]) -> Result<Vec<Vec<T>>>,
    ) -> Result<Vec<Vec<T>>> {
        let input_dims = self.dims(op, self.h, self.w)?;
        let output_dims = self.dims(op, self.oh, self.ow)?;
        let (from, to) = match inputs_side {
            Side::Input => (input_dims, output_dims),
            Side::Output => (output_dims, input_dims),
        };
        let nchw_inputs: Vec<Vec<T>> = inputs
            .iter()
            .map(|v| to_nchw(op, "input", v, from))
            .collect::<Result<_>>()?;
        let refs: Vec<&[T]> = nchw_inputs.iter().map(|v| &v[..]).collect();
        nchw_kernel(&refs)?
            .iter()
            .map(|v| to_nhwc(op, "output", v, to))
            .collect()
    }

    /// Window rows `[hs, he)` clipped to the input, and the unclipped-to-input end (clipped to the
    /// padded input) used by average pooling's `count_include_pad` divisor.
    #[inline(always)]
    fn window(o: usize, k: usize, s: usize, p: usize, n: usize) -> (usize, usize, usize) {
        let start = (o * s) as isize - p as isize;
        let end_pad = (start + k as isize).min((n + p) as isize);
        let size_pad = (end_pad - start) as usize;
        let hs = start.max(0) as usize;
        let he = ((start + k as isize).min(n as isize)).max(0) as usize;
        (hs, he, size_pad)
    }
}

/// Which side of a pooling geometry a kernel's inputs are on: the forward reads the input side
/// (`h × w` planes), the backward the output side (`oh × ow`).
#[derive(Clone, Copy)]
enum Side {
    Input,
    Output,
}

/// Max pooling. Inputs `[x]`; outputs `[y, argmax]` with `argmax` the flat in-plane index of each
/// output's maximum (as a float).
pub struct MaxPool2d(pub PoolGeom);

impl CpuKernel for MaxPool2d {
    const NAME: &'static str = "max_pool2d";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.0;
        if g.channels_last {
            return g.via_nchw(Self::NAME, inputs, Side::Input, |x| {
                MaxPool2d(g.nchw()).run(x)
            });
        }
        let x = inputs[0];
        let (ip, op) = (g.h * g.w, g.oh * g.ow);
        let mut y = vec![T::zero(); g.planes * op];
        let mut idx = vec![T::zero(); g.planes * op];
        y.par_chunks_mut(op.max(1))
            .zip(idx.par_chunks_mut(op.max(1)))
            .enumerate()
            .for_each(|(pl, (yp, ip_out))| {
                let xp = &x[pl * ip..(pl + 1) * ip];
                for oy in 0..g.oh {
                    let (hs, he, _) =
                        PoolGeom::window(oy, g.p.kernel.0, g.p.stride.0, g.p.padding.0, g.h);
                    for ox in 0..g.ow {
                        let (ws, we, _) =
                            PoolGeom::window(ox, g.p.kernel.1, g.p.stride.1, g.p.padding.1, g.w);
                        let mut best = T::neg_infinity();
                        let mut at = hs * g.w + ws;
                        for yy in hs..he {
                            for xx in ws..we {
                                let v = xp[yy * g.w + xx];
                                if v > best || v.is_nan() {
                                    best = v;
                                    at = yy * g.w + xx;
                                    if v.is_nan() {
                                        break;
                                    }
                                }
                            }
                            if best.is_nan() {
                                break;
                            }
                        }
                        yp[oy * g.ow + ox] = best;
                        ip_out[oy * g.ow + ox] = T::c(at as f64);
                    }
                }
            });
        Ok(vec![y, idx])
    }
}

/// Max-pool backward. Inputs `[argmax, dy]`; output `[dx]`: each `dy` added at its argmax.
pub struct MaxPool2dBackward(pub PoolGeom);

impl CpuKernel for MaxPool2dBackward {
    const NAME: &'static str = "max_pool2d_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.0;
        if g.channels_last {
            return g.via_nchw(Self::NAME, inputs, Side::Output, |idx_dy| {
                MaxPool2dBackward(g.nchw()).run(idx_dy)
            });
        }
        let (idx, dy) = (inputs[0], inputs[1]);
        let (ip, op) = (g.h * g.w, g.oh * g.ow);
        let mut dx = vec![T::zero(); g.planes * ip];
        dx.par_chunks_mut(ip.max(1))
            .enumerate()
            .for_each(|(pl, dxp)| {
                for o in pl * op..(pl + 1) * op {
                    let i = num_traits::ToPrimitive::to_usize(&idx[o]).unwrap_or(0);
                    dxp[i.min(ip - 1)] += dy[o];
                }
            });
        Ok(vec![dx])
    }
}

/// Average pooling. Inputs `[x]`; output `[y]`.
pub struct AvgPool2d {
    pub geom: PoolGeom,
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// The same kernel over NCHW storage.
    fn nchw(&self) -> AvgPool2d {
        AvgPool2d {
            geom: self.geom.nchw(),
            count_include_pad: self.count_include_pad,
        }
    }

    /// Window bounds and divisor of output `(oy, ox)`.
    #[inline(always)]
    fn cell(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize, f64) {
        let g = self.geom;
        let (hs, he, hp) = PoolGeom::window(oy, g.p.kernel.0, g.p.stride.0, g.p.padding.0, g.h);
        let (ws, we, wp) = PoolGeom::window(ox, g.p.kernel.1, g.p.stride.1, g.p.padding.1, g.w);
        let div = if self.count_include_pad {
            hp * wp
        } else {
            (he - hs) * (we - ws)
        };
        (hs, he, ws, we, div as f64)
    }
}

impl CpuKernel for AvgPool2d {
    const NAME: &'static str = "avg_pool2d";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        if g.channels_last {
            return g.via_nchw(Self::NAME, inputs, Side::Input, |x| self.nchw().run(x));
        }
        let x = inputs[0];
        let (ip, op) = (g.h * g.w, g.oh * g.ow);
        let mut y = vec![T::zero(); g.planes * op];
        y.par_chunks_mut(op.max(1))
            .enumerate()
            .for_each(|(pl, yp)| {
                let xp = &x[pl * ip..(pl + 1) * ip];
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let (hs, he, ws, we, div) = self.cell(oy, ox);
                        let mut s = T::zero();
                        for yy in hs..he {
                            for &v in &xp[yy * g.w + ws..yy * g.w + we] {
                                s += v;
                            }
                        }
                        yp[oy * g.ow + ox] = s / T::c(div);
                    }
                }
            });
        Ok(vec![y])
    }
}

/// Average-pool backward. Inputs `[dy]`; output `[dx]`: `dy / divisor` spread over each window.
pub struct AvgPool2dBackward(pub AvgPool2d);

impl CpuKernel for AvgPool2dBackward {
    const NAME: &'static str = "avg_pool2d_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let a = &self.0;
        let g = a.geom;
        if g.channels_last {
            return g.via_nchw(Self::NAME, inputs, Side::Output, |dy| {
                AvgPool2dBackward(a.nchw()).run(dy)
            });
        }
        let dy = inputs[0];
        let (ip, op) = (g.h * g.w, g.oh * g.ow);
        let mut dx = vec![T::zero(); g.planes * ip];
        dx.par_chunks_mut(ip.max(1))
            .enumerate()
            .for_each(|(pl, dxp)| {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let (hs, he, ws, we, div) = a.cell(oy, ox);
                        let v = dy[pl * op + oy * g.ow + ox] / T::c(div);
                        for yy in hs..he {
                            for d in &mut dxp[yy * g.w + ws..yy * g.w + we] {
                                *d += v;
                            }
                        }
                    }
                }
            });
        Ok(vec![dx])
    }
}

/// Mean of each `(n, c)` plane. Inputs `[x]` (`planes × hw`); output `[y]` (`planes`, in `n·C + c`
/// order either way). `channels_last: Some(C)`: x is channels-last storage `[N, H·W, C]` with
/// `planes = N·C`, so plane `n·C + c` is the column `c` of image `n`'s `[H·W, C]` block. Both layouts
/// sum a plane's elements in f64 in the same (spatial) order, so their results are bit-identical.
pub struct GlobalAvgPool {
    pub planes: usize,
    pub hw: usize,
    pub channels_last: Option<usize>,
}

impl CpuKernel for GlobalAvgPool {
    const NAME: &'static str = "global_avg_pool2d";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (x, hw) = (inputs[0], self.hw);
        // Plane p's elements: (first index, step between spatial positions).
        let (c, step) = match self.channels_last {
            Some(c) => (c.max(1), c),
            None => (1, 1),
        };
        let y: Vec<T> = (0..self.planes)
            .into_par_iter()
            .with_min_len((4096 / hw.max(1)).max(1))
            .map(|p| {
                let first = (p / c) * c * hw + p % c;
                let s: f64 = (0..hw)
                    .map(|j| crate::Element::to_f64(x[first + j * step]))
                    .sum();
                T::c(s / hw as f64)
            })
            .collect();
        Ok(vec![y])
    }
}

/// Global-average-pool backward. Inputs `[dy]` (`planes`); output `[dx]`: `dy / hw` over each plane,
/// in the layout `channels_last` names (as in [`GlobalAvgPool`]).
pub struct GlobalAvgPoolBackward {
    pub planes: usize,
    pub hw: usize,
    pub channels_last: Option<usize>,
}

impl CpuKernel for GlobalAvgPoolBackward {
    const NAME: &'static str = "global_avg_pool2d_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (dy, hw) = (inputs[0], self.hw);
        let mut dx = vec![T::zero(); self.planes * hw];
        let inv = T::c(1.0 / hw as f64);
        match self.channels_last {
            None => dx
                .par_chunks_mut(hw.max(1))
                .enumerate()
                .with_min_len((4096 / hw.max(1)).max(1))
                .for_each(|(p, d)| d.fill(dy[p] * inv)),
            // Image n's block is [H·W, C]: every row of it is dy's row n, scaled.
            Some(c) => dx
                .par_chunks_mut((hw * c).max(1))
                .enumerate()
                .for_each(|(n, block)| {
                    let row = &dy[n * c..(n + 1) * c];
                    for pixel in block.chunks_mut(c.max(1)) {
                        for (d, &g) in pixel.iter_mut().zip(row) {
                            *d = g * inv;
                        }
                    }
                }),
        }
        Ok(vec![dx])
    }
}

impl Tensor {
    /// Max pooling with −∞ padding (PyTorch's `F.max_pool2d`, dilation 1). The gradient goes to the
    /// argmax of each window, saved by the forward kernel.
    pub fn max_pool2d(&self, p: Pool2dParams) -> Result<Tensor> {
        const OP: &str = "max_pool2d";
        if self.format() == MemoryFormat::ChannelsLast && self.device().is_cpu() {
            // The CPU's channels-last kernels are its NCHW ones between transposes: converting once
            // here costs the same. The output keeps the input's format (PyTorch's rule), so a
            // channels-last network stays channels-last across its pooling layers. Elsewhere the
            // kernels index channels-last storage themselves (`PoolGeom::new` takes the format).
            return self
                .contiguous()?
                .max_pool2d(p)?
                .to_format(MemoryFormat::ChannelsLast);
        }
        let (geom, out_shape) = PoolGeom::new(OP, self, p)?;
        let idx_dtype = if self.dtype() == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        if idx_dtype == DType::F32 && geom.h * geom.w > 1 << 24 {
            return Err(Error::bad(
                OP,
                format!(
                    "planes of {}×{} are too large for f32 argmax indices (at most 2^24 elements)",
                    geom.h, geom.w
                ),
            ));
        }
        let outs = apply_in(
            geom.format(),
            &MaxPool2d(geom),
            &[self],
            &[
                (out_shape.clone(), self.dtype()),
                (out_shape.clone(), idx_dtype),
            ],
        )?;
        let [y, idx]: [Tensor; 2] = outs
            .try_into()
            .map_err(|_| Error::bad(OP, "kernel returned the wrong number of outputs"))?;
        let (in_shape, dtype) = (self.shape().clone(), self.dtype());
        Ok(y.track(OP, &[self], move |dy| {
            // dy is converted to the kernels' format when it arrives in another.
            let dx = apply1_in(
                geom.format(),
                &MaxPool2dBackward(geom),
                &[&idx, dy],
                in_shape.clone(),
                dtype,
            )?;
            Ok(vec![Some(dx)])
        }))
    }

    /// Average pooling (PyTorch's `F.avg_pool2d`, no divisor override).
    pub fn avg_pool2d(&self, p: Pool2dParams, count_include_pad: bool) -> Result<Tensor> {
        const OP: &str = "avg_pool2d";
        if self.format() == MemoryFormat::ChannelsLast && self.device().is_cpu() {
            // As in `max_pool2d`: on the CPU, computed in NCHW and returned in the input's format.
            return self
                .contiguous()?
                .avg_pool2d(p, count_include_pad)?
                .to_format(MemoryFormat::ChannelsLast);
        }
        let (geom, out_shape) = PoolGeom::new(OP, self, p)?;
        let y = apply1_in(
            geom.format(),
            &AvgPool2d {
                geom,
                count_include_pad,
            },
            &[self],
            out_shape,
            self.dtype(),
        )?;
        let (in_shape, dtype) = (self.shape().clone(), self.dtype());
        Ok(y.track(OP, &[self], move |dy| {
            let k = AvgPool2dBackward(AvgPool2d {
                geom,
                count_include_pad,
            });
            Ok(vec![Some(apply1_in(
                geom.format(),
                &k,
                &[dy],
                in_shape.clone(),
                dtype,
            )?)])
        }))
    }

    /// Mean over the last two dims: `[N, C, H, W] → [N, C, 1, 1]` (`adaptive_avg_pool2d(x, 1)`).
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        const OP: &str = "global_avg_pool2d";
        let d = self.dims();
        if d.len() != 4 && d.len() != 3 {
            return Err(Error::bad(
                OP,
                format!(
                    "expected a 4-d [N, C, H, W] or 3-d [C, H, W] input, got shape {:?}",
                    self.shape()
                ),
            ));
        }
        let r = d.len();
        let hw = d[r - 2] * d[r - 1];
        if hw == 0 {
            return Err(Error::bad(
                OP,
                format!("empty spatial dims in input {:?}", self.shape()),
            ));
        }
        let planes: usize = d[..r - 2].iter().product();
        let mut out = d.to_vec();
        out[r - 2] = 1;
        out[r - 1] = 1;
        let (in_shape, dtype) = (self.shape().clone(), self.dtype());
        // A channels-last input is reduced in place of its storage (no transpose), on every device.
        // The kernel's `planes` results are [N, C] in both formats, so y is returned contiguous.
        let format = self.format();
        let channels_last = (format == MemoryFormat::ChannelsLast).then(|| d[1]);
        let k = GlobalAvgPool {
            planes,
            hw,
            channels_last,
        };
        let y = apply1_in(format, &k, &[self], Shape::new(vec![planes]), dtype)?
            .view_as(Shape::new(out));
        Ok(y.track(OP, &[self], move |dy| {
            let k = GlobalAvgPoolBackward {
                planes,
                hw,
                channels_last,
            };
            let dy = dy.reshape(vec![planes])?;
            let dx = apply1_in(format, &k, &[&dy], in_shape.clone(), dtype)?;
            Ok(vec![Some(dx)])
        }))
    }
}
