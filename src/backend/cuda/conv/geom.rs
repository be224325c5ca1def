//! cuDNN's view of a convolution geometry (`CuGeom`: validated, with the output extent cuDNN's
//! formula gives, every value in cuDNN's 32-bit `int`) and the three kinds of convolution call. Free
//! of cudarc, so the simulated device (`cuda-sim`) compiles it too.
//!
//! Invariants: a `CuGeom` exists only for a geometry the CPU kernels accept, whose output fits inside
//! the formula's, whose per-image tensors fit cuDNN's int strides, and whose input and output
//! have fewer than 2³¹ elements each (cuDNN refuses larger tensors).

use crate::ops::conv::Conv2dGeometry;
use crate::{Error, Result};
use std::ffi::c_int;

/// Which cuDNN convolution entry point a plan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Forward,
    BackwardData,
    BackwardFilter,
}

/// The memory layout of a call's tensors, which its descriptors describe (see "Channels-last" in
/// `mod.rs`): NCHW, or NHWC with the filter in KRSC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Format {
    Nchw,
    Nhwc,
}

impl Format {
    /// The layout of a kernel struct's operands (its `channels_last` flag).
    pub(super) fn of(channels_last: bool) -> Format {
        if channels_last {
            Format::Nhwc
        } else {
            Format::Nchw
        }
    }
}

/// The convolution as cuDNN sees it: every extent as `int`, `ho`/`wo` from cuDNN's formula.
#[derive(Clone, Copy, Debug)]
pub(super) struct CuGeom {
    pub(super) n: c_int,
    pub(super) cin: c_int,
    pub(super) h: c_int,
    pub(super) w: c_int,
    pub(super) cout: c_int,
    pub(super) cin_g: c_int,
    pub(super) kh: c_int,
    pub(super) kw: c_int,
    pub(super) ho: c_int,
    pub(super) wo: c_int,
    pub(super) pad: [c_int; 2],
    pub(super) stride: [c_int; 2],
    pub(super) dil: [c_int; 2],
    pub(super) groups: c_int,
}

pub(super) fn int(op: &'static str, what: &str, v: usize) -> Result<c_int> {
    c_int::try_from(v)
        .map_err(|_| Error::bad(op, format!("{what} = {v} exceeds cuDNN's 32-bit int")))
}

pub(super) use crate::backend::kernel_abi::product;

impl CuGeom {
    /// Validates `g` (like the CPU kernels) and derives cuDNN's view of it.
    pub(super) fn new(op: &'static str, g: &Conv2dGeometry) -> Result<CuGeom> {
        g.validate(op)?;
        // cuDNN's output extent: 1 + (len + 2p − d(k − 1) − 1) / s.
        let formula = |len: usize, k: usize, s: usize, p: usize, d: usize| {
            let span = d * (k - 1) + 1;
            (len + 2 * p).checked_sub(span).map(|r| r / s + 1)
        };
        let ho = formula(g.h, g.kh, g.stride.0, g.padding.0, g.dilation.0);
        let wo = formula(g.w, g.kw, g.stride.1, g.padding.1, g.dilation.1);
        let (Some(ho), Some(wo)) = (ho, wo) else {
            return Err(Error::bad(
                op,
                format!("the dilated kernel does not fit the padded input in {g:?}"),
            ));
        };
        if g.ho > ho || g.wo > wo {
            return Err(Error::bad(
                op,
                format!(
                    "output {}×{} exceeds the {ho}×{wo} the convolution produces in {g:?}",
                    g.ho, g.wo
                ),
            ));
        }
        // cuDNN's legacy descriptors use int strides: one image of each tensor must fit.
        product(op, &[g.cin, g.h, g.w])
            .and_then(|v| int(op, "Cin·H·W", v))
            .and(product(op, &[g.cout, ho, wo]).and_then(|v| int(op, "Cout·Ho·Wo", v)))
            .and(product(op, &[g.cin / g.groups, g.kh, g.kw]).and_then(|v| int(op, "filter", v)))?;
        // cuDNN also refuses any tensor of 2³¹ elements or more (CUDNN_STATUS_NOT_SUPPORTED from the
        // descriptor): say so, with the way out, before a descriptor is made.
        for (what, dims) in [
            ("input", [g.n, g.cin, g.h, g.w]),
            ("output", [g.n, g.cout, ho, wo]),
        ] {
            let numel = product(op, &dims)?;
            if numel > c_int::MAX as usize {
                return Err(Error::bad(
                    op,
                    format!(
                        "the {what} {dims:?} has {numel} elements; cuDNN takes at most 2^31 - 1 \
                         per tensor: use a smaller batch (e.g. accumulate gradients over several)"
                    ),
                ));
            }
        }
        Ok(CuGeom {
            n: int(op, "N", g.n)?,
            cin: int(op, "Cin", g.cin)?,
            h: int(op, "H", g.h)?,
            w: int(op, "W", g.w)?,
            cout: int(op, "Cout", g.cout)?,
            cin_g: int(op, "Cin/groups", g.cin / g.groups)?,
            kh: int(op, "kh", g.kh)?,
            kw: int(op, "kw", g.kw)?,
            ho: int(op, "Ho", ho)?,
            wo: int(op, "Wo", wo)?,
            pad: [int(op, "pad", g.padding.0)?, int(op, "pad", g.padding.1)?],
            stride: [
                int(op, "stride", g.stride.0)?,
                int(op, "stride", g.stride.1)?,
            ],
            dil: [
                int(op, "dilation", g.dilation.0)?,
                int(op, "dilation", g.dilation.1)?,
            ],
            groups: int(op, "groups", g.groups)?,
        })
    }

    /// (channels, plane size) of the output a bias is added to in a call of `kind`: the forward's y
    /// or the data gradient's x (a transposed convolution's output); None for the filter gradient,
    /// which takes no bias. Channels-last storage is rows of channels: its "plane" is 1.
    pub(super) fn bias_layout(&self, kind: Kind, format: Format) -> Option<(usize, usize)> {
        let (c, plane) = match kind {
            Kind::Forward => (self.cout as usize, self.ho as usize * self.wo as usize),
            Kind::BackwardData => (self.cin as usize, self.h as usize * self.w as usize),
            Kind::BackwardFilter => return None,
        };
        Some(match format {
            Format::Nchw => (c, plane),
            Format::Nhwc => (c, 1),
        })
    }

    /// True when cuDNN's output extent differs from the geometry's (see the module docs).
    pub(super) fn windowed(&self, g: &Conv2dGeometry) -> bool {
        self.ho as usize != g.ho || self.wo as usize != g.wo
    }
}
