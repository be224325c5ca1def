//! Spatial resizing of `[N, C, H, W]` tensors: nearest-neighbour upsampling by an integer factor
//! (`F.interpolate(mode='nearest', scale_factor=s)`), reflection padding (`nn.ReflectionPad2d`) and
//! zero padding (`nn.ZeroPad2d`).
//!
//! Invariants:
//! - Every output element reads exactly one input element (or a zero for zero padding), so each
//!   backward is a scatter-add of the output gradient onto those sources, plane by plane.
//! - Padding is `(left, right, top, bottom)`, PyTorch's order. Reflection excludes the edge element
//!   (`[a b c]` padded by 2 on the left gives `[c b a b c]`), so each reflection pad must be smaller
//!   than its dim; larger pads are an error, never a panic.
//! - Pads accept `[N, C, H, W]` or `[C, H, W]`; upsampling needs `[N, C, H, W]`. Kernels are parallel
//!   over `(n, c)` planes.

use super::apply1;
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{Error, Result, Shape, Tensor};
use rayon::prelude::*;

/// Nearest upsampling by `scale` in both spatial dims: `out[y, x] = in[y / s, x / s]`.
/// Inputs `[x]` (`planes × h × w`); output `[y]` (`planes × h·s × w·s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpsampleNearest2d {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub scale: usize,
}

impl CpuKernel for UpsampleNearest2d {
    const NAME: &'static str = "upsample_nearest2d";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let x = inputs[0];
        let (h, w, s) = (self.h, self.w, self.scale);
        let (ow, op) = (w * s, h * s * w * s);
        let mut y = vec![T::zero(); self.planes * op];
        y.par_chunks_mut(op.max(1))
            .enumerate()
            .for_each(|(pl, yp)| {
                let xp = &x[pl * h * w..(pl + 1) * h * w];
                for (oy, row) in yp.chunks_mut(ow.max(1)).enumerate() {
                    let xr = &xp[(oy / s) * w..(oy / s + 1) * w];
                    for (ox, v) in row.iter_mut().enumerate() {
                        *v = xr[ox / s];
                    }
                }
            });
        Ok(vec![y])
    }
}

/// The adjoint of `UpsampleNearest2d`: each input cell gets the sum of its `s × s` output block.
/// Inputs `[dy]`; output `[dx]`.
pub struct UpsampleNearest2dBackward(pub UpsampleNearest2d);

impl CpuKernel for UpsampleNearest2dBackward {
    const NAME: &'static str = "upsample_nearest2d_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let dy = inputs[0];
        let k = &self.0;
        let (h, w, s) = (k.h, k.w, k.scale);
        let (ow, op) = (w * s, h * s * w * s);
        let mut dx = vec![T::zero(); k.planes * h * w];
        dx.par_chunks_mut((h * w).max(1))
            .enumerate()
            .for_each(|(pl, dxp)| {
                let dyp = &dy[pl * op..(pl + 1) * op];
                for (oy, row) in dyp.chunks(ow.max(1)).enumerate() {
                    let dr = &mut dxp[(oy / s) * w..(oy / s + 1) * w];
                    for (ox, &v) in row.iter().enumerate() {
                        dr[ox / s] += v;
                    }
                }
            });
        Ok(vec![dx])
    }
}

/// How a pad fills the border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Zero,
    Reflect,
}

/// 2-d padding of `planes × h × w` by `(left, right, top, bottom)`. Inputs `[x]`; output `[y]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pad2d {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub pad: (usize, usize, usize, usize),
    pub mode: PadMode,
}

impl Pad2d {
    fn out_hw(&self) -> (usize, usize) {
        let (l, r, t, b) = self.pad;
        (self.h + t + b, self.w + l + r)
    }
    /// Source index along one dim of length `n` for output position `o` with leading pad `p`.
    #[inline(always)]
    fn src(&self, o: usize, p: usize, n: usize) -> Option<usize> {
        let i = o as isize - p as isize;
        let n = n as isize;
        if (0..n).contains(&i) {
            return Some(i as usize);
        }
        match self.mode {
            PadMode::Zero => None,
            PadMode::Reflect => Some(if i < 0 { -i } else { 2 * (n - 1) - i } as usize),
        }
    }
}

impl CpuKernel for Pad2d {
    const NAME: &'static str = "pad2d";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let x = inputs[0];
        let (oh, ow) = self.out_hw();
        let (l, _, t, _) = self.pad;
        let (h, w) = (self.h, self.w);
        let mut y = vec![T::zero(); self.planes * oh * ow];
        y.par_chunks_mut((oh * ow).max(1))
            .enumerate()
            .for_each(|(pl, yp)| {
                let xp = &x[pl * h * w..(pl + 1) * h * w];
                for oy in 0..oh {
                    let Some(sy) = self.src(oy, t, h) else {
                        continue;
                    };
                    for ox in 0..ow {
                        if let Some(sx) = self.src(ox, l, w) {
                            yp[oy * ow + ox] = xp[sy * w + sx];
                        }
                    }
                }
            });
        Ok(vec![y])
    }
}

/// The adjoint of `Pad2d`: scatter-adds each output gradient onto its source cell.
/// Inputs `[dy]`; output `[dx]`.
pub struct Pad2dBackward(pub Pad2d);

impl CpuKernel for Pad2dBackward {
    const NAME: &'static str = "pad2d_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let dy = inputs[0];
        let k = &self.0;
        let (oh, ow) = k.out_hw();
        let (l, _, t, _) = k.pad;
        let (h, w) = (k.h, k.w);
        let mut dx = vec![T::zero(); k.planes * h * w];
        dx.par_chunks_mut((h * w).max(1))
            .enumerate()
            .for_each(|(pl, dxp)| {
                let dyp = &dy[pl * oh * ow..(pl + 1) * oh * ow];
                for oy in 0..oh {
                    let Some(sy) = k.src(oy, t, h) else {
                        continue;
                    };
                    for ox in 0..ow {
                        if let Some(sx) = k.src(ox, l, w) {
                            dxp[sy * w + sx] += dyp[oy * ow + ox];
                        }
                    }
                }
            });
        Ok(vec![dx])
    }
}

impl Tensor {
    /// Nearest-neighbour upsampling of `[N, C, H, W]` by an integer `scale` ≥ 1.
    pub fn upsample_nearest2d(&self, scale: usize) -> Result<Tensor> {
        const OP: &str = "upsample_nearest2d";
        let (n, c, h, w) = self.shape().dims4(OP)?;
        if scale == 0 {
            return Err(Error::bad(OP, "scale must be at least 1, got 0"));
        }
        let k = UpsampleNearest2d {
            planes: n * c,
            h,
            w,
            scale,
        };
        let y = apply1(
            &k,
            &[self],
            Shape::new(vec![n, c, h * scale, w * scale]),
            self.dtype(),
        )?;
        let (in_shape, dtype) = (self.shape().clone(), self.dtype());
        Ok(y.track(OP, &[self], move |dy| {
            let b = UpsampleNearest2dBackward(k);
            Ok(vec![Some(apply1(&b, &[dy], in_shape.clone(), dtype)?)])
        }))
    }

    /// Reflection padding by `(left, right, top, bottom)`, like `nn.ReflectionPad2d`; each pad must be
    /// smaller than the dim it pads.
    pub fn reflection_pad2d(&self, pad: (usize, usize, usize, usize)) -> Result<Tensor> {
        self.pad2d("reflection_pad2d", pad, PadMode::Reflect)
    }

    /// Zero padding by `(left, right, top, bottom)`, like `nn.ZeroPad2d`.
    pub fn zero_pad2d(&self, pad: (usize, usize, usize, usize)) -> Result<Tensor> {
        self.pad2d("zero_pad2d", pad, PadMode::Zero)
    }

    fn pad2d(
        &self,
        op: &'static str,
        pad: (usize, usize, usize, usize),
        mode: PadMode,
    ) -> Result<Tensor> {
        let d = self.dims();
        if d.len() != 4 && d.len() != 3 {
            return Err(Error::bad(
                op,
                format!(
                    "expected a 4-d [N, C, H, W] or 3-d [C, H, W] input, got shape {:?}",
                    self.shape()
                ),
            ));
        }
        let r = d.len();
        let (h, w) = (d[r - 2], d[r - 1]);
        let (l, rt, t, b) = pad;
        if mode == PadMode::Reflect && (l >= w || rt >= w || t >= h || b >= h) {
            return Err(Error::bad(
                op,
                format!(
                    "padding (left {l}, right {rt}, top {t}, bottom {b}) must be smaller than the \
                     padded dims (H {h}, W {w}) of input {:?}",
                    self.shape()
                ),
            ));
        }
        let k = Pad2d {
            planes: d[..r - 2].iter().product(),
            h,
            w,
            pad,
            mode,
        };
        let (oh, ow) = k.out_hw();
        let mut out = d.to_vec();
        out[r - 2] = oh;
        out[r - 1] = ow;
        let y = apply1(&k, &[self], Shape::new(out), self.dtype())?;
        let (in_shape, dtype) = (self.shape().clone(), self.dtype());
        Ok(y.track(op, &[self], move |dy| {
            Ok(vec![Some(apply1(
                &Pad2dBackward(k),
                &[dy],
                in_shape.clone(),
                dtype,
            )?)])
        }))
    }
}
