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
//! Backward-input of a stride-1 undilated conv is a forward conv of dy with the rotated kernel
//! (`Conv2dBackwardInput::as_forward`); other geometries take gemm then col2im. Backward-weight
//! accumulates per-task partial sums (`+=` in gemm) and reduces them.
//! 3×3 convs with stride 1 and padding 1 (ungrouped, ≥ 16 channels each side) skip im2col: forward,
//! (through the rewrite) backward-input and backward-weight run as Winograd F(2×2, 3×3), 16 gemms
//! over transformed 4×4 tiles with 2.25× fewer products (`winograd/`; `WINOGRAD` switches it off
//! for A/B runs). `cargo test --release --test conv_speed -- --ignored --nocapture` and
//! `examples/bench_cpu.rs` (`--no-winograd` for the im2col path) measure them.
//! Invariant: every kernel checks its input lengths against its geometry and returns an error rather
//! than panicking; all Tensor-level shape validation happens before a kernel is built.

mod channels_last;
mod im2col;
mod kernels;
mod winograd;

pub use im2col::TILE_ELEMS;
pub use kernels::{Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dBiasGrad, Conv2dForward};
pub use winograd::WINOGRAD;

use super::{apply1, apply1_in, same_dtype_device};
use crate::tensor::MemoryFormat;
use crate::{DType, Error, Result, Shape, Tensor};

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
    pub(crate) fn validate(&self, op: &'static str) -> Result<()> {
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
        let channels_last = runs_channels_last(self, weight);
        let format = if channels_last {
            MemoryFormat::ChannelsLast
        } else {
            MemoryFormat::Contiguous
        };
        CONV2D_CALLS.with(|c| {
            let (nchw, nhwc) = c.get();
            c.set(if channels_last {
                (nchw, nhwc + 1)
            } else {
                (nchw + 1, nhwc)
            })
        });
        // The operands in the kernel's format, converted once for the forward and the backward.
        let (xk, wk) = (
            self.detach().to_format(format)?,
            weight.detach().to_format(format)?,
        );
        let mut kernel_inputs = vec![&xk, &wk];
        kernel_inputs.extend(bias);
        let y = apply1_in(
            format,
            &Conv2dForward {
                geom,
                has_bias,
                channels_last,
            },
            &kernel_inputs,
            Shape::new(vec![n, cout, ho, wo]),
            self.dtype(),
        )?;
        let need_x = self.requires_grad();
        let need_w = weight.requires_grad();
        let need_b = bias.is_some_and(|b| b.requires_grad());
        // Save only what the backward needs: x for dW, w for dX.
        let x = need_w.then(|| xk.clone());
        let wt = need_x.then(|| wk.clone());
        let (x_shape, w_shape, dtype) =
            (self.shape().clone(), weight.shape().clone(), self.dtype());
        Ok(y.track(OP, &inputs, move |dy| {
            let gx = match &wt {
                Some(wt) => Some(apply1_in(
                    format,
                    &Conv2dBackwardInput {
                        geom,
                        has_bias: false,
                        channels_last,
                    },
                    &[dy, wt],
                    x_shape.clone(),
                    dtype,
                )?),
                None => None,
            };
            let gw = match &x {
                Some(x) => Some(apply1_in(
                    format,
                    &Conv2dBackwardWeight {
                        geom,
                        channels_last,
                    },
                    &[x, dy],
                    w_shape.clone(),
                    dtype,
                )?),
                None => None,
            };
            let mut grads = vec![gx, gw];
            if has_bias {
                grads.push(if need_b {
                    Some(bias_grad(dy, format, n, cout, ho * wo)?)
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
            &Conv2dBackwardInput {
                geom,
                has_bias,
                channels_last: false,
            },
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
                        channels_last: false,
                    },
                    &[dy, wt],
                    x_shape.clone(),
                    dtype,
                )?),
                None => None,
            };
            let gw = match &x {
                Some(x) => Some(apply1(
                    &Conv2dBackwardWeight {
                        geom,
                        channels_last: false,
                    },
                    &[dy, x],
                    w_shape.clone(),
                    dtype,
                )?),
                None => None,
            };
            let mut grads = vec![gx, gw];
            if has_bias {
                grads.push(if need_b {
                    Some(bias_grad(dy, MemoryFormat::Contiguous, n, cout, ho * wo)?)
                } else {
                    None
                });
            }
            Ok(grads)
        }))
    }
}

/// Per-channel sums of `dy` (`[n, c, plane]` as stored in `format`: channels-last storage is
/// `n·plane` rows of `c`).
fn bias_grad(
    dy: &Tensor,
    format: MemoryFormat,
    n: usize,
    c: usize,
    plane: usize,
) -> Result<Tensor> {
    let k = match format {
        MemoryFormat::Contiguous => Conv2dBiasGrad { n, c, plane },
        MemoryFormat::ChannelsLast => Conv2dBiasGrad {
            n: n * plane,
            c,
            plane: 1,
        },
    };
    apply1_in(format, &k, &[dy], Shape::new(vec![c]), dy.dtype())
}

thread_local! {
    static CONV2D_CALLS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// How many `conv2d` calls this thread has made in NCHW and in channels-last (forward calls; each
/// one's backward runs in the same layout). Tests read differences to check that a channels-last
/// network ran every convolution channels-last.
pub fn conv2d_layout_counts() -> (u64, u64) {
    CONV2D_CALLS.with(|c| c.get())
}

/// Whether `conv2d` runs channels-last: on CUDA, for f16/f32, when the input or the weight is
/// stored channels-last (PyTorch's rule: the output follows a channels-last operand). cuDNN's NHWC
/// kernels are its fast path for f16 on tensor cores; the CPU always computes in NCHW.
fn runs_channels_last(x: &Tensor, w: &Tensor) -> bool {
    !x.device().is_cpu()
        && x.dtype() != DType::F64
        && (x.format() == MemoryFormat::ChannelsLast || w.format() == MemoryFormat::ChannelsLast)
}
