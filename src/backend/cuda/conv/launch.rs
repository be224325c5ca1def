//! The convolution launchers (`Conv2dForward`, `Conv2dBackwardInput`, `Conv2dBackwardWeight`,
//! `Conv2dBiasGrad`) and their helper kernels: everything of them that does not talk to cuDNN. The
//! cuDNN call itself is `convolve` of the parent module: `run.rs` in the CUDA backend, a CPU stand-in
//! with cuDNN's contract on the simulated device (`cuda_sim/conv.rs`, which compiles this same file).
//!
//! Invariants: input counts, dtypes and lengths are checked against the geometry before anything is
//! launched; nothing is launched for an empty batch; outputs at a size other than cuDNN's formula are
//! cropped or zero-padded with `window` (see "Output sizes" in `mod.rs`); outputs are returned in the
//! inputs' dtype.

use super::{convolve, CuGeom, Format, Kind};
use crate::backend::cuda::batch_norm::check_len;
use crate::backend::cuda::{gpu, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::conv::{self as conv_abi, bias_grad_launch};
use crate::backend::kernel_abi::product;
use crate::ops::conv::{
    Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dBiasGrad, Conv2dForward, Conv2dGeometry,
};
use crate::{DType, Error, Result};

// ------------------------------------------------------------------------------------------------
// Helper kernels (cuda/conv.cu; their calls and the bias gradient's grid from kernel_abi/conv.rs)

/// `y[i] = bias[(i / plane) % c]` over `y` (`len` a multiple of `c·plane`).
pub(super) fn fill_bias(
    g: &Gpu,
    op: &'static str,
    bias: &CudaStorage,
    y: &mut CudaStorage,
    c: usize,
    plane: usize,
) -> Result<()> {
    let total = y.len();
    if total == 0 {
        return Ok(());
    }
    check_len(op, "bias", bias, c)?;
    let call = conv_abi::fill_bias(y.dtype(), total, plane, c, bias.dptr(g), y.dptr_mut(g));
    // SAFETY: bias holds c elements (checked), y `total`; the kernel reads bias[(i / plane) % c].
    unsafe { g.launch(&call, g.grid(total)) }?;
    Ok(())
}

/// Copies planes `[hs, ws]` of `src` into planes `[hd, wd]` of a new buffer, top-left aligned,
/// cropping or zero-filling.
#[allow(clippy::too_many_arguments)]
fn window(
    g: &Gpu,
    op: &'static str,
    src: &CudaStorage,
    planes: usize,
    (hs, ws): (usize, usize),
    (hd, wd): (usize, usize),
) -> Result<CudaStorage> {
    let total = product(op, &[planes, hd, wd])?;
    let mut dst = g.alloc(src.dtype(), total)?;
    if total == 0 {
        return Ok(dst);
    }
    let call = conv_abi::window(
        src.dtype(),
        planes,
        (hs, ws),
        (hd, wd),
        src.dptr(g),
        dst.dptr_mut(g),
    );
    // SAFETY: src holds planes·hs·ws elements (checked by the caller), dst planes·hd·wd.
    unsafe { g.launch(&call, g.grid(total)) }?;
    Ok(dst)
}

// ------------------------------------------------------------------------------------------------
// Launchers

/// Checks the input count, that all inputs share one dtype, and each input's length.
fn check_inputs(op: &'static str, inputs: &[&CudaStorage], want: &[(&str, usize)]) -> Result<()> {
    if inputs.len() != want.len() {
        return Err(Error::bad(
            op,
            format!("expected {} inputs, got {}", want.len(), inputs.len()),
        ));
    }
    let dtype = inputs[0].dtype();
    if let Some(other) = inputs.iter().find(|s| s.dtype() != dtype) {
        return Err(Error::DType {
            op,
            msg: format!(
                "cuDNN convolutions take one dtype for all operands, got {dtype} and {}",
                other.dtype()
            ),
        });
    }
    for (s, &(what, len)) in inputs.iter().zip(want) {
        if s.len() != len {
            return Err(Error::bad(
                op,
                format!("{what} has {} elements, the geometry needs {len}", s.len()),
            ));
        }
    }
    Ok(())
}

/// Element counts of x, w and the geometry's y.
fn lens(op: &'static str, g: &Conv2dGeometry) -> Result<(usize, usize, usize)> {
    Ok((
        product(op, &[g.n, g.cin, g.h, g.w])?,
        product(op, &[g.cout, g.cin / g.groups.max(1), g.kh, g.kw])?,
        product(op, &[g.n, g.cout, g.ho, g.wo])?,
    ))
}

/// The layout of a launch's operands, after checking that a channels-last call needs no window (the
/// window kernel indexes NCHW planes; `Tensor::conv2d`, the only op that asks for channels-last,
/// always has cuDNN's output size).
fn format_of(
    op: &'static str,
    geom: &Conv2dGeometry,
    cg: &CuGeom,
    channels_last: bool,
) -> Result<Format> {
    if channels_last && cg.windowed(geom) {
        return Err(Error::bad(
            op,
            format!(
                "a channels-last convolution needs cuDNN's output size {}×{}, the geometry has {}×{}; \
                 run it in NCHW (contiguous) instead",
                cg.ho, cg.wo, geom.ho, geom.wo
            ),
        ));
    }
    Ok(Format::of(channels_last))
}

/// `dy` at cuDNN's output size: itself, or zero-padded when the geometry's output is smaller.
fn dy_full<'a>(
    g: &Gpu,
    op: &'static str,
    geom: &Conv2dGeometry,
    cg: &CuGeom,
    dy: &'a CudaStorage,
    padded: &'a mut Option<CudaStorage>,
) -> Result<&'a CudaStorage> {
    if !cg.windowed(geom) {
        return Ok(dy);
    }
    let full = window(
        g,
        op,
        dy,
        geom.n * geom.cout,
        (geom.ho, geom.wo),
        (cg.ho as usize, cg.wo as usize),
    )?;
    Ok(padded.insert(full))
}

impl CudaKernel for Conv2dForward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "conv2d";
        let geom = self.geom;
        let cg = CuGeom::new(OP, &geom)?;
        let (xl, wl, yl) = lens(OP, &geom)?;
        let mut want = vec![("input", xl), ("weight", wl)];
        if self.has_bias {
            want.push(("bias", geom.cout));
        }
        check_inputs(OP, inputs, &want)?;
        let (x, w, bias) = (inputs[0], inputs[1], inputs.get(2).copied());
        let format = format_of(OP, &geom, &cg, self.channels_last)?;
        let g = gpu(x.ordinal())?;
        if geom.n == 0 {
            return Ok(vec![g.alloc(x.dtype(), yl)?]);
        }
        if !cg.windowed(&geom) {
            let mut y = g.alloc(x.dtype(), yl)?;
            convolve(g, OP, Kind::Forward, format, &geom, &cg, x, w, &mut y, bias)?;
            return Ok(vec![y]);
        }
        let full_len = product(OP, &[geom.n, geom.cout, cg.ho as usize, cg.wo as usize])?;
        let mut full = g.alloc(x.dtype(), full_len)?;
        convolve(
            g,
            OP,
            Kind::Forward,
            format,
            &geom,
            &cg,
            x,
            w,
            &mut full,
            bias,
        )?;
        let cropped = window(
            g,
            OP,
            &full,
            geom.n * geom.cout,
            (cg.ho as usize, cg.wo as usize),
            (geom.ho, geom.wo),
        )?;
        Ok(vec![cropped])
    }
}

impl CudaKernel for Conv2dBackwardInput {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "conv2d_backward_input";
        let geom = self.geom;
        let cg = CuGeom::new(OP, &geom)?;
        let (xl, wl, yl) = lens(OP, &geom)?;
        let mut want = vec![("output gradient", yl), ("weight", wl)];
        if self.has_bias {
            want.push(("bias", geom.cin));
        }
        check_inputs(OP, inputs, &want)?;
        let (dy, w, bias) = (inputs[0], inputs[1], inputs.get(2).copied());
        let format = format_of(OP, &geom, &cg, self.channels_last)?;
        let g = gpu(dy.ordinal())?;
        let mut dx = g.alloc(dy.dtype(), xl)?;
        if geom.n == 0 {
            return Ok(vec![dx]);
        }
        let mut padded = None;
        let dy = dy_full(g, OP, &geom, &cg, dy, &mut padded)?;
        convolve(
            g,
            OP,
            Kind::BackwardData,
            format,
            &geom,
            &cg,
            w,
            dy,
            &mut dx,
            bias,
        )?;
        Ok(vec![dx])
    }
}

impl CudaKernel for Conv2dBackwardWeight {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "conv2d_backward_weight";
        let geom = self.geom;
        let cg = CuGeom::new(OP, &geom)?;
        let (xl, wl, yl) = lens(OP, &geom)?;
        check_inputs(OP, inputs, &[("input", xl), ("output gradient", yl)])?;
        let (x, dy) = (inputs[0], inputs[1]);
        let format = format_of(OP, &geom, &cg, self.channels_last)?;
        let g = gpu(x.ordinal())?;
        if geom.n == 0 {
            return Ok(vec![g.zeros(x.dtype(), wl)?]);
        }
        let mut dw = g.alloc(x.dtype(), wl)?;
        let mut padded = None;
        let dy = dy_full(g, OP, &geom, &cg, dy, &mut padded)?;
        convolve(
            g,
            OP,
            Kind::BackwardFilter,
            format,
            &geom,
            &cg,
            x,
            dy,
            &mut dw,
            None,
        )?;
        Ok(vec![dw])
    }
}

impl CudaKernel for Conv2dBiasGrad {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "conv2d_bias_grad";
        let (n, c, plane) = (self.n, self.c, self.plane);
        check_inputs(OP, inputs, &[("dy", product(OP, &[n, c, plane])?)])?;
        let dy = inputs[0];
        let g = gpu(dy.ordinal())?;
        if c == 0 || n == 0 || plane == 0 {
            return Ok(vec![g.zeros(dy.dtype(), c)?]);
        }
        let mut db = g.alloc(dy.dtype(), c)?;
        let call = conv_abi::bias_grad(dy.dtype(), n, c, plane, dy.dptr(g), db.dptr_mut(g));
        let cfg = g.launch_cfg(bias_grad_launch(c, g.sms()));
        // SAFETY: dy holds n·c·plane elements (checked), db c; 256 threads (a multiple of 32,
        // ≤ 1024) as BlockGroup requires.
        unsafe { g.launch(&call, cfg) }?;
        Ok(vec![db])
    }
}
