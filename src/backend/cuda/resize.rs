//! CUDA launchers for `UpsampleNearest2d`, `UpsampleNearest2dBackward`, `Pad2d` and `Pad2dBackward`
//! (`src/ops/resize.rs`, kernels in `cuda/resize.cu`, their calls — kernel names and argument lists —
//! from `kernel_abi/resize.rs`). Every kernel has one thread per output element; the backward kernels
//! gather (each input cell sums its sources' gradients in the CPU's order), so they are deterministic
//! and atomic-free.
//!
//! Invariants: buffer lengths are checked against the geometry; reflection pads are smaller than the
//! dim they pad (as the op requires; a larger one would read outside the plane); outputs are returned
//! in the inputs' dtype; nothing is launched for empty outputs.

use super::batch_norm::{check_len, product};
use super::{gpu, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::resize;
use crate::ops::resize::{
    Pad2d, Pad2dBackward, PadMode, UpsampleNearest2d, UpsampleNearest2dBackward,
};
use crate::{DType, Error, Result};

/// (input elements, output elements) of an upsampling.
fn upsample_sizes(op: &'static str, k: &UpsampleNearest2d) -> Result<(usize, usize)> {
    Ok((
        product(op, &[k.planes, k.h, k.w])?,
        product(op, &[k.planes, k.h, k.scale, k.w, k.scale])?,
    ))
}

impl CudaKernel for UpsampleNearest2d {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "upsample_nearest2d";
        let x = inputs[0];
        let (n_in, n_out) = upsample_sizes(OP, self)?;
        check_len(OP, "x", x, n_in)?;
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(x.dtype(), n_out)?;
        if n_out > 0 {
            let call = resize::upsample_nearest2d(x.dtype(), self, x.dptr(g), y.dptr_mut(g));
            // SAFETY: x holds planes·h·w elements (checked), y planes·h·s·w·s.
            unsafe { g.launch(&call, g.grid(n_out)) }?;
        }
        Ok(vec![y])
    }
}

impl CudaKernel for UpsampleNearest2dBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "upsample_nearest2d_backward";
        let dy = inputs[0];
        let k = &self.0;
        let (n_in, n_out) = upsample_sizes(OP, k)?;
        check_len(OP, "dy", dy, n_out)?;
        let g = gpu(dy.ordinal())?;
        let mut dx = g.alloc(dy.dtype(), n_in)?;
        if n_in > 0 {
            let call =
                resize::upsample_nearest2d_backward(dy.dtype(), k, dy.dptr(g), dx.dptr_mut(g));
            // SAFETY: dy holds planes·h·s·w·s elements (checked), dx planes·h·w (all zeros when
            // s = 0: nothing is read).
            unsafe { g.launch(&call, g.grid(n_in)) }?;
        }
        Ok(vec![dx])
    }
}

/// Checks the pads and returns (input elements, output elements).
fn pad_sizes(op: &'static str, k: &Pad2d) -> Result<(usize, usize)> {
    let (l, r, t, b) = k.pad;
    if k.mode == PadMode::Reflect && (l >= k.w || r >= k.w || t >= k.h || b >= k.h) {
        return Err(Error::bad(
            op,
            format!(
                "reflection pads (left {l}, right {r}, top {t}, bottom {b}) must be smaller than the \
                 padded dims (H {}, W {})",
                k.h, k.w
            ),
        ));
    }
    let oh = k.h.checked_add(t).and_then(|v| v.checked_add(b));
    let ow = k.w.checked_add(l).and_then(|v| v.checked_add(r));
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(Error::bad(op, format!("pads {:?} overflow", k.pad)));
    };
    Ok((
        product(op, &[k.planes, k.h, k.w])?,
        product(op, &[k.planes, oh, ow])?,
    ))
}

impl CudaKernel for Pad2d {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "pad2d";
        let x = inputs[0];
        let (n_in, n_out) = pad_sizes(OP, self)?;
        check_len(OP, "x", x, n_in)?;
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(x.dtype(), n_out)?;
        if n_out > 0 {
            let call = resize::pad2d(x.dtype(), self, x.dptr(g), y.dptr_mut(g));
            // SAFETY: x holds planes·h·w elements (checked), y planes·(h+t+b)·(w+l+r); reflect pads
            // are < their dim (checked), so sources are in the plane.
            unsafe { g.launch(&call, g.grid(n_out)) }?;
        }
        Ok(vec![y])
    }
}

impl CudaKernel for Pad2dBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "pad2d_backward";
        let dy = inputs[0];
        let k = &self.0;
        let (n_in, n_out) = pad_sizes(OP, k)?;
        check_len(OP, "dy", dy, n_out)?;
        let g = gpu(dy.ordinal())?;
        let mut dx = g.alloc(dy.dtype(), n_in)?;
        if n_in > 0 {
            let call = resize::pad2d_backward(dy.dtype(), k, dy.dptr(g), dx.dptr_mut(g));
            // SAFETY: dy holds planes·(h+t+b)·(w+l+r) elements (checked), dx planes·h·w; every
            // gathered output index is in its plane.
            unsafe { g.launch(&call, g.grid(n_in)) }?;
        }
        Ok(vec![dx])
    }
}
